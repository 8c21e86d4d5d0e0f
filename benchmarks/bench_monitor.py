"""The monitor at scale (issue 14): memory, first screen, tune status, idle CPU, refresh.

    python benchmarks/bench_monitor.py                      # 10x100, 10x10000, 50x20000; embedded PostgreSQL
    python benchmarks/bench_monitor.py --sizes 10x100,10x10000 --storage postgresql://postgres@127.0.0.1:5432/test

For each size S x N it writes S studies of N finished trials straight into the
journal, each trial as a worker writes it: CREATE_TRIAL, two parameters, its
worker mark, 12 metrics (or a prune or fail reason), its state and value — 17
records a trial (~10 % pruned, ~3 % failed). No optimizer runs. Then, each in a
process of its own, as a user runs them:

  tune status   `tune status --storage URL`, wall time: cold (no stored summary:
                the whole journal is read, and the summaries stored), then warm
  app           the app (`TuneApp`, attached to every study, headless through
                Textual's run_test at 160x48): seconds from the process's start
                to the first complete screen (every study shown, history read),
                its RSS then, and its CPU % over --idle seconds of no new trials (the
                synthetic run ended ten minutes before: no rate or ETA moves either);
                cold (no summary) and warm
  refresh       in this process: a Monitor, then --rounds times one new trial per
                study and one timed poll (median); the ratio against 10x100
  worker join   `tune worker` on an empty study, then on a study of the largest size
                twice: first with no replay checkpoint (the synthetic history has none:
                it reads every record, and leaves one), then from that checkpoint, as
                every worker joining a study that workers ran does (they write one every
                1,000 trials); seconds from its start to its first trial told, its RSS
                then and its peak (sampled every 50 ms)

Goals (issue 14): app RSS <= 150 MB at 10x10k and <= 250 MB at 50x20k; first
screen <= 2 s at 10x10k; tune status <= 1 s at 10x10k; idle CPU <= 1 %; refresh
<= 1.5x between 10x100 and 10x10k. Everything runs in a fresh database
bench_<random> on the URL's server, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from benchmarks._trials import CONFIG, SPACE, metrics, synthetic_trial

RECORDS_PER_TRIAL = 17


def trial_records(i: int, t0: datetime) -> list[dict]:
    """Trial i's records as a worker writes them (Optuna's journal operations)."""
    w = "bench-worker"
    fast, slow, value, state, reason = synthetic_trial(i)
    start = t0 + timedelta(seconds=0.5 * i)
    out = [{"op_code": 4, "worker_id": w, "study_id": 0, "datetime_start": start.isoformat()}]
    for name, v in (("fast", fast), ("slow", slow)):
        out.append({"op_code": 5, "worker_id": w, "trial_id": i, "param_name": name,
                    "param_value_internal": float(v), "distribution": distribution_to_json(SPACE[name])})
    out.append({"op_code": 9, "worker_id": w, "trial_id": i, "system_attr": {"tune:worker": "bench-1"}})
    # A failed backtest is told to Optuna as a pruned trial with its reason (on_failure = "avoid").
    values, attrs = ([value], metrics(value, i)) if state == TrialState.COMPLETE else (None, reason)
    state = TrialState.COMPLETE if state == TrialState.COMPLETE else TrialState.PRUNED
    out += [{"op_code": 8, "worker_id": w, "trial_id": i, "user_attr": {k: v}} for k, v in attrs.items()]
    out += [{"op_code": 8, "worker_id": w, "trial_id": i, "user_attr": {f"pad{k}": 0}}
            for k in range(RECORDS_PER_TRIAL - 5 - len(attrs))]
    out.append({"op_code": 6, "worker_id": w, "trial_id": i, "state": state.value, "values": values,
                "datetime_complete": (start + timedelta(seconds=0.4)).isoformat()})
    return out


def append_trials(conn, stream: str, first: int, count: int, t0: datetime) -> None:
    """Write trials first..first+count-1 into the stream's journal and move its head."""
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        cur.execute("SELECT next_seq FROM tune_streams WHERE stream = %s FOR UPDATE", (stream,))
        seq = cur.fetchone()[0]
        for lo in range(first, first + count, 2000):
            rows = []
            for i in range(lo, min(lo + 2000, first + count)):
                for r in trial_records(i, t0):
                    rows.append((stream, seq, json.dumps(r)))
                    seq += 1
            execute_values(cur, "INSERT INTO tune_journal (stream, seq, body) VALUES %s", rows, page_size=10_000)
        cur.execute("UPDATE tune_streams SET next_seq = %s WHERE stream = %s", (seq, stream))
    conn.commit()


def populate(url: str, cfg, n: int) -> list[str]:
    import optuna
    import psycopg2

    from runner import control
    from runner.storage import Database

    db = Database(url)
    names = []
    t0 = datetime.now() - timedelta(seconds=0.5 * n + 600)  # the run ended ten minutes ago: no rate moves
    try:
        for symbol in cfg.data.symbols:
            name = cfg.study_name(symbol)
            control.register_study(db, cfg, symbol, reset_control=True)
            optuna.create_study(storage=db.optuna_storage(name), study_name=name, direction="maximize")
            names.append(name)
    finally:
        db.dispose()
    conn = psycopg2.connect(url)
    try:
        for name in names:
            append_trials(conn, name, 0, n, t0)
    finally:
        conn.close()
    return names


def tune_status(url: str) -> float:
    t = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("tune")), "status", "--storage", url], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def probe_app(url: str, studies: int, idle: float) -> dict:
    """The app in a process of its own (see --probe)."""
    out = subprocess.run([sys.executable, __file__, "--probe", url, "--studies", str(studies), "--idle", str(idle),
                          "--started", repr(time.time())], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(url: str, studies: int, idle: float, started: float) -> None:
    import psutil

    from runner.storage import connection, quiet_optuna
    from tui.app import TuneApp

    quiet_optuna()
    connection.configure(io_timeout=10.0, patience=5.0)  # as tune-tui
    app = TuneApp(url, None, [])

    async def run() -> dict:
        async with app.run_test(size=(160, 48)) as pilot:
            while not (app.snapshot is not None and not app.snapshot.catching_up
                       and len(app.snapshot.studies) == studies):
                await pilot.pause(0.02)
            await pilot.pause()  # painted
            first = time.time() - started
            me = psutil.Process()
            rss = me.memory_info().rss / 2**20
            cpu, t = me.cpu_times(), time.perf_counter()
            await asyncio.sleep(idle)
            cpu2 = me.cpu_times()
            busy = (cpu2.user + cpu2.system - cpu.user - cpu.system) / (time.perf_counter() - t)
            return {"first": first, "rss": rss, "idle_cpu": 100 * busy, "rss_after": me.memory_info().rss / 2**20}

    print(json.dumps(asyncio.run(run())))
    os._exit(0)  # the app's threads (poller) need not wind down


def worker_join(url: str, config: Path, symbol: str, study: str, timeout: float = 600.0) -> dict:
    """Start `tune worker` on ``study`` and time it from its start to its first trial told,
    sampling its RSS every 50 ms (peak, and at that first trial); then stop it."""
    import psutil
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True

    def head() -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(seq), -1) FROM tune_journal WHERE stream = %s", (study,))
            return cur.fetchone()[0]

    def told_since(seq: int) -> bool:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM tune_journal WHERE stream = %s AND seq > %s AND body->>'op_code' = '6' "
                        "AND body->>'worker_id' <> 'bench-worker' LIMIT 1", (study, seq))
            return cur.fetchone() is not None

    before = head()
    start = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tune")), "worker", str(config), "--symbol", symbol,
                             "--storage", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps, peak = psutil.Process(proc.pid), 0.0
    try:
        while True:
            rss = ps.memory_info().rss / 2**20
            peak = max(peak, rss)
            if told_since(before):
                return {"first": time.perf_counter() - start, "rss": rss, "peak": peak}
            if proc.poll() is not None or time.perf_counter() - start > timeout:
                raise RuntimeError(f"the worker on {study} told no trial (exit {proc.returncode})")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(60)
        conn.close()


def refresh(url: str, names: list[str], n: int, rounds: int) -> float:
    import psycopg2

    from runner.monitor import Monitor
    from runner.storage import Database

    db, conn = Database(url), psycopg2.connect(url)
    try:
        monitor = Monitor(db, names)
        monitor.poll()
        times = []
        t0 = datetime.now()
        for r in range(rounds):
            for name in names:
                append_trials(conn, name, n + r, 1, t0)
            t = time.perf_counter()
            monitor.poll()
            times.append(1e3 * (time.perf_counter() - t))
        return statistics.median(times)
    finally:
        conn.close()
        db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--sizes", default="10x100,10x10000,50x20000")
    ap.add_argument("--rounds", type=int, default=20, help="timed refreshes per size")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds the app's idle CPU is measured")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    ap.add_argument("--studies", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.probe, args.studies, args.idle, args.started)

    import tempfile

    import sqlalchemy as sa

    from benchmarks._common import bench_database
    from runner.config import load_config
    from runner.storage import Database, quiet_optuna

    quiet_optuna()
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as work, bench_database(args.storage) as bench:
        url = bench.url
        Database.open(url).dispose()  # schema
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}")
        print(f"{'size':<10}{'fill s':>7}{'status cold':>12}{'warm':>7}{'app cold s':>11}{'RSS MB':>8}"
              f"{'app warm s':>11}{'RSS MB':>8}{'idle CPU %':>11}{'refresh ms':>11}")
        results = {}
        for s, n in sizes:
            path = Path(work) / f"m{n}x{s}.toml"
            path.write_text(CONFIG.format(name=f"m{s}x{n}", symbols=[f"S{i:02d}" for i in range(s)]))
            t = time.perf_counter()
            names = populate(url, load_config(path), n)
            fill = time.perf_counter() - t
            db = Database(url)

            def forget(db: Database) -> None:
                with db.engine.begin() as c:
                    c.execute(sa.text("DELETE FROM tune_summaries"))

            forget(db)
            cold_status, warm_status = tune_status(url), tune_status(url)
            forget(db)
            cold = probe_app(url, s, 1.0)
            warm = probe_app(url, s, args.idle)
            ms = refresh(url, names, n, args.rounds)
            with db.engine.begin() as c:  # the next size watches its own studies only
                c.execute(sa.text("UPDATE tune_studies SET archived_at = now()"))
            db.dispose()
            results[(s, n)] = r = dict(fill=fill, cold_status=cold_status, warm_status=warm_status, cold=cold,
                                       warm=warm, refresh=ms)
            print(f"{f'{s}x{n}':<10}{fill:7.1f}{cold_status:12.2f}{warm_status:7.2f}{cold['first']:11.2f}"
                  f"{cold['rss']:8.0f}{warm['first']:11.2f}{warm['rss']:8.0f}{warm['idle_cpu']:11.2f}"
                  f"{r['refresh']:11.2f}", flush=True)
        # A worker joining the largest study, against one joining an empty study of the same config.
        s, n = max(results, key=lambda k: k[1])
        path = Path(work) / f"m{n}x{s}.toml"
        cfg = load_config(path)
        empty = Path(work) / "empty.toml"
        empty.write_text(CONFIG.format(name="empty", symbols=["S00"]))
        joins = {"empty": worker_join(url, empty, "S00", load_config(empty).study_name("S00")),
                 f"{n:,}, no checkpoint": worker_join(url, path, "S00", cfg.study_name("S00"))}
        db = Database(url)
        with db.engine.connect() as c:
            stored = c.execute(sa.text("SELECT trials, length(body) FROM tune_checkpoints WHERE stream = :s"),
                               {"s": cfg.study_name("S00")}).first()
        db.dispose()
        if stored is None:
            raise RuntimeError("the first worker to join left no checkpoint")
        joins[f"{n:,}, checkpoint"] = worker_join(url, path, "S00", cfg.study_name("S00"))
        print(f"\n{'worker joining':<24}{'to 1st trial s':>15}{'RSS MB then':>12}{'peak MB':>9}")
        for label, j in joins.items():
            print(f"{label:<24}{j['first']:15.2f}{j['rss']:12.0f}{j['peak']:9.0f}")
        print(f"the checkpoint: {stored[0]:,} trials, {stored[1] / 2**20:.2f} MB (compressed JSON)")
        small, big = results.get((10, 100)), results.get((10, 10000))
        if small and big:
            print(f"\nrefresh 10x10000 / 10x100: {big['refresh'] / small['refresh']:.2f}x (goal <= 1.5)")
        goals = [((10, 10000), "app RSS", lambda r: r["warm"]["rss"], 150),
                 ((50, 20000), "app RSS", lambda r: r["warm"]["rss"], 250),
                 ((10, 10000), "first screen s (warm)", lambda r: r["warm"]["first"], 2),
                 ((10, 10000), "tune status s (warm)", lambda r: r["warm_status"], 1)]
        for key, what, get, goal in goals:
            if key in results:
                value = get(results[key])
                print(f"{key[0]}x{key[1]} {what}: {value:.2f} (goal <= {goal}: {'met' if value <= goal else 'NOT met'})")
        worst = max(r["warm"]["idle_cpu"] for r in results.values())
        print(f"idle CPU, worst size: {worst:.2f} % (goal <= 1: {'met' if worst <= 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
