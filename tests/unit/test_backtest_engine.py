"""Hand-computed backtests: positions, costs, stop losses and trades."""

import numpy as np
import pytest

from backtest import DataError, InvalidParams, PriceData, evaluate, run_backtest
from backtest.strategies import Strategy
from backtest.synthetic import ohlcv_from_closes as frame_from_closes


def fixed_signal_strategy(signal):
    """A strategy that returns a given signal, to test the engine on its own."""
    return Strategy(
        name="fixed",
        signal_fn=lambda data: np.asarray(signal, dtype=float),
        defaults={},
        min_bars=lambda params: 2,
        doc="",
    )


# close:   10  10  10  11  12    13    14    12    10     10
# SMA(2):   -  10  10  10.5 11.5 12.5  13.5  13    11     10
# SMA(3):   -   -  10  10.33 11  12    13    13    12     10.67
# fast>slow: .  .  no  yes  yes  yes   yes   no(=) no     no
CROSSOVER_CLOSES = [10, 10, 10, 11, 12, 13, 14, 12, 10, 10]


def test_sma_crossover_positions_are_signals_shifted_by_one_bar():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    result = run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3})

    # Long signal at bars 3..6, held over bars 4..7.
    assert result.positions.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    expected_equity = [1, 1, 1, 1, 12 / 11, 13 / 11, 14 / 11, 12 / 11, 12 / 11, 12 / 11]
    np.testing.assert_allclose(result.equity, expected_equity, rtol=1e-12)
    np.testing.assert_allclose(result.trades, [12 / 11 - 1], rtol=1e-12)
    metrics = evaluate(data, "ma_crossover", {"fast": 2, "slow": 3})
    assert metrics["total_return"] == pytest.approx(1 / 11, rel=1e-12)
    assert metrics["trades"] == 1.0
    assert metrics["win_rate"] == 1.0
    assert metrics["exposure"] == pytest.approx(4 / 9)


def test_fees_and_slippage_are_charged_once_per_position_change():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    result = run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3}, fees_bps=7, slippage_bps=3)
    keep = 1 - 0.001  # 10 bps in all
    # Entry charged at bar 4 (first bar held), exit at bar 8 (first bar flat).
    expected_equity = [
        1,
        1,
        1,
        1,
        12 / 11 * keep,
        13 / 11 * keep,
        14 / 11 * keep,
        12 / 11 * keep,
        12 / 11 * keep**2,
        12 / 11 * keep**2,
    ]
    np.testing.assert_allclose(result.equity, expected_equity, rtol=1e-12)
    np.testing.assert_allclose(result.trades, [12 / 11 * keep**2 - 1], rtol=1e-12)


def test_a_window_from_a_later_bar_is_an_account_opened_the_close_before():
    """since(start): out-of-sample figures. The long position over bars 4..7 (10 bps a
    change): from bar 6 it is carried in, so the new account pays its entry at bar 6;
    from bar 4 the whole run's entry is the new account's too."""
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    result = run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3}, fees_bps=7, slippage_bps=3)
    keep = 1 - 0.001
    late = result.since(6)
    assert late.positions.tolist() == [0, 1, 1, 0, 0]  # bar 5 is the flat first bar
    np.testing.assert_allclose(late.equity, [1, 14 / 13 * keep, 12 / 13 * keep, 12 / 13 * keep**2,
                                             12 / 13 * keep**2], rtol=1e-12)
    np.testing.assert_allclose(late.trades, [12 / 13 * keep**2 - 1], rtol=1e-12)
    from backtest import compute_metrics

    metrics = compute_metrics(late)
    assert metrics["total_return"] == pytest.approx(12 / 13 * keep**2 - 1, rel=1e-12)
    assert metrics["trades"] == 1.0 and metrics["exposure"] == pytest.approx(2 / 4)
    early = result.since(4)
    np.testing.assert_allclose(early.equity, result.equity[3:] / result.equity[3], rtol=1e-12)
    np.testing.assert_allclose(early.trades, result.trades, rtol=1e-12)
    with pytest.raises(ValueError):
        result.since(0)


def test_short_flip_and_open_trade_at_the_end():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    result = run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3, "allow_short": True}, fees_bps=10)
    # Short signals at bars 8 and 9 (fast below slow); at bar 7 the averages are equal: flat.
    assert result.positions.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, -1]
    keep = 0.999
    # The short opened at bar 9 is still open: valued at the last close, no exit cost.
    np.testing.assert_allclose(result.trades, [12 / 11 * keep**2 - 1, keep - 1], rtol=1e-12)
    assert result.equity[-1] == pytest.approx(12 / 11 * keep**3, rel=1e-12)


def test_flip_costs_two_units():
    data = PriceData.from_frame(frame_from_closes([100, 100, 100, 100]), "TEST")
    result = run_backtest(data, fixed_signal_strategy([1, -1, -1, 0]), fees_bps=100)
    assert result.positions.tolist() == [0, 1, -1, -1]
    np.testing.assert_allclose(result.equity, [1, 0.99, 0.99**3, 0.99**3])
    np.testing.assert_allclose(result.trades, [0.99**2 - 1, 0.99 - 1])


def test_stop_loss_exits_at_the_close_that_reaches_it_and_waits_for_a_new_signal():
    closes = [100, 100, 97, 94, 96, 99, 100, 101, 95, 96]
    signal = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1]
    data = PriceData.from_frame(frame_from_closes(closes), "TEST")

    without_stop = run_backtest(data, fixed_signal_strategy(signal))
    assert without_stop.positions.tolist() == [0, 1, 1, 1, 1, 1, 0, 1, 1, 1]

    result = run_backtest(data, fixed_signal_strategy(signal), stop_loss=0.05)
    # Entry at close 100 (bar 0); bar 3 closes at 94, a 6 % loss: out from bar 4,
    # flat through bar 5 although the signal is still long. The signal goes flat
    # at bar 5 and long again at bar 6: re-entry at close 100, held from bar 7;
    # bar 8 closes at 95 (5 % loss): out from bar 9.
    assert result.positions.tolist() == [0, 1, 1, 1, 0, 0, 0, 1, 1, 0]
    np.testing.assert_allclose(result.trades, [-0.06, -0.05], atol=1e-12)
    assert result.equity[-1] == pytest.approx(0.94 * 0.95)


def test_stop_loss_on_a_short_and_re_entry_on_a_flip():
    closes = [100, 100, 104, 106, 103, 100, 98]
    signal = [-1, -1, -1, -1, 1, 1, 1]
    data = PriceData.from_frame(frame_from_closes(closes), "TEST")
    result = run_backtest(data, fixed_signal_strategy(signal), stop_loss=0.05)
    # Short from close 100; bar 3 closes at 106 (6 % loss): flat from bar 4.
    # The flip to long at bar 4 is a new entry at close 103, held from bar 5.
    assert result.positions.tolist() == [0, -1, -1, -1, 0, 1, 1]
    # A short earns minus each bar's return (rebalanced every bar), so its
    # result compounds: (1 - 4/100) * (1 - 2/104), not 1 - 106/100.
    short_return = (1 - 4 / 100) * (1 - 2 / 104) - 1
    np.testing.assert_allclose(result.trades, [short_return, 98 / 103 - 1], atol=1e-12)


def test_equity_is_floored_at_zero_when_a_short_loses_everything():
    data = PriceData.from_frame(frame_from_closes([10, 10, 30, 5]), "TEST")
    result = run_backtest(data, fixed_signal_strategy([-1, -1, -1, -1]))
    assert result.equity.tolist() == [1, 1, 0, 0]
    assert result.trades.tolist() == [-1.0]


def test_unknown_parameters_are_named():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    with pytest.raises(InvalidParams, match="unknown parameter.*: colour, speed"):
        run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3, "speed": 1, "colour": 2})


def test_fast_must_be_below_slow():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    with pytest.raises(InvalidParams, match=r"fast \(30\) must be below slow \(20\)"):
        run_backtest(data, "ma_crossover", {"fast": 30, "slow": 20})


@pytest.mark.parametrize(
    "strategy, params",
    [
        ("ma_crossover", {"fast": 2.5}),
        ("ma_crossover", {"ma_type": "wma"}),
        ("ma_crossover", {"allow_short": "yes"}),
        ("rsi_reversion", {"lower": 60, "exit": 50}),
        ("channel_breakout", {"lookback": 0}),
        ("channel_breakout", {"lookback": True}),
    ],
)
def test_invalid_parameter_values(strategy, params):
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES * 10), "TEST")
    with pytest.raises(InvalidParams):
        run_backtest(data, strategy, params)


def test_integral_float_parameters_are_accepted():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    by_float = run_backtest(data, "ma_crossover", {"fast": 2.0, "slow": 3.0})
    assert by_float.positions.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]


def test_too_few_bars_for_the_parameters():
    data = PriceData.from_frame(frame_from_closes([10.0] * 40), "AAPL")
    with pytest.raises(DataError, match="AAPL: only 40 bars, the parameters need at least 201"):
        run_backtest(data, "ma_crossover", {"fast": 50, "slow": 200})


def test_bad_costs_and_stop_loss_are_rejected():
    data = PriceData.from_frame(frame_from_closes(CROSSOVER_CLOSES), "TEST")
    with pytest.raises(InvalidParams):
        run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3}, fees_bps=-1)
    with pytest.raises(InvalidParams):
        run_backtest(data, "ma_crossover", {"fast": 2, "slow": 3}, stop_loss=0)
