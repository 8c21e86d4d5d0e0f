"""What the app's insight views show, computed from a study's trials (no Textual here).

Slices (the objective against each parameter), a heatmap over two parameters, one
trial's every detail and the symbols of a run side by side. Each function takes the
trials a reader already holds (the monitor's replay) and returns small plain data,
sized for a terminal whatever the study's size: a slice keeps at most two points per
column of the widest plot, a heatmap at most ``bins`` cells a side. The widgets only
draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from . import reports, validation
from .importances import complete_trials
from .monitor import category, feasible
from .states import WORKER_ATTR
from .status import StudyStatus, format_value
from .storage import Database

SLICE_COLUMNS = 240  # a slice keeps at most two points per column of a plot this wide
HEATMAP_BINS = 12


def _space(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Every parameter the trials were asked, with its distribution (the latest seen)."""
    found: dict[str, Any] = {}
    for t in trials:
        found.update(t.distributions)
    return found


def _numbered(trials: list[FrozenTrial], number: int | None) -> FrozenTrial | None:
    return next((t for t in trials if t.number == number), None) if number is not None else None


def label(value: Any) -> str:
    return format_value(value) if isinstance(value, float) else str(value)


# ----------------------------------------------------------------- slices


@dataclass(frozen=True)
class Slice:
    """The objective against one parameter. Categoricals: ``xs`` are indices into ``choices``."""

    param: str
    categorical: bool
    log: bool
    choices: list[str]
    xs: list[float]
    ys: list[float]
    best_x: float | None
    best_y: float | None
    trials: int  # complete trials behind the points (before thinning)


def slices(trials: list[FrozenTrial], best: int | None, columns: int = SLICE_COLUMNS) -> list[Slice]:
    """``best``: the number of the trial to mark (the study's best as the monitor ranks it,
    StudyStatus.best_trial: feasible first; the compromise of several objectives)."""
    complete = complete_trials(trials)
    marked = _numbered(complete, best)
    out = []
    for name, dist in _space(complete).items():
        rows = [(t.params[name], t.values[0]) for t in complete if name in t.params]
        if not rows:
            continue
        categorical = isinstance(dist, CategoricalDistribution)
        choices = [label(c) for c in dist.choices] if categorical else []
        if categorical:
            index = {c: i for i, c in enumerate(choices)}
            xs = np.array([index.get(label(v), -1) for v, _ in rows], dtype=float)
        else:
            xs = np.array([float(v) for v, _ in rows])
        ys = np.array([y for _, y in rows], dtype=float)
        xs, ys = _thin(xs, ys, columns, categorical)
        best_x = best_y = None
        if marked is not None and name in marked.params:
            v = marked.params[name]
            if not categorical:
                best_x, best_y = float(v), marked.values[0]
            elif label(v) in choices:
                best_x, best_y = float(choices.index(label(v))), marked.values[0]
        log = isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log
        out.append(Slice(name, categorical, log, choices, xs.tolist(), ys.tolist(), best_x, best_y, len(rows)))
    return out


def _thin(xs: np.ndarray, ys: np.ndarray, columns: int, categorical: bool) -> tuple[np.ndarray, np.ndarray]:
    """At most the lowest and highest value per column (per choice for a categorical, per
    distinct value when there are few): the plot's outline, at any number of trials."""
    if len(xs) <= 2 * columns:
        return xs, ys
    if categorical or len(np.unique(xs)) <= columns:
        keys = xs
    else:
        edges = np.linspace(xs.min(), xs.max(), columns + 1)
        keys = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, columns - 1)
    order = np.lexsort((ys, keys))
    k, x, y = keys[order], xs[order], ys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)] - 1
    picked = np.unique(np.r_[starts, ends])
    return x[picked], y[picked]


# ----------------------------------------------------------------- heatmap


@dataclass(frozen=True)
class Heatmap:
    """The best value of each cell over two parameters; cells without a trial are None."""

    x_param: str
    y_param: str
    x_labels: list[str]
    y_labels: list[str]
    cells: list[list[float | None]]  # rows: y bins (first = lowest), columns: x bins
    best: tuple[int, int] | None  # (column, row) of the best trial's cell
    maximize: bool
    trials: int
    order: list[str] = field(default_factory=list)  # every parameter, the most important first


def heatmap(trials: list[FrozenTrial], directions: list[str], x: str | None = None, y: str | None = None,
            bins: int = HEATMAP_BINS, ranked: list[str] | None = None, best: int | None = None) -> Heatmap | None:
    """The heatmap over ``x`` and ``y``, by default the first two of ``ranked`` (parameter
    names, the most important first: what the importances view shows); ``best``: the trial
    whose cell is marked (StudyStatus.best_trial). None without two parameters."""
    complete = complete_trials(trials)
    dists = _space(complete)
    known = [n for n in ranked or () if n in dists]
    order = known + [n for n in dists if n not in known]
    x = x if x in dists else next(iter(order), None)
    y = y if y in dists and y != x else next((p for p in order if p != x), None)
    complete = [t for t in complete if x in t.params and y in t.params]
    if not complete or x is None or y is None:
        return None
    xi, x_labels = _bin(dists[x], [t.params[x] for t in complete], bins)
    yi, y_labels = _bin(dists[y], [t.params[y] for t in complete], bins)
    maximize = bool(directions) and directions[0] == "maximize"
    cells: list[list[float | None]] = [[None] * len(x_labels) for _ in y_labels]
    marked = None
    for t, cx, cy in zip(complete, xi, yi):
        if cx < 0 or cy < 0:
            continue  # a choice no longer in the space
        v, old = t.values[0], cells[cy][cx]
        if old is None or (v > old if maximize else v < old):
            cells[cy][cx] = v
        if t.number == best:
            marked = (int(cx), int(cy))
    return Heatmap(x, y, x_labels, y_labels, cells, marked, maximize, len(complete), order)


def _bin(dist: Any, values: list[Any], bins: int) -> tuple[list[int], list[str]]:
    """Each value's bin and the bins' labels: a categorical's choices; a numeric parameter's
    own values when there are few, else equal bins (equal in log for a log scale)."""
    if isinstance(dist, CategoricalDistribution):
        choices = [label(c) for c in dist.choices]
        return [choices.index(label(v)) if label(v) in choices else -1 for v in values], choices
    distinct = sorted(set(values))
    if len(distinct) <= bins:
        where = {v: i for i, v in enumerate(distinct)}
        return [where[v] for v in values], [label(v) for v in distinct]
    log = getattr(dist, "log", False) and min(distinct) > 0
    arr = np.log(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
    edges = np.linspace(arr.min(), arr.max(), bins + 1)
    index = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, bins - 1)
    lows = np.exp(edges[:-1]) if log else edges[:-1]
    if isinstance(dist, IntDistribution):  # a bin of integers is named by the first it can hold
        return index.tolist(), [str(math.ceil(v - 1e-9)) for v in lows]
    return index.tolist(), [label(float(v)) for v in lows]


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

