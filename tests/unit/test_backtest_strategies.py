"""Signals of the built-in strategies on hand-computed cases."""

import pytest

from backtest import STRATEGIES, PriceData, get_strategy
from backtest.strategies import channel_breakout, ma_crossover, rsi_reversion
from backtest.synthetic import ohlcv_from_closes


def prices(closes):
    return PriceData.from_frame(ohlcv_from_closes(closes), "SIG")


def test_ema_crossover_is_flat_until_the_slow_average_has_its_bars():
    # Rising prices: the fast EMA is above the slow one from bar 1 on, but the
    # signal waits for `slow` bars (index slow - 1).
    signal = ma_crossover(prices([1.0, 2, 3, 4, 5, 6]), fast=2, slow=4, ma_type="ema")
    assert signal.tolist() == [0, 0, 0, 1, 1, 1]


def test_rsi_reversion_entries_and_exits():
    # With period 1 the RSI is 100 after an up bar, 0 after a down bar, 50 if unchanged.
    closes = [10.0, 11, 10, 9, 9, 10, 12, 11]
    # RSI:     -  100  0  0  50 100 100  0
    params = {"period": 1, "lower": 30, "upper": 70, "exit": 50}
    # Long below 30 (bars 2, 7), kept while RSI <= 50 (bar 4), out above 50 (bar 5).
    assert rsi_reversion(prices(closes), **params).tolist() == [0, 0, 1, 1, 1, 0, 0, 1]
    # Short above 70 (bars 1, 5, 6), out below 50 (bars 2, 7).
    both = rsi_reversion(prices(closes), **params, allow_short=True)
    assert both.tolist() == [0, -1, 1, 1, 1, -1, -1, 1]


def test_channel_breakout_entries_and_exits():
    closes = [10.0, 11, 12, 11, 13, 12, 9, 10]
    # Bar 2: 12 > max(10, 11) enters; bar 3: 11 < low of bar 2 (12) exits.
    # Bar 4: 13 > max(12, 11) enters; bar 5: 12 < 13 exits.
    # Bar 6: 9 < min(13, 12) enters short; bar 7: 10 > high of bar 6 (9) exits it.
    long_only = channel_breakout(prices(closes), lookback=2, exit_lookback=1)
    assert long_only.tolist() == [0, 0, 1, 0, 1, 0, 0, 0]
    both = channel_breakout(prices(closes), lookback=2, exit_lookback=1, allow_short=True)
    assert both.tolist() == [0, 0, 1, 0, 1, 0, -1, 0]


def test_registry():
    assert set(STRATEGIES) == {"ma_crossover", "rsi_reversion", "channel_breakout"}
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and strategy.doc
        assert strategy.min_bars(strategy.defaults) >= 2
    assert get_strategy("ma_crossover").min_bars({"fast": 50, "slow": 200}) == 201
    with pytest.raises(
        KeyError, match="unknown strategy 'macd'.*channel_breakout, ma_crossover, rsi_reversion"
    ):
        get_strategy("macd")
