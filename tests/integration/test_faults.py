"""The fault suite: real faults, real servers, nothing lost (``pytest -m fault``).

Each test runs real worker processes against a PostgreSQL server it starts
itself (a second embedded server in a TUNE_HOME of its own), then does to it
what happens on real machines: stops it for longer than any retry window,
freezes it, kills its postmaster with SIGKILL, points a client at a port that
accepts and never answers, fills the log disk. Every test checks the standard:
the number of backtests that finished (lines a user backtest appends to a
ledger file) equals the number of COMPLETE trials, and no trial is left RUNNING.

The machinery (Server, ledger_config, worker_env, start_worker, trials,
assert_nothing_lost…) is in tests/helpers.py: benchmarks/bench_faults.py uses it too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from optuna.trial import TrialState

from runner.storage import Database, embedded
from tests.helpers import (
    ROOT,
    Server,
    assert_nothing_lost,
    count,
    finished_backtests,
    fresh_database,
    ledger_config,
    running_worker,
    start_worker,
    trials,
    tune,
    until,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.fault


# ----------------------------------------------------------------- fixtures


@pytest.fixture
def server():
    s = Server()
    yield s
    s.remove()


# ------------------------------------------------------------------- tests


OUTAGE_SECONDS = 70  # longer than the 60 s after which workers used to give up


def test_a_worker_waits_out_a_long_outage_and_loses_nothing(server, tmp_path):
    config = ledger_config(tmp_path, "out", target=12)
    url = fresh_database(server.url)
    log = tmp_path / "worker.log"
    with running_worker(config, worker_env(tmp_path, url, sleep=1.5), log) as worker:
        # Stop the server while a backtest runs: its result must wait in the worker.
        def in_a_backtest():
            found = trials(url, "out-AAA")
            done = count(found, TrialState.COMPLETE)
            return done >= 3 and count(found, TrialState.RUNNING) == 1 and done == finished_backtests(tmp_path) and done
        recorded = wait_for(in_a_backtest, timeout=60, message="3 trials, then a backtest running")
        server.stop()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < OUTAGE_SECONDS:
            assert worker.poll() is None, f"the worker gave up during the outage:\n{log.read_text()}"
            time.sleep(1.0)
        during = finished_backtests(tmp_path)
        server.start()
        assert worker.wait(120) == 0, log.read_text()
    found = assert_nothing_lost(tmp_path, url, "out-AAA")
    assert count(found, TrialState.COMPLETE) == 12
    assert during == recorded + 1  # finished during the outage, held by the worker, recorded after
    assert "unreachable" in log.read_text()
    # and, once it was back, the study's log (the app's log pane) says the worker waited it out
    db = Database.open(url)
    try:
        with db.engine.connect() as conn:
            messages = [m for (m,) in conn.exec_driver_sql("SELECT message FROM tune_events WHERE study = 'out-AAA'")]
    finally:
        db.dispose()
    assert any("unreachable for" in m and "waited" in m for m in messages), messages


def test_a_worker_stopped_during_an_outage_leaves_its_result_on_disk_and_it_is_delivered(server, tmp_path):
    config = ledger_config(tmp_path, "sp", target=50)
    url = fresh_database(server.url)
    home = Path(tempfile.mkdtemp(prefix="tune-fault-home-"))
    env = worker_env(tmp_path, url, home=home, sleep=1.0)
    try:
        worker = start_worker(config, env, tmp_path / "worker.log")
        wait_for(lambda: count(trials(url, "sp-AAA"), TrialState.COMPLETE) >= 2, timeout=60, message="2 trials")
        backtests_before = finished_backtests(tmp_path)
        server.stop()
        # The running backtest finishes during the outage; then the worker is stopped.
        wait_for(lambda: finished_backtests(tmp_path) > backtests_before, timeout=10, message="the backtest to end")
        # Its result is on disk once the worker goes to tell it (and finds the database away).
        wait_for(lambda: list((home / "spool").glob("result-*.json")), timeout=10, message="the result kept on disk")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        spooled = sorted(p.name for p in (home / "spool").glob("*.json"))
        assert any(n.startswith("result-") for n in spooled) and any(n.startswith("exit-") for n in spooled)
        server.start()
        proc = tune("status", "--storage", url, env={"TUNE_HOME": str(home)}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert list((home / "spool").glob("*.json")) == []
        found = assert_nothing_lost(tmp_path, url, "sp-AAA")
        db = Database(url)
        try:
            from runner import control

            (row,) = control.list_workers(db, ["sp-AAA"])
            assert row.status == "exited" and row.exit_reason == "interrupted"
        finally:
            db.dispose()
        assert count(found, TrialState.COMPLETE) == finished_backtests(tmp_path)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_frozen_server_is_detected_by_commands_and_the_app(server, tmp_path):
    from tui.app import TuneApp

    url = fresh_database(server.url)
    config = ledger_config(tmp_path, "fz", target=3)
    assert tune("run", str(config), "--storage", url, env=worker_env(tmp_path, url), timeout=120).returncode == 0
    app = TuneApp(url, None)
    frozen: list[psutil.Process] = []

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None, "a first reading", timeout=20)
            frozen.extend(server.processes())
            for proc in frozen:
                proc.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            await until(pilot, lambda: "not answering" in str(app.query_one("#topbar").content),
                        "the app to notice the frozen server", timeout=10, interval=0.2)
            app.detected_after = time.monotonic() - started
            for proc in frozen:
                proc.send_signal(signal.SIGCONT)
            seen = app.snapshots_seen
            await until(pilot, lambda: app.snapshots_seen > seen and not app.db_stalled, "the app to recover",
                        timeout=40, interval=0.2)
            await pilot.press("q")
            await pilot.press("enter")

    try:
        asyncio.run(session())
    finally:
        for proc in frozen:
            try:
                proc.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
    assert app.detected_after < 10
    # A command against the frozen server: one line, exit 1, within its deadline.
    for proc in server.processes():
        proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = tune("status", "--storage", url, timeout=120)
        took = time.monotonic() - started
    finally:
        for proc in server.processes():
            proc.send_signal(signal.SIGCONT)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "not answering" in result.stderr and "Traceback" not in result.stderr
    assert took < 70


@pytest.mark.parametrize("command", [
    ["status"], ["pause", "--all"], ["export", "x-AAA"], ["run", "{config}"], ["worker", "{config}", "--symbol", "AAA"],
])
def test_a_server_that_never_answers_gives_one_line_and_exit_1(black_hole, tmp_path, command):
    config = ledger_config(tmp_path, "bh", target=3)
    url = f"postgresql://tune:secret@127.0.0.1:{black_hole}/tune"
    args = [a.replace("{config}", str(config)) for a in command]
    started = time.monotonic()
    proc = tune(*args, "--storage", url, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not answering" in lines[0] and "secret" not in proc.stderr + proc.stdout
    assert took < 60


def test_the_app_says_so_when_the_server_never_answers(black_hole):
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--storage", f"postgresql://tune@127.0.0.1:{black_hole}/tune"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "not answering" in proc.stderr


def test_a_killed_embedded_server_is_started_again_by_its_workers(tmp_path):
    home = Path(tempfile.mkdtemp(prefix="tune-fault-emb-"))
    try:
        url = embedded.ensure_running(home)
        config = ledger_config(tmp_path, "kp", target=30)
        env = worker_env(tmp_path, None, home=home)
        log = tmp_path / "worker.log"
        with running_worker(config, env, log) as worker:
            wait_for(lambda: count(trials(url, "kp-AAA"), TrialState.COMPLETE) >= 3, timeout=60, message="3 trials")
            pid = embedded._postmaster_info(embedded.data_dir(home))["pid"]
            os.kill(pid, signal.SIGKILL)
            started = time.monotonic()
            assert worker.wait(180) == 0, log.read_text()
        assert embedded._postmaster_info(embedded.data_dir(home))["pid"] != pid
        found = assert_nothing_lost(tmp_path, url, "kp-AAA")
        assert count(found, TrialState.COMPLETE) == 30
        assert "restarted the embedded PostgreSQL" in log.read_text()
        assert time.monotonic() - started < 180
    finally:
        embedded.remove(home)
        shutil.rmtree(home, ignore_errors=True)


def test_a_full_log_disk_never_ends_a_worker(db_url, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    config = ledger_config(tmp_path, "df", target=8)
    with open("/dev/full", "wb") as full:
        worker = start_worker(config, worker_env(tmp_path, db_url), full)
        assert worker.wait(120) == 0
    found = assert_nothing_lost(tmp_path, db_url, "df-AAA")
    assert count(found, TrialState.COMPLETE) == 8


def test_two_launchers_at_once_start_each_worker_once_with_distinct_seeds(db, db_url, tmp_path):
    """tune run and tune-tui started together must not both start the missing workers."""
    config = ledger_config(tmp_path, "two", target=40, workers=2)
    env = worker_env(tmp_path, db_url, sleep=0.1)
    runs = [
        subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(config)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    try:
        outputs = [r.communicate(timeout=240)[0] for r in runs]
    finally:
        for r in runs:
            if r.poll() is None:
                r.kill()
    from runner import control

    workers = control.list_workers(db, ["two-AAA"])
    started = [w for w in workers if w.pid]
    assert len(started) == 2, (outputs, workers)
    assert len({w.worker_index for w in workers}) == len(workers)
    found = assert_nothing_lost(tmp_path, db_url, "two-AAA")
    duplicates = sum("duplicate_source" in t.user_attrs for t in found)
    assert duplicates < 10, duplicates
