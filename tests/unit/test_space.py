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
