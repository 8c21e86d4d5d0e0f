"""tune refine from a clean run: the file round-trips through tune run, the refined study starts
from the parent's top trials without running them again, and the lineage shows."""

from __future__ import annotations

import json
import stat

import pytest

from runner import refine
from runner.config import load_config
from runner.export import load_trials
from runner.importances import complete_trials
from tests.helpers import small_config, tune


def test_a_refined_config_runs_from_the_parents_top_trials_and_shows_its_lineage(db, db_url, tmp_path):
    config = small_config(tmp_path, name="rf", target=40, symbols=("AAA", "BBB"))
    env = {"TUNE_STORAGE_URL": db_url}
    tune("run", str(config), env=env, check=True)
    out = tune("refine", "rf-AAA", "--top", "5", env=env, check=True)
    path = tmp_path / "rf_r1.toml"  # beside the parent's config
    assert f"rf-AAA -> rf_r1-AAA: {path}" in out.stdout and f"tune run {path}" in out.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    new = load_config(path)
    assert new.data.symbols == ["AAA"] and new.study.name == "rf_r1"
    for name, p in new.space.items():  # narrowed inside the parent's range
        assert load_config(config).space[name].low <= p.low < p.high <= load_config(config).space[name].high

    top = refine.ranked(load_config(config), complete_trials(load_trials(db, "rf-AAA")))[:5]
    started = load_trials(db, "rf_r1-AAA")
    assert len(started) == 5
    copies = {t.user_attrs["copied_from"]: t for t in started if t.state.name == "COMPLETE"}
    for t in top:
        if (copy := copies.get(f"rf-AAA#{t.number}")) is not None:  # copied: its results, not run again
            assert copy.values == t.values and copy.user_attrs["sharpe"] == t.user_attrs["sharpe"]
    assert copies, "no top trial was copied"

    tune("run", str(path), env=env, check=True)  # the file round-trips through tune run
    trials = load_trials(db, "rf_r1-AAA")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 40
    keys = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(keys) == len(set(keys)), "a copied combination was backtested again"
    for t in complete:
        assert all(new.space[k].low <= v <= new.space[k].high for k, v in t.params.items())

    status = tune("status", env=env, check=True).stdout
    assert "rf_r1-AAA: refined from rf-AAA" in status
    rows = {s["study"]: s for s in json.loads(tune("status", "--json", env=env, check=True).stdout)["studies"]}
    assert rows["rf_r1-AAA"]["parent"] == "rf-AAA" and rows["rf-AAA"]["parent"] is None

    again = tune("refine", "rf_r1-AAA", env=env, check=True)  # a refinement of a refinement
    assert "rf_r1-AAA -> rf_r2-AAA" in again.stdout and (tmp_path / "rf_r2.toml").exists()


def test_refining_what_cannot_be_refined_says_why_and_writes_nothing(db, db_url, tmp_path):
    env = {"TUNE_STORAGE_URL": db_url}
    missing = tune("refine", "no-such", "-o", str(tmp_path / "x.toml"), env=env)
    assert missing.returncode == 2 and "no such study: no-such" in missing.stderr and "Traceback" not in missing.stderr
    config = small_config(tmp_path, name="rfe", target=5)
    tune("run", str(config), env=env, check=True)
    taken = tune("refine", "rfe-AAA", "-o", str(config), env=env)
    assert taken.returncode == 2 and "exists; give another -o" in taken.stderr
    bad = tune("refine", "rfe-AAA", "--top", "0", env=env)
    assert bad.returncode == 2 and "--top must be at least 1" in bad.stderr
    assert sorted(p.name for p in tmp_path.glob("*.toml")) == ["rfe.toml"]
    studies = json.loads(tune("status", "--json", env=env, check=True).stdout)["studies"]
    assert [s["study"] for s in studies] == ["rfe-AAA"]  # no study made


def test_a_config_changed_since_the_run_gets_its_top_trials_run_again_not_copied(db, db_url, tmp_path):
    config = small_config(tmp_path, name="rfc", target=30)
    env = {"TUNE_STORAGE_URL": db_url}
    tune("run", str(config), env=env, check=True)
    config.write_text(config.read_text().replace('name = "ma_crossover"', 'name = "ma_crossover"\nfees_bps = 300.0'))
    out = tune("refine", "rfc-AAA", "--top", "4", env=env, check=True)
    assert "does not give its value" in out.stderr
    assert "0 of the parent's top trials copied with their results, 4 enqueued" in out.stdout
    started = load_trials(db, "rfc_r1-AAA")
    assert [t.state.name for t in started] == ["WAITING"] * 4


def test_two_refinements_cannot_both_take_one_name(db, db_url, tmp_path):
    from runner import control

    config = small_config(tmp_path, name="rfr", target=5)
    tune("run", str(config), env={"TUNE_STORAGE_URL": db_url}, check=True)
    cfg = load_config(config)
    row_before = control.list_studies(db, ["rfr-AAA"])[0]
    with pytest.raises(control.StudyExists):  # a second registration of an existing study
        control.register_study(db, cfg, "AAA", reset_control=True, new_only=True)
    assert control.list_studies(db, ["rfr-AAA"])[0] == row_before  # and changed nothing
