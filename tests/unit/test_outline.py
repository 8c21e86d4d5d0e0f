"""The slices and heatmap kept one trial at a time (runner/outline.py): the same picture as
from all the trials at once, in a size that does not grow with them."""

from __future__ import annotations

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from runner.outline import HEATMAP_FINE, Outline

SPACE = {"fast": IntDistribution(2, 400), "lr": FloatDistribution(1e-4, 1.0, log=True),
         "kind": CategoricalDistribution(["sma", "ema"])}


def trial(number, params, value, space=SPACE):
    return FrozenTrial(
        number=number, trial_id=number, state=TrialState.COMPLETE, value=value, values=None, datetime_start=None,
        datetime_complete=None, params=params, distributions={k: space[k] for k in params}, user_attrs={},
        system_attrs={}, intermediate_values={},
    )


def many(n: int, seed: int = 0) -> list[FrozenTrial]:
    rng = np.random.default_rng(seed)
    return [trial(i, {"fast": int(rng.integers(2, 401)), "lr": float(10 ** rng.uniform(-4, 0)),
                      "kind": str(rng.choice(["sma", "ema"]))}, float(rng.normal())) for i in range(n)]


def test_kept_one_at_a_time_it_draws_what_all_at_once_draws():
    """Its owner rebuilds it when it goes stale (runner/monitor.py, on a view's read; here
    at once): a new extreme grows rarer as trials accumulate, so rebuilds are few."""
    trials = many(3000)
    one_by_one, rebuilds = Outline(maximize=True), 0
    for i, t in enumerate(trials):
        one_by_one.add(t)
        if one_by_one.stale:
            one_by_one, rebuilds = Outline.of(trials[: i + 1], maximize=True), rebuilds + 1
    at_once = Outline.of(trials, maximize=True)
    best = max(trials, key=lambda t: t.values[0])
    assert one_by_one.slices(best) == at_once.slices(best)
    assert one_by_one.heatmap("fast", "lr", 8, best=best) == at_once.heatmap("fast", "lr", 8, best=best)
    assert 1 <= rebuilds <= 40 and not one_by_one.stale


def test_its_size_does_not_grow_with_the_trials():
    outline = Outline.of(many(20000), maximize=False, columns=60)
    for name, p in outline.params.items():
        assert p.count == 20000
        assert p.raw is None and len(p.low) <= 60 and len(p.high) <= 60, name
    for pair, cells in outline.pairs.items():
        assert len(cells) <= HEATMAP_FINE ** 2, pair
    s = {s.param: s for s in outline.slices(None)}
    assert len(s["fast"].xs) <= 2 * 60 and s["fast"].trials == 20000


def test_a_slice_keeps_each_slots_lowest_and_highest():
    trials = many(5000, seed=1)
    s = next(s for s in Outline.of(trials, maximize=True, columns=40).slices(None) if s.param == "fast")
    assert min(s.ys) == min(t.values[0] for t in trials) and max(s.ys) == max(t.values[0] for t in trials)
    kinds = next(s for s in Outline.of(trials, maximize=True, columns=40).slices(None) if s.param == "kind")
    assert set(kinds.xs) == {0.0, 1.0} and len(kinds.xs) == 4  # a choice's lowest and highest


def test_every_heatmap_cell_holds_the_best_of_its_trials():
    """Integers with few values are their own slots: the cells are exact."""
    space = {"a": IntDistribution(0, 5), "b": IntDistribution(0, 3)}
    rng = np.random.default_rng(2)
    trials = [trial(i, {"a": int(rng.integers(0, 6)), "b": int(rng.integers(0, 4))}, float(rng.normal()), space)
              for i in range(500)]
    h = Outline.of(trials, maximize=False).heatmap("a", "b", bins=12)
    assert h.x_labels == [str(v) for v in range(6)] and h.y_labels == [str(v) for v in range(4)]
    for a in range(6):
        for b in range(4):
            want = min((t.values[0] for t in trials if t.params == {"a": a, "b": b}), default=None)
            assert h.cells[b][a] == want
    assert h.trials == 500
    swapped = Outline.of(trials, maximize=False).heatmap("b", "a", bins=12)  # either order of a pair
    assert swapped.cells == [list(row) for row in zip(*h.cells)]


def test_a_narrow_corner_of_a_wide_range_keeps_its_detail():
    """Late in a study the sampler keeps to a corner: the slots divide what it explored."""
    space = {"fast": IntDistribution(2, 2000), "k": FloatDistribution(0, 100),
             "lr": FloatDistribution(1e-5, 1.0, log=True)}
    rng = np.random.default_rng(3)
    trials = [trial(i, {"fast": int(rng.integers(50, 61)), "k": float(rng.uniform(40, 42)),
                        "lr": float(10 ** rng.uniform(-2, -1.9))}, float(-(rng.integers(50, 61) - 55) ** 2), space)
              for i in range(2000)]
    outline = Outline.of(trials, maximize=True)
    h = outline.heatmap("fast", "k", bins=12)
    assert h.x_labels == [str(v) for v in range(50, 61)]  # 11 values: each its own
    assert len(h.y_labels) == 12 and 40 <= float(h.y_labels[0]) < float(h.y_labels[-1]) < 42
    assert sum(v is not None for row in h.cells for v in row) > 100
    lr = next(s for s in outline.slices(None) if s.param == "lr")
    assert len(lr.xs) > 100 and all(0.01 <= x <= 10 ** -1.9 for x in lr.xs)
    outline.add(trial(2000, {"fast": 55, "k": 41.0, "lr": 0.5}, 0.0, space))  # past the span: rebuild
    assert outline.stale


def test_a_value_of_another_kind_is_left_out_not_raised():
    """A result delivered after an outage may carry a parameter in another distribution."""
    ints = {"ma": IntDistribution(2, 50)}
    words = {"ma": CategoricalDistribution(["sma", "ema"])}
    trials = [trial(i, {"ma": 2 + i}, float(i), ints) for i in range(10)] + [trial(10, {"ma": "ema"}, 5.0, words)]
    outline = Outline(maximize=True)
    for t in trials:
        outline.add(t)
    assert outline.stale
    rebuilt = Outline.of(trials, maximize=True)  # in the latest distribution: the integers are left out
    assert not rebuilt.stale and rebuilt.params["ma"].count == 1
    assert rebuilt.slices(None)[0].choices == ["sma", "ema"]


def test_a_trial_in_another_distribution_makes_it_stale_and_it_takes_no_more():
    outline = Outline(maximize=True)
    outline.add(trial(0, {"fast": 10}, 1.0))
    assert not outline.stale
    refined = {**SPACE, "fast": IntDistribution(5, 50)}
    outline.add(trial(1, {"fast": 20}, 2.0, refined))
    assert outline.stale
    outline.add(trial(2, {"fast": 30}, 3.0))
    assert outline.params["fast"].count == 1  # its owner rebuilds it: nothing more is kept meanwhile
    rebuilt = Outline.of([trial(0, {"fast": 10}, 1.0), trial(1, {"fast": 20}, 2.0, refined)], maximize=True)
    assert not rebuilt.stale and rebuilt.params["fast"].dist == refined["fast"] and rebuilt.params["fast"].count == 2
