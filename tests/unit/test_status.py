"""runner.status: the state a person sees first (derive_state), and how numbers are shown."""

from __future__ import annotations

import pytest

from runner.states import FINISHED_WELL, Control, EndCode, StudyState
from runner.status import StudyStatus, best_label, derive_state, format_eta, format_value


def status(**kw) -> StudyStatus:
    """A study half-way to its target of 100, with attempts to spare and one live worker."""
    fields = dict(study="s-AAA", run="s", symbol="AAA", state="", control=Control.RUNNING, metric="sharpe",
                  direction="maximize", target=100, max_attempts=300, metrics=["sharpe"], directions=["maximize"],
                  complete=50, attempts=60, workers_alive=1)
    return StudyStatus(**{**fields, **kw})


# (control, ended_code, status fields) -> the state
CASES = {
    StudyState.DONE: (Control.RUNNING, EndCode.TARGET_REACHED, dict(complete=100, workers_alive=0)),
    StudyState.EXHAUSTED: (Control.RUNNING, EndCode.SPACE_EXHAUSTED, dict(complete=6, workers_alive=0)),
    StudyState.CAPPED: (Control.RUNNING, EndCode.ATTEMPT_CAP, dict(attempts=300, workers_alive=0)),
    StudyState.STOPPED: (Control.STOPPED, None, dict(workers_alive=0)),
    StudyState.PAUSED: (Control.PAUSED, None, dict()),
    StudyState.RUNNING: (Control.RUNNING, None, dict()),
    StudyState.FAILED: (Control.RUNNING, EndCode.DATA_ERROR, dict(complete=0, attempts=0, workers_alive=0)),
    StudyState.IDLE: (Control.RUNNING, None, dict(workers_alive=0)),
}


@pytest.mark.parametrize("expected", list(CASES), ids=str)
def test_each_state_is_derived(expected):
    control, ended, fields = CASES[expected]
    assert derive_state(control, ended, status(**fields)) == expected


def test_every_study_state_has_a_case():
    assert set(CASES) == set(StudyState)


@pytest.mark.parametrize("control", list(Control), ids=str)
def test_the_target_reached_is_done_whatever_was_asked(control):
    assert derive_state(control, None, status(complete=100, workers_alive=0)) == StudyState.DONE
    assert derive_state(control, None, status(complete=120, workers_alive=2)) == StudyState.DONE


def test_an_ending_outranks_a_pause_or_a_stop():
    assert derive_state(Control.PAUSED, EndCode.SPACE_EXHAUSTED, status()) == StudyState.EXHAUSTED
    assert derive_state(Control.STOPPED, None, status(attempts=300)) == StudyState.CAPPED


def test_a_pause_or_a_stop_outranks_live_workers_and_a_data_error():
    assert derive_state(Control.STOPPED, None, status(workers_alive=3)) == StudyState.STOPPED
    assert derive_state(Control.PAUSED, EndCode.DATA_ERROR, status(workers_alive=0)) == StudyState.PAUSED


def test_live_workers_mean_running_even_after_a_data_error():
    # live workers are what matters: an ended_code left from an earlier failure does not hide them
    assert derive_state(Control.RUNNING, EndCode.DATA_ERROR, status(workers_alive=1)) == StudyState.RUNNING


def test_states_are_their_strings():
    assert derive_state(Control.RUNNING, None, status()) == "running"
    assert set(FINISHED_WELL) == {StudyState.DONE, StudyState.EXHAUSTED}


@pytest.mark.parametrize("seconds, shown", [
    (None, "-"), (0, "0s"), (0.9, "0s"), (59.99, "59s"), (60, "1m00s"), (61, "1m01s"), (3599, "59m59s"),
    (3600, "1h00m"), (3661, "1h01m"), (86400 + 7 * 60, "24h07m"),
])
def test_format_eta(seconds, shown):
    assert format_eta(seconds) == shown


def test_format_value_and_best_label():
    assert format_value(None) == "-" and format_value(float("nan")) == "-" and format_value(float("inf")) == "-"
    assert format_value(1.234567) == "1.235" and format_value(-12345678.0) == "-1.235e+07"
    assert best_label(status(best_value=1.5)) == "1.5"
    assert best_label(status(best_value=1.5, best_feasible=False)) == "1.5!"
    assert best_label(status(best_value=1.5, best_feasible=True)) == "1.5"
    assert best_label(status(metrics=["sharpe", "max_drawdown"], front_size=7)) == "front 7"
    assert best_label(status(metrics=["sharpe", "max_drawdown"], front_size=0)) == "-"
