"""The Postgres journal: ordered, hole-free, shared by processes (URLs and retries: tests/unit/test_storage.py)."""

from __future__ import annotations

import contextlib
import multiprocessing

import optuna
import psycopg2
import pytest
from optuna.trial import TrialState

from runner import control
from runner.storage import Database, PostgresJournalBackend, StorageError
from tests.helpers import count, ledger_config, running_worker, small_config, trials, tune, wait_for, worker_env


def test_journal_appends_in_order_and_reads_from_an_offset(db):
    backend = PostgresJournalBackend(db.url, "s1")
    backend.append_logs([{"op_code": 0, "n": 0}, {"op_code": 0, "n": 1}])
    backend.append_logs([{"op_code": 0, "n": 2}])
    other = PostgresJournalBackend(db.url, "s2")
    other.append_logs([{"op_code": 0, "n": 99}])
    assert [r["n"] for r in backend.read_logs(0)] == [0, 1, 2]
    assert [r["n"] for r in backend.read_logs(2)] == [2]
    assert [r["n"] for r in other.read_logs(0)] == [99]


def _streams(db) -> list[str]:
    with db.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT stream FROM tune_streams ORDER BY stream")]


def test_reading_a_study_that_does_not_exist_writes_nothing(db, db_url):
    """A mistyped name in optuna.load_study, the notebook snippet or tune export."""
    with pytest.raises(KeyError):
        optuna.load_study(study_name="no-such", storage=db.optuna_storage("no-such"))
    assert PostgresJournalBackend(db.url, "typo").read_logs(0) == []
    proc = tune("export", "no-such-either", env={"TUNE_STORAGE_URL": db_url})
    assert proc.returncode == 2 and "no such study: no-such-either" in proc.stderr
    assert _streams(db) == []
    early = PostgresJournalBackend(db.url, "made-later")  # opened before the study exists
    optuna.create_study(study_name="made-later", storage=db.optuna_storage("made-later"))
    assert [r["op_code"] for r in early.read_logs(0)] == [0] and _streams(db) == ["made-later"]
    early.append_logs([{"op_code": 2, "study_id": 0, "user_attr": {"k": 1}}])  # and it writes to that one
    assert len(PostgresJournalBackend(db.url, "made-later").read_logs(0)) == 2


def _append_many(url: str, stream: str, writer: int, count: int) -> None:
    backend = PostgresJournalBackend(url, stream)
    for i in range(count):
        backend.append_logs([{"op_code": 0, "w": writer, "i": i}])


def test_concurrent_appenders_leave_no_holes(db):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(db.url, "shared", w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = psycopg2.connect(db.url)
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM tune_journal WHERE stream = 'shared' ORDER BY seq")
        seqs = [r[0] for r in cur.fetchall()]
    conn.close()
    assert seqs == list(range(400))
    logs = PostgresJournalBackend(db.url, "shared").read_logs(0)
    for w in range(4):  # each writer's records appear in the order it wrote them
        assert [r["i"] for r in logs if r["w"] == w] == list(range(100))


def test_optuna_sees_the_same_study_from_two_handles(db):
    a = optuna.create_study(storage=db.optuna_storage("x"), study_name="x", direction="maximize")
    a.optimize(lambda t: t.suggest_float("v", 0, 1), n_trials=5)
    other = Database(db.url)
    b = optuna.load_study(study_name="x", storage=other.optuna_storage("x"))
    assert len(b.trials) == 5
    assert b.best_value == a.best_value
    other.dispose()


def test_batched_user_attrs_are_one_append(db):
    storage = db.optuna_storage("attrs")
    study = optuna.create_study(storage=storage, study_name="attrs")
    trial = study.ask()
    before = len(list(storage._backend.read_logs(0)))
    storage.set_trial_attrs(trial._trial_id, {"sharpe": 1.5, "trades": 12})
    after = list(storage._backend.read_logs(0))
    assert len(after) == before + 2
    assert after[-1]["_t"] == after[-2]["_t"]  # one append carried both records
    assert study.trials[0].user_attrs == {"sharpe": 1.5, "trades": 12}


def test_appending_to_a_study_deleted_meanwhile_is_an_error_not_a_silent_loss(db):
    backend = PostgresJournalBackend(db.url, "gone")
    backend.append_logs([{"op_code": 0, "n": 0}])
    db.delete_studies(["gone"], control.live_studies)
    with pytest.raises(StorageError, match="was deleted while this process used it"):
        backend.append_logs([{"op_code": 0, "n": 1}])


def test_a_trials_parameters_go_out_in_one_append_and_others_see_them_before_tell(db):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    storage = db.optuna_storage("params")
    study = optuna.create_study(storage=storage, study_name="params")
    space = {"a": IntDistribution(1, 9), "b": IntDistribution(1, 9), "c": CategoricalDistribution(["x", "y"])}
    trial = study.ask(fixed_distributions=space)
    before = len(list(storage._backend.read_logs(0)))
    storage.flush()
    logs = list(storage._backend.read_logs(0))
    params = [r for r in logs[before:] if r["op_code"] == 5]  # SET_TRIAL_PARAM
    assert len(params) == 3 and len({r["_t"] for r in params}) == 1  # one append
    other = Database(db.url)
    seen = optuna.load_study(study_name="params", storage=other.optuna_storage("params")).trials[0]
    assert seen.state == optuna.trial.TrialState.RUNNING and seen.params == trial.params
    other.dispose()
    study.tell(trial, 1.0)
    assert study.trials[0].params == trial.params


def test_a_study_started_fresh_under_an_old_handle_is_never_mixed_with_the_old_one(db):
    old = PostgresJournalBackend(db.url, "again")
    old.append_logs([{"op_code": 0, "n": 0}])
    db.delete_studies(["again"], control.live_studies)
    new = PostgresJournalBackend(db.url, "again")  # the fresh run's first worker
    new.append_logs([{"op_code": 0, "n": 1}])
    with pytest.raises(StorageError, match="was deleted"):
        old.append_logs([{"op_code": 0, "n": 2}])
    with pytest.raises(StorageError, match="was deleted"):
        old.read_logs(0)
    assert [r["n"] for r in new.read_logs(0)] == [1]


def test_queued_parameters_survive_a_failed_append(db, monkeypatch):
    from optuna.distributions import IntDistribution

    storage = db.optuna_storage("queued")
    study = optuna.create_study(storage=storage, study_name="queued")
    trial = study.ask(fixed_distributions={"a": IntDistribution(1, 9)})
    real = storage.journal.append_and_read
    calls = []

    def failing_once(logs, read_from, before=None):
        calls.append(len(logs))
        if len(calls) == 1:
            raise StorageError("database unreachable")
        return real(logs, read_from, before)

    monkeypatch.setattr(storage.journal, "append_and_read", failing_once)
    with pytest.raises(StorageError):
        storage.flush()
    storage.flush()  # the queue was kept: written now
    study.tell(trial, 1.0)
    assert study.trials[0].params == {"a": trial.params["a"]}


def test_an_append_reads_what_others_appended_in_the_same_round_trip(db):
    mine, theirs = PostgresJournalBackend(db.url, "both"), PostgresJournalBackend(db.url, "both")
    mine.append_logs([{"op_code": 0, "n": 0}])
    theirs.append_logs([{"op_code": 0, "n": 1}, {"op_code": 0, "n": 2}])
    read = mine.append_and_read([{"op_code": 0, "n": 3}], read_from=1)
    assert [r["n"] for r in read] == [1, 2, 3]
    assert [r["n"] for r in mine.read_logs(0)] == [0, 1, 2, 3]


def test_an_append_that_waited_for_another_appender_says_so_instead_of_leaving_a_hole(db):
    """A record committed while our statement waited for the head row is outside its
    snapshot: the append must report "read the rest yourself", not a list without it."""
    import threading

    backend = PostgresJournalBackend(db.url, "gap")
    backend.append_logs([{"op_code": 0, "n": 0}])
    other = psycopg2.connect(db.url)
    try:
        with other.cursor() as cur:  # another appender, mid-transaction: it holds the head row
            cur.execute("UPDATE tune_streams SET next_seq = next_seq + 1 WHERE stream = 'gap' RETURNING next_seq - 1")
            seq = cur.fetchone()[0]
            cur.execute("INSERT INTO tune_journal (stream, seq, body) VALUES ('gap', %s, '{\"op_code\": 0, \"n\": 1}')",
                        (seq,))
        result: list = []
        appender = threading.Thread(target=lambda: result.append(
            backend.append_and_read([{"op_code": 0, "n": 2}], read_from=1)))
        appender.start()

        def waiting_for_the_lock() -> bool:
            with contextlib.closing(psycopg2.connect(db.url)) as watcher, watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock'")
                return cur.fetchone()[0] > 0

        wait_for(waiting_for_the_lock, timeout=30, message="the append to wait for the head row")
        other.commit()
        appender.join(30)
    finally:
        other.close()
    assert result == [None]
    assert [r["n"] for r in backend.read_logs(0)] == [0, 1, 2]


def test_a_worker_storage_reads_once_per_refresh_and_sees_its_own_writes_at_once(db):
    from optuna.distributions import IntDistribution

    from runner.states import WORKER_ATTR

    space = {"a": IntDistribution(1, 9)}
    worker = Database(db.url, single_connection=True)
    other = Database(db.url)
    try:
        optuna.create_study(storage=other.optuna_storage("snap"), study_name="snap")
        mine = worker.optuna_storage("snap")
        mine.snapshot_reads = True
        mine.skip_others_metrics(["fail_reason"])
        study = optuna.load_study(study_name="snap", storage=mine)
        theirs = optuna.load_study(study_name="snap", storage=other.optuna_storage("snap"))
        their_trial = theirs.ask(fixed_distributions=space)
        other.optuna_storage("snap").set_trial_attrs(their_trial._trial_id, {"sharpe": 1.0, "fail_reason": "kept"},
                                                     {WORKER_ATTR: "host-1", "constraints:c": 0.5})
        theirs.tell(their_trial, 1.0)
        assert len(study.trials) == 0  # not read yet: the snapshot is the last refresh's
        assert mine.refresh() is None  # no control row for a bare Optuna study
        # Another process's metrics are skipped, the attributes asked for kept.
        assert [(t.state, t.value, t.user_attrs) for t in study.trials] == [(TrialState.COMPLETE, 1.0, {"fail_reason": "kept"})]
        # and its worker mark, which only the app reads; its constraints stay (the sampler's)
        assert study.trials[0].system_attrs == {"constraints:c": 0.5}
        assert theirs.trials[0].system_attrs[WORKER_ATTR] == "host-1"  # a reader in full has it
        trial = study.ask(fixed_distributions=space)
        mine.flush()
        mine.queue_trial_attrs(trial._trial_id, {"sharpe": 2.0})
        study.tell(trial, 2.0)
        own = study.trials[-1]  # our own writes are in the replay without a refresh, in full
        assert (own.state, own.value, own.user_attrs) == (TrialState.COMPLETE, 2.0, {"sharpe": 2.0})
        theirs.tell(theirs.ask(fixed_distributions=space), 3.0)
        mine.refresh()  # skipped records still count: what follows them replays in place
        assert [(t.number, t.state, t.value) for t in theirs.trials] == [
            (t.number, t.state, t.value) for t in study.trials]
        assert study.trials[1].user_attrs == {"sharpe": 2.0}
    finally:
        worker.dispose()
        other.dispose()


def test_the_refresh_after_a_tell_uses_what_the_tell_read_once(db, tmp_path):
    """The worker loop's check between trials costs no round trip after a tell: the
    tell's statement read the study's new records and its control state, and a pause
    set before the tell is seen; the next refresh reads again."""
    from optuna.distributions import IntDistribution

    from runner import control
    from runner.config import load_config
    from runner.states import Control

    cfg = load_config(small_config(tmp_path, name="aftertell"))
    control.register_study(db, cfg, "AAA", reset_control=True)
    name = cfg.study_name("AAA")
    space = {"a": IntDistribution(1, 9)}
    worker = Database(db.url, single_connection=True)
    try:
        optuna.create_study(storage=db.optuna_storage(name), study_name=name)
        mine = worker.optuna_storage(name)
        mine.snapshot_reads = True
        study = optuna.load_study(study_name=name, storage=mine)
        statements = []
        execute = mine.journal._execute
        mine.journal._execute = lambda *a, **k: statements.append(a[0]) or execute(*a, **k)
        assert mine.refresh(after_write=True) == "running"  # nothing written yet: it reads
        assert len(statements) == 1
        theirs = optuna.load_study(study_name=name, storage=db.optuna_storage(name))
        theirs.tell(theirs.ask(fixed_distributions=space), 1.0)
        trial = study.ask(fixed_distributions=space)
        mine.flush()
        control.set_control(db, [name], Control.PAUSED)
        study.tell(trial, 2.0)
        statements.clear()
        assert mine.refresh(after_write=True) == "paused"
        assert statements == []
        assert sorted(t.value for t in study.trials) == [1.0, 2.0]
        control.set_control(db, [name], Control.RUNNING)
        assert mine.refresh(after_write=True) == "running"  # once only: this one reads
        assert len(statements) == 1
    finally:
        worker.dispose()


def test_telling_a_trial_another_process_failed_raises_once_and_the_replay_stays_whole(db):
    """The reaper failed our trial while we ran it (an outage): the tell must say so (the
    worker then records its result as a trial of its own), and every record after it —
    our queued metrics included — must still replay, once."""
    from optuna.distributions import IntDistribution
    from optuna.exceptions import UpdateFinishedTrialError

    space = {"a": IntDistribution(1, 9)}
    worker, reaper = Database(db.url, single_connection=True), Database(db.url)
    try:
        optuna.create_study(storage=reaper.optuna_storage("reaped"), study_name="reaped")
        mine = worker.optuna_storage("reaped")
        mine.snapshot_reads = True
        study = optuna.load_study(study_name="reaped", storage=mine)
        trial = study.ask(fixed_distributions=space)
        mine.flush()
        theirs = reaper.optuna_storage("reaped")
        theirs.set_trial_attrs(trial._trial_id, {"fail_reason": "worker lost (no heartbeat)"})
        theirs.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        mine.queue_trial_attrs(trial._trial_id, {f"m{i}": float(i) for i in range(5)})
        with pytest.raises(UpdateFinishedTrialError):
            study.tell(trial, 1.0)
        mine.refresh()  # nothing of the rejected tell is left to trip over
        study.tell(study.ask(fixed_distributions=space), 2.0)
        fresh = optuna.load_study(study_name="reaped", storage=reaper.optuna_storage("reaped"))
        assert [(t.state, t.value, t.user_attrs) for t in study.trials] == [
            (t.state, t.value, t.user_attrs) for t in fresh.trials]
        assert [(t.state, t.value) for t in study.trials] == [(TrialState.FAIL, None), (TrialState.COMPLETE, 2.0)]
    finally:
        worker.dispose()
        reaper.dispose()


def test_opening_a_current_database_takes_no_table_lock(db, db_url):
    """Every process opens the database; on a current schema that must not take the
    ACCESS EXCLUSIVE locks of the schema's DDL, which waited behind (and deadlocked
    with) other processes' reads."""
    from runner.storage.connection import libpq_args

    reader = psycopg2.connect(db_url)
    try:
        with reader.cursor() as cur:  # a read in an open transaction holds ACCESS SHARE locks
            cur.execute("SELECT count(*) FROM tune_studies, tune_workers")
        other = Database(db_url, connect_args={**libpq_args(), "options": "-c lock_timeout=1000"})
        try:
            other.ensure_schema()  # would fail after 1 s on a lock if it ran the DDL
        finally:
            other.dispose()
    finally:
        reader.close()


def test_a_long_journal_is_read_in_pages(db, monkeypatch):
    """Catching up on a long history is several bounded queries, not one unbounded one."""
    backend = PostgresJournalBackend(db.url, "paged")
    backend.append_logs([{"op_code": 0, "n": i} for i in range(25)])
    monkeypatch.setattr(PostgresJournalBackend, "READ_PAGE", 10)
    queries = []
    real = backend._execute
    monkeypatch.setattr(backend, "_execute", lambda *a, **k: queries.append(a) or real(*a, **k))
    assert [r["n"] for r in backend.read_logs(3)] == list(range(3, 25))
    assert len(queries) == 3  # 10 + 10 + 2
    assert [r["n"] for r in backend.read_logs(20)] == list(range(20, 25))
    backend.close()


def test_kept_results_go_only_to_their_database_and_a_bad_one_is_set_aside(db, tmp_path, monkeypatch):
    from runner import spool

    monkeypatch.setenv("TUNE_HOME", str(tmp_path / "home"))
    optuna.create_study(storage=db.optuna_storage("p-AAA"), study_name="p-AAA")
    dead = 2**22 + 7  # no such process: the records were left by workers that exited
    elsewhere = spool._write({"kind": "exit", "database": "another-database", "study": "p-AAA", "worker": "w1",
                              "pid": dead, "reason": "stopped", "status": "exited"})
    poison = spool._write({
        "kind": "result", "database": db.identity, "study": "p-AAA", "worker": "w2", "pid": dead,
        "trial_id": 99, "number": 99, "state": "COMPLETE", "values": [1.0], "params": {"x": 5},
        "distributions": {"x": '{"name": "IntDistribution", "attributes": {"low": 0, "high": 3, "step": 1, "log": false}}'},
        "user_attrs": {}, "system_attrs": {}, "claim_key": None,
    })
    assert spool.deliver_all(db) == 1  # the poison: reported and set aside, not retried
    assert elsewhere.exists()  # another database's record waits for that database
    assert not poison.exists() and (spool.spool_dir() / "undelivered" / poison.name).exists()
    assert spool.deliver_all(db) == 0  # nothing left to crash the next command


# ------------------------------------------------- one connection per worker


def _connections(url: str, application_name: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_worker_holds_one_connection(db_url, tmp_path):
    with running_worker(ledger_config(tmp_path, "onecon", target=6), worker_env(tmp_path, db_url, sleep=0.4)) as worker:
        # Trials done and one running: journal, control tables and heartbeat all in use by now.
        wait_for(lambda: count(found := trials(db_url, "onecon-AAA"), TrialState.COMPLETE) >= 2
                 and count(found, TrialState.RUNNING) == 1, message="2 trials done, one running")
        assert _connections(db_url, f"tune-worker {worker.pid}") == 1
        assert worker.wait(60) == 0
    assert count(trials(db_url, "onecon-AAA"), TrialState.COMPLETE) == 6


def _kill_backend_of(db: Database, url: str) -> int:
    with db.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    killer = psycopg2.connect(url)
    try:
        killer.autocommit = True
        with killer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        killer.close()
    return pid


def test_a_one_connection_database_reconnects_after_its_connection_is_killed(db_url):
    db = Database(db_url, single_connection=True)
    db.ensure_schema()
    try:
        study = optuna.create_study(storage=db.optuna_storage("kill"), study_name="kill")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        _kill_backend_of(db, db_url)
        # The journal finds the connection dead, discards it and retries on a new one...
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert len(study.trials) == 4
        # ...and a control-plane checkout pings it first, and connects afresh.
        killed = _kill_backend_of(db, db_url)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != killed
    finally:
        db.dispose()


def test_importances_from_before_their_direction_was_fixed_are_dropped_once(db):
    """Before schema 14, a maximised objective's importances ranked what makes it worst."""
    import sqlalchemy as sa

    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tune_importances (study, claimed, trials, body, computed_at)"
                             " VALUES ('s', 20, 20, '{\"x\": 1.0}', now())"))
        conn.execute(sa.text("INSERT INTO tune_reports (study, trials, body)"
                             " VALUES ('s', 20, '{\"importances\": {\"x\": 1.0}, \"best\": null}')"))
        conn.execute(sa.text("UPDATE tune_schema_version SET version = 13"))
    db.ensure_schema()
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tune_importances")).scalar() == 0
        body = conn.execute(sa.text("SELECT body FROM tune_reports WHERE study = 's'")).scalar()
    assert "n/a" in body["importances"] and body["best"] is None
    with db.engine.begin() as conn:  # at version 14 on, what is computed stays
        conn.execute(sa.text("INSERT INTO tune_importances (study, claimed) VALUES ('t', 20)"))
    db.ensure_schema()
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tune_importances")).scalar() == 1
