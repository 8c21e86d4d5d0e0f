"""Failing the running trials of workers that died: nobody else will.

A worker is *lost* when its heartbeat is older than the study's grace period
(killed, host down). Whoever notices first — a live worker of the study, or a
reader (the app, ``tune status``, a worker starting) when none is left —
fails its running trial, so that no trial stays RUNNING forever.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from . import notify
from .control import LIVE_STATUSES, add_event
from .storage import Database, StorageError, retry_on_disconnect

# Readers (the app, tune status, a worker starting) see no heartbeat of their own
# being cut off, so they wait longer before calling a silent worker lost, and not
# at all right after the server started (everyone's heartbeat is old then).
READER_GRACE_FACTOR = 3


def reap_lost_workers(db: Database, study: str, reader: bool = False, made_only: bool = False) -> list[int]:
    """Fail the running trials of workers that stopped heart-beating; return their numbers.

    Two kinds of orphans: the trial of a worker found lost now (heartbeat older
    than the grace period, or declared dead by :func:`declare_dead`), failed at
    once; and a RUNNING trial that no live worker claims and that started more
    than three grace periods ago (its worker died between asking for it and
    claiming it; a slow sampler's ask must not look like that). Safe to run from
    several processes at once: the UPDATE ... RETURNING hands each lost worker to
    exactly one reaper, and failing an already finished trial is skipped.
    ``reader``: see READER_GRACE_FACTOR. ``made_only`` (a worker's heartbeat): only once this
    process has the study's storage — a reap meanwhile would read the whole study a second
    time, every metric included, beside the worker's own first read (a worker joining 20,000
    trials went to 775 MB); the worker reaps itself once its storage is made.
    """
    if made_only and not db.has_storage(study):
        return []
    with db.engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT grace_seconds, extract(epoch FROM now() - pg_postmaster_start_time())"
                " FROM tune_studies WHERE name = :s"
            ),
            {"s": study},
        ).first()
        if row is None:
            return []
        grace, server_up = row
        orphan_age = READER_GRACE_FACTOR * grace
        if reader:
            grace = orphan_age
            if server_up < grace:
                return []
        lost = conn.execute(
            sa.text(
                """
                UPDATE tune_workers SET status = 'lost',
                    exit_reason = 'no heartbeat for ' || round(extract(epoch FROM now() - heartbeat_at)) || ' s'
                WHERE study = :s AND status = ANY(:live)
                  AND heartbeat_at < now() - make_interval(secs => :g)
                RETURNING trial_id, id, host, pid, exit_reason
                """
            ),
            {"s": study, "live": list(LIVE_STATUSES), "g": grace},
        ).all()
        of_lost = {r.trial_id for r in lost if r.trial_id is not None}
        for r in lost:  # this reaper alone was handed each: told once ([notify] worker_lost)
            notify.record(conn, study, f"lost:{r.id}", "worker_lost",
                          {"worker": r.id, "host": r.host, "pid": r.pid, "reason": r.exit_reason})
        claimed = {
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT trial_id FROM tune_workers WHERE study = :s AND status = ANY(:live) AND trial_id IS NOT NULL"
                ),
                {"s": study, "live": list(LIVE_STATUSES)},
            )
        }
    try:
        return _fail_orphans(db, study, of_lost, claimed, orphan_age)
    except StorageError:
        # Our cached replay belongs to a study since deleted and started fresh.
        db.forget_storage(study)
        return _fail_orphans(db, study, of_lost, claimed, orphan_age)


def _fail_orphans(db: Database, study: str, of_lost: set[int], claimed: set[int], orphan_age: float) -> list[int]:
    storage = db.optuna_storage(study)
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return []
    failed = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        if trial._trial_id in claimed or trial.datetime_start is None:
            continue
        if trial._trial_id not in of_lost:
            # Unclaimed: an orphan only once older than any ask can take.
            # datetime_start is naive local time, as Optuna records it.
            if (datetime.now() - trial.datetime_start).total_seconds() < orphan_age:
                continue
        try:
            storage.set_trial_attrs(trial._trial_id, {"fail_reason": "worker lost (no heartbeat)"})
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another reaper, or the worker itself, finished it first
        failed.append(trial.number)
    if failed:
        from . import dedup  # the config's modules only when there is something to release

        dedup.release(db, study, failed)  # never evaluated: their combinations may be tried again
        add_event(db, study, None, "warning", f"failed trial(s) {failed} of lost worker(s)")
    return failed


@retry_on_disconnect
def declare_dead(db: Database, host: str, pids: list[int]) -> list[str]:
    """Mark workers known to be dead (killed by us) as silent, so the next reap takes their
    trials at once; returns their studies."""
    with db.engine.begin() as conn:
        return sorted({
            r[0]
            for r in conn.execute(
                sa.text(
                    "UPDATE tune_workers SET heartbeat_at = 'epoch' WHERE host = :h AND pid = ANY(:p)"
                    " AND status = ANY(:live) RETURNING study"
                ),
                {"h": host, "p": list(pids), "live": list(LIVE_STATUSES)},
            )
        })


def reap_orphaned(db: Database, statuses) -> bool:
    """For readers (tune status, the app): reap studies that show running trials but no
    live worker — nobody else is left to do it. True if a trial was failed."""
    failed = False
    for s in statuses:
        if s.running and not s.workers_alive:
            if reap_lost_workers(db, s.study, reader=True):
                failed = True
                # Done with it: a reader keeps no replay of a whole study (issue 14's memory).
                db.forget_storage(s.study)
    return failed
