"""The Postgres journal: ordered, hole-free, shared by processes (URLs and retries: tests/unit/test_storage.py)."""

from __future__ import annotations

import multiprocessing

import optuna
import psycopg2
import pytest
from optuna.trial import TrialState

from runner.storage import Database, PostgresJournalBackend, StorageError
from tests.helpers import count, ledger_config, running_worker, trials, wait_for, worker_env


def test_journal_appends_in_order_and_reads_from_an_offset(db):
    backend = PostgresJournalBackend(db.url, "s1")
    backend.append_logs([{"op_code": 0, "n": 0}, {"op_code": 0, "n": 1}])
    backend.append_logs([{"op_code": 0, "n": 2}])
    other = PostgresJournalBackend(db.url, "s2")
    other.append_logs([{"op_code": 0, "n": 99}])
    assert [r["n"] for r in backend.read_logs(0)] == [0, 1, 2]
    assert [r["n"] for r in backend.read_logs(2)] == [2]
    assert [r["n"] for r in other.read_logs(0)] == [99]


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
    db.delete_study_records("gone")
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
    db.delete_study_records("again")
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
    real = storage._backend.append_logs
    calls = []

    def failing_once(logs):
        calls.append(len(logs))
        if len(calls) == 1:
            raise StorageError("database unreachable")
        return real(logs)

    monkeypatch.setattr(storage._backend, "append_logs", failing_once)
    with pytest.raises(StorageError):
        storage.flush()
    storage.flush()  # the queue was kept: written now
    study.tell(trial, 1.0)
    assert study.trials[0].params == {"a": trial.params["a"]}


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
