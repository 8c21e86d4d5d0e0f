"""Memory and start-up per worker: K workers of one symbol, with and without the host's data cache.

    python benchmarks/bench_memory.py                       # 1 and 8 workers, 1,000,000 bars, embedded PostgreSQL
    python benchmarks/bench_memory.py --counts 1,4,16 --bars 200000 --format csv
    python benchmarks/bench_memory.py --storage postgresql://postgres@127.0.0.1:5432/test

A data file of --bars one-minute bars (synthetic, written as parquet or CSV) and a config
that optimizes ``ma_crossover`` on it. For each worker count K and each mode, as ``tune run``
does it: the data is checked once (``check_data``, "prepare"), then K ``tune worker``
processes start at once. Modes:

  no cache    TUNE_DATA_CACHE=0: each worker reads, parses and validates the file itself
              and keeps its own copy (what every version before the cache did)
  cold cache  the cache is empty: the check writes it, the workers map it
  warm cache  the cache was written by an earlier run (a restart, a second run)

Printed per line:

  prepare      seconds of the check before the workers start
  first trial  seconds from the workers' start to each worker's first trial (median, max)
  RSS / USS / PSS  per worker, MiB, once every worker has finished 3 trials (median):
               USS is what the worker alone holds; PSS charges shared pages to each
               sharer's share, so K x PSS is what the K workers cost the host
  host         K x PSS, MiB

Everything runs in a fresh database bench_<random>, dropped at the end, and a
temporary TUNE_HOME for the cache and the workers' logs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_database, stop_workers  # noqa: E402
from runner.storage import Database  # noqa: E402
from tests.helpers import start_worker  # noqa: E402

CONFIG = """\
[study]
name = "mem{k}{mode}"
metric = "sharpe"
target_trials = 100000
workers_per_symbol = {k}
[data]
symbols = ["AAA"]
path = "{data}"
[strategy]
name = "ma_crossover"
[sampler]
type = "tpe"
seed = 1
[space.fast]
type = "int"
low = 2
high = 60
[space.slow]
type = "int"
low = 20
high = 400
"""
MODES = ("no cache", "cold cache", "warm cache")
TRIALS_BEFORE_MEMORY = 3


def write_data(folder: Path, bars: int, fmt: str) -> Path:
    import backtest

    frame = backtest.synthetic_ohlcv("AAA", seed=3, bars=bars, freq="1min", start="2020-01-01")
    path = folder / f"AAA.{fmt}"
    if fmt == "csv":
        frame.to_csv(path)
    else:
        frame.to_parquet(path)
    return path


def workers(url: str, study: str) -> dict[int, tuple[int | None, int]]:
    """pid -> (trial being run or None, trials done), for the study's live workers."""
    with contextlib.closing(psycopg2.connect(url, application_name="bench-memory")) as conn, conn.cursor() as cur:
        cur.execute("SELECT pid, trial_id, trials_done FROM tune_workers WHERE study = %s", (study,))
        return {pid: (trial, done) for pid, trial, done in cur.fetchall()}


def measure(url: str, folder: Path, env: dict, k: int, mode: str, data: Path) -> dict:
    from runner.config import load_config
    from runner.study import check_data

    tag = mode.split()[0]
    config = folder / f"mem{k}{tag}.toml"
    config.write_text(CONFIG.format(k=k, mode=tag, data=data))
    cfg = load_config(config)
    study = cfg.study_name("AAA")
    cache = Path(env["TUNE_HOME"]) / "cache"
    if mode == "cold cache":
        shutil.rmtree(cache, ignore_errors=True)
    saved = dict(os.environ)
    os.environ.update(env)  # the check writes (or skips) the cache as tune run's would
    try:
        t0 = time.monotonic()
        check_data(cfg)
        prepared = time.monotonic() - t0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    started = time.monotonic()
    procs = [start_worker(config, env) for _ in range(k)]
    first: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 300
        while True:
            seen = workers(url, study)
            now = time.monotonic()
            for pid, (trial, done) in seen.items():
                if pid not in first and (trial is not None or done > 0):
                    first[pid] = now - started
            if len(seen) == k and all(done >= TRIALS_BEFORE_MEMORY for _, done in seen.values()):
                break
            if now > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{mode}, {k} workers: did not get going (exit codes {[p.poll() for p in procs]})")
            time.sleep(0.05)
        memory = [psutil.Process(p.pid).memory_full_info() for p in procs]
    finally:
        stop_workers(procs)
    mib = 1 << 20
    return {
        "prepare": prepared,
        "first": sorted(first.values()),
        "rss": statistics.median(m.rss for m in memory) / mib,
        "uss": statistics.median(m.uss for m in memory) / mib,
        "pss": statistics.median(m.pss for m in memory) / mib,
        "host": sum(m.pss for m in memory) / mib,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--counts", default="1,8", help="worker counts, comma-separated")
    ap.add_argument("--bars", type=int, default=1_000_000, help="one-minute bars in the data file")
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="the data file's format")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with bench_database(args.storage) as bench, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        home = folder / "home"
        home.mkdir(mode=0o700)
        data = write_data(folder, args.bars, args.format)
        Database.open(bench.url).dispose()  # our tables, before the first poll
        print(f"server {bench.server} (PostgreSQL {bench.version}); {os.cpu_count()} CPUs")
        print(f"data: {args.bars:,} bars, {args.format} ({data.stat().st_size / (1 << 20):.0f} MiB); "
              f"ma_crossover, TPE; memory once every worker has finished {TRIALS_BEFORE_MEMORY} trials\n")
        print(f"{'workers':>7}  {'mode':<11}{'prepare':>8}{'first trial':>18}"
              f"{'RSS':>8}{'USS':>8}{'PSS':>8}{'host':>9}   (MiB per worker; host: all K)")
        for k in counts:
            for mode in MODES:
                env = {**os.environ, "TUNE_STORAGE_URL": bench.url, "TUNE_HOME": str(home),
                       "TUNE_DATA_CACHE": "0" if mode == "no cache" else "1"}
                r = measure(bench.url, folder, env, k, mode, data)
                first = r["first"]
                print(f"{k:>7}  {mode:<11}{r['prepare']:7.2f}s{statistics.median(first):8.2f}s med"
                      f"{max(first):5.2f}s max{r['rss']:8.0f}{r['uss']:8.0f}{r['pss']:8.0f}{r['host']:9.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
