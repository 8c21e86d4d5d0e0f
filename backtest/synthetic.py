"""Deterministic synthetic OHLCV data with market regimes, for demos and tests.

Log prices follow a Markov chain over three regimes, each lasting a
geometrically distributed number of bars:

* trend up / trend down: a random walk with drift, where moving-average
  crossovers and breakouts can follow the trend;
* choppy: a noisier, mean-reverting (AR(1)) wander around the level at which
  the regime began, where RSI reversion pays and trend followers get whipsawed.

So the strategies' parameters genuinely matter. All parameters are per bar,
whatever ``freq`` is. The same (symbol, seed, bars, freq, start) always gives
the same frame: the generator is seeded from a CRC32 of symbol and seed, never
from Python's per-process salted ``hash()``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import validate_ohlcv
from .indicators import exponential_filter


@dataclass(frozen=True)
class _Regime:
    name: str
    drift: float  # mean log return per bar
    volatility: float  # std of the log-return shock per bar
    reversion: float  # pull per bar back to the regime's starting level (0 = random walk)
    mean_bars: float  # expected length of the regime
    next_regime_odds: tuple[float, float, float]  # chance of moving to regime 0, 1, 2


_REGIMES = (
    _Regime(
        "trend_up",
        drift=0.00015,
        volatility=0.006,
        reversion=0.0,
        mean_bars=300,
        next_regime_odds=(0.0, 0.4, 0.6),
    ),
    _Regime(
        "trend_down",
        drift=-0.00018,
        volatility=0.007,
        reversion=0.0,
        mean_bars=250,
        next_regime_odds=(0.4, 0.0, 0.6),
    ),
    _Regime(
        "choppy",
        drift=0.0,
        volatility=0.009,
        reversion=0.08,
        mean_bars=200,
        next_regime_odds=(0.55, 0.45, 0.0),
    ),
)


def _stable_seed(symbol: str, seed: int) -> int:
    return zlib.crc32(f"{symbol}\x00{seed}".encode())


def ohlcv_from_closes(
    closes, start: str = "2024-01-01", freq: str = "1D", spread: float = 0.0
) -> pd.DataFrame:
    """A frame in load_ohlcv's layout from a list of closes, for hand-made
    test cases: open = close, high/low = close * (1 +/- spread), volume 1."""
    close = np.asarray(closes, dtype=np.float64)
    index = pd.date_range(start=start, periods=close.size, freq=freq, name="timestamp").as_unit("ns")
    return pd.DataFrame(
        {
            "open": close,
            "high": close * (1.0 + spread),
            "low": close * (1.0 - spread),
            "close": close,
            "volume": np.ones(close.size),
        },
        index=index,
    )


def synthetic_ohlcv(
    symbol: str,
    seed: int = 0,
    bars: int = 20_000,
    freq: str = "1h",
    start: str = "2020-01-01",
) -> pd.DataFrame:
    """A frame in load_ohlcv's layout (DatetimeIndex ``timestamp``; float64
    open, high, low, close, volume) with ``bars`` bars every ``freq``."""
    if bars < 2:
        raise ValueError(f"bars must be at least 2, got {bars}")
    rng = np.random.default_rng(_stable_seed(symbol, seed))

    log_close = np.empty(bars)
    volatility = np.empty(bars)
    level = np.log(rng.uniform(20.0, 500.0))
    regime_index = int(rng.integers(len(_REGIMES)))
    first = 0
    while first < bars:
        regime = _REGIMES[regime_index]
        last = min(bars, first + int(rng.geometric(1.0 / regime.mean_bars)))
        shocks = rng.standard_normal(last - first) * regime.volatility
        if regime.reversion > 0.0:
            # AR(1) deviation d[t] = (1 - k) d[t-1] + shock[t], started at 0.
            path = level + exponential_filter(shocks / regime.reversion, 1.0 - regime.reversion)
        else:
            path = level + np.cumsum(regime.drift + shocks)
        log_close[first:last] = path
        volatility[first:last] = regime.volatility
        level = path[-1]
        regime_index = int(rng.choice(len(_REGIMES), p=regime.next_regime_odds))
        first = last

    close = np.exp(log_close)
    # Opens gap slightly from the previous close; wicks extend beyond the body.
    previous_close = np.concatenate(([close[0]], close[:-1]))
    open_ = previous_close * np.exp(rng.standard_normal(bars) * 0.1 * volatility)
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    high = body_high * np.exp(np.abs(rng.standard_normal(bars)) * 0.5 * volatility)
    low = body_low * np.exp(-np.abs(rng.standard_normal(bars)) * 0.5 * volatility)
    # Busier bars trade more: volume grows with the size of the move.
    move = np.abs(np.log(close / previous_close)) / volatility
    volume = 1e5 * np.exp(rng.standard_normal(bars) * 0.3) * (1.0 + move)

    index = pd.date_range(start=start, periods=bars, freq=freq, name="timestamp").as_unit("ns")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
    )
    validate_ohlcv(frame, symbol)
    return frame
