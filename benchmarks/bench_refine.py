"""Does refining help? A broad run then ``tune refine`` against one broad run, same budget.

    python benchmarks/bench_refine.py [--seeds 7] [--budget 200] [--top 10]

For each seed, on seeded synthetic data (the demo's strategy and space, 20,000 hourly
bars, the last 30 % held out), in memory, with a worker's sampler (``search_sampler``):

* broad    — one study of ``budget`` trials over the config's space;
* refined  — a study of ``budget / 2`` trials over the same space, then ``tune refine``'s
  plan (runner/refine.py: the top-K, the narrowed ranges, parameters fixed by importance,
  the config file rendered and loaded again) and a study of the refined config that starts
  from the parent's top trials (copied, not run again) and runs ``budget / 2`` more.

Both spend the same backtests. Printed per seed and as medians: the best in-sample value
reached (what the optimizer maximises) and that best's value on the holdout, which no
trial saw (does the refinement's best hold up, or is it a sharper fit to noise?).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna

from benchmarks._outcomes import COMPLETE, FAILURE, FEW_TRADES, tell
from runner import refine
from runner.config import load_config
from runner.outcomes import MIN_TRADES
from runner.space import distributions, suggest
from runner.storage import quiet_optuna
from runner.study import Objective, TrialPruned, search_sampler

CONFIG = """
# bench_refine's run (the demo's strategy and space)
[study]
name = "broad"
metric = "sharpe"
min_trades = 10

[data]
symbols = ["AAA"]

[data.synthetic]
bars = 20000
freq = "1h"
seed = {seed}

[strategy]
name = "ma_crossover"
fees_bps = 1.0
slippage_bps = 1.0

[validation]
holdout = 0.3

[sampler]
type = "tpe"
seed = {seed}
n_startup_trials = 20

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


def trials(study: optuna.Study, cfg, objective: Objective, n: int) -> None:
    """``n`` trials as a worker runs them: ask, suggest, backtest, tell the outcome."""
    space = distributions(cfg)
    for _ in range(n):
        trial = study.ask()
        params = suggest(trial, cfg, space)
        try:
            value = objective(params).values[0]
        except TrialPruned as exc:  # too few trades
            tell(study, trial, FEW_TRADES, few_trades_violation=exc.violation.get(MIN_TRADES, 1.0))
            continue
        except ValueError:
            tell(study, trial, FAILURE)
            continue
        tell(study, trial, COMPLETE, value)


def best(study: optuna.Study) -> optuna.trial.FrozenTrial:
    return max((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"),
               key=lambda t: t.values[0])


def one_seed(seed: int, budget: int, top: int, work: Path) -> dict[str, float]:
    path = work / f"broad{seed}.toml"
    path.write_text(CONFIG.format(seed=seed))
    cfg = load_config(path)
    objective = Objective(cfg, "AAA")

    broad = optuna.create_study(direction="maximize", sampler=search_sampler(cfg, "AAA", 0))
    trials(broad, cfg, objective, budget)

    first = optuna.create_study(direction="maximize", sampler=search_sampler(cfg, "AAA", 0))
    trials(first, cfg, objective, budget // 2)
    plan = refine.plan(cfg, "AAA", first.get_trials(), parent="broad-AAA", run_name="broad_r1", top_k=top)
    out = work / f"broad_r1_{seed}.toml"
    out.write_text(refine.render(cfg, plan, out))
    new = load_config(out)
    second = optuna.create_study(direction="maximize", sampler=search_sampler(new, "AAA", 0))
    copied, enqueued, _ = refine.start_from_top(second, new, plan)
    trials(second, new, Objective(new, "AAA"), budget - budget // 2)  # enqueued trials are among them

    refined_best = max(best(first), best(second), key=lambda t: t.values[0])
    b = best(broad)
    fixed = {**new.strategy.fixed}
    return {
        "broad": b.values[0], "refined": refined_best.values[0],
        "broad_oos": objective.holdout(b.params)["sharpe"],
        "refined_oos": objective.holdout({**fixed, **refined_best.params})["sharpe"],
        "fixed": len(plan.fixed), "copied": copied, "enqueued": enqueued,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=7)
    ap.add_argument("--budget", type=int, default=200, help="backtests per approach")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    quiet_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    clock = time.perf_counter()
    print(f"{args.seeds} seeds, {args.budget} backtests each way; refined: {args.budget // 2} broad, "
          f"then tune refine --top {args.top} and {args.budget - args.budget // 2} more")
    print(f"{'seed':>4} {'broad':>8} {'refined':>8} {'broad oos':>10} {'refined oos':>12}  fixed copied enqueued")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            r = one_seed(seed, args.budget, args.top, Path(tmp))
            rows.append(r)
            print(f"{seed:>4} {r['broad']:>8.3f} {r['refined']:>8.3f} {r['broad_oos']:>10.3f} "
                  f"{r['refined_oos']:>12.3f}  {r['fixed']:>5} {r['copied']:>6} {r['enqueued']:>8}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in ("broad", "refined", "broad_oos", "refined_oos")}
    wins = sum(r["refined"] > r["broad"] for r in rows)
    ties = sum(r["refined"] == r["broad"] for r in rows)
    print(f"median best in sample: broad {med['broad']:.3f}, broad + refine {med['refined']:.3f} "
          f"(refine higher in {wins} of {len(rows)} seeds, equal in {ties})")
    print(f"median holdout of that best: broad {med['broad_oos']:.3f}, broad + refine {med['refined_oos']:.3f}")
    verdict = "helps" if med["refined"] > med["broad"] and wins > len(rows) / 2 else "does not help"
    print(f"refining {verdict} here (in sample, same budget); {time.perf_counter() - clock:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
