"""What Optuna is told for each outcome of a trial, today (``runner/worker.py``) and before,
so that the search benchmarks run both in one process on in-memory studies.

``tell`` mirrors ``Worker._one_trial``'s telling (same constraint names and values,
imported from the worker); ``legacy=True`` tells what the worker told before
outcomes steered the sampler: invalid parameters and too few trades PRUNED with no
constraint, a failure FAILED.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from runner.worker import FAILED, INFEASIBLE, INVALID

COMPLETE, INVALID_PARAMS, FEW_TRADES, FAILURE = "complete", "invalid", "few_trades", "failure"


def tell(study: optuna.Study, trial: optuna.Trial, outcome: str, value: float | None = None,
         constraints: dict[str, float] | None = None, few_trades_violation: float = 0.0,
         legacy: bool = False) -> None:
    """Tell ``trial``'s outcome: ``constraints`` are the user's [constraints] values of the run
    (complete or too few trades), ``few_trades_violation`` is min_trades - trades."""
    system: dict[str, Any] = {}
    if outcome == COMPLETE:
        system = dict(constraints or {})
        state = TrialState.COMPLETE
    elif outcome == INVALID_PARAMS:
        state = TrialState.PRUNED
        if not legacy:
            system = {INVALID: INFEASIBLE}
    elif outcome == FEW_TRADES:
        state = TrialState.PRUNED
        if not legacy:
            system = {**(constraints or {}), "study_min_trades": few_trades_violation}
    else:
        state = TrialState.FAIL if legacy else TrialState.PRUNED
        if not legacy:
            system = {FAILED: INFEASIBLE}
    for name, v in system.items():
        trial.set_constraint(name, v)  # the system attribute "constraints:NAME" the worker writes
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
