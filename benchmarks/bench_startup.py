"""How fast the common commands start: ``tune --help`` (goal <= 0.3 s) and ``tune status``
on the demo's database (goal <= 0.5 s).

    python benchmarks/bench_startup.py                 # the demo run into a fresh database first
    python benchmarks/bench_startup.py --repeats 9

The demo config (3 symbols x 500 trials) is run once with ``tune run`` into a fresh
database ``bench_<random>``; then each command runs --repeats times as a new process, as
a person types it, and the median wall time is printed, beside what importing the
modules it needs costs alone (a new ``python -c "import ..."`` each time) — the rest is
its own work (for ``tune status``: reading and replaying the studies' journals).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_database  # noqa: E402


def median_seconds(cmd: list[str], env: dict, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with bench_database(args.storage) as bench:
        env = {**os.environ, "TUNE_STORAGE_URL": bench.url}
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner.cli", "run"], env=env, stdout=subprocess.DEVNULL, check=True)
        print(f"the demo (3 x 500 trials) run in {time.perf_counter() - start:.0f} s\n")
        tune = [sys.executable, "-m", "runner.cli"]
        python = [sys.executable, "-c"]
        rows = [
            ("tune --help", [*tune, "--help"], "import runner.cli", 0.3),
            ("tune status", [*tune, "status"], "import runner.commands", 0.5),
            ("tune status --json", [*tune, "status", "--json"],
             "import runner.commands, runner.reports, runner.importances", None),
        ]
        print(f"{'command':22}{'median':>9}{'imports':>10}{'goal':>8}")
        for label, cmd, imports, goal in rows:
            total = median_seconds(cmd, env, args.repeats)
            imported = median_seconds([*python, imports], env, args.repeats)
            shown = f"{goal:.1f} s" if goal else ""
            print(f"{label:22}{total:8.3f}s{imported:9.3f}s{shown:>8}")
        bare = median_seconds([*python, "pass"], env, args.repeats)
        print(f"\n(python itself starts in {bare:.3f} s)")


if __name__ == "__main__":
    main()
