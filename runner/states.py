"""The named states of studies and workers, as stored in the database and shown to people.

StrEnums: each member *is* its string ("running"), so rows, JSON and
comparisons with plain strings keep working, while the code names which of
the several meanings of "running" it means.
"""

from __future__ import annotations

from enum import StrEnum

# The system attribute a worker tells with each trial: its id (host-xxxxxxxx), for the
# app's trial detail (runner/explore.py). Not a user attribute: those are the trial's metrics.
WORKER_ATTR = "tune:worker"


class Control(StrEnum):
    """What a person asked of a study (``tune_studies.control``): ``tune pause/resume/stop``, the app's keys."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class WorkerStatus(StrEnum):
    """What a worker process reports in its heartbeat (``tune_workers.status``)."""

    STARTING = "starting"  # claimed by a launcher, or registered and loading data
    RUNNING = "running"  # in a trial, or between two
    PAUSED = "paused"  # its study is paused
    WAITING = "waiting"  # enough trials in flight to reach the target: waits for them
    EXITED = "exited"
    CRASHED = "crashed"
    LOST = "lost"  # no heartbeat within the grace period (killed, host down)


LIVE_WORKER_STATUSES = (WorkerStatus.STARTING, WorkerStatus.RUNNING, WorkerStatus.PAUSED, WorkerStatus.WAITING)


class EndCode(StrEnum):
    """Why a study's workers stopped for good (``tune_studies.ended_code``; the message is
    ``ended_reason``)."""

    TARGET_REACHED = "target_reached"
    ATTEMPT_CAP = "attempt_cap"
    SPACE_EXHAUSTED = "space_exhausted"  # every combination of a finite space evaluated
    DATA_ERROR = "data_error"  # the data could not be loaded


# A study that ended this way needs no more workers until a new run resets it.
NEEDS_NO_WORKERS = (EndCode.TARGET_REACHED, EndCode.ATTEMPT_CAP)


class StudyState(StrEnum):
    """What a person wants to know first about a study (``tune status``'s state column)."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DONE = "done"  # target reached
    CAPPED = "capped"  # attempt cap reached short of the target
    EXHAUSTED = "exhausted"  # a finite space used up
    FAILED = "failed"  # its data could not be loaded
    IDLE = "idle"  # no live worker, nothing ended it


FINISHED_WELL = (StudyState.DONE, StudyState.EXHAUSTED)  # tune run exits 0 when every study is one of these
