"""What the optimizer costs per trial: plain Optuna storages against ours, in one run.

    python benchmarks/bench_overhead.py          # embedded PostgreSQL in a temp TUNE_HOME
    python benchmarks/bench_overhead.py --storage postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_overhead.py --trials 500 --workers 2 --profile

Each line runs N trials (default 250) of the brief's baseline objective
(/work/shared/baselines/plain_optuna.py): TPE (seed 0) over four parameters, then
a busy loop burning --cost-ms (5 ms) of CPU. *Overhead* is wall time per trial
minus that cost, i.e. sampler plus storage.

  in-memory      plain study.optimize, no persistence: the floor
  RDBStorage     plain study.optimize on Optuna's RDBStorage (what most people use)
  ours/optimize  plain study.optimize on Database(url).optuna_storage(name)
  ours/ask-tell  ask(fixed_distributions), one batched set_trial_attrs of 12
                 metrics, tell, on a storage that reads before every read (as the
                 app and commands use it)
  ours/worker    the worker's trial (runner/worker.py): snapshot reads, the
                 study's new records and control state read by the last tell
                 (a refresh that reads only when that read fell short), the
                 target count from that replay, the parameters flushed with
                 the trial's claim in tune_workers (as with dedup = false; with dedup the claim is a
                 round trip of its own), the metrics queued with the tell, and the
                 result kept on local disk until told (runner/spool.py)

Ratios: "ours / RDBStorage" is the fraction of RDBStorage's per-trial overhead
we pay (0.3 = a third); "ours / in-memory" is how many times the bare sampler
cost a persistent, shared study costs. Round trips are psycopg2 exchanges with
the server (statements, plus BEGIN/COMMIT of non-autocommit transactions).
--workers K also runs K processes on one study (N/K trials each) and compares
their aggregate trials/s with the one-process ask-tell line. Everything runs in
a fresh database bench_<random> on the URL's server, dropped at the end.
"""

import argparse
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path

import optuna
import psycopg2
import psycopg2.extensions as pgx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optuna.trial import TrialState

from benchmarks._common import SPACE, bench_database
from runner import control, spool
from runner.config import load_config
from runner.storage import Database
from runner.worker import StudyTally

# ------------------------------------------------------------- round-trip counting
ROUND_TRIPS = [0]


class _CountingCursor(pgx.cursor):
    def execute(self, query, vars=None):
        conn = self.connection  # a statement outside a transaction first sends BEGIN
        ROUND_TRIPS[0] += 1 + (not conn.autocommit and conn.status == pgx.STATUS_READY)
        return super().execute(query, vars)


class _CountingConnection(pgx.connection):
    def commit(self):
        ROUND_TRIPS[0] += self.status != pgx.STATUS_READY
        return super().commit()

    def rollback(self):
        ROUND_TRIPS[0] += self.status != pgx.STATUS_READY
        return super().rollback()


def count_round_trips() -> None:
    """Make every psycopg2 connection of this process (ours and SQLAlchemy's) count."""
    plain = psycopg2.connect

    def connect(*args, **kwargs):
        kwargs.setdefault("connection_factory", _CountingConnection)
        kwargs.setdefault("cursor_factory", _CountingCursor)
        return plain(*args, **kwargs)

    psycopg2.connect = connect


# ------------------------------------------------------------------- the objective
def burn(params: dict, cost_ms: float) -> tuple[float, dict]:
    """The baseline's objective: CPU for cost_ms, a value, and 12 metrics."""
    end = time.process_time() + cost_ms / 1000.0
    while time.process_time() < end:
        pass
    f, s, ema, stop = params["fast"], params["slow"], params["ma"] == "ema", params["stop"]
    value = -((f - 12) ** 2 + 0.1 * (s - 80) ** 2 + ema + (stop - 0.03) ** 2)
    metrics = {f"m{i:02d}": value * (i + 1) / 7.0 + stop for i in range(11)}
    metrics["trades"] = int(1000 / s) + f
    return value, metrics


def optimize_objective(cost_ms: float):
    def objective(trial: optuna.Trial) -> float:
        params = dict(fast=trial.suggest_int("fast", 2, 50), slow=trial.suggest_int("slow", 20, 200),
                      ma=trial.suggest_categorical("ma", ["sma", "ema"]),
                      stop=trial.suggest_float("stop", 0.005, 0.1, log=True))
        return burn(params, cost_ms)[0]

    return objective


# When each trial of the running line ended (perf_counter): the per-window overhead curve.
ENDS: list[float] = []


def ask_tell_loop(study, storage, n: int, cost_ms: float, registration=None) -> None:
    """runner/worker.py's _one_trial, without its error handling; with registration, its _loop too."""
    storage.snapshot_reads = registration is not None  # the worker reads once per trial
    tally = StudyTally()
    for _ in range(n):
        ENDS.append(time.perf_counter())
        if registration is not None:
            storage.refresh(after_write=True)  # the loop's pause/stop check: read by the last tell
            tally.count(storage.get_all_trials(study._study_id, deepcopy=False))  # the loop's target check
        trial = study.ask(fixed_distributions=SPACE)
        # The worker publishes the parameters at once (constant liar), with its claim on the trial.
        storage.flush(before=None if registration is None else registration.trial_claim(trial._trial_id))
        value, metrics = burn(trial.params, cost_ms)
        kept = None
        if registration is not None:  # the worker keeps the result on disk until told (runner/spool.py)
            kept = spool.keep_result("bench", study.study_name, registration.id, trial, TrialState.COMPLETE, [value],
                                     metrics, {}, None)
            storage.queue_trial_attrs(trial._trial_id, metrics)  # written with the tell
        else:
            storage.set_trial_attrs(trial._trial_id, metrics)
        study.tell(trial, value)
        spool.done(kept)
    ENDS.append(time.perf_counter())


def new_study(storage, name: str, seed: int = 0) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed)
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler)


# ------------------------------------------------------------------ K processes
def _child(url, name, n, cost_ms, seed, barrier, results) -> None:
    quiet()
    count_round_trips()
    db = Database(url)
    storage = db.optuna_storage(name)
    study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed))
    barrier.wait()
    start, trips = time.monotonic(), ROUND_TRIPS[0]  # CLOCK_MONOTONIC: comparable across processes
    ask_tell_loop(study, storage, n, cost_ms)
    results.put((start, time.monotonic(), ROUND_TRIPS[0] - trips))
    db.dispose()


def run_workers(db: Database, k: int, n: int, cost_ms: float) -> tuple[float, float]:
    """Aggregate (trials/s, round trips per trial) of k processes sharing one study."""
    name = f"ours-workers-{k}"
    new_study(db.optuna_storage(name), name)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    shares = [n // k + (i < n % k) for i in range(k)]
    procs = [ctx.Process(target=_child, args=(db.url, name, shares[i], cost_ms, i, barrier, results)) for i in range(k)]
    for p in procs:
        p.start()
    spans = [results.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
    return n / elapsed, sum(s[2] for s in spans) / n


# ------------------------------------------------------------------------ curve
WINDOWS = [(1, 250), (751, 1000), (2751, 3000)]  # trial numbers, 1-based; those that fit in N print


def print_curve(curves: dict[str, list[float]], n: int) -> None:
    """Overhead per trial (ms, mean) by trials already in the study: does it grow, and whose."""
    windows = [w for w in WINDOWS if w[1] <= n]
    if len(windows) < 2:
        return
    print(f"\noverhead per trial by position in the study (ms, mean of the window); goal: ours/worker <= 1.5x in-memory "
          f"at {windows[1][0]}-{windows[1][1]}")
    print(f"{'storage':<16}" + "".join(f"{f'{a}-{b}':>14}" for a, b in windows)
          + "".join(f"{f'x mem {a}-{b}':>17}" for a, b in windows))
    mem = curves["in-memory"]

    def mean(xs: list[float], a: int, b: int) -> float:
        part = xs[a - 1:b]
        return sum(part) / len(part)

    for label, xs in curves.items():
        print(f"{label:<16}" + "".join(f"{mean(xs, a, b):14.2f}" for a, b in windows)
              + "".join(f"{mean(xs, a, b) / mean(mem, a, b):17.2f}" for a, b in windows))


# ------------------------------------------------------------------------- main
def quiet() -> None:
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def profile(study, storage, n: int, cost_ms: float, registration) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(ask_tell_loop, study, storage, n, cost_ms, registration)
    rows = [(k, v) for k, v in pstats.Stats(prof).stats.items() if k[2] not in ("burn", "<built-in method time.process_time>")]
    print(f"\nprofile of ours/worker, {n} trials, objective excluded (ms per trial):")
    for title, col in (("self time", 2), ("cumulative, with callees", 3)):
        print(f"  top by {title}:")
        for (path, line, func), v in sorted(rows, key=lambda kv: kv[1][col], reverse=True)[:10]:
            print(f"    {1e3 * v[col] / n:7.2f}  {v[1] / n:6.1f} calls/trial  {func}  {Path(path).name}:{line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--trials", type=int, default=250)
    ap.add_argument("--cost-ms", type=float, default=5.0, help="CPU time the objective burns per trial")
    ap.add_argument("--workers", type=int, default=1, help="also run K processes on one study")
    ap.add_argument("--profile", action="store_true", help="cProfile one more ours/worker run")
    args = ap.parse_args()
    quiet()
    count_round_trips()

    with bench_database(args.storage) as bench:
        measure(args, bench)


def measure(args, bench) -> None:
    url, version = bench.url, bench.version
    n, cost = args.trials, args.cost_ms
    print(f"server {bench.server} (PostgreSQL {version}), database {bench.name}; optuna {optuna.__version__}")
    print(f"{n} trials per line, objective {cost:g} ms CPU, TPE seed 0, 4 params\n")
    print(f"{'storage':<16}{'trials/s':>10}{'ms/trial':>10}{'overhead':>10}{'round trips/trial':>19}")
    db = rdb = None
    try:
        db = Database.open(url)
        rdb = optuna.storages.RDBStorage(
            make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
            engine_kwargs={"pool_pre_ping": True},
        )
        overhead: dict[str, float] = {}

        curves: dict[str, list[float]] = {}

        def line(label: str, run) -> None:
            trips, t0 = ROUND_TRIPS[0], time.perf_counter()
            ENDS.clear()
            run()
            seconds, trips = time.perf_counter() - t0, (ROUND_TRIPS[0] - trips) / n
            per = 1e3 * seconds / n
            overhead[label] = per - cost
            curves[label] = [1e3 * (b - a) - cost for a, b in zip(ENDS, ENDS[1:])]
            print(f"{label:<16}{n / seconds:10.1f}{per:10.2f}{per - cost:10.2f}{trips:19.1f}")

        def optimize(storage, name):
            study = new_study(storage, name)
            objective = optimize_objective(cost)
            ENDS.append(time.perf_counter())
            return lambda: study.optimize(objective, n_trials=n, callbacks=[lambda *_: ENDS.append(time.perf_counter())])

        def register(name: str) -> control.WorkerRegistration:
            """A registered worker, as runner/worker.py is: a study row, then its worker row."""
            demo = load_config(None)
            run, symbol = name.split("-", 1)
            cfg = demo.model_copy(update={"study": demo.study.model_copy(update={"name": run})})
            control.register_study(db, cfg, symbol, reset_control=False)
            return control.WorkerRegistration(db, name)

        def ask_tell(name, full=False):
            storage = db.optuna_storage(name)
            study = new_study(storage, name)
            reg = register(name) if full else None
            return lambda: ask_tell_loop(study, storage, n, cost, reg)

        new_study(None, "warm-up").optimize(optimize_objective(cost), n_trials=20)  # first-call imports
        line("in-memory", optimize(None, "memory"))
        line("RDBStorage", optimize(rdb, "rdb"))
        line("ours/optimize", optimize(db.optuna_storage("ours-optimize"), "ours-optimize"))
        line("ours/ask-tell", ask_tell("ours-ask-tell"))
        line("ours/worker", ask_tell("ours-worker", full=True))

        print("\nratios of overhead (lower is better for ours):")
        for ours in ("ours/optimize", "ours/ask-tell", "ours/worker"):
            print(f"  {ours:<14} / RDBStorage {overhead[ours] / overhead['RDBStorage']:5.2f}"
                  f"    / in-memory {overhead[ours] / overhead['in-memory']:5.2f}")
        print_curve(curves, n)

        if args.workers > 1:
            one = 1e3 / (overhead["ours/ask-tell"] + cost)  # trials/s of the one-process line
            rate, trips = run_workers(db, args.workers, n, cost)
            print(f"\n{args.workers} processes, one study, {n} trials in all (ours/ask-tell loop):")
            print(f"  {rate:.1f} trials/s aggregate vs {one:.1f} for one process: x{rate / one:.2f} "
                  f"({100 * rate / one / args.workers:.0f}% of linear); {trips:.1f} round trips/trial")

        if args.profile:
            storage = db.optuna_storage("ours-profile")
            study = new_study(storage, "ours-profile")
            profile(study, storage, n, cost, register("ours-profile"))
    finally:
        if db is not None:
            db.dispose()
        if rdb is not None:
            rdb.engine.dispose()


if __name__ == "__main__":
    main()
