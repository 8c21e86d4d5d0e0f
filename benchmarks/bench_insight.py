"""What trusting a result costs: the holdout's share of the trial loop, and tune report at N trials.

    python benchmarks/bench_insight.py                      # 1,000 and 10,000 trials, 200,000 bars
    python benchmarks/bench_insight.py --loop-trials 500 --report-trials 1000 --bars 1000000

Data: --bars synthetic 15-minute bars, ``[validation] holdout = 0.3`` (the first 70 % in
sample), ma_crossover over the demo's space (fast, slow, ma_type), top_k = 10.

Part 1, the trial loop with and without the holdout (goal: at most 5 % slower). An
in-memory TPE study (seed 0) of --loop-trials trials, each a backtest of the in-sample
bars, run twice with the same seed, so both runs see the same trials:

  without   ask, backtest, tell
  with      the same, plus what runner/worker.py adds: when the trial's value enters the
            study's top-K, the holdout evaluation (a backtest over all the bars, measured
            on the holdout's) and the statement that records it, which the worker sends
            with the trial's tell (same round trip and transaction: no commit of its own)

The in-memory loop has no storage cost per trial, so its slowdown overstates a worker's
(whose trials also pay the database, ~25 ms a trial here): an upper bound.

Part 2, ``tune report``'s sections (runner/insight.py) at each of --report-trials trials:
a study of random-sampled trials with real backtest values, the report built from it as
``tune report`` does (holdout results missing, so evaluated for the top-K).

Everything runs in a fresh database bench_<random>, dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_database  # noqa: E402
from runner import insight, validation  # noqa: E402
from runner.config import load_config  # noqa: E402
from runner.space import distributions  # noqa: E402
from runner.storage import Database, quiet_optuna  # noqa: E402
from runner.study import Objective, TrialPruned  # noqa: E402

CONFIG = """\
[study]
name = "insight"
metric = "sharpe"
[data]
symbols = ["AAA"]
[data.synthetic]
bars = {bars}
freq = "15min"
seed = 7
[strategy]
name = "ma_crossover"
fees_bps = 1.0
slippage_bps = 1.0
[validation]
holdout = 0.3
top_k = 10
[space.fast]
type = "int"
low = 2
high = 400
[space.slow]
type = "int"
low = 20
high = 2000
step = 10
[space.ma_type]
type = "categorical"
choices = ["sma", "ema"]
"""


def value_of(objective: Objective, params: dict) -> tuple[float | None, dict]:
    try:
        evaluation = objective(params)
    except (TrialPruned, Exception):
        return None, {}
    return evaluation.value, evaluation.metrics


def trial_loop(objective: Objective, cfg, db: Database | None, trials: int) -> tuple[float, int]:
    """Seconds per trial of ask/backtest/tell (plus the holdout when ``db``), and the holdout count."""
    space = distributions(cfg)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    top = validation.TopValues(cfg.validation.top_k, "maximize")
    evaluated = 0
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(fixed_distributions=space)
        value, _ = value_of(objective, trial.params)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, value)
        if db is not None and top.enters(value):  # what Worker._validate does (its statement rides the tell)
            validation.record_statement("loop", trial.number, objective.holdout(trial.params))
            evaluated += 1
        top.add(value)
    return (time.perf_counter() - start) / trials, evaluated


def report_trials(objective: Objective, cfg, n: int) -> list[optuna.trial.FrozenTrial]:
    space = distributions(cfg)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(n):
        trial = study.ask(fixed_distributions=space)
        value, metrics = value_of(objective, trial.params)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        for k, v in metrics.items():
            trial.set_user_attr(k, v)
        study.tell(trial, value)
    return study.get_trials(deepcopy=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--loop-trials", type=int, default=1000)
    parser.add_argument("--report-trials", default="1000,10000", help="comma-separated study sizes")
    args = parser.parse_args()
    quiet_optuna()
    with bench_database(args.storage) as bench, tempfile.TemporaryDirectory() as folder:
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}; optuna {optuna.__version__}")
        path = Path(folder) / "insight.toml"
        path.write_text(CONFIG.format(bars=args.bars))
        cfg = load_config(path)
        db = Database(bench.url)
        db.ensure_schema()
        objective = Objective(cfg, "AAA")
        print(f"{args.bars} bars, {objective.bars} in sample, {args.bars - objective.bars} held out; top_k 10")
        print(f"\ntrial loop, {args.loop_trials} TPE trials (seed 0)")
        without, _ = trial_loop(objective, cfg, None, args.loop_trials)
        with_holdout, evaluated = trial_loop(objective, cfg, db, args.loop_trials)
        print(f"  without holdout   {without * 1000:8.2f} ms/trial")
        print(f"  with holdout      {with_holdout * 1000:8.2f} ms/trial   ({evaluated} holdout evaluations)")
        print(f"  slowdown          {(with_holdout / without - 1) * 100:+8.1f} %   (goal: <= 5 %)")

        for n in (int(x) for x in args.report_trials.split(",")):
            start = time.perf_counter()
            trials = report_trials(objective, cfg, n)
            made = time.perf_counter() - start
            # A study of its own per size: its holdout results start empty, as tune report finds them.
            cfg_n = cfg.model_copy(update={"study": cfg.study.model_copy(update={"name": f"insight{n}"})})
            start = time.perf_counter()
            report = insight.build(db, cfg_n, "AAA", trials, objective)
            total = time.perf_counter() - start
            parts = "  ".join(f"{k} {v:.3f}" for k, v in report["seconds"].items() if k != "data")
            print(f"\ntune report at {n} trials ({made:.0f} s to make them): {total:.2f} s in all")
            print(f"  {parts}")
        db.dispose()


if __name__ == "__main__":
    main()
