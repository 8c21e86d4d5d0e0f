"""A study's trust report: how much of its best result is luck.

Computed once per request (``tune report``) and stored in ``tune_reports`` for
``tune status --json``, ``tune export`` and the app to read without computing.
Never on a worker's trial loop, except the holdout evaluation of a trial that
enters the top-K (runner/validation.py). Sections:

* ``holdout``: the best ``top_k`` distinct trials in sample beside out of sample
  (their holdout results, evaluated here for any still missing), and the rank
  correlation of the two orders.
* ``deflated_sharpe``: DSR of the best trial (backtest/stats.py): the number of
  trials that ran, the variance of their Sharpe ratios, the best's per-bar
  returns' skewness and kurtosis.
* ``pbo``: probability of backtest overfitting by CSCV over the per-bar returns of
  the best ``pbo_trials`` distinct trials.
* ``robustness``: the objective over the best trial's neighbours, their median
  against the best.
* ``importances``: Optuna's PED-ANOVA importances (fast, needs no scikit-learn).

A figure that cannot be computed says why ("n/a: ...") instead of a number.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import optuna

from backtest import stats

from . import control, importances, validation
from .config import CategoricalParam, FloatParam, IntParam, RunConfig
from .export import load_trials
from .importances import complete_trials
from .monitor import category, feasible
from .reports import json_safe, store, stored  # noqa: F401 - the report's storage, re-exported
from .space import param_key
from .storage import Database, PostgresJournalBackend, StorageError, TuneJournalStorage
from .study import Objective

MAIN_METRICS = ("sharpe", "total_return", "max_drawdown", "trades")
# A float parameter without a step moves by this share of its range (of its value, when log-scaled).
FLOAT_NUDGE = 0.05


def _not_available(reason: str) -> dict[str, str]:
    return {"n/a": reason}


def build(db: Database, cfg: RunConfig, symbol: str, trials: list[optuna.trial.FrozenTrial],
          objective: Objective | None = None, fold: int | None = None) -> dict[str, Any]:
    """The report of one symbol's study (or walk-forward fold's) from its ``trials`` (all of them)."""
    study = cfg.study_name(symbol, fold)
    metric, direction = cfg.study.metrics[0], cfg.direction
    sign = 1.0 if direction == "maximize" else -1.0
    complete = complete_trials(trials)
    order = ranked(cfg, complete, sign)
    report: dict[str, Any] = {
        "study": study, "metric": metric, "direction": direction,
        "trials": {"complete": len(complete), "finished": sum(t.state.is_finished() for t in trials)},
    }
    if not order:
        report["best"] = None
        return report
    best = order[0]
    report["best"] = {"trial": best.number, "value": best.values[0], "params": best.params}
    seconds: dict[str, float] = {}  # what each section cost to compute (benchmarks/bench_insight.py)

    def section(name: str, fn: Callable[[], Any]) -> None:
        """One section of the report; its failure is that section's n/a, never the report's end.
        A storage error is not a section's: it ends the report (as does an interruption)."""
        clock = time.perf_counter()
        try:
            report[name] = fn()
        except StorageError:
            raise
        except Exception as exc:
            report[name] = _not_available(f"{type(exc).__name__}: {exc}")
        seconds[name] = round(time.perf_counter() - clock, 4)

    clock = time.perf_counter()
    objective = objective or Objective(cfg, symbol, fold)
    seconds["data"] = round(time.perf_counter() - clock, 4)
    best_returns = _guarded(partial(objective.bar_returns, best.params))
    if fold is None:
        section("holdout", lambda: _holdout(db, cfg, study, order, objective, metric))
    else:
        report["holdout"] = _not_available(f"a walk-forward fold's study: its test window is in "
                                           f"{cfg.study_name(symbol)}'s report")
    section("deflated_sharpe", lambda: _deflated_sharpe(trials, best_returns, objective))
    section("pbo", lambda: _pbo(cfg, order, best_returns, objective))
    memo: dict[int, tuple[list[float], int]] = {}

    def around(trial: optuna.trial.FrozenTrial) -> tuple[list[float], int]:
        """The trial's neighbours' values (robustness and robust selection both need the best's)."""
        if trial.number not in memo:
            memo[trial.number] = _neighbour_values(cfg, trial.params, objective)
        return memo[trial.number]

    section("robustness", lambda: _robustness(best, around, sign))
    section("importances", lambda: importances.compute(complete, cfg.directions))
    section("selected", lambda: _selection(cfg, order, around, sign))
    if fold is None:
        section("walk_forward", lambda: _walk_forward(db, cfg, symbol, objective, sign))
    report["seconds"] = seconds
    return report


def ranked(cfg: RunConfig, complete: list[optuna.trial.FrozenTrial], sign: float) -> list[optuna.trial.FrozenTrial]:
    """The best trial of each parameter combination (as deduplication tells them apart), best
    first: feasible trials (the constraints) before the others, as the study's best is chosen
    (runner/monitor.py); among equals, the earlier trial."""
    seen: set[str] = set()
    out = []
    for t in sorted(complete, key=lambda t: (not feasible(t), -sign * t.values[0])):
        key = param_key(cfg, t.params)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _guarded(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the exception it raised (reported as n/a by the caller). A backtest's
    own failure is a reason, never the report's end; a storage error is not a backtest's."""
    try:
        return fn()
    except StorageError:
        raise
    except Exception as exc:
        return exc


def _holdout(db: Database, cfg: RunConfig, study: str, ranked, objective: Objective, metric: str) -> dict[str, Any]:
    if objective.holdout_start is None:
        return _not_available("no holdout configured ([validation] holdout)")
    top = ranked[: cfg.validation.top_k]
    known = validation.results(db, study)
    rows = []
    for t in top:
        found = known.get(t.number)
        # Not evaluated yet (an older study, a lost insert), or cut short by a stopping
        # worker (the worker's mark, runner/worker.py): now, and kept.
        if found is None or (found["error"] or "").startswith(validation.INTERRUPTED):
            outcome = _guarded(partial(objective.holdout, t.params))
            found = ({"metrics": None, "error": f"{type(outcome).__name__}: {outcome}"}
                     if isinstance(outcome, Exception)
                     else {"metrics": validation.finite(outcome), "error": None})
            validation.record(db, study, t.number, found["metrics"], found["error"])
        in_sample = {k: t.user_attrs.get(k) for k in (metric, *MAIN_METRICS) if k in t.user_attrs}
        in_sample[metric] = t.values[0]
        out = found["metrics"] or {}
        rows.append({
            "trial": t.number, "params": t.params,
            "in_sample": in_sample,
            "out_of_sample": {k: out.get(k) for k in in_sample} if found["metrics"] is not None else None,
            "error": found["error"],
        })
    pairs = [(r["in_sample"][metric], r["out_of_sample"][metric]) for r in rows
             if r["out_of_sample"] and r["out_of_sample"].get(metric) is not None]
    rho = stats.spearman(*zip(*pairs)) if len(pairs) >= 3 else None
    return {
        "bars_in_sample": objective.bars, "bars_holdout": objective.total_bars - objective.bars,
        "top": rows,
        "rank_correlation": rho if rho is not None else _not_available("fewer than 3 trials with holdout results"),
    }


def _deflated_sharpe(trials, best_returns, objective: Objective) -> dict[str, Any]:
    if isinstance(best_returns, Exception):
        return _not_available(f"the best trial's returns: {type(best_returns).__name__}: {best_returns}")
    if best_returns is None:
        return _not_available("no returns (a user backtest gives them under the key 'returns')")
    if len(best_returns) < 3:
        return _not_available("fewer than 3 returns")
    if not np.isfinite(best_returns).all():
        return _not_available("the best trial's returns are not all finite numbers")
    # N: every trial that was tried — complete or pruned (a pruned one was evaluated, if
    # only on part of the period); not duplicates (never run) nor failures. The variance:
    # over the trials that report a Sharpe ratio (annualised: back to per bar).
    tried = sum(category(t) in ("complete", "pruned") for t in trials)
    annualiser = math.sqrt(objective.bars_per_year)
    ratios = [t.user_attrs["sharpe"] / annualiser for t in trials
              if isinstance(t.user_attrs.get("sharpe"), (int, float)) and math.isfinite(t.user_attrs["sharpe"])]
    if len(ratios) < 2:
        return _not_available("fewer than 2 trials report a sharpe metric")
    tried = max(tried, len(ratios))
    sr = stats.sharpe(best_returns)
    skew, kurtosis = stats.moments(best_returns)
    variance = float(np.var(ratios))
    value = stats.deflated_sharpe(sr, tried, variance, len(best_returns), skew, kurtosis)
    out: dict[str, Any] = {
        "trials": tried, "with_sharpe": len(ratios), "sharpe_per_bar": sr, "sharpe_variance": variance,
        "expected_max_sharpe": stats.expected_max_sharpe(tried, variance),
        "observations": len(best_returns), "skewness": skew, "kurtosis": kurtosis,
    }
    out["value"] = value if value is not None else _not_available("the returns' moments give no estimate")
    return out


def _pbo(cfg: RunConfig, ranked, best_returns, objective: Objective) -> dict[str, Any]:
    chosen = ranked[: cfg.validation.pbo_trials]
    if len(chosen) < 2:
        return _not_available("fewer than 2 distinct complete trials")
    columns = [best_returns] + [_guarded(partial(objective.bar_returns, t.params)) for t in chosen[1:]]
    for t, column in zip(chosen, columns):
        if isinstance(column, Exception):
            return _not_available(f"trial {t.number}'s returns: {type(column).__name__}: {column}")
        if column is None:
            return _not_available("no returns (a user backtest gives them under the key 'returns')")
    if len({len(c) for c in columns}) != 1:
        return _not_available("the trials' returns differ in length")
    matrix = np.column_stack(columns)
    if not np.isfinite(matrix).all():
        return _not_available("the returns are not all finite numbers")
    # Parameter sets that trade alike (a parameter without effect, a stop never hit) give
    # identical returns: one strategy, not several that tie (ties would push the winner's
    # rank to the middle and PBO up).
    matrix = np.unique(matrix, axis=1)
    try:
        result = stats.backtest_overfitting(matrix, blocks=cfg.validation.pbo_blocks)
    except ValueError as exc:
        return _not_available(str(exc))
    return {"value": result.pbo, "strategies": result.strategies, "trials": len(chosen), "blocks": result.blocks,
            "splits": result.splits, "degradation_slope": result.degradation}


def neighbours(cfg: RunConfig, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameter sets one step from ``params``: ±1 step on ints and stepped floats,
    ±FLOAT_NUDGE of the range (of the value, log-scaled) on other floats, every other
    choice of a categorical; one parameter at a time, inside its bounds."""
    out = []
    for name, value in params.items():
        p = cfg.space.get(name)
        moved: list[Any] = []
        if isinstance(p, CategoricalParam):
            moved = [c for c in p.choices if c != value]
        elif isinstance(p, IntParam):
            moved = [value - p.step, value + p.step]
        elif isinstance(p, FloatParam):
            if p.step is not None:
                moved = [round(value - p.step, 12), round(value + p.step, 12)]
            elif p.log:
                moved = [value * (1 - FLOAT_NUDGE), value * (1 + FLOAT_NUDGE)]
            else:
                span = (p.high - p.low) * FLOAT_NUDGE
                moved = [value - span, value + span]
        for v in moved:
            if isinstance(p, (IntParam, FloatParam)) and not p.low <= v <= p.high:
                continue
            out.append({**params, name: v})
    return out


def _neighbour_values(cfg: RunConfig, params: dict[str, Any], objective: Objective) -> tuple[list[float], int]:
    """The objective of each neighbour of ``params`` that could be evaluated (in sample), and
    how many could not (pruned for too few trades, invalid, failed)."""
    values, missed = [], 0
    for moved in neighbours(cfg, params):
        outcome = _guarded(partial(objective, moved))
        if isinstance(outcome, Exception):
            missed += 1
        else:
            values.append(outcome.values[0])
    return values, missed


def _robustness(best, around: Callable, sign: float) -> dict[str, Any]:
    values, missed = around(best)
    if not values:
        return _not_available("no neighbour of the best trial could be evaluated")
    median = statistics.median(values)
    best_value = best.values[0]
    out: dict[str, Any] = {"neighbours": len(values), "not_evaluated": missed, "median": median,
                           "worst": min(values) if sign > 0 else max(values), "best": best_value}
    # Near 1: a plateau; near 0 (or below): a peak. Maximising: median / best; minimising
    # (a positive metric such as max_drawdown): best / median.
    if sign > 0 and best_value > 0:
        out["ratio"] = median / best_value
    elif sign < 0 and best_value > 0 and median > 0:
        out["ratio"] = best_value / median
    else:
        out["ratio"] = _not_available("the best value is not positive")
    return out


def _selection(cfg: RunConfig, ranked, around: Callable, sign: float) -> dict[str, Any]:
    """Which trial ``[validation] select`` chooses: the best value ("value"), or the best
    median over a trial and its neighbours among the top ``top_k`` distinct trials ("robust")."""
    best = ranked[0]
    if cfg.validation.select == "value":
        return {"rule": "value", "trial": best.number, "value": best.values[0], "params": best.params}
    # A neighbour that cannot be evaluated (too few trades, invalid, failing) counts as the
    # study's worst value: a trial among such neighbours is no plateau.
    worst = min((t.values[0] for t in ranked), key=lambda v: sign * v)
    scored = []
    for t in ranked[: cfg.validation.top_k]:
        values, missed = around(t)
        median = statistics.median([t.values[0], *values, *[worst] * missed])
        scored.append((sign * median, -t.number, t, median))
    _, _, chosen, median = max(scored, key=lambda s: (s[0], s[1]))
    return {"rule": "robust", "trial": chosen.number, "value": chosen.values[0], "params": chosen.params,
            "neighbourhood_median": median, "candidates": len(scored)}


def _walk_forward(db: Database, cfg: RunConfig, symbol: str, objective: Objective, sign: float) -> dict[str, Any]:
    """Each fold's best (ranked as the report ranks, from its own study) tested on the window after its
    training window; the test windows chained into one out-of-sample equity curve, and
    walk-forward efficiency: annualised out-of-sample return / the folds' mean
    annualised in-sample return (cagr)."""
    wf = cfg.validation.walk_forward
    if wf is None:
        return _not_available("no walk_forward configured ([validation] walk_forward)")
    folds: list[dict[str, Any]] = []
    equity, test_bars, in_sample_cagr, whole = 1.0, 0, [], True
    ended = {row.name: row.ended_code is not None for row in control.list_studies(db, cfg.study_names())}
    for number, (train, start, end) in enumerate(objective.fold_windows, 1):
        name = cfg.study_name(symbol, number)
        entry: dict[str, Any] = {"fold": number, "study": name, "train_bars": [train, start], "test_bars": [start, end],
                                 "ended": ended.get(name, False)}
        folds.append(entry)
        complete = complete_trials(load_trials(db, name))
        if not complete:
            entry["n/a"] = "no complete trial yet"
            whole = False
            continue
        best = ranked(cfg, complete, sign)[0]
        outcome = _guarded(partial(objective.fold_test, best.params, number))
        entry.update(trial=best.number, params=best.params, complete=len(complete))
        keys = (cfg.study.metrics[0], "cagr", "total_return", "sharpe")
        entry["in_sample"] = {k: best.user_attrs.get(k) for k in keys}
        entry["in_sample"][keys[0]] = best.values[0]
        if isinstance(outcome, Exception):
            entry["n/a"] = f"{type(outcome).__name__}: {outcome}"
            whole = False
            continue
        entry["out_of_sample"] = {k: outcome.get(k) for k in keys}
        equity *= 1.0 + outcome["total_return"]
        test_bars += end - start
        entry["equity_after"] = equity  # the chained out-of-sample equity curve, at each fold's end
        cagr = best.user_attrs.get("cagr")
        if isinstance(cagr, (int, float)):
            in_sample_cagr.append(float(cagr))
        else:
            whole = False
    # Folds still searching: their best may change (the worker that ends the last of them
    # writes this report again).
    out: dict[str, Any] = {"mode": wf.mode, "folds": folds, "partial": not all(f["ended"] for f in folds)}
    if not whole:
        out["efficiency"] = _not_available("not every fold has a complete trial, a test result and a cagr")
        return out
    years = test_bars / objective.bars_per_year
    oos_annual = equity ** (1.0 / years) - 1.0 if equity > 0 and years > 0 else -1.0
    is_annual = statistics.fmean(in_sample_cagr)
    out.update(oos_total_return=equity - 1.0, oos_annual_return=oos_annual, is_annual_return=is_annual)
    out["efficiency"] = oos_annual / is_annual if is_annual > 0 else _not_available(
        "the folds' in-sample annual return is not positive")
    return out


def load_all_trials(db: Database, study: str) -> list[optuna.trial.FrozenTrial]:
    """Every trial of ``study`` with every attribute, read afresh: a worker's own storage
    skips other workers' metrics (runner/storage/journal.py), which the report needs."""
    storage = TuneJournalStorage(PostgresJournalBackend(
        db.url, study, db.connect_args, engine=db.engine if db.single_connection else None))
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.journal.close()


def readings(report: dict[str, Any]) -> list[str]:
    """One plain-English line per figure, for a person reading the report top to bottom."""
    lines = []
    holdout = report.get("holdout") or {}
    rho = holdout.get("rank_correlation")
    if isinstance(rho, float):
        if rho >= 0.5:
            lines.append(f"Rank correlation {rho:+.2f}: the in-sample order of the top trials mostly holds out of sample.")
        elif rho > -0.2:
            lines.append(f"Rank correlation {rho:+.2f}: the in-sample order of the top trials says little about "
                         "their order out of sample.")
        else:
            lines.append(f"Rank correlation {rho:+.2f}: out of sample, the in-sample order of the top trials reverses.")
    dsr = (report.get("deflated_sharpe") or {})
    if isinstance(dsr.get("value"), float):
        v, n = dsr["value"], dsr["trials"]
        if v >= 0.95:
            lines.append(f"DSR {v:.2f}: the best Sharpe is unlikely to be luck, even after {n} trials.")
        elif v >= 0.5:
            lines.append(f"DSR {v:.2f}: the best Sharpe beats what {n} random strategies would show at best, "
                         "but not by enough to rule out luck.")
        else:
            lines.append(f"DSR {v:.2f}: the best Sharpe is not distinguishable from the best of {n} random strategies.")
    pbo = report.get("pbo") or {}
    if isinstance(pbo.get("value"), float):
        p = pbo["value"]
        verdict = "likely overfit" if p >= 0.5 else "some overfitting" if p > 0.1 else "little sign of overfitting"
        lines.append(f"PBO {p:.2f}: in {p:.0%} of {pbo['splits']} splits the in-sample winner ranked at or below "
                     f"the median out of sample ({verdict}).")
    robust = report.get("robustness") or {}
    if isinstance(robust.get("ratio"), dict):  # no ratio of a best value <= 0: the figures themselves
        lines.append(f"Robustness: the best trial's {robust['neighbours']} neighbours score a median of "
                     f"{robust['median']:.3g} against its {robust['best']:.3g}.")
    if isinstance(robust.get("ratio"), float):
        r = robust["ratio"]
        shape = "a plateau" if r >= 0.8 else "a slope" if r >= 0.5 else "a narrow peak"
        lines.append(f"Robustness {r:.2f}: the best trial's {robust['neighbours']} neighbours score a median of "
                     f"{r:.0%} of it: the best sits on {shape}.")
    wf = report.get("walk_forward") or {}
    if isinstance(wf.get("efficiency"), float):
        e = wf["efficiency"]
        lines.append(f"Walk-forward efficiency {e:.2f}: each of {len(wf['folds'])} folds' best, tested on the next "
                     f"window, earned {wf['oos_annual_return']:.1%} a year out of sample against "
                     f"{wf['is_annual_return']:.1%} in sample ({wf['mode']}).")
    return lines
