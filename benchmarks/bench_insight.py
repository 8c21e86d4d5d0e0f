"""What trusting a result costs: the holdout's share of the trial loop, and tune report at N trials.

    python benchmarks/bench_insight.py                      # 1,000 and 10,000 trials, 200,000 bars
    python benchmarks/bench_insight.py --loop-trials 500 --report-trials 1000 --bars 1000000

The bundled demo's config (symbol AAA: ma_crossover over fast, slow, ma_type; fees; at
least 10 trades; ``[validation] holdout = 0.3``, top_k 10) with --bars synthetic 15-minute
bars (the demo's own 200,000 by default).

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

Part 1 also runs the loop a third time with both the holdout and the importances a worker
recomputes as trials arrive (runner/importances.py: a thread beside the loop, when the
complete trials have grown by half, within 2 % of the worker's time), against the same
run without either.

Part 2, ``tune report``'s sections (runner/insight.py) at each of --report-trials trials:
a study of random-sampled trials with real backtest values, the report built from it as
``tune report`` does (holdout results missing, so evaluated for the top-K).

Everything runs in a fresh database bench_<random>, dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_database  # noqa: E402
from runner import importances, insight, validation  # noqa: E402
from runner.config import load_config  # noqa: E402
from runner.space import distributions  # noqa: E402
from runner.storage import Database, quiet_optuna  # noqa: E402
from runner.study import Objective  # noqa: E402


def run_trials(objective: Objective, cfg, sampler, n: int, holdout: bool = False,
               live: importances.LiveImportances | None = None) -> tuple[list[optuna.trial.FrozenTrial], float, int]:
    """``n`` trials of ask, backtest (metrics kept as the worker keeps them), tell, in memory;
    with ``holdout``, what Worker._validate adds (its statement rides the tell); with ``live``,
    what Worker._trials adds: between trials, the importances' thread started when due.
    Returns the trials, seconds per trial and how many holdout evaluations there were."""
    space = distributions(cfg)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    top = validation.TopValues(cfg.validation.top_k, "maximize")
    evaluated = 0
    start = time.perf_counter()
    complete = 0
    for _ in range(n):
        if live is not None and complete >= live.due:  # the worker compares counts, as offer does first
            live.offer(study.get_trials(deepcopy=False), complete)
        trial = study.ask(fixed_distributions=space)
        try:
            evaluation = objective(trial.params)
        except Exception:  # pruned (too few trades) or invalid: no value
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        for k, v in evaluation.metrics.items():
            trial.set_user_attr(k, v)
        study.tell(trial, evaluation.value)
        complete += 1
        if holdout and top.enters(evaluation.value):
            validation.record_statement("loop", trial.number, objective.holdout(trial.params))
            evaluated += 1
        top.add(evaluation.value)
    if live is not None:
        live.finish()  # as the worker does at its end
    return study.get_trials(deepcopy=False), (time.perf_counter() - start) / n, evaluated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", help="PostgreSQL URL (default: TUNE_STORAGE_URL, else the embedded server)")
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--loop-trials", type=int, default=1000)
    parser.add_argument("--report-trials", default="1000,10000", help="comma-separated study sizes")
    args = parser.parse_args()
    quiet_optuna()
    with bench_database(args.storage) as bench:
        print(f"server {bench.server} (PostgreSQL {bench.version}), database {bench.name}; optuna {optuna.__version__}")
        demo = load_config(None)
        assert demo.data.synthetic is not None
        cfg = demo.model_copy(update={"data": demo.data.model_copy(
            update={"synthetic": demo.data.synthetic.model_copy(update={"bars": args.bars})})})
        db = Database(bench.url)
        db.ensure_schema()
        objective = Objective(cfg, "AAA")
        print(f"{args.bars} bars, {objective.bars} in sample, {args.bars - objective.bars} held out; "
              f"top_k {cfg.validation.top_k}")
        print(f"\ntrial loop, {args.loop_trials} TPE trials (seed 0)")
        _, without, _ = run_trials(objective, cfg, optuna.samplers.TPESampler(seed=0), args.loop_trials)
        _, with_holdout, evaluated = run_trials(objective, cfg, optuna.samplers.TPESampler(seed=0), args.loop_trials,
                                                holdout=True)
        print(f"  without holdout   {without * 1000:8.2f} ms/trial")
        print(f"  with holdout      {with_holdout * 1000:8.2f} ms/trial   ({evaluated} holdout evaluations)")
        print(f"  slowdown          {(with_holdout / without - 1) * 100:+8.1f} %   (goal: <= 5 %)")
        live = importances.LiveImportances(db, "loop", cfg.directions)
        _, with_both, _ = run_trials(objective, cfg, optuna.samplers.TPESampler(seed=0), args.loop_trials,
                                     holdout=True, live=live)
        print(f"  with holdout and live importances {with_both * 1000:8.2f} ms/trial   (importances at "
              f"{importances.stored(db, ['loop'])['loop']['trials']} complete trials last; "
              f"{live.spent:.2f} s of CPU in all)")
        print(f"  slowdown          {(with_both / without - 1) * 100:+8.1f} %   (goal: <= 5 %)")

        for n in (int(x) for x in args.report_trials.split(",")):
            start = time.perf_counter()
            trials = run_trials(objective, cfg, optuna.samplers.RandomSampler(seed=1), n)[0]
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
