"""Importances recomputed as trials arrive (runner/importances.py): what they find, who
computes them, and what they may cost."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import FloatDistribution

from runner import importances
from tests.helpers import wait_for

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def study_trials(n: int, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """Complete trials whose value depends on x alone: y is noise."""
    rng = random.Random(seed)
    out = []
    for number in range(n):
        params = {"x": rng.random(), "y": rng.random()}
        trial = optuna.trial.create_trial(params=params, distributions=SPACE, value=-(params["x"] - 0.3) ** 2)
        trial.number = number
        out.append(trial)
    return out


def test_the_parameter_the_value_depends_on_comes_first():
    found = importances.compute(study_trials(200), ["maximize"])
    assert found["method"] == "ped-anova"
    assert found["x"] > 0.8 > 0.2 > found["y"]


def test_importances_are_those_of_reaching_the_studys_good_values_in_its_direction():
    """High values come from x alone (x > 0.9), low ones from y alone: maximising, x matters;
    minimising, y does (PED-ANOVA by itself reads every target as "lower is better")."""
    rng = random.Random(1)
    trials = []
    for number in range(300):
        params = {"x": rng.random(), "y": rng.random()}
        value = 1.0 if params["x"] > 0.9 else -params["y"]
        trial = optuna.trial.create_trial(params=params, distributions=SPACE, value=value)
        trial.number = number
        trials.append(trial)
    up, down = importances.compute(trials, ["maximize"]), importances.compute(trials, ["minimize"])
    assert up["x"] > 0.8 and up["y"] < 0.2
    assert down["y"] > 0.8 and down["x"] < 0.2


def test_too_few_trials_say_so():
    assert importances.compute(study_trials(3), ["maximize"]) == {"n/a": "fewer than 4 complete trials"}


def test_one_worker_claims_each_size_and_a_smaller_result_never_replaces_a_larger(db):
    assert importances.claim(db, "s", 20)
    assert not importances.claim(db, "s", 29)  # another worker, a few trials later: not grown by half
    assert importances.claim(db, "s", 30)
    importances.store(db, "s", 30, {"method": "ped-anova", "x": 0.9, "y": 0.1})
    importances.store(db, "s", 20, {"method": "ped-anova", "x": 0.5, "y": 0.5})  # a slow thread, late
    kept = importances.stored(db, ["s", "other"])
    assert set(kept) == {"s"}
    assert kept["s"]["trials"] == 30 and kept["s"]["x"] == 0.9 and kept["s"]["computed_at"]


def test_a_claim_without_a_result_yet_is_not_shown(db):
    assert importances.claim(db, "s", 20)
    assert importances.stored(db, ["s"]) == {}


def test_a_worker_recomputes_when_the_trials_have_grown_by_half(db):
    hours = iter(range(0, 10**6, 3600))  # the worker's time: an hour passes between offers (in budget)
    live = importances.LiveImportances(db, "s", ["maximize"], clock=lambda: float(next(hours)))
    trials = study_trials(60)
    assert not live.offer(trials[:19], 19)  # not due before FIRST
    assert live.offer(trials[:20], 20)
    live.finish()
    assert importances.stored(db, ["s"])["s"]["trials"] == 20
    assert live.due == 30
    assert not live.offer(trials[:29], 29)
    assert live.offer(trials[:45], 45)
    live.finish()
    assert importances.stored(db, ["s"])["s"]["trials"] == 45 and live.due == 68


def test_only_complete_trials_count():
    failed = optuna.trial.create_trial(params={"x": 0.5, "y": 0.5}, distributions=SPACE,
                                       state=optuna.trial.TrialState.FAIL)
    good = study_trials(3)
    assert importances.complete_trials([*good, failed]) == good


def test_a_worker_over_its_budget_waits_until_its_time_catches_up(db):
    now = [1000.0]
    live = importances.LiveImportances(db, "s", ["maximize"], clock=lambda: now[0])
    live.spent = 1.0  # a second of CPU so far
    trials = study_trials(40)
    now[0] += 1.0 / importances.BUDGET - 1  # the worker's time: just short of 50 s
    assert not live.offer(trials, 40)
    now[0] += 2
    assert live.offer(trials, 40)
    live.finish()
    assert importances.stored(db, ["s"])["s"]["trials"] == 40
    assert live.spent > 1.0  # the thread's CPU time was added


def test_a_failure_is_reported_not_raised(db):
    messages: list[str] = []
    live = importances.LiveImportances(db, "s", ["maximize"], on_error=messages.append)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE tune_importances")
    assert live.offer(study_trials(20), 20)
    live.finish()
    wait_for(lambda: messages, timeout=10, message="the thread's error")
    assert "importances were not recomputed" in messages[0] and "tune_importances" in messages[0]


@pytest.mark.parametrize("count", [0, 5])
def test_nothing_is_started_while_one_runs(db, count):
    live = importances.LiveImportances(db, "s", ["maximize"])
    trials = study_trials(30)

    class Busy:
        def is_alive(self) -> bool:
            return True

    live.thread = Busy()  # type: ignore[assignment]
    assert not live.offer(trials[:20 + count], 20 + count)
