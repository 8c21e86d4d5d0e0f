"""What Optuna is told for each outcome (runner.outcomes.told): no database needed."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from runner.outcomes import (
    COMPLETE,
    FAILED,
    FAILURE,
    INFEASIBLE,
    INVALID,
    INVALID_PARAMS,
    MIN_TRADES,
    PRUNED,
    told,
)


def test_a_complete_trial_carries_the_users_constraints():
    assert told(COMPLETE, {"max_drawdown": -0.1}) == (TrialState.COMPLETE, {"max_drawdown": -0.1})
    assert told(COMPLETE) == (TrialState.COMPLETE, {})


def test_too_few_trades_is_infeasible_by_how_far_it_is_from_counting():
    state, system = told(PRUNED, {"max_drawdown": 0.2}, {MIN_TRADES: 4.0})
    assert state == TrialState.PRUNED and system == {"max_drawdown": 0.2, MIN_TRADES: 4.0}


def test_a_pruners_prune_is_told_as_it_is():
    assert told(PRUNED, {"max_drawdown": 0.2}) == (TrialState.PRUNED, {})


def test_invalid_parameters_and_failures_rank_below_any_real_violation():
    assert told(INVALID_PARAMS) == (TrialState.PRUNED, {INVALID: INFEASIBLE})
    assert told(FAILURE) == (TrialState.PRUNED, {FAILED: INFEASIBLE})
    assert told(FAILURE, on_failure="ignore") == (TrialState.FAIL, {})


def test_an_unknown_outcome_is_an_error():
    with pytest.raises(ValueError, match="unknown outcome"):
        told("maybe")
