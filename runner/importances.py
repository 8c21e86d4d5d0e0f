"""Parameter importances as trials arrive, computed by a worker beside its trial loop.

The trust report (runner/insight.py) computes importances once, when a study ends or
on request. While the study runs, one of its workers recomputes them each time the
study's complete trials have grown by half (20, 30, 45, 68, … complete):

* in a thread of its own, from the trials the worker already holds (no read of the
  study), so no trial waits for it;
* within a budget: the thread's CPU time stays under ``BUDGET`` of the worker's time
  since it started (a recomputation that would exceed it waits), so importances over
  a large study cannot slow the trials by more than that;
* once per size across the study's workers: the first to claim a size in
  ``tune_importances`` computes it, the others skip it. The thread shares the
  worker's one database connection (as the heartbeat does), for its two short
  statements only.

Why a thread and not a process: a fresh Python process spends about a second on its
imports alone, more than the whole budget when trials take milliseconds.
``tune status --json`` and ``tune export`` read the last result.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy as sa

from .monitor import category
from .reports import json_safe
from .storage import Database

FIRST = 20  # complete trials before the first recomputation
GROWTH = 1.5  # the next one when the complete trials have grown by this factor
BUDGET = 0.02  # the thread's CPU time, at most this share of the worker's time


def complete_trials(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if category(t) == "complete" and t.values]


def compute(complete: list[optuna.trial.FrozenTrial], directions: list[str]) -> dict[str, Any]:
    """PED-ANOVA importances of the parameters for the first objective (Optuna's: fast, and
    needs no scikit-learn), or ``{"n/a": why}``."""
    if len(complete) < 4:
        return {"n/a": "fewer than 4 complete trials"}
    # PED-ANOVA, given a target, takes low values as the good ones (whatever the study's
    # direction): a maximised objective is negated, or it would rank what makes it worst.
    sign = -1.0 if directions[0] == "maximize" else 1.0
    study = optuna.create_study(directions=["maximize" if d == "maximize" else "minimize" for d in directions])
    study.add_trials(complete)
    try:
        # No warnings.catch_warnings here: it is process-wide state and this runs in a thread
        # (runner.storage.quiet_optuna silences Optuna's experimental warning, and PED-ANOVA's
        # note on the target's sign, for good).
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=lambda t: sign * t.values[0])
    except (ValueError, RuntimeError) as exc:
        return {"n/a": str(exc)}
    return {"method": "ped-anova", **{k: float(v) for k, v in found.items()}}


def claim(db: Database, study: str, size: int) -> bool:
    """Whether this caller computes the importances at ``size`` complete trials: none was
    claimed yet, or the last claim was at most ``size / GROWTH``."""
    with db.engine.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO tune_importances (study, claimed) VALUES (:s, :n) ON CONFLICT (study) "
                "DO UPDATE SET claimed = EXCLUDED.claimed WHERE tune_importances.claimed * :g <= EXCLUDED.claimed "
                "RETURNING 1"
            ),
            {"s": study, "n": size, "g": GROWTH},
        ).first() is not None


def store(db: Database, study: str, size: int, body: dict[str, Any]) -> None:
    """Keep the importances at ``size`` complete trials, unless a larger size's are kept."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tune_importances (study, claimed, trials, body, computed_at) "
                "VALUES (:s, :n, :n, CAST(:b AS jsonb), now()) ON CONFLICT (study) DO UPDATE "
                "SET trials = EXCLUDED.trials, body = EXCLUDED.body, computed_at = now() "
                "WHERE tune_importances.trials IS NULL OR tune_importances.trials <= EXCLUDED.trials"
            ),
            {"s": study, "n": size, "b": json.dumps(json_safe(body))},
        )


def stored(db: Database, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each named study's last importances: {"trials": complete trials, "computed_at", **body}."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT study, trials, body, computed_at FROM tune_importances "
                    "WHERE study = ANY(:n) AND body IS NOT NULL"), {"n": names}
        ).all()
    return {study: {**body, "trials": n, "computed_at": at.isoformat(timespec="seconds")}
            for study, n, body, at in rows}


class LiveImportances:
    """A worker's side of the recomputation: :meth:`offer` between trials starts it when due."""

    def __init__(self, db: Database, study: str, directions: list[str],
                 on_error: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock  # the worker's time (a test's own)
        self.study = study
        self.directions = directions
        self.on_error = on_error
        self.due = FIRST  # complete trials at which the next recomputation is due
        self.spent = 0.0  # CPU seconds the thread has used
        self.started = clock()
        self.thread: threading.Thread | None = None

    def offer(self, trials: list[optuna.trial.FrozenTrial], complete: int) -> bool:
        """Start a recomputation over ``trials`` (the study's, as the worker holds them) if
        ``complete`` has reached the next size, the budget allows and none is running.
        Only counts are compared here: the trials are filtered when one starts."""
        if complete < self.due or (self.thread is not None and self.thread.is_alive()):
            return False
        if self.spent > BUDGET * (self.clock() - self.started):
            return False  # over budget: due still, started when the worker's time has caught up
        snapshot = complete_trials(trials)  # finished trials never change: the thread may read them
        self.due = max(self.due, math.ceil(len(snapshot) * GROWTH))
        self.thread = threading.Thread(target=self._run, args=(snapshot,), name="importances", daemon=True)
        self.thread.start()
        return True

    def finish(self, timeout: float = 5.0) -> None:
        """At the worker's end: let a recomputation in progress store its result (a second
        at 10,000 trials); one that takes longer is dropped with the process."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self, snapshot: list[optuna.trial.FrozenTrial]) -> None:
        clock = time.thread_time()
        try:
            if claim(self.db, self.study, len(snapshot)):
                store(self.db, self.study, len(snapshot), compute(snapshot, self.directions))
        except BaseException as exc:  # noqa: BLE001 - a thread's end: importances are best effort
            if self.on_error is not None and isinstance(exc, Exception):
                self.on_error(f"importances were not recomputed ({type(exc).__name__}: {exc})")
        finally:
            self.spent += time.thread_time() - clock
