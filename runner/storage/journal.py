"""Trials as an Optuna journal in PostgreSQL, one stream of records per study.

:class:`PostgresJournalBackend` appends and reads records (Optuna's public
``BaseJournalBackend``); :class:`TuneJournalStorage` is Optuna's
``JournalStorage`` with fewer round trips per trial.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg2
import sqlalchemy as sa
from optuna.distributions import distribution_to_json
from optuna.storages.journal import BaseJournalBackend, JournalStorage

from ..text import storable
from . import connection
from ._optuna_private import JournalOperation
from .connection import StorageError, libpq_args


def _storable(value: Any) -> Any:
    """``value`` with every string as PostgreSQL's jsonb accepts it: NUL and lone
    surrogates (which a backtest's metric names or an exception's message can hold)
    become visible escapes. A refused record would fail the worker, not the trial."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _record_text(entry: dict[str, Any]) -> str:
    text = json.dumps(entry)
    # json.dumps writes NUL as \u0000 and surrogates as \udXXX: only then look closer.
    if "\\u0000" in text or "\\ud" in text:
        text = json.dumps(_storable(entry))
    return text


class _JournalCheckout(threading.local):
    active = False  # this thread is checking out the shared connection for a journal statement


journal_checkout = _JournalCheckout()


class PostgresJournalBackend(BaseJournalBackend):
    """An Optuna journal stored as rows of ``tune_journal``, one stream per study.

    Appends take the next sequence numbers from ``tune_streams`` in the same
    statement that inserts the records. The row lock on the stream's head is
    held until commit, so appends to a stream are serialised and a reader that
    sees record n has already seen every record before it: no holes, ever.
    """

    def __init__(self, url: str, stream: str, connect_args: dict[str, Any] | None = None, engine: Any = None) -> None:
        self._url = url
        # engine: a one-connection SQLAlchemy engine (a worker's, see Database) whose
        # connection each statement borrows; None: a connection of our own.
        self._engine = engine
        self._stream = stream
        self._connect_args = connect_args if connect_args is not None else libpq_args("tune-journal")
        self._conn: Any = None
        self._execute("INSERT INTO tune_streams (stream) VALUES (%s) ON CONFLICT DO NOTHING", (stream,))
        # The stream's generation: if the study is deleted and started fresh under
        # this process, its reads and writes fail instead of mixing two studies.
        self._generation = self._execute(
            "SELECT generation FROM tune_streams WHERE stream = %s", (stream,), fetch=True
        )[0][0]

    def _connect(self) -> Any:
        conn = psycopg2.connect(self._url, **self._connect_args)
        conn.autocommit = True
        return conn

    def _gone(self) -> StorageError:
        return StorageError(f"study {self._stream!r} was deleted while this process used it")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _execute(self, sql: str, args, fetch: bool = False, on_retry=None, expect_rows: int | None = None) -> list:
        """Run one statement, reconnecting while the server is away (restart, network)."""

        def run(conn) -> list:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                if expect_rows is not None and cur.rowcount != expect_rows:
                    # The stream's head row is gone or of another generation: the study
                    # was deleted (a fresh start) under this process. Writing on would
                    # corrupt the new one.
                    raise self._gone()
                return cur.fetchall() if fetch else []

        def attempt() -> list:
            if self._engine is not None:
                return self._on_shared_connection(run)
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                return run(self._conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._drop_connection()
                raise

        result = connection.retry(
            attempt, transient=(psycopg2.OperationalError, psycopg2.InterfaceError), url=self._url,
            on_retry=on_retry,
        )
        return [] if result is None else result

    def _on_shared_connection(self, run) -> list:
        """``run`` on the engine's one connection, in autocommit (one statement, one round
        trip: no BEGIN/COMMIT), given back as found; a dead connection is discarded."""
        journal_checkout.active = True
        try:
            pooled = self._engine.raw_connection()
        except sa.exc.TimeoutError as exc:
            raise psycopg2.OperationalError(f"waited too long for this process's connection: {exc}") from None
        finally:
            journal_checkout.active = False
        try:
            conn = pooled.driver_connection
            conn.autocommit = True
            try:
                return run(conn)
            finally:
                if not conn.closed:
                    conn.autocommit = False
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            pooled.invalidate()
            raise
        finally:
            pooled.close()  # back to the pool

    # Records per query when catching up: each round trip stays well inside its
    # deadline (runner/storage/connection.py) however long the history is.
    READ_PAGE = 20_000

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        while True:
            # The head row comes with the records: no row, or another generation, means
            # the study was deleted under us (the records would belong to another study).
            rows = self._execute(
                """
                SELECT h.generation, j.body FROM tune_streams h
                LEFT JOIN LATERAL (
                    SELECT seq, body FROM tune_journal WHERE stream = h.stream AND seq >= %s
                    ORDER BY seq LIMIT %s
                ) j ON true
                WHERE h.stream = %s ORDER BY j.seq
                """,
                (log_number_from + len(records), self.READ_PAGE, self._stream),
                fetch=True,
            )
            if not rows or rows[0][0] != self._generation:
                raise self._gone()
            page = [body for _, body in rows if body is not None]
            records += page
            if len(page) < self.READ_PAGE:
                return records

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        # A token lets a retry after a lost connection tell whether the first
        # attempt committed, so a record is never appended twice.
        token = uuid.uuid4().hex
        bodies = [_record_text({**entry, "_t": token}) for entry in logs]

        def already_written() -> bool:
            rows = self._execute(
                "SELECT 1 FROM tune_journal WHERE stream = %s AND seq >= "
                "(SELECT next_seq - 1000 FROM tune_streams WHERE stream = %s) AND body->>'_t' = %s LIMIT 1",
                (self._stream, self._stream, token),
                fetch=True,
            )
            return bool(rows)

        self._execute(
            """
            WITH head AS (
                UPDATE tune_streams SET next_seq = next_seq + %(n)s
                WHERE stream = %(s)s AND generation = %(g)s RETURNING next_seq - %(n)s AS first
            )
            INSERT INTO tune_journal (stream, seq, body)
            SELECT %(s)s, head.first + b.ord - 1, b.body::jsonb
            FROM head, unnest(%(bodies)s::text[]) WITH ORDINALITY AS b(body, ord)
            """,
            {"n": len(bodies), "s": self._stream, "g": self._generation, "bodies": bodies},
            on_retry=already_written,
            expect_rows=len(bodies),
        )

    def read_control(self) -> str | None:
        """The study's control state (running/paused/stopped) on this connection: one round
        trip, none of the pool's extra ones. None if the study has no control row."""
        rows = self._execute("SELECT control FROM tune_studies WHERE name = %s", (self._stream,), fetch=True)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


class TuneJournalStorage(JournalStorage):
    """Optuna's JournalStorage with fewer round trips per trial.

    * Parameters are written lazily: ``set_trial_param`` (called once per
      parameter by ``study.ask``) queues its record, and the queue goes out with
      the next journal write or read, or :meth:`flush` — one append for all of a
      trial's parameters instead of an append and a read each.
    * ``set_trial_attrs`` stores many user and system attributes (metrics,
      constraint values) as one append and one read.

    The records are exactly Optuna's, in the same order, so any JournalStorage
    replays them. Only the moment of writing changes; a caller that wants other
    processes to see the parameters at once (the worker, after ask: constant
    liar) calls :meth:`flush`.
    """

    def __init__(self, log_storage: PostgresJournalBackend) -> None:
        self._pending: list[dict[str, Any]] = []  # before super(): its __init__ syncs
        self.journal = log_storage  # ours, typed (JournalStorage keeps it as a BaseJournalBackend)
        super().__init__(log_storage)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        with self._thread_lock:
            self._pending.append({
                "op_code": JournalOperation.SET_TRIAL_PARAM, "worker_id": self._replay_result.worker_id,
                "trial_id": trial_id, "param_name": param_name,
                "param_value_internal": param_value_internal, "distribution": distribution_to_json(distribution),
            })

    def read_control(self) -> str | None:
        with self._thread_lock:  # the connection is shared with the heartbeat thread's reads
            return self.journal.read_control()

    def flush(self) -> None:
        """Write queued records now (and read what others wrote)."""
        with self._thread_lock:
            self._sync_with_backend()

    def _append(self, records: list[dict[str, Any]]) -> None:
        """Queued records first, then these; the queue empties only once written."""
        self._backend.append_logs(self._pending + records)
        self._pending = []

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        self._append([{"op_code": op_code, "worker_id": self._replay_result.worker_id, **extra_fields}])

    def _sync_with_backend(self) -> None:
        if self._pending:
            self._append([])
        super()._sync_with_backend()

    def set_trial_attrs(self, trial_id: int, user: dict[str, Any], system: dict[str, Any] | None = None) -> None:
        """User and system attributes of a trial in one append (one record each, as Optuna writes them)."""
        with self._thread_lock:
            worker_id = self._replay_result.worker_id
            records = [
                {"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker_id,
                 "trial_id": trial_id, "user_attr": {key: value}}
                for key, value in user.items()
            ] + [
                {"op_code": JournalOperation.SET_TRIAL_SYSTEM_ATTR, "worker_id": worker_id,
                 "trial_id": trial_id, "system_attr": {key: value}}
                for key, value in (system or {}).items()
            ]
            self._append(records)
            super()._sync_with_backend()
