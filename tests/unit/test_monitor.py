"""The monitor's arithmetic, without a database: ETA, throughput, the Pareto front and its
compromise (the monitor on a real PostgreSQL: tests/integration/test_monitor.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from optuna.trial import FrozenTrial, TrialState

from runner.monitor import THROUGHPUT_WINDOW, _eta, _Follower, compromise, dominates
from runner.states import StudyState
from runner.status import StudyStatus

MAX_MIN = [1, -1]  # maximise the first objective, minimise the second


def status(**kw) -> StudyStatus:
    fields = dict(study="s-AAA", run="s", symbol="AAA", state=StudyState.RUNNING, control="running", metric="sharpe",
                  direction="maximize", target=100, max_attempts=300, complete=40, attempts=50, trials_per_minute=10.0)
    return StudyStatus(**{**fields, **kw})


def trial(number: int, *values: float) -> FrozenTrial:
    at = datetime(2026, 1, 1, 12, 0)
    return FrozenTrial(number=number, trial_id=number, state=TrialState.COMPLETE, value=None, values=list(values),
                       datetime_start=at, datetime_complete=at, params={}, distributions={}, user_attrs={},
                       system_attrs={}, intermediate_values={})


# ------------------------------------------------------------------- ETA


def test_eta_counts_only_the_share_of_attempts_that_complete():
    # 10 finishes a minute, 40 of 50 complete: 8 complete trials a minute; 60 to go
    assert _eta(status()) == pytest.approx(60 * 60 / 8)
    assert _eta(status(complete=50, attempts=50, trials_per_minute=5.0)) == pytest.approx(60 * 50 / 5)


def test_eta_is_zero_at_or_past_the_target_whatever_the_state():
    assert _eta(status(complete=100)) == 0.0
    assert _eta(status(complete=130, state=StudyState.STOPPED, trials_per_minute=0.0)) == 0.0


@pytest.mark.parametrize("state", [s for s in StudyState if s != StudyState.RUNNING], ids=str)
def test_a_study_that_is_not_running_has_no_eta(state):
    assert _eta(status(state=state)) is None


def test_no_throughput_or_no_complete_trial_means_no_eta():
    assert _eta(status(trials_per_minute=0.0)) is None
    assert _eta(status(complete=0, attempts=12)) is None  # every attempt pruned or failed so far
    assert _eta(status(complete=0, attempts=0)) is None


def test_throughput_is_over_the_window_or_the_study_life_if_shorter():
    now = datetime(2026, 1, 1, 12, 0)
    f = _Follower("s-AAA", now)
    assert f.trials_per_minute(now) == 0.0
    f.first_start = now - timedelta(minutes=2)
    f.finishes = [now - timedelta(seconds=s) for s in (90, 60, 30, 0)]
    assert f.trials_per_minute(now) == pytest.approx(4 / 2)  # 4 in the 2 minutes the study has lived
    f.first_start = now - timedelta(hours=1)
    old = now - THROUGHPUT_WINDOW - timedelta(seconds=1)
    f.finishes = [old, *f.finishes]
    assert f.trials_per_minute(now) == pytest.approx(4 / THROUGHPUT_WINDOW.total_seconds() * 60)
    assert old not in f.finishes  # dropped once out of the window


def test_a_long_history_read_at_once_keeps_only_the_finishes_of_its_last_window():
    """Read in one go, 10,000 trials a second apart kept every finish time (and put them in
    the stored summary: 300 kB of a study's 390)."""
    f = _Follower("s-AAA", datetime(2026, 1, 1))
    start = datetime(2026, 1, 1, 12, 0)
    for i in range(0, 10_000, 7):
        t = trial(i, 1.0)
        t.datetime_complete = start + timedelta(seconds=i)
        f._finished(t, "complete", [1], (i, i))
    window = THROUGHPUT_WINDOW.total_seconds()
    assert len(f.finishes) <= window / 7 + 1 and f.finishes[-1] - f.finishes[0] <= THROUGHPUT_WINDOW
    assert f.summary()["finishes"] == []  # none of them within the window before now


# ------------------------------------------------------------ the Pareto front


def test_dominates_needs_better_somewhere_and_worse_nowhere():
    assert dominates([2, 1], [1, 2], MAX_MIN)
    assert dominates([2, 2], [1, 2], MAX_MIN)
    assert not dominates([1, 2], [1, 2], MAX_MIN)  # equal: neither dominates
    assert not dominates([2, 3], [1, 2], MAX_MIN)  # better sharpe, worse drawdown
    assert dominates([1, 1], [2, 2], [-1, -1]) and not dominates([1, 1], [2, 2], [1, 1])


def test_the_front_keeps_only_non_dominated_trials_once():
    f = _Follower("s-AAA", datetime(2026, 1, 1))
    for t in (trial(0, 1.0, 0.5), trial(1, 2.0, 0.8), trial(2, 0.5, 0.9), trial(3, 1.0, 0.5), trial(4, 3.0, 0.2)):
        f._update_front(t, MAX_MIN, (10 * t.number, 10 * t.number + 5))
    # 2 is dominated by 0; 3 repeats 0; 4 dominates 0 and 1
    assert [t.number for t in f.front] == [4]
    f._update_front(trial(5, 4.0, 0.3), MAX_MIN, (50, 55))
    assert sorted(t.number for t in f.front) == [4, 5]
    assert f.pinned_spans == {4: (40, 45), 5: (50, 55)}  # where the front's records lie, and only theirs


def test_the_compromise_is_the_trial_nearest_the_ideal_point():
    front = [trial(0, 3.0, 0.9), trial(1, 2.0, 0.3), trial(2, 0.0, 0.0)]  # two extremes and a balanced trial
    assert compromise(front, MAX_MIN).number == 1
    # scaled per objective: a huge range on one objective does not drown the other
    front = [trial(0, 3000.0, 0.9), trial(1, 2000.0, 0.3), trial(2, 0.0, 0.0)]
    assert compromise(front, MAX_MIN).number == 1


def test_the_compromise_follows_the_directions():
    front = [trial(0, 1.0, 1.0), trial(1, 0.0, 0.0), trial(2, 0.9, 0.2)]
    assert compromise(front, [1, -1]).number == 2
    assert compromise(front, [1, 1]).number == 0  # the ideal point is (1, 1)
    assert compromise(front, [-1, -1]).number == 1


def test_the_compromise_of_an_empty_one_or_a_flat_front():
    assert compromise([], MAX_MIN) is None
    assert compromise([trial(7, 1.0, 2.0)], MAX_MIN).number == 7
    # an objective equal over the front scales to 1 for all: the other decides; ties go to the lower number
    assert compromise([trial(3, 1.0, 0.5), trial(2, 2.0, 0.5)], MAX_MIN).number == 2
    assert compromise([trial(5, 1.0, 0.5), trial(4, 1.0, 0.5)], MAX_MIN).number == 4


def test_a_failure_told_to_optuna_as_infeasible_is_still_failed_to_a_person():
    from runner.monitor import category

    def finished(state, attrs):
        return FrozenTrial(number=0, state=state, value=None, values=None, datetime_start=datetime(2024, 1, 1),
                           datetime_complete=datetime(2024, 1, 1), params={}, distributions={}, user_attrs=attrs,
                           system_attrs={"constraints:failed": 1e9}, intermediate_values={}, trial_id=0)

    assert category(finished(TrialState.PRUNED, {"fail_reason": "ValueError: sharpe is nan"})) == "failed"
    assert category(finished(TrialState.PRUNED, {"prune_reason": "3 trades"})) == "pruned"
    assert category(finished(TrialState.FAIL, {"fail_reason": "worker lost"})) == "failed"


def test_a_snapshots_signature_changes_with_what_a_person_sees_and_only_then():
    """The app polls less often while the signature stays (IDLE_POLL_SECONDS)."""
    from datetime import datetime

    from runner.monitor import Snapshot, StudyView
    from runner.status import StudyStatus

    def snap(version=3, events=1, workers=0, state="done"):
        status = StudyStatus(study="s-AAA", run="s", symbol="AAA", state=state, control="running",
                             metric="sharpe", direction="maximize", target=10, max_attempts=30, workers_alive=workers)
        return Snapshot("url", datetime.now(), [StudyView(status, version=version, events_version=events)])

    assert snap().signature() == snap().signature()  # taken at other times, nothing else changed
    for changed in (snap(version=4), snap(events=2), snap(workers=1), snap(state="running")):
        assert changed.signature() != snap().signature()
