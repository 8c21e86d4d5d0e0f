"""Duplicates cost nothing: K workers on a small discrete space never backtest a combination twice.

    python benchmarks/bench_duplicates.py                 # embedded PostgreSQL, 4 workers
    python benchmarks/bench_duplicates.py --storage postgresql://postgres@127.0.0.1:5432/test

A space of 60 combinations (a: 5 ints × b: 3 choices × c: 4 choices) and a
target of 100 completed trials — more than the space holds — run by `tune run`
with 4 worker processes on one study. The backtest appends a line to a file
each time it really runs, so the count of backtests does not rely on our own
bookkeeping. With deduplication the study must end by itself ("space
exhausted") after at most 60 backtests; the same run with `dedup = false` is
printed beside it for comparison (it stops at the attempt cap instead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import bench_database

BACKTEST = '''
import os, time

def counted(params, data):
    """Burns ~20 ms like a small backtest, and leaves a line per real evaluation."""
    end = time.process_time() + 0.02
    while time.process_time() < end:
        pass
    with open(os.environ["BENCH_EVALUATIONS"], "a") as f:
        f.write(f"{params['a']},{params['b']},{params['c']}\\n")
    return {"sharpe": params["a"] + len(params["b"]) - params["c"] / 10, "trades": 50}
'''

CONFIG = '''
[study]
name = "{name}"
target_trials = 100
max_attempts = 400
workers_per_symbol = {workers}
dedup = {dedup}
heartbeat_seconds = 0.5
grace_seconds = 3

[data]
symbols = ["AAA"]

[data.synthetic]
bars = 500

[strategy]
name = "dupbt:counted"

[sampler]
seed = 1
n_startup_trials = 10

[space.a]
type = "int"
low = 1
high = 5

[space.b]
type = "categorical"
choices = ["x", "yy", "zzz"]

[space.c]
type = "categorical"
choices = [1, 2, 3, 4]
'''


def run(work: Path, url: str, workers: int, dedup: bool) -> dict:
    name = f"dup{'on' if dedup else 'off'}"
    (work / "dupbt.py").write_text(BACKTEST)
    config = work / f"{name}.toml"
    config.write_text(CONFIG.format(name=name, workers=workers, dedup=str(dedup).lower()))
    log = work / f"{name}.evaluations"
    env = {**os.environ, "TUNE_STORAGE_URL": url, "BENCH_EVALUATIONS": str(log)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config)], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    seconds = time.perf_counter() - t0
    status = json.loads(subprocess.run([sys.executable, "-m", "runner.cli", "status", str(config), "--json"],
                                       env=env, capture_output=True, text=True, check=True,
                                       cwd=Path(__file__).resolve().parents[1]).stdout)["studies"][0]
    lines = log.read_text().splitlines() if log.exists() else []
    return {"exit": proc.returncode, "seconds": seconds, "backtests": len(lines), "distinct": len(set(lines)),
            "status": status}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    with bench_database(args.storage) as bench, tempfile.TemporaryDirectory(prefix="bench-dup-") as tmp:
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}")
        print(f"space of 60 combinations, target 100 completed trials, cap 400 attempts, {args.workers} workers\n")
        print(f"{'dedup':<7}{'backtests':>10}{'distinct':>10}{'wasted':>8}{'dup (mem/db)':>14}"
              f"{'trials':>8}{'state':>11}{'seconds':>9}")
        results = {}
        for dedup in (True, False):
            r = results[dedup] = run(Path(tmp), bench.url, args.workers, dedup)
            s = r["status"]
            src = s["duplicate_sources"]
            print(f"{'on' if dedup else 'off':<7}{r['backtests']:>10}{r['distinct']:>10}"
                  f"{r['backtests'] - r['distinct']:>8}{s['duplicate']:>6} ({src.get('memory', 0)}/{src.get('database', 0)})"
                  f"{s['attempts']:>8}{s['state']:>11}{r['seconds']:>9.1f}")
        on, off = results[True], results[False]
        print(f"\nwith dedup: {on['backtests']} backtests for 60 combinations "
              f"({'OK: at most 60' if on['backtests'] <= 60 else 'FAIL: more than 60'}), "
              f"ended by itself: {on['status']['state'] == 'exhausted'} ({on['status']['ended_reason']})")
        if off["backtests"]:
            print(f"without: {off['backtests']} backtests for {off['distinct']} distinct combinations: "
                  f"{off['backtests'] / max(on['backtests'], 1):.1f}x the work")


if __name__ == "__main__":
    main()
