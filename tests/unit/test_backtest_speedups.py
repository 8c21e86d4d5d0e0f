"""The pieces that make the backtest fast, each against the plain formula it replaces.

Every shortcut here claims *identical* results, not close ones: the block
search for the maximum drawdown, entry/exit state from event runs, the
indicator cache (including prefixes served to ``PriceData.head``) and the
reused scratch buffers.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backtest import PriceData, evaluate, synthetic_ohlcv
from backtest.cache import IndicatorCache, scratch_buffer
from backtest.engine import runs_of
from backtest.indicators import ema, previous_max, previous_min, sma, wilder_rsi
from backtest.metrics import _DRAWDOWN_BLOCK, _max_drawdown
from backtest.strategies import _in_position


def plain_drawdown(equity):
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))


def plain_in_position(enter, leave):
    """The original formula: the latest entry is more recent than the latest exit."""
    bar = np.arange(enter.size)
    last_enter = np.maximum.accumulate(np.where(enter, bar, -1))
    last_leave = np.maximum.accumulate(np.where(leave, bar, -1))
    return last_enter > last_leave


# ------------------------------------------------------------------ maximum drawdown


def equity_curves():
    rng = np.random.default_rng(0)
    bars = 40 * _DRAWDOWN_BLOCK + 123
    for drift in (-1e-4, 0.0, 2e-5, 1e-4, 1e-3):
        for volatility in (1e-4, 1e-3, 1e-2):
            yield np.cumprod(1.0 + rng.normal(drift, volatility, bars))
    yield np.linspace(1.0, 5.0, bars)  # never a drawdown
    yield np.linspace(1.0, 0.2, bars)  # one long drawdown
    yield np.ones(bars)
    ruined = np.cumprod(1.0 + rng.normal(0.0, 1e-2, bars))
    ruined[bars // 2 :] = 0.0
    yield ruined
    saw = 1.0 + 0.1 * np.sin(np.arange(bars) / 700.0) + np.arange(bars) * 1e-6
    yield saw
    overflow = np.cumprod(np.full(bars, 1.5))  # reaches inf: the plain formula's NaN
    yield overflow


@np.errstate(invalid="ignore", over="ignore")  # the overflowing curve
def test_block_drawdown_equals_the_plain_formula():
    for equity in equity_curves():
        for bars in (equity.size, 5 * _DRAWDOWN_BLOCK, 4 * _DRAWDOWN_BLOCK - 1, 1000, 2, 1):
            actual, wanted = _max_drawdown(equity[:bars]), plain_drawdown(equity[:bars])
            assert actual == wanted or (np.isnan(actual) and np.isnan(wanted)), bars


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=-0.05, max_value=0.05), min_size=1, max_size=40),
    block_runs=st.lists(st.integers(min_value=1, max_value=3 * _DRAWDOWN_BLOCK), min_size=1, max_size=40),
)
def test_block_drawdown_on_piecewise_trends(steps, block_runs):
    """Trends of random slope and length: new highs at block edges, inside
    blocks and nowhere, deep drawdowns anywhere."""
    pieces = [np.full(length, 1.0 + step) for step, length in zip(steps, block_runs)]
    with np.errstate(over="ignore"):
        equity = np.cumprod(np.concatenate(pieces))
    assume(np.isfinite(equity).all())  # 5 % a bar for 15,000 bars overflows: no account's equity
    assert _max_drawdown(equity) == plain_drawdown(equity)


# ------------------------------------------------------------------ entry/exit state


@settings(max_examples=200, deadline=None)
@given(
    enter=st.lists(st.booleans(), min_size=0, max_size=80),
    leave=st.lists(st.booleans(), min_size=0, max_size=80),
)
def test_in_position_equals_the_running_maximum_formula(enter, leave):
    size = min(len(enter), len(leave))
    enter, leave = np.array(enter[:size], dtype=bool), np.array(leave[:size], dtype=bool)
    assert np.array_equal(_in_position(enter, leave), plain_in_position(enter, leave))


@pytest.mark.parametrize("density", [0.001, 0.05, 0.5, 0.95])
def test_in_position_on_long_random_events(density):
    rng = np.random.default_rng(int(density * 1000))
    enter, leave = rng.random(200_000) < density, rng.random(200_000) < density
    assert np.array_equal(_in_position(enter, leave), plain_in_position(enter, leave))


def test_runs_of():
    starts, values = runs_of(np.array([0.0, 0.0, 1.0, 1.0, -1.0, 0.5, 0.5]))
    assert starts.tolist() == [0, 2, 4, 5] and values.tolist() == [0.0, 1.0, -1.0, 0.5]
    starts, values = runs_of(np.array([True, True, False], dtype=bool))
    assert starts.tolist() == [0, 2] and values.tolist() == [1.0, 0.0]
    assert runs_of(np.array([-0.0, 0.0]))[0].tolist() == [0]
    assert runs_of(np.empty(0))[0].size == 0


# ------------------------------------------------------------------ indicator cache


@pytest.fixture(scope="module")
def data():
    return PriceData.from_frame(synthetic_ohlcv("CACHE", seed=5, bars=6_000), "CACHE")


def test_cached_indicators_equal_the_functions_bit_for_bit(data):
    close, high, low = data.close, data.high, data.low
    for window in (1, 2, 7, 50, 999, 6_000, 7_000):
        assert np.array_equal(data.sma(window), sma(close, window), equal_nan=True)
        assert np.array_equal(data.ema(window), ema(close, window), equal_nan=True)
        assert np.array_equal(data.rsi(window), wilder_rsi(close, window), equal_nan=True)
        assert np.array_equal(data.previous_max("high", window), previous_max(high, window), equal_nan=True)
        assert np.array_equal(data.previous_min("low", window), previous_min(low, window), equal_nan=True)


def test_head_shares_the_cache_and_gets_exact_prefixes(data):
    data.indicator_cache.clear()
    full = data.sma(30)
    for bars in (1, 29, 30, 31, 2_500):
        head = data.head(bars)
        assert head.indicator_cache is data.indicator_cache
        assert np.array_equal(head.sma(30), sma(data.close[:bars], 30), equal_nan=True)
        assert np.array_equal(head.rsi(14), wilder_rsi(data.close[:bars], 14), equal_nan=True)
        assert np.array_equal(head.ema(9), ema(data.close[:bars], 9))
        half = bars // 2 + 1
        assert np.array_equal(
            head.head(half).previous_max("high", 5), previous_max(data.high[:half], 5), equal_nan=True
        )
        assert np.shares_memory(head.close, data.close) and not head.close.flags.writeable
        alone = PriceData(
            "CACHE", data.timestamps[:bars], data.open[:bars], data.high[:bars], data.low[:bars],
            data.close[:bars], data.bars_per_year,
        )
        assert np.array_equal(head.close_returns, alone.close_returns)
    assert data.indicator_cache.by_kind["sma"] == [5, 1]  # computed once, on the whole data
    assert not full.flags.writeable


def test_lru_keeps_the_most_recently_used_within_its_budget():
    cache = IndicatorCache(max_bytes=3 * 800)
    made = []

    def array(key):
        made.append(key)
        return np.full(100, float(key))  # 800 bytes

    for key in (1, 2, 3, 1, 4, 2, 1):
        assert cache.get(("k", key), lambda key=key: array(key))[0] == key
    # 1, 2, 3 made; 1 hit; 4 made (drops 2, the least recent); 2 made again (drops 3); 1 hit.
    assert made == [1, 2, 3, 4, 2]
    assert cache.info() == {"hits": 2, "misses": 5, "entries": 3, "bytes": 2400, "pinned_bytes": 0}
    assert cache.get(("shared",), lambda: np.ones(1_000), pinned=True).size == 1_000  # outside the budget
    assert cache.get(("shared",), lambda: np.zeros(1), pinned=True).size == 1_000
    assert cache.info()["entries"] == 3 and cache.info()["pinned_bytes"] == 8_000
    oversized = cache.get(("big",), lambda: np.zeros(1_000))
    assert oversized.size == 1_000 and cache.info()["entries"] == 3  # larger than the budget: not kept
    assert pickle.loads(pickle.dumps(cache)).info()["entries"] == 0
    cache.max_bytes = 800  # a lower budget drops the least recently used at once
    assert cache.info()["entries"] == 1 and cache.get(("k", 1), lambda: array(99))[0] == 1
    cache.max_bytes = 0
    assert cache.info()["entries"] == 0 and cache.get(("k", 1), lambda: array(1))[0] == 1
    assert cache.info()["entries"] == 0 and cache.info()["pinned_bytes"] == 8_000
    cache.clear()
    assert cache.info()["pinned_bytes"] == 0


def test_the_cache_does_not_change_results():
    frame = synthetic_ohlcv("SAME", seed=8, bars=4_000)
    cached = PriceData.from_frame(frame, "SAME")
    for name, params in (
        ("ma_crossover", {"fast": 5, "slow": 40, "ma_type": "ema", "allow_short": True}),
        ("rsi_reversion", {"period": 9, "allow_short": True}),
        ("channel_breakout", {"lookback": 30, "exit_lookback": 12, "allow_short": True}),
    ):
        fresh = PriceData.from_frame(frame, "SAME")
        fresh.indicator_cache.max_bytes = 0
        first = evaluate(cached, name, params, fees_bps=2, stop_loss=0.02)
        assert evaluate(cached, name, params, fees_bps=2, stop_loss=0.02) == first  # from the cache
        assert evaluate(fresh, name, params, fees_bps=2, stop_loss=0.02) == first
    assert cached.indicator_cache.hits > 0


def test_scratch_buffers_are_reused_per_name():
    first = scratch_buffer("test", 10)
    first[:] = 1.0
    again = scratch_buffer("test", 5)
    assert np.shares_memory(first, again) and again.size == 5
    bigger = scratch_buffer("test", 20)
    assert bigger.size == 20 and not np.shares_memory(first, scratch_buffer("other", 10))
