"""No look-ahead: the position held over bar t+1 is decided from data up to bar t.

Replacing every bar after t with arbitrary prices must leave the held
positions up to and including bar t+1, and the returns and equity up to bar
t, exactly unchanged, for every strategy, with and without shorts and stops.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import PriceData, run_backtest
from backtest.indicators import ema, exponential_filter, previous_max, sma, wilder_rsi

STRATEGY_CASES = [
    ("ma_crossover", {"fast": 2, "slow": 5, "ma_type": "sma", "allow_short": True}),
    ("ma_crossover", {"fast": 3, "slow": 7, "ma_type": "ema", "allow_short": True}),
    ("ma_crossover", {"fast": 1, "slow": 4, "ma_type": "sma"}),
    ("rsi_reversion", {"period": 3, "lower": 40, "upper": 60, "exit": 50, "allow_short": True}),
    ("rsi_reversion", {"period": 5, "lower": 30, "upper": 70, "exit": 45}),
    ("channel_breakout", {"lookback": 3, "exit_lookback": 2, "allow_short": True}),
    ("channel_breakout", {"lookback": 2, "exit_lookback": 4, "allow_short": True}),
]

prices = st.floats(min_value=1.0, max_value=200.0, allow_nan=False, allow_infinity=False)
bar_spreads = st.floats(min_value=0.0, max_value=0.05)


def price_data(closes, spreads):
    closes = np.asarray(closes)
    spreads = np.asarray(spreads)
    return PriceData(
        symbol="PROP",
        timestamps=np.arange(closes.size).astype("datetime64[D]").astype("datetime64[ns]"),
        open=closes,
        high=closes * (1 + spreads),
        low=closes * (1 - spreads),
        close=closes,
        bars_per_year=252.0,
    )


@st.composite
def history_and_rewrite(draw):
    """Bars, a cut-off bar t, and different bars to put after t."""
    bars = draw(st.integers(min_value=10, max_value=40))
    closes = draw(st.lists(prices, min_size=bars, max_size=bars))
    spreads = draw(st.lists(bar_spreads, min_size=bars, max_size=bars))
    cut = draw(st.integers(min_value=0, max_value=bars - 2))
    tail = bars - cut - 1
    new_closes = draw(st.lists(prices, min_size=tail, max_size=tail))
    new_spreads = draw(st.lists(bar_spreads, min_size=tail, max_size=tail))
    rewritten = (closes[: cut + 1] + new_closes, spreads[: cut + 1] + new_spreads)
    return (closes, spreads), rewritten, cut


@settings(max_examples=50, deadline=None)
@given(case=history_and_rewrite(), stop_loss=st.sampled_from([None, 0.02, 0.1]))
def test_future_bars_never_change_past_positions(case, stop_loss):
    original, rewritten, cut = case
    for name, params in STRATEGY_CASES:
        before = run_backtest(price_data(*original), name, params, fees_bps=5, stop_loss=stop_loss)
        after = run_backtest(price_data(*rewritten), name, params, fees_bps=5, stop_loss=stop_loss)
        held_until = cut + 2  # positions[t + 1] is the signal of bar t
        assert np.array_equal(before.positions[:held_until], after.positions[:held_until]), name
        assert np.array_equal(before.returns[: cut + 1], after.returns[: cut + 1]), name
        assert np.array_equal(before.equity[: cut + 1], after.equity[: cut + 1]), name


@settings(max_examples=50, deadline=None)
@given(values=st.lists(prices, min_size=1, max_size=60), keep=st.integers(min_value=1, max_value=60))
def test_indicators_of_a_prefix_are_bit_identical(values, keep):
    values = np.asarray(values)
    keep = min(keep, values.size)
    for indicator in (
        lambda x: ema(x, 4),
        lambda x: sma(x, 3),
        lambda x: wilder_rsi(x, 3),
        lambda x: previous_max(x, 3),
        lambda x: exponential_filter(x, 0.3, initial=1.0),
    ):
        assert np.array_equal(indicator(values)[:keep], indicator(values[:keep]), equal_nan=True)
