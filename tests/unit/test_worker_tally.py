"""The worker's count of the study's trials by kind, kept up to date incrementally."""

from __future__ import annotations

import collections
import random

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from runner.monitor import category
from runner.worker import StudyTally

FINISHED = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
ATTRS = [{}, {"duplicate_source": "memory"}, {"fail_reason": "boom"}]


def trial(number: int, state: TrialState, attrs: dict) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(
        state=state, value=1.0 if state == TrialState.COMPLETE else None,
        params={"x": number}, distributions={"x": IntDistribution(0, 10_000)}, user_attrs=attrs,
    )
    t.number = number
    return t


def test_the_tally_always_equals_a_full_count_as_trials_start_and_finish_out_of_order():
    rng = random.Random(7)
    trials: list[optuna.trial.FrozenTrial] = []
    tally = StudyTally()
    for step in range(600):
        if rng.random() < 0.6 or not trials:  # a new trial: running, or waiting (enqueued)
            trials.append(trial(len(trials), rng.choice([TrialState.RUNNING, TrialState.WAITING]), {}))
        unfinished = [i for i, t in enumerate(trials) if not t.state.is_finished()]
        if unfinished and rng.random() < 0.7:  # one of them finishes, not necessarily the oldest
            i = rng.choice(unfinished)
            trials[i] = trial(i, rng.choice(FINISHED), rng.choice(ATTRS))
        assert tally.count(trials) == collections.Counter(map(category, trials)), step
    assert sum(tally.count(trials).values()) == len(trials)
