"""Integration: real worker processes on a real PostgreSQL, driven through the ``tune`` CLI."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest
from optuna.trial import TrialState

from runner import control
from runner.monitor import category
from runner.states import EndCode
from runner.storage import Database, mask_url
from tests.helpers import (
    count,
    live_workers,
    small_config,
    start_run,
    status_json,
    trials_of,
    tune,
    user_config,
    wait_for,
)


def test_run_reaches_every_target_and_status_matches_optuna(db_url, tmp_path):
    config = small_config(tmp_path, name="r", target=15, symbols=("AAA", "BBB"))
    proc = tune("run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = status_json(str(config))
    assert set(status) == {"r-AAA", "r-BBB"}
    for name, s in status.items():
        trials = trials_of(db_url, name)
        assert s["complete"] == count(trials, TrialState.COMPLETE) >= 15
        kinds = [category(t) for t in trials]
        assert s["pruned"] == kinds.count("pruned")
        assert s["failed"] == kinds.count("failed")
        assert s["running"] == count(trials, TrialState.RUNNING) == 0
        assert s["state"] == "done" and s["workers_alive"] == 0
        best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
        assert s["best_value"] == pytest.approx(best.value)
        assert s["best_params"] == best.params
        assert "max_drawdown" in best.user_attrs and "trades" in best.user_attrs  # every metric stored


@pytest.mark.parametrize("on_failure", ["avoid", "ignore"])
def test_a_crashing_objective_fails_its_trial_not_the_worker(db_url, tmp_path, on_failure):
    config = user_config(tmp_path, "flaky", name=f"f{on_failure}", target=5)
    config.write_text(config.read_text().replace(
        "target_trials = 5", f'target_trials = 5\nmax_attempts = 80\non_failure = "{on_failure}"'))
    proc = tune("run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(db_url, f"f{on_failure}-AAA")
    failed = [t for t in trials if category(t) == "failed"]
    assert count(trials, TrialState.COMPLETE) == 5
    reasons = {t.user_attrs["fail_reason"] for t in failed}
    assert any(r.startswith("ValueError: boom at fast=") for r in reasons)
    assert any("sharpe is nan" in r for r in reasons)
    if on_failure == "avoid":  # what Optuna is told: infeasible, so TPE steers away
        assert all(t.state == TrialState.PRUNED and t.constraints == {"failed": 1e9} for t in failed)
    else:  # failed for Optuna too: invisible to every sampler
        assert all(t.state == TrialState.FAIL and not t.constraints for t in failed)


def test_password_is_never_on_a_worker_command_line(db, db_url, tmp_path):
    from sqlalchemy.engine import make_url

    config = user_config(tmp_path, "slow", name="p", target=4)
    # The test servers trust local connections: a password is accepted and ignored.
    with_password = make_url(db_url).set(password="s3cretMarker").render_as_string(hide_password=False)
    run = start_run(config, env={"TUNE_STORAGE_URL": with_password})
    try:
        pids = wait_for(lambda: [w["pid"] for w in live_workers(db, "p-AAA")], message="a live worker")
        cmdline = " ".join(psutil.Process(pids[0]).cmdline())
        assert "worker" in cmdline and "--symbol AAA" in cmdline
        assert "postgresql" not in cmdline and "s3cretMarker" not in cmdline
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
    assert "s3cretMarker" not in run.stdout.read()


def test_killed_worker_trial_fails_within_grace_and_the_other_finishes(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="k", target=16, workers=2)
    run = start_run(config)
    try:
        victim = wait_for(
            lambda: next((w for w in live_workers(db, "k-AAA")
                          if w["trial_id"] is not None and len(live_workers(db, "k-AAA")) == 2), None),
            message="two live workers, one in a trial",
        )
        os.kill(victim["pid"], signal.SIGKILL)
        # grace_seconds = 3 in the small config: the trial must be FAILED soon after.
        killed = wait_for(
            lambda: next((t for t in trials_of(db_url, "k-AAA")
                          if t._trial_id == victim["trial_id"] and t.state == TrialState.FAIL), None),
            timeout=3 + 2 * 0.5 + 10, message="the killed worker's trial to be failed",
        )
        assert "worker lost" in killed.user_attrs["fail_reason"]
        assert run.wait(120) == 0, run.stdout.read()
    finally:
        if run.poll() is None:
            run.kill()
    trials = trials_of(db_url, "k-AAA")
    assert count(trials, TrialState.COMPLETE) >= 16
    assert count(trials, TrialState.RUNNING) == 0
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # no duplicate or missing trial numbers


def test_ctrl_c_stops_workers_and_leaves_no_running_trial(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="c", target=200, workers=2)
    run = start_run(config)
    wait_for(lambda: any(w["trial_id"] is not None for w in live_workers(db, "c-AAA")), message="a running trial")
    pids = [w["pid"] for w in live_workers(db, "c-AAA")]
    run.send_signal(signal.SIGINT)
    assert run.wait(60) == 130
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    trials = trials_of(db_url, "c-AAA")
    assert count(trials, TrialState.RUNNING) == 0
    assert any(t.user_attrs.get("fail_reason", "").startswith("interrupted") for t in trials)


def test_pause_resume_and_stop_from_the_shell(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="ctl", target=500)
    run = start_run(config)
    try:
        wait_for(lambda: len(trials_of(db_url, "ctl-AAA")) >= 2, message="first trials")
        assert "ctl-AAA: paused" in tune("pause", "ctl-AAA", check=True).stdout
        wait_for(lambda: [w for w in live_workers(db, "ctl-AAA") if w["status"] == "paused"], message="worker paused")
        frozen = len(trials_of(db_url, "ctl-AAA"))
        # While paused, several heartbeats pass and no trial starts.
        beats = _heartbeats(db, "ctl-AAA")
        wait_for(lambda: _heartbeats(db, "ctl-AAA") > beats + 3, message="heartbeats while paused", interval=0.2)
        assert len(trials_of(db_url, "ctl-AAA")) == frozen
        assert status_json()["ctl-AAA"]["state"] == "paused"
        tune("resume", "ctl-AAA", check=True)
        wait_for(lambda: len(trials_of(db_url, "ctl-AAA")) > frozen, message="trials after resume")
        tune("stop", "--all", check=True)
        assert run.wait(60) == 1  # the run ended short of its target
    finally:
        if run.poll() is None:
            run.kill()
    assert count(trials_of(db_url, "ctl-AAA"), TrialState.RUNNING) == 0
    assert status_json()["ctl-AAA"]["state"] == "stopped"


def _heartbeats(db: Database, study: str) -> float:
    """Latest heartbeat of the study's workers, as a number that grows with each beat."""
    return max((w.heartbeat_at.timestamp() for w in control.list_workers(db, [study])), default=0.0)


def test_unknown_study_in_control_command_exits_2(db_url):
    proc = tune("pause", "nope-XYZ")
    assert proc.returncode == 2 and "no such study: nope-XYZ" in proc.stderr


def test_fresh_start_deletes_previous_trials(db_url, tmp_path):
    config = small_config(tmp_path, name="fr", target=5)
    tune("run", str(config), check=True)
    assert len(trials_of(db_url, "fr-AAA")) >= 5
    config.write_text(config.read_text().replace("target_trials = 5", "target_trials = 3\nresume = false"))
    tune("run", str(config), check=True)
    assert count(trials_of(db_url, "fr-AAA"), TrialState.COMPLETE) == 3


def test_bad_data_is_reported_with_symbol_and_row(db_url, tmp_path):
    csv = tmp_path / "AAA.csv"
    rows = ["Date,Open,High,Low,Close,Volume"]
    for i in range(300):
        close = "nan" if i == 41 else f"{100 + i * 0.1:.2f}"
        rows.append(f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00,100,101,99,{close},10")
    csv.write_text("\n".join(rows))
    config = small_config(tmp_path, name="bd")
    config.write_text(config.read_text().replace("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "{symbol}.csv"\n'))
    proc = tune("run", str(config))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "AAA" in line and "row 42" in line and "Traceback" not in line


@pytest.mark.skipif(bool(os.environ.get("TUNE_TEST_DATABASE_URL")), reason="restarts the embedded server only")
def test_completed_trials_survive_a_database_restart(db, db_url, tmp_path, tune_home):
    from runner.storage import embedded

    config = user_config(tmp_path, "slow", name="rs", target=12)
    run = start_run(config)
    try:
        wait_for(lambda: count(trials_of(db_url, "rs-AAA"), TrialState.COMPLETE) >= 3, message="3 complete trials")
        before = count(trials_of(db_url, "rs-AAA"), TrialState.COMPLETE)
        assert embedded.stop(tune_home)
        embedded.ensure_running(tune_home)  # (or a worker already did: they start it again too)
        assert run.wait(120) == 0, run.stdout.read()
    finally:
        if run.poll() is None:
            run.kill()
    trials = trials_of(db_url, "rs-AAA")
    assert count(trials, TrialState.COMPLETE) >= max(12, before)
    assert count(trials, TrialState.RUNNING) == 0


def test_export_writes_best_parameters_with_metadata_and_every_trial(db_url, tmp_path):
    import csv

    config = small_config(tmp_path, name="ex", target=8)
    tune("run", str(config), check=True)
    out = tmp_path / "best.json"
    trials_csv = tmp_path / "trials.csv"
    tune("export", "ex-AAA", "--json", "-o", str(out), "--csv", str(trials_csv), check=True)
    summary = json.loads(out.read_text())
    trials = trials_of(db_url, "ex-AAA")
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert summary["best_trial"] == best.number and summary["best_params"] == best.params
    assert summary["best_metrics"]["sharpe"] == pytest.approx(best.value)
    assert summary["trials"]["complete"] == count(trials, TrialState.COMPLETE)
    assert summary["sampler"]["type"] == "tpe" and summary["objective"] == [{"metric": "sharpe", "direction": "maximize"}]
    assert summary["storage"] == mask_url(db_url)
    rows = list(csv.DictReader(trials_csv.open()))
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    assert {"param_fast", "param_slow", "sharpe", "state"} <= set(rows[0])
    yaml_text = tune("export", "ex-AAA", check=True).stdout
    assert yaml_text.startswith("study: ex-AAA\n")


def test_a_study_whose_only_worker_died_gets_its_trial_failed_by_tune_status(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="solo", target=500)
    run = start_run(config)
    try:
        victim = wait_for(lambda: next((w for w in live_workers(db, "solo-AAA") if w["trial_id"] is not None), None),
                          message="the worker in a trial")
        os.kill(victim["pid"], signal.SIGKILL)
        # No worker is left to notice; once the grace period (3 s) has passed, a reader reaps.
        wait_for(lambda: status_json(str(config))["solo-AAA"]["running"] == 0, timeout=20, interval=0.5,
                 message="tune status to fail the dead worker's trial")
        assert run.wait(30) == 1  # the run ended short of its target
    finally:
        if run.poll() is None:
            run.kill()
    killed = next(t for t in trials_of(db_url, "solo-AAA") if t._trial_id == victim["trial_id"])
    assert killed.state == TrialState.FAIL and "worker lost" in killed.user_attrs["fail_reason"]


def test_text_postgresql_cannot_store_fails_nothing(db_url, tmp_path):
    """A backtest whose metric names or error messages hold NUL or a lone surrogate: its
    trials complete (or fail) as usual, with the odd characters shown as escapes."""
    config = user_config(tmp_path, "odd_names", name="odd", target=8)
    proc = tune("run", str(config), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(db_url, "odd-AAA")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 8
    assert "a\\x00b" in complete[0].user_attrs and "col\\udc80" in complete[0].user_attrs
    failed = [t for t in trials if "fail_reason" in t.user_attrs]
    assert all("\\x00" in t.user_attrs["fail_reason"] for t in failed)
    assert tune("status", timeout=60).returncode == 0


def test_resuming_a_study_with_an_incompatible_config_is_refused_before_any_worker(db_url, tmp_path):
    config = small_config(tmp_path, name="chg", target=5)
    assert tune("run", str(config), timeout=180).returncode == 0
    text = config.read_text()
    # a parameter's kind changed: Optuna would refuse every new trial
    config.write_text(text.replace('[space.slow]\ntype = "int"\nlow = 25\nhigh = 80',
                                   '[space.slow]\ntype = "categorical"\nchoices = [30, 60]'))
    proc = tune("run", str(config), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "space.slow" in proc.stderr and "resume = false" in proc.stderr
    # another objective: the old trials' values would be read as the new metric's
    config.write_text(text.replace('[study]\n', '[study]\nmetric = "sortino"\n'))
    proc = tune("run", str(config), timeout=120)
    assert proc.returncode == 2 and "study.metric" in proc.stderr
    # a wider range is the same question: it runs
    config.write_text(text.replace("high = 80", "high = 90").replace("target_trials = 5", "target_trials = 8"))
    assert tune("run", str(config), timeout=180).returncode == 0
    # and resume = false starts the study fresh with the new space
    config.write_text(text.replace('[space.slow]\ntype = "int"\nlow = 25\nhigh = 80',
                                   '[space.slow]\ntype = "categorical"\nchoices = [30, 60]')
                      .replace('[study]\n', '[study]\nresume = false\n'))
    assert tune("run", str(config), timeout=180).returncode == 0


def test_only_the_first_to_end_a_study_hears_it_was_first(db, tmp_path):
    from runner.config import load_config

    cfg = load_config(small_config(tmp_path))
    control.register_study(db, cfg, "AAA", reset_control=True)
    assert control.set_ended(db, "t-AAA", EndCode.TARGET_REACHED, "target reached")
    assert not control.set_ended(db, "t-AAA", EndCode.TARGET_REACHED, "target reached")
    control.register_study(db, cfg, "AAA", reset_control=True)  # run again: it may end again
    assert control.set_ended(db, "t-AAA", EndCode.ATTEMPT_CAP, "cap")
    assert not control.set_ended(db, "no-such-study", EndCode.ATTEMPT_CAP, "cap")
