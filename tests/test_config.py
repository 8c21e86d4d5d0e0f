"""A broken config names the file, the field and the problem; the CLI exits 2 without a traceback."""

from __future__ import annotations

import pytest

from runner.config import DEMO_CONFIG, ConfigError, load_config
from tests.conftest import small_config, tune, write_config


def test_demo_config_is_valid():
    cfg = load_config(None)
    assert cfg.source_path == DEMO_CONFIG.resolve()
    assert cfg.data.symbols == ["AAA", "BBB", "CCC"]
    assert cfg.direction == "maximize"
    assert cfg.study_name("AAA") == "demo-AAA"


def test_direction_defaults_to_the_metrics_natural_one(tmp_path):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace('[study]\n', '[study]\nmetric = "max_drawdown"\n'))
    assert load_config(path).direction == "minimize"


BROKEN = {
    # name: (edit of the small config, expected field, words expected in the problem)
    "misspelled field": (lambda t: t.replace("target_trials", "target_trails"), "study.target_trails", "unknown field"),
    "low above high": (lambda t: t.replace("low = 25", "low = 95"), "space.slow", "low (95) must be below high (80)"),
    "unknown strategy": (lambda t: t.replace('name = "ma_crossover"', 'name = "ma_crosover"'), "strategy.name", "unknown strategy"),
    "unknown metric": (lambda t: t.replace("[study]\n", '[study]\nmetric = "sharp"\n'), "study.metric", "unknown metric"),
    "missing data file": (
        lambda t: t.replace("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "nowhere/{symbol}.csv"\n'),
        "data.path", "not found (symbol AAA)",
    ),
    "parameter the strategy lacks": (
        lambda t: t.replace("[space.slow]", "[space.slw]"), "space.slw", "has no parameter 'slw'"
    ),
    "wrong type": (lambda t: t.replace("target_trials = 20", 'target_trials = "many"'), "study.target_trials", "valid integer"),
    "unknown sampler": (lambda t: t.replace("[sampler]\n", '[sampler]\ntype = "bayes"\n'), "sampler.type", "tpe"),
    "missing section": (lambda t: t.replace("[strategy]\n", "[strategy_]\n"), "strategy", "required"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_names_file_field_and_problem(tmp_path, case):
    edit, field, words = BROKEN[case]
    path = small_config(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field
    assert words in info.value.problem
    assert str(info.value).startswith(str(path))


def test_invalid_toml_and_missing_file(tmp_path):
    bad = write_config(tmp_path / "bad.toml", "[study\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("command", [["run"], ["status"], ["worker", "--symbol", "AAA"]])
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path, command):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace("low = 25", "low = 95"))
    args = [command[0], str(path), *command[1:]]
    proc = tune(*args, env={"TUNE_STORAGE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "space.slow" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
