"""The app's once-a-second refresh: does its cost grow with the trials already shown?

    python benchmarks/bench_refresh.py          # embedded PostgreSQL in a temp TUNE_HOME
    python benchmarks/bench_refresh.py --storage postgresql://postgres@127.0.0.1:5432/test

For each size N (100, then 10,000) it fills 10 studies with N finished trials
each (~10% pruned, ~3% failed, 12 metrics as user attributes), written straight
into the journal as Optuna's JournalStorage writes a trial created from a
template: one CREATE_TRIAL record per trial; no optimizer runs. Then:

  first poll   Monitor(db, names).poll() replaying the whole history: allowed
               to grow with N, printed once.
  refresh      --rounds times: each study gets ONE new trial the way
               runner/worker.py writes it (ask with fixed distributions, one
               batched set_trial_attrs, tell), then one refresh is timed:
               poll = Monitor.poll(); render = convergence_plot.render() of the
               first study (100x20, by trial number) plus studies_table.cells()
               of the 10 statuses. Median and p90 of refresh, medians of the parts.

Then each insight view's data (runner/explore.py, runner/outline.py) is computed
for the first study, as the app's poller does while the view is open: its raw cost,
and the refresh with that cost spread the way the feed spreads it (at most one
recomputation every max(1 s, VIEW_COST_FACTOR x its cost)).

The last tables divide the 10x10000 medians by the 10x100 ones: near 1 means a
refresh reads only what is new. The plot's input is every completed value (it
is downsampled to the pane's width inside render), so render does O(N) numpy
work; the ratio shows how much that is. Runs in a fresh database
bench_<random> on the URL's server, dropped at the end.
"""

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_overhead import quiet

from benchmarks._common import bench_database
from benchmarks._trials import CONFIG, SPACE, metrics, synthetic_trial
from runner import control, explore, outline
from runner.config import load_config
from runner.monitor import Monitor
from runner.storage import Database, PostgresJournalBackend
from runner.storage._optuna_private import JournalOperation
from tui.data import VIEW_COST_FACTOR
from tui.widgets import convergence_plot, studies_table

STUDIES, SIZES, CHUNK = 10, (100, 10_000), 5000
def trial_record(study_id: int, i: int, t0: datetime) -> dict:
    """What JournalStorage.create_new_trial(study_id, template_trial) appends for a finished trial."""
    fast, slow, value, state, attrs = synthetic_trial(i)
    value = value if state == TrialState.COMPLETE else None
    start = t0 + timedelta(seconds=0.5 * i)
    return {
        "op_code": JournalOperation.CREATE_TRIAL, "worker_id": "bench-populate", "study_id": study_id,
        "state": state.value, "value": value, "values": None,
        "datetime_start": start.isoformat(timespec="microseconds"),
        "datetime_complete": (start + timedelta(seconds=0.4)).isoformat(timespec="microseconds"),
        "distributions": {k: distribution_to_json(d) for k, d in SPACE.items()},
        "params": {"fast": fast, "slow": slow},
        "user_attrs": attrs if attrs is not None else metrics(value, i),
        "system_attrs": {}, "intermediate_values": {},
    }


def populate(db: Database, cfg, n: int) -> list:
    """10 studies of n finished trials; returns their loaded optuna.Study objects (RandomSampler)."""
    t0 = datetime.now(UTC) - timedelta(seconds=0.5 * n + 60)
    studies = []
    for symbol in cfg.data.symbols:
        name = cfg.study_name(symbol)
        control.register_study(db, cfg, symbol, reset_control=True)
        study_id = optuna.create_study(storage=db.optuna_storage(name), study_name=name, direction="maximize")._study_id
        backend = PostgresJournalBackend(db.url, name)
        records = [trial_record(study_id, i, t0) for i in range(n)]
        for k in range(0, n, CHUNK):
            backend.append_logs(records[k:k + CHUNK])
        backend.close()
        studies.append(optuna.load_study(study_name=name, storage=db.optuna_storage(name),
                                         sampler=optuna.samplers.RandomSampler(seed=len(studies))))
    states = [t.state.value for t in studies[-1].get_trials(deepcopy=False)]  # replays as written?
    assert states == [r["state"] for r in records], (len(states), n)
    return studies


def add_one_trial(study) -> None:
    """runner/worker.py's _one_trial: ask(fixed space), one batched user-attrs write, tell."""
    trial = study.ask(fixed_distributions=SPACE)
    value = -((trial.params["fast"] - 12) ** 2 + 0.1 * (trial.params["slow"] - 50) ** 2)
    study._storage.set_trial_attrs(trial._trial_id, metrics(value, trial.number))
    study.tell(trial, value)


def measure(url: str, cfg, n: int, rounds: int) -> dict:
    writer, reader = Database(url), Database(url)
    try:
        t = time.perf_counter()
        studies = populate(writer, cfg, n)
        fill = time.perf_counter() - t
        monitor = Monitor(reader, cfg.study_names())
        t = time.perf_counter()
        snap = monitor.poll()
        first = time.perf_counter() - t
        assert [v.status.attempts for v in snap.studies] == [n] * STUDIES
        poll, render = [], []
        for _ in range(rounds):
            for study in studies:
                add_one_trial(study)
            t, snap, t1 = time.perf_counter(), monitor.poll(), time.perf_counter()
            convergence_plot.render(snap.studies[0], width=100, height=20, by_time=False)
            for s in snap.statuses:
                studies_table.cells(s)
            poll.append(t1 - t)
            render.append(time.perf_counter() - t1)
        assert [v.status.attempts for v in snap.studies] == [n + rounds] * STUDIES
        prep = []  # render's O(N) part: every completed value to numpy, sorted, downsampled
        for _ in range(rounds):
            t, view = time.perf_counter(), snap.studies[0]
            x, y = np.asarray(view.numbers, dtype=float), np.asarray(view.values, dtype=float)
            order = np.argsort(x, kind="stable")
            x, y = x[order], y[order]
            convergence_plot.downsample(x, y, 90), convergence_plot.best_so_far(x, y, True, 90)
            prep.append(time.perf_counter() - t)
        # The insight views (tui/data.py StudyFeed.view): each computed for the first study
        # as the poller does after a poll, slices and heatmap from the outline the monitor
        # keeps as trials finish; the feed recomputes one at most every
        # max(1 s, VIEW_COST_FACTOR x cost).
        shown = snap.studies[0].status
        name, best = shown.study, shown.best_trial
        views = {
            "slices": lambda: monitor.slices(name, best),
            "heatmap": lambda: monitor.heatmap(name, "fast", "slow", outline.HEATMAP_BINS, None, best),
            "trial": lambda: explore.trial_detail(name, monitor.trial(name, best), ["value"], None),
            "symbols": lambda: explore.symbols(reader, snap.statuses, cfg.study.name,
                                               {v.status.study: monitor.space(v.status.study) for v in snap.studies}),
        }
        view_ms, opened_ms = {}, {}
        for kind, fn in views.items():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                times.append(1e3 * (time.perf_counter() - t))
            # The first: opening the view (slices and heatmap build the study's outline from
            # its trials then); the median: each recomputation while it stays open.
            view_ms[kind], opened_ms[kind] = statistics.median(times), times[0]
        refresh = sorted(1e3 * (p + r) for p, r in zip(poll, render))
        return dict(fill=fill, first=1e3 * first, refresh=statistics.median(refresh),
                    p90=refresh[int(0.9 * (len(refresh) - 1))],
                    poll=1e3 * statistics.median(poll), render=1e3 * statistics.median(render),
                    prep=1e3 * statistics.median(prep), views=view_ms, opened=opened_ms)
    finally:
        writer.dispose()
        reader.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    ap.add_argument("--rounds", type=int, default=30, help="timed refreshes per size")
    args = ap.parse_args()
    quiet()

    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as work, bench_database(args.storage) as bench:
        url, version = bench.url, bench.version
        Database.open(url).dispose()  # schema
        print(f"server {bench.server} (PostgreSQL {version}), database {bench.name}; optuna {optuna.__version__}")
        print(f"{STUDIES} studies; per size: first poll, then {args.rounds} rounds of (+1 trial per study, "
              "one timed refresh)\n")
        print(f"{'studies x trials':<18}{'fill s':>8}{'first poll ms':>15}{'refresh ms':>12}{'p90':>8}"
              f"{'poll ms':>9}{'render ms':>11}")
        res = {}
        for n in SIZES:
            path = Path(work) / f"r{n}.toml"
            path.write_text(CONFIG.format(name=f"r{n}", symbols=[f"S{i:02d}" for i in range(STUDIES)]))
            r = res[n] = measure(url, load_config(path), n, args.rounds)
            print(f"{f'{STUDIES}x{n}':<18}{r['fill']:8.1f}{r['first']:15.1f}{r['refresh']:12.2f}{r['p90']:8.2f}"
                  f"{r['poll']:9.2f}{r['render']:11.2f}")
        small, big = res[SIZES[0]], res[SIZES[1]]
        label = f"{STUDIES}x{SIZES[1]} / {STUDIES}x{SIZES[0]}"
        print("\nratios of medians (near 1: a refresh reads only what is new):")
        for key in ("refresh", "poll", "render", "first"):
            print(f"  {key + ' ' + label:<36}{big[key] / small[key]:7.2f}")
        print(f"\nrender: {big['render'] - small['render']:+.2f} ms from {SIZES[0]} to {SIZES[1]} trials per study;"
              f" its O(N) numpy pass (all values to arrays, argsort, downsample) takes {small['prep']:.2f} ms"
              f" and {big['prep']:.2f} ms;\n  the rest is plotext drawing at most 2 points per column"
              " (more points than 100 trials have, but bounded by the pane's width)")
        print("\nan insight view open on the first study (its data computed in the poller; ms, raw cost of one"
              " computation,\nand the refresh with the view's cost spread as the feed spreads it: at most every"
              f" max(1 s, {VIEW_COST_FACTOR} x cost), refreshing once a second):")
        print(f"  {'view':<10}{'open ' + str(SIZES[1]):>12}{'raw ' + str(SIZES[0]):>12}{'raw ' + str(SIZES[1]):>12}"
              f"{'refresh+view ' + str(SIZES[0]):>22}{'refresh+view ' + str(SIZES[1]):>22}{'ratio':>8}")
        for kind in small["views"]:
            spread = [r["refresh"] + r["views"][kind] * 1000.0 / max(1000.0, VIEW_COST_FACTOR * r["views"][kind])
                      for r in (small, big)]
            print(f"  {kind:<10}{big['opened'][kind]:12.2f}{small['views'][kind]:12.2f}{big['views'][kind]:12.2f}"
                  f"{spread[0]:22.2f}{spread[1]:22.2f}"
                  f"{spread[1] / spread[0]:8.2f}")
        if big["poll"] > 1.5 * small["poll"]:
            print(f"poll: GROWS with N (x{big['poll'] / small['poll']:.2f}): a refresh is not reading only what is new")


if __name__ == "__main__":
    main()
