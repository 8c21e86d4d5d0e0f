"""Sample efficiency of the samplers: trials to 99 % of the grid's best, against the grid's size.

Run from the repository root: python benchmarks/bench_samplers.py [--repeats 5] [--budget 1500]
[--level 0.99]. Not a test. Seed 001 claims the model-based samplers need 10-100x fewer trials
than grid search; this prints what we get.

What is measured. ``ma_crossover`` on synthetic data (50k 15-minute bars, seed 7, fees and
slippage 1 bps each, sharpe, maximised) over fast 2..100 step 2 (50 values) x slow 50..1000
step 25 (39) x ma_type sma/ema = 3,900 points, 3,820 valid: fast >= slow is pruned, as the
workers do, and still costs a trial. Each symbol is its own grid, scored exhaustively once
through the project's Objective (~9 s per symbol); the studies then look scores up.
Target = best - 0.01 * (best - median of the valid grid): 99 % of the way from the grid's
median to its best (Sharpe can be negative, so "99 % of best" needs a scale).

Each sampler (tpe, random, qmc if scipy imports, cmaes if cmaes does, gp if torch does) comes
from ``make_sampler(cfg, symbol, 0)``, cfg read by ``load_config`` from a temporary TOML
(project defaults for every [sampler] setting but type and seed), and runs an in-memory study
with the space suggested as the config declares it, until the exact optimum or ``--budget``
trials. The grid sampler is replayed, not run (see grid_order; checked against 100 real
trials per symbol) and walks the whole grid. Repeats vary ``[sampler] seed`` (0..R-1);
everything else is fixed, so the output is reproducible.

How to read it. "trials to target": median [min-max] over repeats (symbols x repeats for
"overall"); a miss counts as the budget, and ">N" means the median itself is a miss, so its
ratios are bounds. "grid/trials" = valid grid size / median: how many times fewer trials than
the exhaustive grid (the 10-100x claim). "vs random" = random's median / this one's. The grid
sampler (random order) is the baseline: with k points at or above the target it needs
(3,900+1)/(k+1) trials on average. "reached": median best found on the scale above (1 = the
grid's best); "distinct": distinct points tried (a re-proposed point is a trial here; the
worker's dedup, runner/dedup.py, skips its backtest and enqueues an unclaimed point).
Runtime: about 1 minute on a busy 2-core machine (budget 1,500 and 5 repeats keep it
there; gp, if torch is installed, is far slower per trial).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna
from optuna.distributions import CategoricalDistribution

import backtest
from runner.config import load_config
from runner.space import distributions as search_space
from runner.space import grid_points
from runner.study import Objective, make_sampler

SYMBOLS = ("AAA", "BBB", "CCC")
CONFIG = """
study = {{ name = "bench_samplers", metric = "sharpe" }}
data = {{ symbols = {symbols}, synthetic = {{ bars = 50000, freq = "15min", seed = 7 }} }}
strategy = {{ name = "ma_crossover", fees_bps = 1.0, slippage_bps = 1.0 }}
sampler = {{ type = "{kind}", seed = {seed} }}

[space]
fast = {{ type = "int", low = 2, high = 100, step = 2 }}
slow = {{ type = "int", low = 50, high = 1000, step = 25 }}
ma_type = {{ type = "categorical", choices = ["sma", "ema"] }}
"""


def config(tmp: Path, kind: str, seed: int):
    path = tmp / f"{kind}-{seed}.toml"
    path.write_text(CONFIG.format(symbols=list(SYMBOLS), kind=kind, seed=seed).replace("'", '"'))
    return load_config(path)


def exhaustive(cfg, symbol: str) -> dict[tuple, float]:
    """Score of every valid point of the grid, keyed by the values in the config's order."""
    objective, points = Objective(cfg, symbol), grid_points(cfg)
    scores = {}
    for combo in itertools.product(*points.values()):
        try:
            scores[combo] = objective(dict(zip(points, combo))).value
        except backtest.InvalidParams:
            pass
    return scores


def suggest(trial: optuna.Trial, name: str, dist):  # the space has ints and a categorical
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)


def run(cfg, symbol: str, scores: dict, optimum: float, budget: int) -> list[tuple]:
    """One seeded study: its trials, stopped at the exact optimum or after ``budget`` trials."""
    space = search_space(cfg)

    def objective(trial):
        score = scores.get(tuple(suggest(trial, name, dist) for name, dist in space.items()))
        if score is None:
            raise optuna.TrialPruned()  # fast >= slow: invalid, but it cost a trial
        return score

    def stop_at_optimum(study, frozen):
        if frozen.value is not None and frozen.value >= optimum:
            study.stop()

    study = optuna.create_study(direction=cfg.direction, sampler=make_sampler(cfg, symbol, 0))
    study.optimize(objective, n_trials=budget, callbacks=[stop_at_optimum])
    return [tuple(t.params[n] for n in cfg.space) for t in study.trials]


def grid_order(cfg, symbol: str) -> list[tuple]:
    """The points a one-worker GridSampler study evaluates, in order: trial k takes the k-th
    point of its seeded shuffle (``_all_grids``). Replayed instead of run because its
    after_trial scans every earlier trial: 800 real trials take ~40 s, the whole grid ~15 min."""
    sampler = make_sampler(cfg, symbol, 0)
    return [tuple(dict(zip(sampler._param_names, p))[n] for n in cfg.space) for p in sampler._all_grids]


def measure(points: list[tuple], scores: dict, target: float, median: float) -> dict:
    """Trials to target / to the exact optimum (None: not within the points), how close the
    best came (0 = grid median, 1 = grid best) and how many distinct points were tried."""
    optimum, best, out = max(scores.values()), float("-inf"), {"target": None, "optimum": None}
    for n, point in enumerate(points, start=1):
        best = max(best, scores.get(point, float("-inf")))
        if out["target"] is None and best >= target:
            out["target"] = n
        if best >= optimum:
            out["optimum"] = n
            break
    reached = (best - median) / (optimum - median)
    return {**out, "reached": reached, "distinct": len(set(points[:n])), "after_first": hash(tuple(points[1:]))}


def summary(runs: list, budget: int) -> tuple[float, bool, str]:
    """(median counting misses as the budget, whether that median is a miss, text)."""
    counted = [budget if r is None else r for r in runs]
    med, missed = statistics.median(counted), sum(r is None for r in runs)
    censored = missed > 0 and med >= budget
    text = f"{'>' if censored else ''}{med:,.0f} [{min(counted):,}-{max(counted):,}]"
    return med, censored, text + (f" {missed}/{len(runs)} missed" if missed else "")


def table(rows: dict, budgets: dict, grid_n: float) -> None:
    print(f"  {'sampler':<7} {'trials to target':<30} {'grid/trials':>11} {'vs random':>10}  "
          f"{'reached':>7} {'distinct':>8}  exact optimum")
    rand_med, rand_cens, _ = summary([r["target"] for r in rows["random"]], budgets["random"])
    for kind, runs in rows.items():
        med, cens, text = summary([r["target"] for r in runs], budgets[kind])
        ratio = ("<=" if cens else "") + f"{grid_n / med:.1f}x"
        vs = "?" if cens and rand_cens else ("<=" if cens else ">=" if rand_cens else "") + f"{rand_med / med:.2f}x"
        hits = [r["optimum"] for r in runs if r["optimum"] is not None]
        exact = f"{len(hits)}/{len(runs)}" + (f", median {statistics.median(hits):,.0f} trials" if hits else "")
        reached = statistics.median(r["reached"] for r in runs)
        distinct = statistics.median(r["distinct"] for r in runs)
        print(f"  {kind:<7} {text:<30} {ratio:>11} {vs:>10}  {reached:7.3f} {distinct:8,.0f}  {exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="seeds per sampler and symbol")
    parser.add_argument("--budget", type=int, default=1500, help="trials per run (grid sampler: the whole grid)")
    parser.add_argument("--level", type=float, default=0.99, help="target: this far from the median to the best")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    kinds = ["tpe", "random", "qmc", "cmaes", "gp", "grid"]
    for kind, module in (("qmc", "scipy"), ("cmaes", "cmaes"), ("gp", "torch")):
        if importlib.util.find_spec(module) is None:
            kinds.remove(kind)
            print(f"note: {kind} skipped ({module} is not importable)")
    with tempfile.TemporaryDirectory() as tmp:
        configs = {(k, r): config(Path(tmp), k, r) for k in kinds for r in range(args.repeats)}
    base, s = configs[("random", 0)], configs[("random", 0)].sampler
    total = len(list(itertools.product(*grid_points(base).values())))
    budgets = {k: total if k == "grid" else min(args.budget, total) for k in kinds}
    syn = base.data.synthetic
    print(
        f"{base.strategy.name}, {syn.bars:,} synthetic {syn.freq} bars (seed {syn.seed}), {base.study.metric}, "
        f"fees {base.strategy.fees_bps:g} + slippage {base.strategy.slippage_bps:g} bps; {total:,} grid points\n"
        f"target = best - {1 - args.level:.2f} * (best - median of the valid grid): "
        f"{args.level:.0%} of the way from the grid's median to its best\n"
        f"budget {budgets['random']:,} trials per run (grid sampler: all {total:,}); {args.repeats} repeats "
        f"([sampler] seed 0..{args.repeats - 1}); defaults: n_startup_trials={s.n_startup_trials}, "
        f"multivariate={s.multivariate}, constant_liar={s.constant_liar}, qmc_type={s.qmc_type}\n"
        f"reached: median best found (0 = grid median, 1 = grid best); distinct: median distinct points tried;\n"
        f"both over the whole run, which ends at the exact optimum or the budget"
    )
    pooled, sizes = {k: [] for k in kinds}, []
    for symbol in SYMBOLS:
        scores = exhaustive(base, symbol)
        best, median = max(scores.values()), statistics.median(scores.values())
        target = best - (1 - args.level) * (best - median)
        above = sum(v >= target for v in scores.values())
        where = " ".join(f"{n}={v}" for n, v in zip(base.space, max(scores, key=scores.get)))
        sizes.append(len(scores))
        print(
            f"\n{symbol}: {len(scores):,} valid points (fast >= slow: pruned); best {best:.3f} ({where}), "
            f"median {median:.3f}, target {target:.3f}\n  {above} point(s) at or above the target: "
            f"the grid in random order needs {(total + 1) / (above + 1):,.0f} trials on average"
        )
        real = run(configs[("grid", 0)], symbol, scores, float("inf"), 100)
        assert real == grid_order(configs[("grid", 0)], symbol)[:100], "GridSampler's order differs from the replay"
        rows = {}
        for kind in kinds:
            rows[kind] = [
                measure(
                    grid_order(cfg, symbol) if kind == "grid" else run(cfg, symbol, scores, best, budgets[kind]),
                    scores, target, median,
                )
                for cfg in (configs[(kind, r)] for r in range(args.repeats))
            ]
            pooled[kind] += rows[kind]
        table(rows, budgets, len(scores))
        for kind in (k for k in kinds if args.repeats > 1 and len({r["after_first"] for r in rows[k]}) == 1):
            print(f"  note: {kind}'s {args.repeats} repeats tried the same points after trial 1 (the seed changes only that)")
    print(f"\noverall ({len(SYMBOLS)} symbols x {args.repeats} repeats, grid {statistics.mean(sizes):,.0f} valid points):")
    table(pooled, budgets, statistics.mean(sizes))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
