"""A trial's equity curve, recomputed on demand (runner/equity.py; no database)."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from runner.config import load_config
from runner.equity import EquityCurve, equity_curve, thin
from tests.helpers import small_config

PARAMS = {"fast": 5, "slow": 30}
HOLDOUT = "\n[validation]\nholdout = {holdout}\n"
# Fixed parameters, costs and a stop: the curve must run the trial as its study did.
COSTS = "[strategy]\nfees_bps = 5\nslippage_bps = 2\nstop_loss = 0.03\n"
FIXED = '\n[strategy.fixed]\nallow_short = true\nma_type = "ema"\n'


def _frame():
    return backtest.synthetic_ohlcv("AAA", seed=1, bars=2000, freq="1h", start="2020-01-01")


def _config(tmp_path, extra: str = "", **kw):
    path = small_config(tmp_path, extra=FIXED + extra, **kw)
    path.write_text(path.read_text().replace("[strategy]\n", COSTS, 1))
    return load_config(path)


def _in_sample_metrics(bars: int) -> dict[str, float]:
    data = backtest.PriceData.from_frame(_frame().iloc[:bars], "AAA")
    return backtest.evaluate(data, "ma_crossover", {**PARAMS, "allow_short": True, "ma_type": "ema"},
                             fees_bps=5, slippage_bps=2, stop_loss=0.03)


def test_a_built_in_strategys_curve_ends_at_the_trials_return_and_draws_down_as_far(tmp_path):
    cfg = _config(tmp_path)
    curve = equity_curve(cfg, "AAA", PARAMS, trial=7)
    metrics = _in_sample_metrics(2000)
    assert (curve.study, curve.trial, len(curve), curve.holdout_start, curve.window) == ("t-AAA", 7, 2000, None, (0, 2000))
    assert curve.equity[0] == 1.0 and curve.drawdown[0] == 0.0
    assert metrics["trades"] > 5 and metrics["max_drawdown"] > 0.01  # a run with something to show
    assert curve.equity[-1] - 1.0 == pytest.approx(metrics["total_return"], abs=1e-9)
    assert curve.total_return == pytest.approx(metrics["total_return"], abs=1e-9)
    assert curve.drawdown.min() == pytest.approx(-metrics["max_drawdown"], abs=1e-9)
    assert curve.max_drawdown == pytest.approx(metrics["max_drawdown"], abs=1e-9)
    assert (curve.drawdown <= 0.0).all() and np.isfinite(curve.equity).all()
    close = _frame()["close"].to_numpy()
    assert curve.buy_hold is not None
    assert curve.buy_hold[0] == 1.0 and curve.buy_hold[-1] == pytest.approx(close[-1] / close[0], rel=1e-12)
    assert curve.times[0] == np.datetime64("2020-01-01T00:00") and curve.labels[1] == "2020-01-01T01:00:00"
    # The searched parameters alone came from the trial; without the fixed ones it is another run.
    other = equity_curve(load_config(small_config(tmp_path, name="plain")), "AAA", PARAMS)
    assert other.study == "plain-AAA" and not np.array_equal(other.equity, curve.equity)


def test_with_a_holdout_the_curve_runs_on_and_its_figures_are_the_in_sample_ones(tmp_path):
    cfg = _config(tmp_path, HOLDOUT.format(holdout="0.3"))
    curve = equity_curve(cfg, "AAA", PARAMS)
    metrics = _in_sample_metrics(1400)
    assert (len(curve), curve.holdout_start, curve.window) == (2000, 1400, (0, 1400))
    assert curve.equity[1399] - 1.0 == pytest.approx(metrics["total_return"], abs=1e-9)
    assert curve.total_return == pytest.approx(metrics["total_return"], abs=1e-9)
    assert curve.drawdown[:1400].min() == pytest.approx(-metrics["max_drawdown"], abs=1e-9)
    assert curve.max_drawdown == pytest.approx(metrics["max_drawdown"], abs=1e-9)
    # The whole run goes on into the holdout (as the trial's holdout figures are measured).
    whole = backtest.run_backtest(backtest.PriceData.from_frame(_frame(), "AAA"), "ma_crossover",
                                  {**PARAMS, "allow_short": True, "ma_type": "ema"},
                                  fees_bps=5, slippage_bps=2, stop_loss=0.03)
    np.testing.assert_allclose(curve.equity, whole.equity, rtol=1e-12)


def test_a_holdout_from_a_date_starts_at_that_bar(tmp_path):
    cfg = _config(tmp_path, HOLDOUT.format(holdout='"2020-03-01"'))
    curve = equity_curve(cfg, "AAA", PARAMS)
    first = int(_frame().index.searchsorted(np.datetime64("2020-03-01")))
    assert curve.holdout_start == first and curve.window == (0, first)
    assert curve.times[first] == np.datetime64("2020-03-01T00:00")


def test_a_walk_forward_folds_curve_marks_its_training_window_and_the_holdout(tmp_path):
    extra = '\n[validation]\nholdout = 0.2\nwalk_forward = { folds = 3, mode = "rolling" }\n'
    cfg = _config(tmp_path, extra)
    curve = equity_curve(cfg, "AAA", PARAMS, fold=2)
    # 1600 bars before the holdout, in 4 segments of 400: fold 2 trains on the second.
    assert (curve.study, len(curve), curve.holdout_start, curve.window) == ("t-AAA-wf2", 2000, 1600, (400, 800))
    window = curve.equity[400:800]
    assert curve.total_return == pytest.approx(window[-1] / window[0] - 1.0, abs=1e-12)
    assert curve.equity[0] == 1.0
    assert equity_curve(cfg, "AAA", PARAMS).window == (0, 1600)


USER = '''
import numpy as np

def with_returns(params, data):
    """Long every bar: its returns are the close's, one fewer than the bars."""
    r = data["close"].pct_change().to_numpy()[1:]
    return {"sharpe": float(r.mean()), "trades": 1, "total_return": float(np.prod(1 + r) - 1), "returns": r}

def every_bar(params, data):
    r = data["close"].pct_change().fillna(0.0).to_numpy() * 0.5
    return {"sharpe": 1.0, "trades": 1, "returns": list(r)}

def without_returns(params, data):
    return {"sharpe": 1.0, "trades": 1}

def wrong_length(params, data):
    return {"sharpe": 1.0, "trades": 1, "returns": [0.0] * 10}
'''


def _user(tmp_path, function: str, extra: str = ""):
    (tmp_path / "eqbt.py").write_text(USER)
    return load_config(small_config(tmp_path, strategy=f"eqbt:{function}", extra=extra))


def test_a_user_backtest_that_returns_its_returns_gets_a_curve(tmp_path):
    cfg = _user(tmp_path, "with_returns", HOLDOUT.format(holdout="0.25"))
    curve = equity_curve(cfg, "AAA", PARAMS, trial=0)
    close = _frame()["close"].to_numpy()
    assert (len(curve), curve.holdout_start, curve.window) == (2000, 1500, (0, 1500))
    assert curve.equity[0] == 1.0 and curve.buy_hold is not None
    np.testing.assert_allclose(curve.equity, curve.buy_hold, rtol=1e-9)  # long throughout: buy and hold
    assert curve.total_return == pytest.approx(close[1499] / close[0] - 1.0, rel=1e-9)
    half = equity_curve(_user(tmp_path, "every_bar"), "AAA", PARAMS)  # one return per bar, the first 0
    assert len(half) == 2000 and half.equity[0] == 1.0
    assert half.equity[1] == pytest.approx(1 + 0.5 * (close[1] / close[0] - 1), rel=1e-12)


def test_a_user_backtest_without_returns_is_told_what_it_must_give(tmp_path):
    with pytest.raises(ValueError, match="must return its per-bar returns under 'returns'"):
        equity_curve(_user(tmp_path, "without_returns"), "AAA", PARAMS)
    with pytest.raises(ValueError, match="10 returns under 'returns' for 2000 bars"):
        equity_curve(_user(tmp_path, "wrong_length"), "AAA", PARAMS)


def _curve(values: np.ndarray, holdout: int | None = None) -> EquityCurve:
    bars = len(values)
    peaks = np.maximum.accumulate(values)
    end = bars if holdout is None else holdout
    return EquityCurve(
        study="s", trial=None, times=np.arange(bars).astype("datetime64[h]").astype("datetime64[ns]"),
        index=np.arange(bars), equity=values, drawdown=values / peaks - 1.0, buy_hold=values * 2 / values[0] / 2,
        holdout_start=holdout, window=(0, end), total_return=float(values[end - 1] - 1), max_drawdown=0.0,
    )


@pytest.mark.parametrize("bars, columns", [(2000, 80), (1001, 7), (81, 80), (10, 2), (10, 10), (5, 80)])
def test_thin_keeps_at_most_columns_points_the_first_and_last_and_the_deepest_drawdown(bars, columns):
    rng = np.random.default_rng(bars)
    values = np.concatenate(([1.0], np.cumprod(1 + rng.normal(0, 0.02, bars - 1))))
    curve = _curve(values, holdout=bars * 3 // 4)
    small = thin(curve, columns)
    assert len(small) == min(bars, columns)
    for series in (small.times, small.index, small.equity, small.drawdown, small.buy_hold):
        assert series is not None and len(series) == len(small)
    assert small.equity[0] == 1.0 and small.equity[-1] == values[-1]
    assert small.buy_hold is not None and small.buy_hold[0] == 1.0 and small.buy_hold[-1] == curve.buy_hold[-1]
    assert small.times[-1] == curve.times[-1] and small.index[0] == 0 and small.index[-1] == bars - 1
    assert small.drawdown.min() == curve.drawdown.min()  # the deepest point survives
    assert (np.diff(small.index) > 0).all()
    assert small.total_return == curve.total_return  # figures of every bar, not of the points
    # The holdout opens at the point holding its first bar, and the window ends there.
    assert small.holdout_start is not None
    assert small.index[small.holdout_start] >= curve.holdout_start
    assert small.holdout_start == 0 or small.index[small.holdout_start - 1] < curve.holdout_start
    assert small.window == (0, small.holdout_start)


def test_thin_refuses_fewer_than_two_columns():
    with pytest.raises(ValueError, match="at least 2"):
        thin(_curve(np.ones(10)), 1)


def test_a_thinned_real_curve_fits_a_pane(tmp_path):
    curve = equity_curve(_config(tmp_path, HOLDOUT.format(holdout="0.3")), "AAA", PARAMS)
    small = thin(curve, 60)
    assert len(small) == 60 and small.equity[-1] == curve.equity[-1] and small.window == (0, small.holdout_start)
    assert len(small.labels) == 60 and small.labels[0] == "2020-01-01T00:00:00"
