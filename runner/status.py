"""One summary row per study: what ``tune status`` prints and the app shows.

The JSON form (``tune status --json``) is a contract for scripts; its keys are
the fields of :class:`StudyStatus` and are documented in the README.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .states import Control, EndCode, StudyState


@dataclass
class StudyStatus:
    study: str
    run: str
    symbol: str
    state: str  # a runner.states.StudyState
    control: str
    metric: str  # the (first) objective metric
    direction: str
    target: int
    max_attempts: int
    fold: int | None = None  # a walk-forward fold's study: its number; None: the symbol's main study
    metrics: list[str] = field(default_factory=list)  # every objective metric (several: multi-objective)
    directions: list[str] = field(default_factory=list)
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    duplicate: int = 0
    duplicate_sources: dict[str, int] = field(default_factory=dict)  # {"memory": n, "database": m}
    running: int = 0
    attempts: int = 0
    best_value: float | None = None  # single objective; None for multi-objective
    best_trial: int | None = None  # single objective: the best; multi-objective: the compromise trial
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_feasible: bool | None = None  # None when the study has no constraints
    best_constraints: dict[str, float] = field(default_factory=dict)  # <= 0 is satisfied
    # The best's parameters that sit on a bound of the space ("slow = 20 (low)"): widen it there?
    best_on_bound: list[str] = field(default_factory=list)
    front_size: int = 0  # multi-objective
    pareto_front: list[dict[str, Any]] = field(default_factory=list)  # [{number, values, params}]
    compromise_trial: dict[str, Any] | None = None  # the front's trial nearest the ideal point
    trials_per_minute: float = 0.0
    eta_seconds: float | None = None
    workers_alive: int = 0
    desired_workers: int = 1
    workers: list[dict[str, Any]] = field(default_factory=list)
    ended_code: str | None = None  # a runner.states.EndCode
    ended_reason: str | None = None
    config_path: str | None = None
    archived: bool = False  # tune archive: out of the default views
    parent: str | None = None  # the study it was refined from (tune refine)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def derive_state(control: str, ended_code: str | None, s: StudyStatus) -> StudyState:
    """What a person wants to know first: is it done, held, running, or dead?"""
    if s.complete >= s.target:
        return StudyState.DONE
    if ended_code == EndCode.SPACE_EXHAUSTED:
        return StudyState.EXHAUSTED
    if s.attempts - s.duplicate >= s.max_attempts:  # duplicates run no backtest: not in the cap
        return StudyState.CAPPED
    if control == Control.STOPPED:
        return StudyState.STOPPED
    if control == Control.PAUSED:
        return StudyState.PAUSED
    if s.workers_alive:
        return StudyState.RUNNING
    if ended_code == EndCode.DATA_ERROR:
        return StudyState.FAILED
    return StudyState.IDLE


def best_label(s: StudyStatus) -> str:
    """The best value as a table cell: "front 7" for several objectives; "!" marks an infeasible
    best, "^" a best on a bound of the space."""
    if len(s.metrics) > 1:
        return f"front {s.front_size}" if s.front_size else "-"
    label = format_value(s.best_value)
    label = label + "!" if s.best_feasible is False else label
    return label + "^" if s.best_on_bound else label


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
