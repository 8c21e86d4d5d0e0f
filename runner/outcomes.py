"""What Optuna is told for each outcome of a trial (README "What Optuna is told").

One pure function, :func:`told`, used by the worker and by the search
benchmarks, so the two never drift apart. Every outcome that did not count
steers the sampler away: it is told as an infeasible trial (a constraint value
> 0), which Optuna 5's TPE ranks below every feasible one, while a FAILED trial
would be invisible to every sampler.
"""

from __future__ import annotations

from optuna.trial import TrialState

# Outcomes of a trial's evaluation.
COMPLETE, PRUNED, INVALID_PARAMS, FAILURE = "complete", "pruned", "invalid", "failure"

# Constraint names of outcomes that are not the user's [constraints]; INFEASIBLE ranks
# them below any real constraint violation.
INVALID, FAILED, MIN_TRADES = "valid_params", "failed", "study_min_trades"
INFEASIBLE = 1e9


def told(outcome: str, constraints: dict[str, float] | None = None, violation: dict[str, float] | None = None,
         on_failure: str = "avoid") -> tuple[TrialState, dict[str, float]]:
    """The state Optuna gets and the constraint values it is told (by name, > 0: infeasible).

    ``constraints``: the user's [constraints] values of the run (complete, or too few
    trades). ``violation``: how far a pruned trial is from counting (too few trades);
    a pruner's prune has none and is told as it is (its intermediate values rank it).
    ``on_failure``: "avoid" tells a failure as an infeasible pruned trial, "ignore" as FAIL.
    """
    if outcome == COMPLETE:
        return TrialState.COMPLETE, dict(constraints or {})
    if outcome == PRUNED:
        return TrialState.PRUNED, {**(constraints or {}), **violation} if violation else {}
    if outcome == INVALID_PARAMS:  # parameters the strategy rejects (fast >= slow): the worst kind
        return TrialState.PRUNED, {INVALID: INFEASIBLE}
    if outcome == FAILURE:
        return (TrialState.PRUNED, {FAILED: INFEASIBLE}) if on_failure == "avoid" else (TrialState.FAIL, {})
    raise ValueError(f"unknown outcome {outcome!r}")
