"""The vectorised backtest against a straightforward reference, bar by bar.

The reference below is written the obvious way (Python loops over bars, one
rule at a time, straight from the docstrings of the backtest modules) and is
slow; the package computes the same things in a handful of numpy passes over
runs of constant position, cached indicators and reused buffers. On random
data, for every strategy with and without shorts, costs and stop losses,
positions and trade counts must be equal exactly and every other metric to
1e-9 relative (the two sum in different orders; values that are zero in
exact arithmetic may come out as rounding noise, hence a tiny absolute
tolerance as well).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest import (
    METRICS,
    STRATEGIES,
    PriceData,
    compute_metrics,
    evaluate,
    evaluate_partial,
    run_backtest,
)
from backtest.metrics import DRAWDOWN_FLOOR, RATIO_CAP

RELATIVE = 1e-9
ABSOLUTE = 1e-12

# ------------------------------------------------------------------ reference indicators


def ref_sma(values, window):
    return [
        sum(values[t - window + 1 : t + 1]) / window if t >= window - 1 else math.nan
        for t in range(len(values))
    ]


def ref_ema(values, span):
    alpha = 2.0 / (span + 1.0)
    out, state = [], values[0]
    for value in values:
        state = (1.0 - alpha) * state + alpha * value
        out.append(state)
    return out


def ref_rsi(close, period):
    out = [math.nan] * len(close)
    if len(close) <= period:
        return out
    changes = [close[t] - close[t - 1] for t in range(1, len(close))]
    gains = [max(change, 0.0) for change in changes]
    losses = [max(-change, 0.0) for change in changes]
    average_gain = sum(gains[:period]) / period
    average_loss = sum(losses[:period]) / period

    def rsi(gain, loss):
        return 100.0 * gain / (gain + loss) if gain + loss > 0 else 50.0

    out[period] = rsi(average_gain, average_loss)
    for index in range(period, len(changes)):
        average_gain = (average_gain * (period - 1) + gains[index]) / period
        average_loss = (average_loss * (period - 1) + losses[index]) / period
        out[index + 1] = rsi(average_gain, average_loss)
    return out


def ref_previous(values, window, pick):
    return [pick(values[t - window : t]) if t >= window else math.nan for t in range(len(values))]


# ------------------------------------------------------------------ reference strategies


def ref_hold(enter, leave):
    """Enter on an entry event, leave on an exit event; a bar with both leaves."""
    state, out = False, []
    for entering, leaving in zip(enter, leave):
        if leaving:
            state = False
        elif entering:
            state = True
        out.append(1.0 if state else 0.0)
    return out


def ref_signal(data, name, params):
    close, high, low = data.close.tolist(), data.high.tolist(), data.low.tolist()
    bars = len(close)
    if name == "ma_crossover":
        average = ref_sma if params["ma_type"] == "sma" else ref_ema
        fast, slow = average(close, params["fast"]), average(close, params["slow"])
        signal = []
        for t in range(bars):
            value = 0.0
            if t >= params["slow"] - 1:
                if fast[t] > slow[t]:
                    value = 1.0
                elif params["allow_short"] and fast[t] < slow[t]:
                    value = -1.0
            signal.append(value)
        return signal
    if name == "rsi_reversion":
        rsi = ref_rsi(close, params["period"])
        lower, upper, exit = params["lower"], params["upper"], params["exit"]
        long = ref_hold([r < lower for r in rsi], [r > exit for r in rsi])
        if not params["allow_short"]:
            return long
        short = ref_hold([r > upper for r in rsi], [r < exit for r in rsi])
        return [a - b for a, b in zip(long, short)]
    if name == "channel_breakout":
        lookback, exit_lookback = params["lookback"], params["exit_lookback"]
        warm_up = max(lookback, exit_lookback)
        highest, lowest = ref_previous(high, lookback, max), ref_previous(low, lookback, min)
        exit_high, exit_low = ref_previous(high, exit_lookback, max), ref_previous(low, exit_lookback, min)
        long = ref_hold(
            [t >= warm_up and close[t] > highest[t] for t in range(bars)],
            [close[t] < exit_low[t] for t in range(bars)],
        )
        if not params["allow_short"]:
            return long
        short = ref_hold(
            [t >= warm_up and close[t] < lowest[t] for t in range(bars)],
            [close[t] > exit_high[t] for t in range(bars)],
        )
        return [a - b for a, b in zip(long, short)]
    raise AssertionError(name)


# ------------------------------------------------------------------ reference engine and metrics


def ref_backtest(close, signal, cost, stop_loss):
    """Positions, bar growth (after costs), equity and trade returns, bar by bar."""
    bars = len(close)
    wanted = [0.0] + list(signal[:-1])  # the signal of bar t is held over bar t + 1
    held, stopped, entry = [], False, close[0]
    for t in range(bars):
        if t > 0 and wanted[t] != wanted[t - 1]:  # the strategy changes its position
            stopped, entry = False, close[t - 1]
        position = 0.0 if stopped else wanted[t]
        held.append(position)
        if position != 0.0 and math.copysign(1.0, position) * (1.0 - close[t] / entry) >= stop_loss:
            stopped = True  # flat from the next bar until the strategy changes its position
    returns = [0.0] + [close[t] / close[t - 1] - 1.0 for t in range(1, bars)]
    growth, equity, value = [], [], 1.0
    for t in range(bars):
        before = held[t - 1] if t > 0 else 0.0
        factor = max(1.0 + held[t] * returns[t], 0.0) * (1.0 - cost) ** abs(held[t] - before)
        value *= factor
        growth.append(factor)
        equity.append(value)
    trades, t = [], 0
    while t < bars:
        end = t
        while end + 1 < bars and held[end + 1] == held[t]:
            end += 1
        if held[t] != 0.0:
            size = abs(held[t])
            product = 1.0
            for bar in range(t, end + 1):
                product *= max(1.0 + held[t] * returns[bar], 0.0)
            closed = end + 1 < bars
            trades.append(product * (1.0 - cost) ** (size * (2 if closed else 1)) - 1.0)
        t = end + 1
    return held, growth, equity, trades


def clip(value):
    return min(max(value, -RATIO_CAP), RATIO_CAP)


def ref_metrics(held, growth, equity, trades, bars_per_year):
    bars = len(equity)
    bar_returns = [factor - 1.0 for factor in growth[1:]]
    final = equity[-1]
    years = (bars - 1) / bars_per_year
    if final <= 0.0:
        cagr = -1.0
    elif years > 0.0:
        cagr = math.expm1(min(math.log(final) / years, math.log(RATIO_CAP + 1.0)))
    else:
        cagr = 0.0
    count = len(bar_returns)
    mean = sum(bar_returns) / count
    deviation = math.sqrt(sum((r - mean) ** 2 for r in bar_returns) / (count - 1))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in bar_returns) / count)
    if deviation <= 1e-9 * abs(mean):
        deviation = 0.0
    annual = math.sqrt(bars_per_year)
    sharpe = mean / deviation * annual if deviation > 0 else 0.0
    sortino = mean / downside * annual if downside > 0 else (RATIO_CAP if mean > 0 else 0.0)
    peak, drawdown = equity[0], 0.0
    for value in equity:
        peak = max(peak, value)
        drawdown = max(drawdown, 1.0 - value / peak)
    risk = max(drawdown, DRAWDOWN_FLOOR)
    wins = [trade for trade in trades if trade > 0]
    gross_win, gross_loss = sum(wins), -sum(trade for trade in trades if trade < 0)
    if gross_loss > 0:
        profit_factor = gross_win / gross_loss
    else:
        profit_factor = RATIO_CAP if gross_win > 0 else 0.0
    return {
        "total_return": final - 1.0,
        "cagr": clip(cagr),
        "volatility": deviation * annual,
        "sharpe": clip(sharpe),
        "sortino": clip(sortino),
        "calmar": clip(cagr / risk),
        "max_drawdown": drawdown,
        "trades": float(len(trades)),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "profit_factor": clip(profit_factor),
        "exposure": sum(1 for position in held[1:] if position != 0.0) / count,
        "return_on_risk": clip((final - 1.0) / risk),
    }


# ------------------------------------------------------------------ data and cases


def random_data(seed, bars=1_500, volatility=0.01, flat_start=0):
    """A random walk with random bar ranges; ``flat_start`` bars of one price first."""
    rng = np.random.default_rng(seed)
    log_close = np.cumsum(rng.normal(0.0, volatility, bars) + rng.normal(0.0, volatility / 20))
    log_close[:flat_start] = 0.0
    close = 50.0 * np.exp(log_close)
    spread = np.abs(rng.normal(0.0, volatility, bars))
    return PriceData(
        symbol=f"REF{seed}",
        timestamps=(np.arange(bars) * 60).astype("datetime64[s]").astype("datetime64[ns]"),
        open=close,
        high=close * (1.0 + spread),
        low=close * (1.0 - spread),
        close=close,
        bars_per_year=525_960.0,
    )


def random_cases(seed, count):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        fast = int(rng.integers(1, 40))
        cases.append(
            (
                "ma_crossover",
                {
                    "fast": fast,
                    "slow": int(rng.integers(fast + 1, 120)),
                    "ma_type": str(rng.choice(["sma", "ema"])),
                    "allow_short": bool(rng.integers(2)),
                },
            )
        )
        lower = float(rng.uniform(10, 45))
        exit = float(rng.uniform(lower + 1, 60))
        cases.append(
            (
                "rsi_reversion",
                {
                    "period": int(rng.integers(1, 30)),
                    "lower": lower,
                    "exit": exit,
                    "upper": float(rng.uniform(exit + 1, 95)),
                    "allow_short": bool(rng.integers(2)),
                },
            )
        )
        cases.append(
            (
                "channel_breakout",
                {
                    "lookback": int(rng.integers(1, 80)),
                    "exit_lookback": int(rng.integers(1, 80)),
                    "allow_short": bool(rng.integers(2)),
                },
            )
        )
    return cases


def assert_metrics_match(actual, expected, context):
    assert tuple(actual) == METRICS
    assert actual["trades"] == expected["trades"], context
    for name in METRICS:
        assert math.isclose(actual[name], expected[name], rel_tol=RELATIVE, abs_tol=ABSOLUTE), (
            context,
            name,
            actual[name],
            expected[name],
        )


DATASETS = [(1, 0.01, 0), (2, 0.003, 0), (3, 0.02, 40)]


@pytest.mark.parametrize("seed, volatility, flat_start", DATASETS)
def test_every_strategy_and_metric_matches_the_reference(seed, volatility, flat_start):
    data = random_data(seed, volatility=volatility, flat_start=flat_start)
    rng = np.random.default_rng(seed + 100)
    close = data.close.tolist()
    for name, params in random_cases(seed, 8):
        if name == "ma_crossover" and flat_start:
            continue  # averages of equal prices tie, and ties round differently in different formulas
        fees = float(rng.choice([0.0, 1.0, 25.0]))
        stop_loss = [None, 0.005, 0.02, 0.1][int(rng.integers(4))]
        context = (name, params, fees, stop_loss)
        signal = ref_signal(data, name, params)
        held, growth, equity, trades = ref_backtest(close, signal, fees / 1e4, stop_loss or math.inf)

        result = run_backtest(data, name, params, fees_bps=fees, stop_loss=stop_loss)
        assert result.positions.tolist() == held, context
        np.testing.assert_allclose(result.equity, equity, rtol=RELATIVE, atol=ABSOLUTE, err_msg=str(context))
        np.testing.assert_allclose(result.trades, trades, rtol=RELATIVE, atol=ABSOLUTE, err_msg=str(context))
        expected = ref_metrics(held, growth, equity, trades, data.bars_per_year)
        assert_metrics_match(evaluate(data, name, params, fees_bps=fees, stop_loss=stop_loss), expected, context)

        # A prefix: the metrics of the first bars, from the whole run and from the prefix alone.
        bars = int(rng.integers(STRATEGIES[name].min_bars(params), len(close)))
        prefix_trades = ref_backtest(close[:bars], signal[:bars], fees / 1e4, stop_loss or math.inf)[3]
        reference_prefix = ref_metrics(held[:bars], growth[:bars], equity[:bars], prefix_trades, data.bars_per_year)
        assert_metrics_match(compute_metrics(result, upto=bars), reference_prefix, (*context, bars))
        assert compute_metrics(result, upto=bars) == evaluate(
            data.head(bars), name, params, fees_bps=fees, stop_loss=stop_loss
        )


def test_fractional_and_leveraged_positions_match_the_reference():
    """A user strategy's signal may be any finite floats, including a short of
    three units that loses everything in one bar (the equity floor)."""
    from backtest.strategies import Strategy

    data = random_data(9, bars=600, volatility=0.02)
    close = data.close.copy()
    close[400] = close[399] * 1.5  # a jump that ruins a 3x short
    data = PriceData(
        symbol="LEV",
        timestamps=data.timestamps,
        open=close,
        high=close * 1.01,
        low=close * 0.99,
        close=close,
        bars_per_year=data.bars_per_year,
    )
    rng = np.random.default_rng(4)
    levels = np.repeat(rng.choice([0.0, 0.5, 1.0, 2.0, -1.0, -0.25], 60), 10)
    levels[380:420] = -3.0
    strategy = Strategy("levels", lambda data: levels, {}, lambda params: 2, "")
    for fees, stop_loss in ((0.0, None), (10.0, None), (3.0, 0.03)):
        held, growth, equity, trades = ref_backtest(close.tolist(), levels.tolist(), fees / 1e4, stop_loss or math.inf)
        result = run_backtest(data, strategy, fees_bps=fees, stop_loss=stop_loss)
        assert result.positions.tolist() == held
        np.testing.assert_allclose(result.equity, equity, rtol=RELATIVE, atol=ABSOLUTE)
        expected = ref_metrics(held, growth, equity, trades, data.bars_per_year)
        assert_metrics_match(evaluate(data, strategy, fees_bps=fees, stop_loss=stop_loss), expected, fees)
        if stop_loss is None:
            assert result.equity[-1] == 0.0  # the 3x short was ruined


@pytest.mark.parametrize("seed", [5, 6])
def test_evaluate_equals_run_backtest_and_compute_metrics_exactly(seed):
    """evaluate() works in reused buffers and run_backtest() in fresh arrays: same numbers."""
    data = random_data(seed, bars=3_000)
    for name, params in random_cases(seed, 4):
        for stop_loss in (None, 0.01):
            fresh = compute_metrics(run_backtest(data, name, params, fees_bps=2, stop_loss=stop_loss))
            assert evaluate(data, name, params, fees_bps=2, stop_loss=stop_loss) == fresh
            partial = evaluate_partial(data, name, params, 5, fees_bps=2, stop_loss=stop_loss)
            assert partial[-1] == fresh


def test_results_do_not_share_buffers():
    data = random_data(7, bars=2_000)
    first = run_backtest(data, "ma_crossover", {"fast": 3, "slow": 30}, fees_bps=5)
    kept = first.equity.copy(), first.returns.copy(), first.positions.copy()
    metrics = evaluate(data, "ma_crossover", {"fast": 3, "slow": 30}, fees_bps=5)
    evaluate(data, "rsi_reversion", {"period": 5, "allow_short": True}, stop_loss=0.01)
    run_backtest(data, "channel_breakout", {"lookback": 9, "exit_lookback": 4})
    assert all(np.array_equal(a, b) for a, b in zip(kept, (first.equity, first.returns, first.positions)))
    assert evaluate(data, "ma_crossover", {"fast": 3, "slow": 30}, fees_bps=5) == metrics


def test_the_reference_itself_on_a_hand_computed_case():
    # Entry at close 100 (held from bar 1); bar 3 closes at 94, a 6 % loss: flat from bar 4.
    close = [100.0, 100, 97, 94, 96, 99]
    held, _, equity, trades = ref_backtest(close, [1, 1, 1, 1, 1, 1], 0.0, 0.05)
    assert held == [0, 1, 1, 1, 0, 0]
    assert equity[-1] == pytest.approx(0.94) and trades == pytest.approx([-0.06])
    assert ref_rsi([10.0, 11, 10, 9, 9], 1)[1:] == [100.0, 0.0, 0.0, 50.0]
    assert ref_previous([1.0, 3, 2, 5], 2, max)[2:] == [3.0, 3.0]
