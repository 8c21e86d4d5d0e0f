"""Replay checkpoints in PostgreSQL: a worker joining a study starts from the stored
checkpoint and the records after it, and sees what a worker that read every record sees
(runner/storage/checkpoint.py; the format alone: tests/unit/test_checkpoint.py)."""

from __future__ import annotations

import logging

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from runner.states import WORKER_ATTR
from runner.storage import Database, PostgresJournalBackend, checkpoint
from tests.helpers import count, ledger_config, running_worker, trials, worker_env

KEEP = ("fail_reason",)
SPACE = {"a": IntDistribution(1, 9), "b": FloatDistribution(0.1, 10.0, log=True),
         "c": CategoricalDistribution(["x", "y", None]),
         "flag": CategoricalDistribution([False, True]), "bit": CategoricalDistribution([0, 1])}


def _worker_storage(url: str, study: str, use_checkpoint: bool = True):
    """A worker's storage (one connection, the worker's view) on a Database of its own."""
    db = Database(url, single_connection=True)
    with pytest.MonkeyPatch.context() as patch:
        if not use_checkpoint:  # as if there were none: it reads every record
            patch.setattr(PostgresJournalBackend, "load_checkpoint", lambda self: None)
        return db, db.optuna_storage(study, keep=KEEP)


def _run_trials(study: optuna.Study, storage, n: int, first: int) -> None:
    for i in range(first, first + n):
        trial = study.ask(fixed_distributions=SPACE)
        storage.set_trial_attrs(trial._trial_id, {"sharpe": i / 10, **({"fail_reason": "boom"} if i % 5 == 4 else {})},
                                {WORKER_ATTR: "host-1", "constraints": [1.0 - i / 10]})
        storage.set_trial_intermediate_value(trial._trial_id, 0, float(i))
        study.tell(trial, state=TrialState.PRUNED) if i % 5 == 4 else study.tell(trial, float(i))


def _stored(db: Database) -> list[tuple]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT stream, records, trials FROM tune_checkpoints"))]


def test_a_joining_worker_starts_from_the_checkpoint_and_sees_what_reading_every_record_shows(db):
    other = Database(db.url)
    writer_db, writer = _worker_storage(db.url, "ck")
    dbs = [other, writer_db]
    try:
        optuna.create_study(storage=other.optuna_storage("ck"), study_name="ck")
        writer_db.optuna_storage("ck")  # (made before the study: it reads it now)
        theirs = optuna.load_study(study_name="ck", storage=other.optuna_storage("ck"))
        mine = optuna.load_study(study_name="ck", storage=writer)
        _run_trials(mine, writer, 6, 0)  # a worker's own trials: in full in its replay
        _run_trials(theirs, other.optuna_storage("ck"), 6, 6)
        open_trial = theirs.ask(fixed_distributions=SPACE)  # runs across the checkpoint
        writer.refresh()
        assert writer.save_checkpoint()
        writer.finish_checkpoint()
        covered = writer._replay_result.log_number_read
        assert _stored(db) == [("ck", covered, 13)]
        # After the checkpoint: the open trial ends, more trials from both.
        theirs.tell(open_trial, 99.0)
        _run_trials(theirs, other.optuna_storage("ck"), 3, 20)
        writer.refresh()
        _run_trials(mine, writer, 2, 30)

        joined_db, joined = _worker_storage(db.url, "ck")
        full_db, full = _worker_storage(db.url, "ck", use_checkpoint=False)
        dbs += [joined_db, full_db]
        assert (joined.restored, full.restored) == (covered, None)
        got, want = joined.get_all_trials(0, deepcopy=False), full.get_all_trials(0, deepcopy=False)
        assert len(got) == 18 and got == want  # every field of every trial
        assert [repr(t.params) + repr(t.distributions) for t in got] == [  # True is not 1, though ==
            repr(t.params) + repr(t.distributions) for t in want]
        assert joined.get_all_studies()[0].__dict__ == full.get_all_studies()[0].__dict__
        # The worker's view: no metric and no worker mark of the others, reasons kept.
        assert all("sharpe" not in t.user_attrs and WORKER_ATTR not in t.system_attrs for t in got)
        assert got[4].user_attrs == {"fail_reason": "boom"} and got[12].value == 99.0
        # and it goes on: its trial is the next number, seen by the others.
        study = optuna.load_study(study_name="ck", storage=joined)
        study.tell(study.ask(fixed_distributions=SPACE), 7.0)
        assert [(t.number, t.value) for t in theirs.trials[-1:]] == [(18, 7.0)]
    finally:
        for d in dbs:
            d.dispose()


def test_the_first_worker_to_read_a_long_history_leaves_a_checkpoint(db, monkeypatch):
    """A worker whose first read replayed many records past the last checkpoint (here, with
    none) is due to write one."""
    other = Database(db.url)
    dbs = [other]
    try:
        study = optuna.create_study(storage=other.optuna_storage("long"), study_name="long")
        _run_trials(study, other.optuna_storage("long"), 4, 0)
        monkeypatch.setattr(checkpoint, "MIN_RECORDS", 10)
        first_db, first = _worker_storage(db.url, "long")
        dbs.append(first_db)
        assert first.restored is None and first.checkpoint_due  # the worker writes it after its first trial
        assert first.save_checkpoint() and not first.checkpoint_due
        first.finish_checkpoint()
        assert _stored(db) == [("long", first._replay_result.log_number_read, 4)]
        second_db, second = _worker_storage(db.url, "long")  # nothing new past it: none due
        dbs.append(second_db)
        assert second.restored == first._replay_result.log_number_read and not second.checkpoint_due
        assert second.get_all_trials(0, deepcopy=False) == first.get_all_trials(0, deepcopy=False)
    finally:
        for d in dbs:
            d.dispose()


def test_a_checkpoint_that_cannot_be_used_is_passed_over_and_every_record_read(db, caplog):
    """Not JSON of this format (a pickle, say: never loaded), or of an earlier life of the
    study (deleted and started again): the worker reads every record instead."""
    other = Database(db.url)
    dbs = [other]
    try:
        study = optuna.create_study(storage=other.optuna_storage("bad"), study_name="bad")
        _run_trials(study, other.optuna_storage("bad"), 3, 0)
        writer_db, writer = _worker_storage(db.url, "bad")
        dbs.append(writer_db)
        writer.save_checkpoint()
        writer.finish_checkpoint()
        with other.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tune_checkpoints SET body = :b"), {"b": b"\x80\x04\x95 a pickle"})
        with caplog.at_level(logging.WARNING):
            joined_db, joined = _worker_storage(db.url, "bad")
        dbs.append(joined_db)
        assert joined.restored is None and "checkpoint is not used" in caplog.text
        assert len(joined.get_all_trials(0, deepcopy=False)) == 3
        writer.save_checkpoint()
        writer.finish_checkpoint()  # a good one again, but past the stream's end
        with other.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tune_checkpoints SET records = records + 1000"))
        ahead_db, ahead = _worker_storage(db.url, "bad")
        dbs.append(ahead_db)
        assert ahead.restored is None and len(ahead.get_all_trials(0, deepcopy=False)) == 3
        with other.engine.begin() as conn:  # in range, but of another generation
            conn.execute(sa.text("UPDATE tune_checkpoints SET records = records - 1000"))
        with other.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tune_checkpoints SET generation = 'older'"))
        with caplog.at_level(logging.WARNING):
            stale_db, stale = _worker_storage(db.url, "bad")
        dbs.append(stale_db)
        assert stale.restored is None and len(stale.get_all_trials(0, deepcopy=False)) == 3
        with other.engine.begin() as conn:  # even without the table: a cache, not a need
            conn.execute(sa.text("DROP TABLE tune_checkpoints"))
        with caplog.at_level(logging.WARNING):
            bare_db, bare = _worker_storage(db.url, "bad")
            dbs.append(bare_db)
            assert bare.restored is None and len(bare.get_all_trials(0, deepcopy=False)) == 3
            assert bare.save_checkpoint()  # its failure is logged, once, and costs nothing else
            bare.finish_checkpoint()
        assert "checkpoint was not stored" in caplog.text
    finally:
        for d in dbs:
            d.dispose()


def test_a_checkpoint_too_big_for_one_round_trip_is_not_written(db, monkeypatch, caplog):
    other = Database(db.url)
    try:
        optuna.create_study(storage=other.optuna_storage("big"), study_name="big")
        writer_db, writer = _worker_storage(db.url, "big")
        monkeypatch.setattr(checkpoint, "MAX_BYTES", 10)
        with caplog.at_level(logging.WARNING):
            assert writer.save_checkpoint()
            writer.finish_checkpoint()
        writer_db.dispose()
        assert _stored(db) == [] and "more than the 0 MB one round trip may carry" in caplog.text
    finally:
        other.dispose()


def test_deleting_a_study_deletes_its_checkpoint(db):
    other = Database(db.url)
    try:
        optuna.create_study(storage=other.optuna_storage("gone"), study_name="gone")
        writer_db, writer = _worker_storage(db.url, "gone")
        writer.save_checkpoint()
        writer.finish_checkpoint()
        writer_db.dispose()
        assert [s for s, _, _ in _stored(db)] == ["gone"]
        assert other.delete_studies(["gone"], busy=lambda conn, studies: []) == []
        assert _stored(db) == []
    finally:
        other.dispose()


def test_a_worker_joining_a_study_starts_from_its_checkpoint_and_goes_on(db, db_url, tmp_path):
    """`tune worker`, end to end: a study of 4 trials checkpointed as a worker would, then a
    worker with a higher target reads the checkpoint, not the records it covers, and goes on."""
    from runner.monitor import KIND_ATTRS

    env = worker_env(tmp_path, db_url, sleep=0.0)
    with running_worker(ledger_config(tmp_path, "joinck", target=4), env) as worker:
        assert worker.wait(120) == 0
    writer_db = Database(db_url, single_connection=True)
    try:
        writer = writer_db.optuna_storage("joinck-AAA", keep=KIND_ATTRS)  # the worker's view
        assert writer.save_checkpoint()
        writer.finish_checkpoint()
        covered = writer._replay_result.log_number_read
    finally:
        writer_db.dispose()
    assert _stored(db) == [("joinck-AAA", covered, 4)]
    log = tmp_path / "joining.log"
    with running_worker(ledger_config(tmp_path, "joinck", target=7), env, log) as worker:
        assert worker.wait(120) == 0, log.read_text()
    assert f"read from its checkpoint (4 trials, {covered} records)" in log.read_text()
    found = trials(db_url, "joinck-AAA")
    assert [t.number for t in found] == list(range(len(found))) and count(found, TrialState.COMPLETE) == 7
