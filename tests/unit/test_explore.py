"""The insight views' data (runner/explore.py) on trials with known answers."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from runner import explore
from runner.importances import complete_trials
from runner.outline import HEATMAP_BINS, SLICE_COLUMNS, Outline
from runner.states import WORKER_ATTR

SPACE = {"fast": IntDistribution(2, 20), "lr": FloatDistribution(1e-4, 1.0, log=True),
         "kind": CategoricalDistribution(["sma", "ema"])}


def trial(number, params, value=None, state=TrialState.COMPLETE, attrs=None, system=None):
    start = datetime(2026, 1, 1) + timedelta(seconds=number)
    return FrozenTrial(
        number=number, trial_id=number, state=state, value=value, values=None, datetime_start=start,
        datetime_complete=start + timedelta(seconds=2), params=params,
        distributions={k: SPACE[k] for k in params}, user_attrs=attrs or {}, system_attrs=system or {},
        intermediate_values={},
    )


def _numbered(trials, number):
    return next((t for t in trials if t.number == number), None) if number is not None else None


def slices(trials, best, columns=SLICE_COLUMNS):
    """The slices view's data of ``trials``, trial ``best`` marked (as Monitor.slices builds it)."""
    complete = complete_trials(trials)
    return Outline.of(complete, maximize=False, columns=columns).slices(_numbered(complete, best))


def heatmap(trials, directions, x=None, y=None, bins=HEATMAP_BINS, ranked=None, best=None):
    """The heatmap view's data of ``trials`` (as Monitor.heatmap builds it)."""
    complete = complete_trials(trials)
    return Outline.of(complete, directions[0] == "maximize").heatmap(x, y, bins, ranked, _numbered(complete, best))


def grid() -> list[FrozenTrial]:
    """fast x kind, value = fast (+5 for ema): the best is fast=20, ema."""
    out = []
    for n, fast in enumerate(range(2, 21)):
        for k, kind in enumerate(("sma", "ema")):
            out.append(trial(2 * n + k, {"fast": fast, "lr": 10 ** -(1 + n % 3), "kind": kind}, float(fast + 5 * k)))
    out.append(trial(100, {"fast": 3, "lr": 0.1, "kind": "sma"}, None, TrialState.PRUNED, {"prune_reason": "few"}))
    out.append(trial(101, {"fast": 4, "lr": 0.1, "kind": "sma"}, None, TrialState.FAIL,
                     {"duplicate_of": 2, "duplicate_source": "memory"}))
    return out


def test_a_slice_per_parameter_with_the_best_marked_and_categoricals_as_columns():
    found = {s.param: s for s in slices(grid(), best=37)}  # fast=20, ema: the highest
    assert set(found) == {"fast", "lr", "kind"}
    fast = found["fast"]
    assert fast.trials == 38 and not fast.categorical  # complete trials only
    assert (fast.best_x, fast.best_y) == (20.0, 25.0)
    kind = found["kind"]
    assert kind.categorical and kind.choices == ["sma", "ema"]
    assert set(kind.xs) == {0.0, 1.0} and kind.best_x == 1.0
    assert found["lr"].log


def test_the_trial_marked_is_the_one_given():
    fast = next(s for s in slices(grid(), best=0) if s.param == "fast")  # fast=2, sma: the lowest
    assert (fast.best_x, fast.best_y) == (2.0, 2.0)


def test_a_slice_of_many_trials_keeps_its_outline_in_few_points():
    rng = np.random.default_rng(0)
    trials = [trial(i, {"fast": int(x)}, float(y)) for i, (x, y) in
              enumerate(zip(rng.integers(2, 21, 5000), rng.normal(size=5000)))]
    trials[1234] = trial(1234, {"fast": 7}, 99.0)
    s = slices(trials, best=1234, columns=50)[0]
    assert s.trials == 5000
    assert len(s.xs) <= 2 * 19  # at most the lowest and highest of each distinct value
    assert max(s.ys) == 99.0 and (s.best_x, s.best_y) == (7.0, 99.0)
    lows = {x: y for x, y in zip(s.xs, s.ys) if y == min(yy for xx, yy in zip(s.xs, s.ys) if xx == x)}
    for x, y in lows.items():  # the lowest of each value is still there
        assert y == min(t.values[0] for t in trials if t.params["fast"] == x)


def test_the_heatmap_holds_each_cells_best_and_marks_the_best_cell():
    h = heatmap(grid(), ["maximize"], "fast", "kind", bins=20, best=37)
    assert h is not None
    assert h.x_labels == [str(v) for v in range(2, 21)] and h.y_labels == ["sma", "ema"]
    assert h.cells[1][0] == 7.0 and h.cells[0][18] == 20.0  # ema at fast=2, sma at fast=20
    assert h.best == (18, 1) and h.cells[1][18] == 25.0
    assert heatmap(grid(), ["maximize"], "fast", "fast").y_param != "fast"  # never one parameter twice
    binned = heatmap(grid(), ["maximize"], "fast", "kind", bins=6)
    assert binned.x_labels == ["2", "5", "8", "11", "14", "17"]  # integers, each bin named by its first


def test_the_heatmap_bins_a_wide_range_and_keeps_the_best_per_bin():
    trials = [trial(i, {"fast": 2 + i % 19, "lr": 10 ** (-4 + 4 * i / 399)}, float(i % 19 - abs(i - 200) / 100))
              for i in range(400)]
    lowest = min(trials, key=lambda t: t.values[0]).number
    h = heatmap(trials, ["minimize"], "lr", "fast", bins=8, best=lowest)
    assert h is not None and len(h.x_labels) == 8 and len(h.y_labels) == 8
    assert float(h.x_labels[0]) == 1e-4 and float(h.x_labels[4]) == 0.01  # log bins: equal in log
    values = [v for row in h.cells for v in row if v is not None]
    assert h.cells[h.best[1]][h.best[0]] == min(values) == min(t.values[0] for t in trials)


def test_the_heatmap_offers_the_most_important_parameters_first():
    h = heatmap(grid(), ["maximize"], ranked=["kind", "unknown", "fast", "lr"])
    assert h.order == ["kind", "fast", "lr"] and (h.x_param, h.y_param) == ("kind", "fast")
    h = heatmap(grid(), ["maximize"])
    assert h.order == ["fast", "lr", "kind"] and (h.x_param, h.y_param) == ("fast", "lr")


def test_importances_come_from_the_newer_of_the_live_and_the_report():
    live = {"fast": 0.2, "slow": 0.8, "method": "ped-anova", "trials": 300, "computed_at": "t1"}
    report = {"importances": {"fast": 0.9, "slow": 0.1, "method": "ped-anova"}, "trials": {"complete": 500},
              "computed_at": "t2"}
    got = explore.importances(live, report)
    assert (got.source, got.trials, got.bars) == ("report", 500, [("fast", 0.9), ("slow", 0.1)])
    got = explore.importances(live, {**report, "trials": {"complete": 200}})
    assert (got.source, got.bars[0], got.computed_at) == ("live", ("slow", 0.8), "t1")
    none = explore.importances(None, None)
    assert none.bars == [] and "not computed yet" in none.na
    na = explore.importances({"n/a": "fewer than 4 complete trials", "trials": 3}, None)
    assert na.bars == [] and na.na == "fewer than 4 complete trials"


def test_a_trials_detail_holds_every_metric_its_reason_worker_and_holdout():
    t = trial(7, {"fast": 5}, 1.5, attrs={"sharpe": 1.5, "my_own": 3.0}, system={WORKER_ATTR: "host-1234abcd"})
    d = explore.trial_detail("s", t, ["sharpe"], {"metrics": {"sharpe": 0.4}, "error": None})
    assert d.kind == "complete" and d.values == {"sharpe": 1.5} and d.metrics == {"sharpe": 1.5, "my_own": 3.0}
    assert d.worker == "host-1234abcd" and d.seconds == 2.0 and d.out_of_sample == {"sharpe": 0.4}
    dup = explore.trial_detail("s", grid()[-1], ["sharpe"], None)
    assert dup.kind == "duplicate" and dup.notes == {"duplicate_of": "#2", "duplicate_source": "memory"}
    assert dup.metrics == {} and dup.worker is None and dup.out_of_sample is None
