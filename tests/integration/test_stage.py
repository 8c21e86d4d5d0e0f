"""tune stage: the chosen parameters, written so that the file alone runs the backtest again."""

from __future__ import annotations

import stat

import yaml

from runner.config import load_config
from runner.study import Objective
from tests.helpers import small_config, tune


def test_a_staged_file_holds_everything_and_reproduces_the_backtests_value(db_url, tmp_path):
    extra = '\n[strategy.fixed]\nma_type = "ema"\n\n[validation]\nholdout = 0.3\n'
    config = small_config(tmp_path, name="stg", target=15, extra=extra)
    env = {"TUNE_STORAGE_URL": db_url}
    tune("run", str(config), env=env, check=True)
    out = tune("stage", "stg-AAA", "--dir", str(tmp_path / "staging"), env=env, check=True)
    assert "staged in" in out.stdout and not out.stderr.strip()
    files = sorted((tmp_path / "staging").iterdir())
    assert [f.name for f in files][-1] == "stg-AAA-latest.yml" and files[0].name.startswith("stg-AAA-2")
    assert files[0].read_text() == files[1].read_text()
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)  # owner-only
    staged = yaml.safe_load(files[-1].read_text())
    meta = staged["metadata"]
    for key in ("created_at", "run_id", "study_name", "best_trial_number", "sharpe", "max_drawdown", "total_return",
                "volatility", "constraints_satisfied", "constraint_violations", "total_trials", "elapsed_time_seconds",
                "sampler", "data_points", "data_period"):
        assert key in meta, key
    assert meta["study_name"] == "stg-AAA" and meta["reproduced"] is True and meta["data_points"] == 1400
    assert "pruner" not in meta  # no pruner: nothing said of one
    assert staged["fixed"] == ["ma_type"] and staged["searched"] == ["fast", "slow"]
    assert set(staged["parameters"]) == {"fast", "slow", "ma_type"} and staged["parameters"]["ma_type"] == "ema"
    assert "out_of_sample" in staged  # the holdout's figures of the best
    # Run again from the file: its config and data, its parameters (searched and fixed).
    cfg = load_config(staged["config"])
    again = Objective(cfg, staged["data"]["symbol"])(staged["parameters"])
    assert again.metrics["sharpe"] == meta["sharpe"]
    exported = yaml.safe_load(tune("export", "stg-AAA", env=env, check=True).stdout)  # tune export as complete
    assert exported["fixed_params"] == {"ma_type": "ema"} and exported["pruner"] == {"type": "none"}
    assert exported["run_id"] == meta["run_id"] and exported["data_period"] == meta["data_period"]
    assert exported["data_points"] == meta["data_points"] == 1400
    tune("stage", "stg-AAA", "--dir", str(tmp_path / "staging"), env=env, check=True)
    assert yaml.safe_load((tmp_path / "staging" / "stg-AAA-latest.yml").read_text())["metadata"]["run_id"] == meta["run_id"]


def test_staging_what_cannot_be_staged_says_why(db_url, tmp_path):
    env = {"TUNE_STORAGE_URL": db_url}
    missing = tune("stage", "no-such", "--dir", str(tmp_path / "s"), env=env)
    assert missing.returncode == 2 and "no such study: no-such" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "s").exists()
