"""Fast vectorised backtests of trading strategies on one symbol's OHLCV data.

Typical use in an optimizer worker: load once, prepare once, evaluate per trial.

    frame = load_ohlcv("data/{symbol}.csv", "AAPL")      # or synthetic_ohlcv("AAPL")
    data = PriceData.from_frame(frame, "AAPL")
    metrics = evaluate(data, "ma_crossover", {"fast": 10, "slow": 50}, fees_bps=1.0)

Only numpy and pandas (pyarrow for parquet) are used. ``PriceData`` caches the
indicators it computes (``data.indicator_cache``, an LRU of 64 MiB by default),
so parameter values that an optimizer proposes again cost nothing to recompute.
"""

from .data import DataError, data_path, load_ohlcv, validate_ohlcv
from .engine import BacktestResult, run_backtest
from .evaluation import bar_returns, evaluate, evaluate_partial, evaluate_since
from .metrics import METRIC_DIRECTIONS, METRICS, compute_metrics
from .prices import PriceData, close_to_close_returns
from .strategies import STRATEGIES, InvalidParams, Strategy, get_strategy
from .synthetic import synthetic_ohlcv
from .user import resolve_user_backtest

__all__ = [
    "DataError",
    "InvalidParams",
    "load_ohlcv",
    "data_path",
    "validate_ohlcv",
    "synthetic_ohlcv",
    "PriceData",
    "close_to_close_returns",
    "STRATEGIES",
    "Strategy",
    "get_strategy",
    "METRICS",
    "METRIC_DIRECTIONS",
    "compute_metrics",
    "run_backtest",
    "BacktestResult",
    "evaluate",
    "evaluate_partial",
    "evaluate_since",
    "bar_returns",
    "resolve_user_backtest",
]
