"""Reliability, measured: detection and recovery times, and results kept across a long outage.

    python benchmarks/bench_faults.py                  # outage of 180 s (about 6 minutes in all)
    python benchmarks/bench_faults.py --outage 30      # a quicker look

Uses the fault suite's machinery (tests/helpers.py, shared with tests/integration/test_faults.py): a second embedded
PostgreSQL started for the purpose, a user backtest that appends a line to a
ledger per finished backtest, real `tune worker` processes. Prints:

* frozen server (every server process SIGSTOPped): how long `tune status` takes
  to give up with its one line, and how long the app takes to say "not answering";
* after the freeze ends: how long until the app shows fresh figures again;
* an outage of --outage seconds (the server stopped) under a running worker:
  backtests finished during it (held by the worker), finished against COMPLETE
  trials, and the time from the server's return until every finished result is
  recorded;
* the embedded postmaster killed with SIGKILL: the time until the worker had
  started it again and recorded its next trial.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optuna.trial import TrialState

from runner.storage import StorageError, embedded
from tests.helpers import (
    Server,
    count,
    finished_backtests,
    fresh_database,
    ledger_config,
    running_worker,
    trials,
    tune,
    wait_for,
    worker_env,
)


def completed(url: str, study: str) -> int:
    """COMPLETE trials, or -1 while the server cannot be read (it is being restarted)."""
    try:
        return count(trials(url, study), TrialState.COMPLETE)
    except StorageError:
        return -1


def frozen(server: Server, work: Path) -> dict:
    from tui.app import TuneApp

    url = fresh_database(server.url)
    config = ledger_config(work, "fz", target=3)
    tune("run", str(config), "--storage", url, env=worker_env(work, url), timeout=120, check=True)
    out: dict = {}
    procs = server.processes()
    for p in procs:
        p.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    status = tune("status", "--storage", url, timeout=180)
    out["tune status gives up after (s)"] = round(time.monotonic() - started, 1)
    out["its message"] = status.stderr.strip()
    for p in procs:
        p.send_signal(signal.SIGCONT)
    app = TuneApp(url, None)

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            while app.snapshot is None:
                await pilot.pause(0.05)
            procs[:] = server.processes()  # the app's own backends too
            for p in procs:
                p.send_signal(signal.SIGSTOP)
            t0 = time.monotonic()
            while "not answering" not in str(app.query_one("#topbar").content):
                await pilot.pause(0.05)
            out["app says 'not answering' after (s)"] = round(time.monotonic() - t0, 1)
            for p in procs:
                p.send_signal(signal.SIGCONT)
            t1, seen = time.monotonic(), app.snapshots_seen
            while not (app.snapshots_seen > seen and not app.db_stalled):
                await pilot.pause(0.05)
            out["app shows fresh figures after the freeze ends (s)"] = round(time.monotonic() - t1, 1)
            app.exit()

    asyncio.run(session())
    return out


def outage(server: Server, work: Path, seconds: float) -> dict:
    url = fresh_database(server.url)
    config = ledger_config(work, "out", target=40)
    log = work / "outage-worker.log"
    with running_worker(config, worker_env(work, url, sleep=1.0), log) as worker:
        wait_for(lambda: count(trials(url, "out-AAA"), TrialState.RUNNING) == 1
                 and count(trials(url, "out-AAA"), TrialState.COMPLETE) >= 3, timeout=120, message="a running trial")
        before = finished_backtests(work)
        server.stop()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited during the outage:\n{log.read_text()}")
            time.sleep(1)
        finished = finished_backtests(work)
        server.start()
        t1 = time.monotonic()
        # Everything that finished, the results held through the outage included, is recorded.
        wait_for(lambda: completed(url, "out-AAA") >= finished, timeout=120, message="the held results recorded")
        back = time.monotonic() - t1
        worker.wait(300)
    found = trials(url, "out-AAA")
    return {
        f"outage of {seconds:.0f} s: the worker stayed up": worker.returncode == 0,
        "backtests finished during the outage, held by the worker": finished - before,
        "backtests finished / COMPLETE trials, at the end": f"{finished_backtests(work)} / {count(found, TrialState.COMPLETE)}",
        "RUNNING trials left": count(found, TrialState.RUNNING),
        "server back -> held results recorded (s)": round(back, 1),
    }


def killed_postmaster(work: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-fault-emb-"))
    try:
        url = embedded.ensure_running(home)
        config = ledger_config(work, "kp", target=40)
        with running_worker(config, worker_env(work, None, home=home, sleep=0.2), work / "kp.log") as worker:
            wait_for(lambda: count(trials(url, "kp-AAA"), TrialState.COMPLETE) >= 3, timeout=60, message="3 trials")
            before = count(trials(url, "kp-AAA"), TrialState.COMPLETE)
            os.kill(embedded._postmaster_info(embedded.data_dir(home))["pid"], signal.SIGKILL)
            t0 = time.monotonic()
            wait_for(lambda: completed(url, "kp-AAA") > before, timeout=120, message="the next recorded trial")
            back = time.monotonic() - t0
            worker.wait(300)
        found = trials(url, "kp-AAA")
        return {
            "embedded postmaster killed -> restarted by the worker, next trial recorded (s)": round(back, 1),
            "backtests finished / COMPLETE trials (postmaster killed)":
                f"{finished_backtests(work)} / {count(found, TrialState.COMPLETE)}",
        }
    finally:
        embedded.remove(home)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=180.0, help="seconds the server stays stopped")
    args = parser.parse_args()
    os.environ.setdefault("TUNE_HOME", tempfile.mkdtemp(prefix="bench-tune-home-"))
    server = Server()
    try:
        show(frozen(server, Path(tempfile.mkdtemp(prefix="bench-faults-a-"))))
        show(outage(server, Path(tempfile.mkdtemp(prefix="bench-faults-b-")), args.outage))
    finally:
        server.remove()
    show(killed_postmaster(Path(tempfile.mkdtemp(prefix="bench-faults-c-"))))


def show(results: dict) -> None:
    for key, value in results.items():
        print(f"{key:<80}  {value}", flush=True)


if __name__ == "__main__":
    main()
