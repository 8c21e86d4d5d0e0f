"""One summary row per study: what ``tune status`` prints and the app shows.

The JSON form (``tune status --json``) is a contract for scripts; its keys are
the fields of :class:`StudyStatus` and are documented in the README.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from . import control
from .storage import Database

THROUGHPUT_WINDOW = timedelta(minutes=5)


@dataclass
class StudyStatus:
    study: str
    run: str
    symbol: str
    state: str  # running | paused | stopped | done | capped | failed | idle
    control: str
    metric: str
    direction: str
    target: int
    max_attempts: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    duplicate: int = 0
    running: int = 0
    attempts: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    trials_per_minute: float = 0.0
    eta_seconds: float | None = None
    workers_alive: int = 0
    workers: list[dict[str, Any]] = field(default_factory=list)
    ended_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _state(row: control.StudyRow, s: StudyStatus) -> str:
    if s.complete >= s.target:
        return "done"
    if s.attempts >= s.max_attempts:
        return "capped"
    if row.control in ("stopped", "paused"):
        return row.control
    if s.workers_alive:
        return "running"
    if row.ended_reason and row.ended_reason.startswith("error"):
        return "failed"
    return "idle"


def summarize_trials(trials: list[FrozenTrial], direction: str, now: datetime | None = None) -> dict[str, Any]:
    """Counts, best trial and recent throughput of a study's trials."""
    now = now or datetime.now()
    counts = {state: 0 for state in TrialState}
    best: FrozenTrial | None = None
    recent = 0
    earliest: datetime | None = None
    sign = 1 if direction == "maximize" else -1
    for t in trials:
        counts[t.state] += 1
        if t.state == TrialState.COMPLETE and t.value is not None:
            if best is None or sign * t.value > sign * best.value:
                best = t
        if t.datetime_start and (earliest is None or t.datetime_start < earliest):
            earliest = t.datetime_start
        if t.state.is_finished() and t.datetime_complete and now - t.datetime_complete <= THROUGHPUT_WINDOW:
            recent += 1
    # Rate over the window, or over the study's life if that is shorter.
    span = THROUGHPUT_WINDOW.total_seconds()
    if earliest is not None:
        span = min(span, max((now - earliest).total_seconds(), 1.0))
    return {
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAIL],
        "running": counts[TrialState.RUNNING],
        "attempts": len(trials),
        "best": best,
        "trials_per_minute": 60.0 * recent / span if recent else 0.0,
    }


def study_statuses(db: Database, names: list[str] | None = None, with_workers: bool = True) -> list[StudyStatus]:
    rows = control.list_studies(db, names)
    workers = control.list_workers(db, [r.name for r in rows]) if rows else []
    out = []
    for row in rows:
        s = StudyStatus(
            study=row.name, run=row.run_name, symbol=row.symbol, state="idle", control=row.control,
            metric=row.metric, direction=row.direction, target=row.target_trials,
            max_attempts=row.max_attempts, ended_reason=row.ended_reason,
        )
        storage = db.optuna_storage(row.name)
        try:
            study_id = storage.get_study_id_from_name(row.name)
            trials = storage.get_all_trials(study_id, deepcopy=False)
        except KeyError:  # registered, but no worker has created the study yet
            trials = []
        summary = summarize_trials(trials, row.direction)
        best = summary.pop("best")
        for key, value in summary.items():
            setattr(s, key, value)
        if best is not None:
            s.best_value, s.best_trial = best.value, best.number
            s.best_params = dict(best.params)
            s.best_metrics = {k: v for k, v in best.user_attrs.items()}
        mine = [w for w in workers if w.study == row.name]
        s.workers_alive = sum(w.alive for w in mine)
        if with_workers:
            s.workers = [
                {"id": w.id, "host": w.host, "pid": w.pid, "status": w.status if w.alive or w.status in ("exited", "crashed", "lost") else "lost",
                 "alive": w.alive, "heartbeat_at": w.heartbeat_at.isoformat(), "trials_done": w.trials_done,
                 "exit_reason": w.exit_reason}
                for w in mine
            ]
        complete_rate = s.trials_per_minute * (s.complete / s.attempts if s.attempts else 0)
        remaining = max(s.target - s.complete, 0)
        if remaining == 0:
            s.eta_seconds = 0.0
        elif complete_rate > 0 and s.workers_alive:
            s.eta_seconds = 60.0 * remaining / complete_rate
        s.state = _state(row, s)
        out.append(s)
    return out


def format_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
