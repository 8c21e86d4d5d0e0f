"""Metrics: known values, finiteness in degenerate cases, prefix evaluation."""

import math

import numpy as np
import pytest

from backtest import (
    METRIC_DIRECTIONS,
    METRICS,
    PriceData,
    evaluate,
    evaluate_partial,
    run_backtest,
    synthetic_ohlcv,
)
from backtest.metrics import DRAWDOWN_FLOOR, RATIO_CAP, compute_metrics
from backtest.strategies import Strategy
from backtest.synthetic import ohlcv_from_closes

ALL_STRATEGIES = [
    ("ma_crossover", {"fast": 10, "slow": 40, "ma_type": "ema", "allow_short": True}),
    ("rsi_reversion", {"period": 10, "allow_short": True}),
    ("channel_breakout", {"lookback": 30, "exit_lookback": 15, "allow_short": True}),
]


def always(position):
    return Strategy("always", lambda data: np.full(len(data), float(position)), {}, lambda params: 2, "")


@pytest.fixture(scope="module")
def hourly():
    return PriceData.from_frame(synthetic_ohlcv("MET", seed=3, bars=5_000), "MET")


def assert_all_finite(metrics):
    assert tuple(metrics) == METRICS
    for name, value in metrics.items():
        assert type(value) is float and math.isfinite(value), (name, value)


def test_names_and_directions():
    assert METRICS == (
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "trades",
        "win_rate",
        "profit_factor",
        "exposure",
        "return_on_risk",
    )
    assert {name for name, way in METRIC_DIRECTIONS.items() if way == "minimize"} == {
        "max_drawdown",
        "volatility",
    }
    assert set(METRIC_DIRECTIONS) == set(METRICS)


def test_hand_computed_metrics_of_a_long_position():
    # Daily bars; always long: the signal of bar 0 is held from bar 1 on.
    closes = [100, 110, 99, 108.9, 119.79]
    data = PriceData.from_frame(ohlcv_from_closes(closes), "M")
    assert data.bars_per_year == pytest.approx(365.25)
    metrics = compute_metrics(run_backtest(data, always(1)))
    bar_returns = np.array([0.1, -0.1, 0.1, 0.1])  # equity 1, 1.1, 0.99, 1.089, 1.1979
    annual = math.sqrt(365.25)
    assert metrics["total_return"] == pytest.approx(0.1979)
    assert metrics["max_drawdown"] == pytest.approx(0.1)  # 1.1 down to 0.99
    assert metrics["volatility"] == pytest.approx(bar_returns.std(ddof=1) * annual)
    assert metrics["sharpe"] == pytest.approx(0.05 / bar_returns.std(ddof=1) * annual)
    assert metrics["sortino"] == pytest.approx(0.05 / math.sqrt(0.01 / 4) * annual)
    assert metrics["exposure"] == 1.0
    assert metrics["trades"] == 1 and metrics["win_rate"] == 1  # open trade valued at the end
    assert metrics["profit_factor"] == RATIO_CAP  # no losing trade
    assert metrics["return_on_risk"] == pytest.approx(1.979)
    years = 4 / 365.25
    assert metrics["cagr"] == pytest.approx(min(1.1979 ** (1 / years) - 1, RATIO_CAP))
    assert metrics["calmar"] == pytest.approx(min(metrics["cagr"] / 0.1, RATIO_CAP))


def test_flat_prices_give_finite_neutral_metrics():
    data = PriceData.from_frame(ohlcv_from_closes(np.full(300, 50.0)), "FLAT")
    for name, params in ALL_STRATEGIES:
        metrics = evaluate(data, name, params, fees_bps=5)
        assert_all_finite(metrics)
    metrics = evaluate(data, always(1))
    assert_all_finite(metrics)
    assert metrics["sharpe"] == 0 and metrics["volatility"] == 0 and metrics["max_drawdown"] == 0
    assert metrics["return_on_risk"] == 0 and metrics["profit_factor"] == 0


def test_constant_position_on_steady_growth_is_finite_with_zero_sharpe():
    data = PriceData.from_frame(ohlcv_from_closes(100 * 1.001 ** np.arange(500)), "UP")
    metrics = evaluate(data, always(1))
    assert_all_finite(metrics)
    assert metrics["sharpe"] == 0.0  # zero volatility (up to rounding)
    assert metrics["max_drawdown"] == pytest.approx(0, abs=1e-12)
    assert metrics["return_on_risk"] == pytest.approx(metrics["total_return"] / DRAWDOWN_FLOOR)
    assert metrics["sortino"] == RATIO_CAP


def test_never_trading_is_finite():
    data = PriceData.from_frame(synthetic_ohlcv("NONE", bars=300), "NONE")
    metrics = evaluate(data, always(0))
    assert_all_finite(metrics)
    assert metrics["trades"] == 0 and metrics["total_return"] == 0 and metrics["exposure"] == 0


def test_ruin_gives_finite_metrics():
    data = PriceData.from_frame(ohlcv_from_closes([10, 10, 30, 5, 6]), "RUIN")
    metrics = evaluate(data, always(-1))
    assert_all_finite(metrics)
    assert metrics["total_return"] == -1 and metrics["cagr"] == -1 and metrics["max_drawdown"] == 1


@pytest.mark.parametrize("name, params", ALL_STRATEGIES)
def test_partial_evaluation_ends_with_the_full_evaluation(hourly, name, params):
    partial = evaluate_partial(hourly, name, params, steps=7, fees_bps=2, stop_loss=0.03)
    assert len(partial) == 7
    assert partial[-1] == evaluate(hourly, name, params, fees_bps=2, stop_loss=0.03)
    for metrics in partial:
        assert_all_finite(metrics)


@pytest.mark.parametrize("name, params", ALL_STRATEGIES)
def test_prefix_metrics_equal_a_backtest_of_the_prefix_alone(hourly, name, params):
    result = run_backtest(hourly, name, params, fees_bps=3, stop_loss=0.04)
    for bars in (500, 2_345, 4_999):
        alone = evaluate(hourly.head(bars), name, params, fees_bps=3, stop_loss=0.04)
        assert compute_metrics(result, upto=bars) == alone


def test_trades_compound_to_the_total_return(hourly):
    result = run_backtest(hourly, "ma_crossover", {"fast": 5, "slow": 20, "allow_short": True}, fees_bps=4)
    assert np.prod(1 + result.trades) == pytest.approx(result.equity[-1], rel=1e-9)


def test_more_steps_than_bars():
    data = PriceData.from_frame(ohlcv_from_closes([1.0, 2, 3]), "TINY")
    partial = evaluate_partial(data, always(1), None, steps=10)
    assert len(partial) == 10 and partial[-1] == evaluate(data, always(1))
    with pytest.raises(ValueError):
        evaluate_partial(data, always(1), None, steps=0)
