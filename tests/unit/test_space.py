"""runner.space: what a config's [space] means (conditions, the grid, duplicate keys)."""

from __future__ import annotations

import itertools
import json

import pytest

from runner.config import load_config
from runner.space import GRID_SIZE_CAP, distributions, grid_points, grid_size, is_conditional, param_key
from tests.helpers import CONDITIONAL_SPACE, search_config, small_config

STEPPED = '''
[space.stop_loss]
type = "float"
low = 0.01
high = 0.1
step = 0.01

[space.ma_type]
type = "categorical"
choices = ["sma", "ema"]
'''


@pytest.fixture
def stepped(tmp_path):
    """fast 2..20 step 3 (7 values), slow 25..80 (56), stop_loss 0.01..0.1 step 0.01 (10), ma_type (2)."""
    path = small_config(tmp_path, name="stepped", extra=STEPPED)
    path.write_text(path.read_text().replace("low = 2\nhigh = 20\n", "low = 2\nhigh = 20\nstep = 3\n"))
    return load_config(path)


def test_a_plain_space_is_not_conditional_and_a_when_makes_it_so(tmp_path):
    assert not is_conditional(load_config(small_config(tmp_path)))
    cfg = load_config(search_config(tmp_path, "conditional", "cd", space=CONDITIONAL_SPACE))
    assert is_conditional(cfg)
    assert cfg.space["width"].when == {"mode": "wide"}


def test_grid_size_counts_int_ranges_inclusively(tmp_path):
    cfg = load_config(small_config(tmp_path))  # fast 2..20, slow 25..80
    assert grid_size(cfg) == 19 * 56


def test_grid_size_and_points_of_steps_floats_and_choices(stepped):
    points = grid_points(stepped)
    assert points["fast"] == [2, 5, 8, 11, 14, 17, 20]
    assert points["slow"] == list(range(25, 81))
    assert points["stop_loss"] == [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]  # no 0.30000000000000004
    assert points["ma_type"] == ["sma", "ema"]
    assert grid_size(stepped) == 7 * 56 * 10 * 2 == len(list(itertools.product(*points.values())))


def test_every_grid_point_lies_in_its_distribution(stepped):
    space = distributions(stepped)
    for name, values in grid_points(stepped).items():
        for value in values:
            assert space[name]._contains(space[name].to_internal_repr(value)), (name, value)


def test_a_float_without_a_step_has_no_grid(tmp_path):
    cfg = load_config(search_config(tmp_path, "conditional", "cd", space=CONDITIONAL_SPACE))  # width: a float, no step
    assert grid_size(cfg) is None


def test_grid_size_stops_counting_at_its_cap(tmp_path):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace("low = 2\nhigh = 20\n", "low = -9007199254740992\nhigh = 9007199254740992\n")
                    .replace("low = 25\nhigh = 80\n", "low = -9007199254740992\nhigh = 9007199254740992\n"))
    assert grid_size(load_config(path)) == GRID_SIZE_CAP


def test_param_key_is_the_same_whatever_the_order_and_differs_with_any_value(stepped):
    params = {"fast": 5, "slow": 30, "stop_loss": 0.03, "ma_type": "sma"}
    key = param_key(stepped, params)
    assert key == param_key(stepped, dict(reversed(list(params.items()))))
    assert [name for name, _ in json.loads(key)] == sorted(params)
    for name, other in (("fast", 8), ("slow", 31), ("stop_loss", 0.04), ("ma_type", "ema")):
        assert param_key(stepped, {**params, name: other}) != key, name


def test_param_key_of_a_stepped_float_is_its_step_index(stepped):
    key = dict(json.loads(param_key(stepped, {"fast": 5, "slow": 30, "stop_loss": 0.03, "ma_type": "sma"})))
    assert key["stop_loss"] == 2  # (0.03 - 0.01) / 0.01
    # float noise from arithmetic or a round trip through JSON is the same combination
    assert param_key(stepped, {"fast": 5, "slow": 30, "stop_loss": 0.1 * 3 / 10, "ma_type": "sma"}) == \
        param_key(stepped, {"fast": 5, "slow": 30, "stop_loss": 0.03, "ma_type": "sma"})


def test_param_key_keeps_a_parameter_outside_the_space_as_is(stepped):
    key = dict(json.loads(param_key(stepped, {"fast": 5, "allow_short": True, "note": 0.123456789})))
    assert key == {"fast": 5, "allow_short": True, "note": 0.123456789}


# ------------------------------------------------------- exact step values, bounds

STEP_SPACE = '''
[space.x]
type = "float"
low = 0.2
high = 1.0
step = 0.2

[space.y]
type = "float"
low = 0.0
high = 0.3
step = 0.01
'''


def test_a_float_on_a_step_is_the_value_the_user_would_write(tmp_path):
    from runner.space import exact, step_value

    cfg = load_config(search_config(tmp_path, "quadratic", "st", space=STEP_SPACE))
    assert grid_points(cfg)["x"] == [0.2, 0.4, 0.6, 0.8, 1.0]  # 0.2 + 2*0.2 is 0.6000000000000001 in floats
    assert grid_points(cfg)["y"][:8] == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07]
    assert step_value(cfg.space["y"], 29) == 0.29
    assert exact(cfg, "x", 0.6000000000000001) == 0.6 and exact(cfg, "y", 0.07000000000000001) == 0.07


@pytest.mark.parametrize("multivariate", [True, False])
def test_the_sampler_proposes_exact_step_values_only(tmp_path, multivariate):
    import optuna

    from runner.space import ExactSteps

    cfg = load_config(search_config(tmp_path, "quadratic", "st", space=STEP_SPACE))
    grid = {n: set(v) for n, v in grid_points(cfg).items()}
    sampler = ExactSteps(optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=multivariate), cfg)
    study = optuna.create_study(sampler=sampler)
    for _ in range(40):
        trial = study.ask(fixed_distributions=distributions(cfg))
        study.tell(trial, trial.params["x"] - trial.params["y"])
    for name in ("x", "y"):
        values = {t.params[name] for t in study.trials}
        assert values <= grid[name], values - grid[name]


def test_a_parameter_on_a_bound_of_the_space_is_named():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from runner.monitor import on_bound

    dists = {"fast": IntDistribution(2, 20, step=3), "slow": IntDistribution(20, 60),
             "stop": FloatDistribution(0.01, 0.1), "kind": CategoricalDistribution(["sma", "ema"])}
    assert on_bound({"fast": 5, "slow": 20, "stop": 0.05, "kind": "sma"}, dists) == ["slow = 20 (low)"]
    # 2..20 step 3: Optuna's high is 20, the last point on the grid
    assert on_bound({"fast": 20, "slow": 30, "stop": 0.1, "kind": "ema"}, dists) == ["fast = 20 (high)", "stop = 0.1 (high)"]
    assert on_bound({"fast": 8, "slow": 30, "stop": 0.05, "kind": "ema"}, dists) == []


# ------------------------------------------------------- the free combination nearest a duplicate


def test_after_a_duplicate_the_nearest_unclaimed_combination_is_picked(tmp_path, monkeypatch):
    import random

    from runner.dedup import ClaimBook

    space = ('[space.a]\ntype = "int"\nlow = 1\nhigh = 20\n\n[space.b]\ntype = "int"\nlow = 1\nhigh = 20\n\n'
             '[space.c]\ntype = "categorical"\nchoices = ["x", "y"]\n')
    cfg = load_config(search_config(tmp_path, "quadratic", "nb", space=space))
    book = ClaimBook(None, cfg, "nb-AAA", "w")  # type: ignore[arg-type]
    claimed = {param_key(cfg, {"a": a, "b": b, "c": "x"}) for a in range(8, 13) for b in range(8, 13)}
    monkeypatch.setattr(book, "_claimed_keys", lambda: claimed)
    rng = random.Random(0)
    for _ in range(20):
        pick = book.pick_unclaimed(rng, near={"a": 10, "b": 10, "c": "x"})
        assert isinstance(pick, dict)
        # the 5x5 block around (10, 10, x) is taken: the nearest free ones are 3 steps away
        # on one axis (3/19); another choice of c is a distance of 1
        assert abs(pick["a"] - 10) + abs(pick["b"] - 10) == 3 and pick["c"] == "x"
    claimed_all = {param_key(cfg, c) for c in (dict(zip("abc", v)) for v in
                   itertools.product(range(1, 21), range(1, 21), ["x", "y"]))}
    monkeypatch.setattr(book, "_claimed_keys", lambda: claimed_all)
    assert book.pick_unclaimed(rng, near={"a": 10, "b": 10, "c": "x"}) is None


def test_workers_of_a_study_get_distinct_reproducible_seeds(tmp_path):
    from runner.study import worker_seed

    cfg = load_config(small_config(tmp_path))  # sampler.seed = 3
    seeds = [worker_seed(cfg, "AAA", index) for index in range(50)]
    assert len(set(seeds)) == 50  # each worker index its own seed
    assert seeds == [worker_seed(cfg, "AAA", index) for index in range(50)]  # the same every run
    assert worker_seed(cfg, "AAA", 0) != worker_seed(cfg, "BBB", 0)  # and per symbol
