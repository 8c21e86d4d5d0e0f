"""What Optuna is told for each outcome of a trial, today and before, so that the search
benchmarks run both in one process on in-memory studies.

Today's telling is the worker's own, :func:`runner.outcomes.told`; ``legacy=True``
tells what the worker told before outcomes steered the sampler: invalid
parameters and too few trades PRUNED with no constraint, a failure FAILED.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from runner.outcomes import COMPLETE, FAILURE, INVALID_PARAMS, MIN_TRADES, PRUNED, told

FEW_TRADES = PRUNED  # the search benchmarks' one kind of pruned trial: too few trades

__all__ = ["COMPLETE", "FAILURE", "FEW_TRADES", "INVALID_PARAMS", "tell"]


def tell(study: optuna.Study, trial: optuna.Trial, outcome: str, value: float | None = None,
         constraints: dict[str, float] | None = None, few_trades_violation: float = 0.0,
         legacy: bool = False) -> None:
    """Tell ``trial``'s outcome: ``constraints`` are the user's [constraints] values of the run
    (complete or too few trades), ``few_trades_violation`` is min_trades - trades."""
    violation = {MIN_TRADES: few_trades_violation} if outcome == FEW_TRADES else None
    state, system = told(outcome, constraints, violation, on_failure="ignore" if legacy else "avoid")
    if legacy and state != TrialState.COMPLETE:
        system = {}
    for name, v in system.items():
        trial.set_constraint(name, v)  # the system attribute "constraints:NAME" the worker writes
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
