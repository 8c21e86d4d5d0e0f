"""What the app's insight views show, computed from a study's trials (no Textual here).

Slices (the objective against each parameter), a heatmap over two parameters, one
trial's every detail and the symbols of a run side by side, as small plain data sized
for a terminal whatever the study's size: a slice keeps at most two points per column
of the widest plot, a heatmap at most ``bins`` cells a side. The widgets only draw it.
Slices and heatmaps come from an :class:`runner.outline.Outline`, which the monitor keeps
per study as trials finish (Monitor.slices, Monitor.heatmap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from . import reports, validation
from .monitor import category, feasible
from .states import WORKER_ATTR
from .status import StudyStatus
from .storage import Database

# ----------------------------------------------------------------- one trial


@dataclass(frozen=True)
class TrialDetail:
    study: str
    number: int
    kind: str  # complete | pruned | failed | duplicate | running | waiting
    values: dict[str, float | None]  # objective name -> value
    params: dict[str, Any]
    metrics: dict[str, Any]  # every user attribute that is a figure (a user backtest's own keys too)
    notes: dict[str, str]  # reason, duplicate origin, …
    constraints: dict[str, float]
    feasible: bool | None
    started: str | None
    finished: str | None
    seconds: float | None
    worker: str | None
    out_of_sample: dict[str, Any] | None = None  # holdout metrics, when evaluated
    out_of_sample_error: str | None = None
    intermediate: dict[int, float] = field(default_factory=dict)  # pruning steps


NOTE_ATTRS = ("fail_reason", "prune_reason", "duplicate_of", "duplicate_source")


def trial_detail(study: str, trial: FrozenTrial, metrics: list[str], holdout: dict[str, Any] | None) -> TrialDetail:
    attrs = trial.user_attrs
    notes = {k: str(attrs[k]) for k in NOTE_ATTRS if k in attrs}
    if "duplicate_of" in notes:
        notes["duplicate_of"] = f"#{notes['duplicate_of']}"
    values = dict(zip(metrics, trial.values)) if trial.values else {}
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    constraints = dict(trial.constraints)
    return TrialDetail(
        study=study, number=trial.number, kind=category(trial), values=values, params=dict(trial.params),
        metrics={k: v for k, v in attrs.items() if k not in NOTE_ATTRS},
        notes=notes, constraints=constraints, feasible=feasible(trial) if constraints else None,
        started=trial.datetime_start.isoformat(sep=" ", timespec="seconds") if trial.datetime_start else None,
        finished=trial.datetime_complete.isoformat(sep=" ", timespec="seconds") if trial.datetime_complete else None,
        seconds=seconds, worker=trial.system_attrs.get(WORKER_ATTR),
        out_of_sample=(holdout or {}).get("metrics"), out_of_sample_error=(holdout or {}).get("error"),
        intermediate=dict(trial.intermediate_values),
    )


# ----------------------------------------------------------------- symbols side by side


@dataclass(frozen=True)
class SymbolRow:
    study: str
    symbol: str
    state: str
    complete: int
    best_trial: int | None
    in_sample: float | None
    out_of_sample: float | None  # the best's holdout value of the objective, when evaluated
    dsr: float | None
    pbo: float | None
    params: dict[str, Any]


@dataclass(frozen=True)
class SymbolsView:
    run: str
    metric: str
    maximize: bool
    rows: list[SymbolRow]
    params: list[str]
    # Per numeric parameter: how much of its searched range the symbols' bests span
    # (0: every symbol chose the same value; 1: they spread over all of it).
    spread: dict[str, float]


def symbols(db: Database, statuses: list[StudyStatus], run: str, spaces: dict[str, dict[str, Any]]) -> SymbolsView | None:
    """One row per symbol of ``run`` (its main studies, not the walk-forward folds).
    ``spaces``: each study's distributions (Monitor.space), for the spread."""
    mine = [s for s in statuses if s.run == run and s.fold is None]
    if not mine:
        return None
    stored = reports.stored(db, [s.study for s in mine])
    out_of_sample = validation.values_of(db, [(s.study, s.best_trial) for s in mine if s.best_trial is not None],
                                         mine[0].metric)
    rows = []
    for s in mine:
        report = stored.get(s.study, {})
        rows.append(SymbolRow(
            study=s.study, symbol=s.symbol, state=s.state, complete=s.complete, best_trial=s.best_trial,
            in_sample=s.best_value, out_of_sample=out_of_sample.get(s.study),
            dsr=_figure(report.get("deflated_sharpe")), pbo=_figure(report.get("pbo")), params=dict(s.best_params),
        ))
    params = list(dict.fromkeys(p for r in rows for p in r.params))
    spread = {}
    for p in params:
        values = [r.params[p] for r in rows if isinstance(r.params.get(p), (int, float)) and not isinstance(r.params[p], bool)]
        dist = next((spaces[r.study][p] for r in rows if p in spaces.get(r.study, {})), None)
        if len(values) >= 2 and isinstance(dist, (IntDistribution, FloatDistribution)) and dist.high > dist.low:
            if dist.log and min(values) > 0:
                span = (math.log(max(values)) - math.log(min(values))) / (math.log(dist.high) - math.log(dist.low))
            else:
                span = (max(values) - min(values)) / (dist.high - dist.low)
            spread[p] = span
    return SymbolsView(run, mine[0].metric, mine[0].direction == "maximize", rows, params, spread)


def _figure(section: Any) -> float | None:
    value = (section or {}).get("value") if isinstance(section, dict) else None
    return value if isinstance(value, float) else None


# ----------------------------------------------------------------- importances


@dataclass(frozen=True)
class Importances:
    """A bar per parameter (shares summing to about 1), from the newest of the live
    recomputation (tune_importances) and the trust report; ``na`` says why there are none."""

    source: str  # "live" | "report" | ""
    trials: int | None
    computed_at: str | None
    method: str | None
    bars: list[tuple[str, float]]
    na: str | None


def importances(live: dict[str, Any] | None, report: dict[str, Any] | None) -> Importances:
    candidates = []
    if live:
        candidates.append(("live", live, live.get("trials")))
    if report and report.get("importances"):
        candidates.append(("report", report["importances"], (report.get("trials") or {}).get("complete")))
    if not candidates:
        return Importances("", None, None, None, [], "not computed yet: a worker computes them from 20 complete "
                           "trials on ([validation] live_importances), tune report at the end")
    # The one from more trials; the live one on a tie (the report's is as old as the study's end).
    source, body, trials = max(candidates, key=lambda c: (c[2] or 0, c[0] == "live"))
    bars = sorted(((k, float(v)) for k, v in body.items() if k not in ("method", "n/a", "trials", "computed_at")
                   and isinstance(v, (int, float))), key=lambda kv: -kv[1])
    at = (live or {}).get("computed_at") if source == "live" else (report or {}).get("computed_at")
    return Importances(source, trials, at, body.get("method"), bars, None if bars else str(body.get("n/a", "none")))


@dataclass(frozen=True)
class Unavailable:
    """A view that has nothing to show, and why."""

    reason: str

