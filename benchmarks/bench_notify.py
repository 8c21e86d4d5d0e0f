"""[notify] costs a worker nothing: trials per second without it, with a live endpoint
taking every message, and with a dead one that accepts connections and never answers.

    python benchmarks/bench_notify.py                 # embedded PostgreSQL
    python benchmarks/bench_notify.py --storage postgresql://postgres@127.0.0.1:5432/test

Each run is `tune run` of one study, 2 workers, 300 complete trials of a ~10 ms
backtest. With notify: progress every 10 trials and every new best told at once
(best_every_seconds = 0): about 40 messages a run. The dead endpoint has a 2 s
timeout and 3 retries per message: sending one takes ~17 s, the whole run's far
longer than the run itself. Throughput is complete trials over the span from
the first trial's start to the last one's end (process start-up excluded); the
run's wall time includes the workers' exit, where a dead endpoint may cost up to
about one timeout. Rounds alternate the three modes; medians are printed, with the ratio to
the run without notify measured in the same round.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks._common import bench_database  # noqa: E402
from runner.storage import Database  # noqa: E402
from tests.helpers import Hook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

BACKTEST = '''
import time

def busy(params, data):
    """~10 ms of CPU, like a small vectorised backtest."""
    end = time.process_time() + 0.01
    while time.process_time() < end:
        pass
    return {"sharpe": -abs(params["x"] - 0.3) - abs(params["y"] - 0.6), "trades": 50}
'''

CONFIG = '''
[study]
name = "{name}"
target_trials = 300
workers_per_symbol = 2
resume = false

[data]
symbols = ["AAA"]

[data.synthetic]
bars = 500

[strategy]
name = "notifybt:busy"

[validation]
report_at_end = false
live_importances = false

[sampler]
type = "random"

[space.x]
type = "float"
low = 0
high = 1

[space.y]
type = "float"
low = 0
high = 1
'''

NOTIFY = '''
[notify]
progress_every = 10
best_every_seconds = 0
timeout_seconds = 2
retries = 3

[notify.webhook]
url = "{url}/hook"
'''


def run(work: Path, url: str, mode: str, endpoint: str | None, round_: int) -> dict:
    name = f"n{mode}{round_}"
    (work / "notifybt.py").write_text(BACKTEST)
    config = work / f"{name}.toml"
    config.write_text(CONFIG.format(name=name) + (NOTIFY.format(url=endpoint) if endpoint else ""))
    env = {**os.environ, "TUNE_STORAGE_URL": url}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config)], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: tune run exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    db = Database.open(url)
    try:
        study = f"{name}-AAA"
        trials = optuna.load_study(study_name=study, storage=db.optuna_storage(study)).trials
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        span = (max(t.datetime_complete for t in complete) - min(t.datetime_start for t in trials)).total_seconds()
        with db.engine.connect() as conn:
            sent, failed = conn.execute(sa.text(
                "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL AND error IS NULL), "
                "count(*) FILTER (WHERE error IS NOT NULL OR sent_at IS NULL) FROM tune_notifications "
                "WHERE study = :s"), {"s": study}).one()
    finally:
        db.dispose()
    return {"rate": len(complete) / span, "wall": wall, "sent": sent, "unsent": failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    live = Hook()  # the tests' endpoint: takes every POST, answers 200
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(256)  # accepts (the kernel does), never answers
    endpoints = {"off": None, "live": live.url, "dead": f"http://127.0.0.1:{dead.getsockname()[1]}"}
    results: dict[str, list[dict]] = {mode: [] for mode in endpoints}
    with bench_database(args.storage) as bench, tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}")
        print("2 workers, 300 complete trials of ~10 ms, per round: without notify, a live endpoint, a dead one\n")
        for round_ in range(args.rounds):
            for mode, endpoint in endpoints.items():
                results[mode].append(run(Path(tmp), bench.url, mode, endpoint, round_))
        base = statistics.median(r["rate"] for r in results["off"])
        print(f"{'notify':<8}{'trials/s':>10}{'ratio':>8}{'wall s':>9}{'told':>7}{'not told':>10}")
        for mode, runs in results.items():
            rate = statistics.median(r["rate"] for r in runs)
            ratios = [r["rate"] / o["rate"] for r, o in zip(runs, results["off"])]
            print(f"{mode:<8}{rate:>10.1f}{statistics.median(ratios):>8.2f}"
                  f"{statistics.median(r['wall'] for r in runs):>9.1f}"
                  f"{statistics.median(r['sent'] for r in runs):>7.0f}{statistics.median(r['unsent'] for r in runs):>10.0f}")
        print(f"\nratio: trials/s against the run without notify in the same round (median; 1.00 = no cost; "
              f"the baseline's median {base:.1f}/s)")
    live.close()
    dead.close()


if __name__ == "__main__":
    main()
