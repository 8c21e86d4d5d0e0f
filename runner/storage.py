"""Where studies live: PostgreSQL, embedded by default or external by URL.

Everything that knows how trials are stored is in this module. Callers get

* :func:`resolve_url` — which database (``--storage``, ``TUNE_STORAGE_URL`` or
  the embedded server), and :func:`mask_url` to show it without its password;
* :class:`Database` — one handle per process: the control-plane tables
  (:data:`SCHEMA`) through SQLAlchemy, and an Optuna storage per study through
  :meth:`Database.optuna_storage`.

Trials are stored as an Optuna *journal* in a PostgreSQL table, one stream of
log records per study (:class:`PostgresJournalBackend`), replayed by Optuna's
own :class:`~optuna.storages.JournalStorage`. Measured on this kind of machine,
the worker's overhead per trial is about a quarter of Optuna's RDBStorage's
(``benchmarks/bench_overhead.py``: 12 against 43 ms), and a reader can follow a study by reading
only the records it has not seen yet.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
import psycopg2
import psycopg2.extras
import sqlalchemy as sa
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from sqlalchemy.engine import make_url

from . import connection, embedded
from .connection import DatabaseAway, StorageError, libpq_args
from .embedded import ENV_HOME, EmbeddedError, HomeError, tune_home

log = logging.getLogger(__name__)

ENV_URL = "TUNE_STORAGE_URL"
EMBEDDED_DATABASE = embedded.DATABASE

__all__ = ["ENV_HOME", "ENV_URL", "BadStorageURL", "Database", "DatabaseAway", "StorageError",
           "mask_url", "resolve_url", "tune_home"]


class BadStorageURL(StorageError):
    """The storage URL itself is wrong (bad input: exit 2)."""


# --------------------------------------------------------------------------- URLs

SECRET_QUERY_KEYS = ("password", "sslpassword")
_SECRET_IN_QUERY = re.compile(r"(?i)([?&](?:%s)=)[^&#]*" % "|".join(SECRET_QUERY_KEYS))


def mask_url(url: str) -> str:
    """The URL with its password — in the user part or the query — shown as ``***``.
    Never print a URL otherwise.

    Works on the text itself, not on a parse, so that a malformed URL is masked
    too: whatever lies between ``scheme://user:`` and the last ``@`` (a password
    may hold an unescaped ``@``) is hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unparseable storage URL>" if "@" in url or ":" in url else url
    authority_end = len(rest)
    for delimiter in "?#":
        if delimiter in rest:
            authority_end = min(authority_end, rest.index(delimiter))
    at = rest.rfind("@", 0, authority_end)
    if at < 0:  # an "@" only after "?" or "#": treat everything up to the last "@" as the user part
        at = rest.rfind("@")
    if at >= 0:
        user, colon, _secret = rest[:at].partition(":")
        rest = f"{user}{':***' if colon and _secret else ''}{rest[at:]}"
    masked = f"{scheme}://{rest}"
    return _SECRET_IN_QUERY.sub(lambda m: m.group(1) + "***", masked)


def _libpq_url(url: str) -> str:
    """Check a storage URL; return it as libpq wants it (``postgresql://…``)."""
    scheme, sep, rest = url.partition("://")
    if sep and rest.split("?", 1)[0].count("@") > 1:
        raise BadStorageURL(
            f"{mask_url(url)}: the user or password contains '@': percent-encode it as %40"
        )
    try:
        u = make_url(url)
        u.port  # noqa: B018 - parsing the port raises for "host:notaport"
    except Exception:
        raise BadStorageURL(f"{mask_url(url)}: not a valid storage URL (postgresql://user:password@host:port/database)") from None
    if u.get_backend_name() not in ("postgresql", "postgres"):
        raise BadStorageURL(f"{mask_url(url)}: only PostgreSQL URLs are supported (postgresql://…)")
    if not u.host and not u.query.get("host"):
        # libpq would silently pick its defaults (the local system server): say which one is meant.
        raise BadStorageURL(
            f"{mask_url(url)}: names no server; give a host (postgresql://user@HOST:5432/db) "
            "or a socket directory (postgresql://user@/db?host=/var/run/postgresql)"
        )
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def resolve_url(cli_url: str | None = None) -> str:
    """The storage URL in force: ``--storage``, else ``TUNE_STORAGE_URL``, else embedded."""
    url = cli_url or os.environ.get(ENV_URL)
    if url:
        return _libpq_url(url)
    return embedded_url()


def embedded_url() -> str:
    """Start (or attach to) the user's embedded PostgreSQL and return its URL
    (see :mod:`runner.embedded`: a private socket, no TCP)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            return embedded.ensure_running()
        except HomeError:
            raise
        except EmbeddedError as exc:
            raise StorageError(str(exc)) from None
        except Exception as exc:
            raise StorageError(f"could not start the embedded PostgreSQL: {type(exc).__name__}: {exc}") from None


def stop_embedded() -> bool:
    """Stop the embedded server if it runs; True if it was running."""
    try:
        return embedded.stop()
    except EmbeddedError as exc:
        raise StorageError(str(exc)) from None


# ------------------------------------------------------------------- schema

SCHEMA_LOCK = 0x74756E65  # "tune": serialises CREATE TABLE IF NOT EXISTS across processes

SCHEMA = """
CREATE TABLE IF NOT EXISTS tune_journal (
    stream  text   NOT NULL,
    seq     bigint NOT NULL,
    body    jsonb  NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS tune_streams (
    stream     text PRIMARY KEY,
    next_seq   bigint NOT NULL DEFAULT 0,
    generation text NOT NULL DEFAULT md5(random()::text)  -- a new one when a study starts fresh
);
ALTER TABLE tune_streams ADD COLUMN IF NOT EXISTS generation text NOT NULL DEFAULT md5(random()::text);
CREATE TABLE IF NOT EXISTS tune_studies (
    name            text PRIMARY KEY,
    run_name        text NOT NULL,
    symbol          text NOT NULL,
    config_path     text,
    metric          text NOT NULL,
    direction       text NOT NULL,
    target_trials   integer NOT NULL,
    max_attempts    integer NOT NULL,
    desired_workers integer NOT NULL DEFAULT 1,
    grace_seconds   double precision NOT NULL DEFAULT 10,
    control         text NOT NULL DEFAULT 'running',
    ended_reason    text,
    next_worker_index integer NOT NULL DEFAULT 0,  -- each worker ever started gets its own (its seed)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS tune_workers (
    id           text PRIMARY KEY,
    study        text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'starting',
    trial_id     integer,
    trials_done  integer NOT NULL DEFAULT 0,
    exit_reason  text,
    worker_index integer NOT NULL DEFAULT 0
);
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS next_worker_index integer NOT NULL DEFAULT 0;
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS worker_index integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tune_workers_study ON tune_workers (study, status);
CREATE TABLE IF NOT EXISTS tune_events (
    id      bigserial PRIMARY KEY,
    study   text NOT NULL,
    worker  text,
    at      timestamptz NOT NULL DEFAULT now(),
    level   text NOT NULL,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS tune_events_study ON tune_events (study, id);
CREATE TABLE IF NOT EXISTS tune_param_claims (
    study        text NOT NULL,
    key          text NOT NULL,
    trial_number integer NOT NULL,
    worker       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study, key)
);
"""


# ------------------------------------------------------------------ journal


class PostgresJournalBackend(BaseJournalBackend):
    """An Optuna journal stored as rows of ``tune_journal``, one stream per study.

    Appends take the next sequence numbers from ``tune_streams`` in the same
    statement that inserts the records. The row lock on the stream's head is
    held until commit, so appends to a stream are serialised and a reader that
    sees record n has already seen every record before it: no holes, ever.
    """

    def __init__(self, url: str, stream: str, connect_args: dict[str, Any] | None = None) -> None:
        self._url = url
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

        def attempt() -> list:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                with self._conn.cursor() as cur:
                    cur.execute(sql, args)
                    if expect_rows is not None and cur.rowcount != expect_rows:
                        # The stream's head row is gone or of another generation: the study
                        # was deleted (a fresh start) under this process. Writing on would
                        # corrupt the new one.
                        raise self._gone()
                    return cur.fetchall() if fetch else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._drop_connection()
                raise

        result = connection.retry(
            attempt, transient=(psycopg2.OperationalError, psycopg2.InterfaceError), url=self._url,
            what="the database", on_retry=on_retry,
        )
        return [] if result is None else result

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        # The head row comes with the records: no row, or another generation, means
        # the study was deleted under us (the records would belong to another study).
        rows = self._execute(
            """
            SELECT h.generation, j.body FROM tune_streams h
            LEFT JOIN LATERAL (
                SELECT seq, body FROM tune_journal WHERE stream = h.stream AND seq >= %s ORDER BY seq
            ) j ON true
            WHERE h.stream = %s ORDER BY j.seq
            """,
            (log_number_from, self._stream),
            fetch=True,
        )
        if not rows or rows[0][0] != self._generation:
            raise self._gone()
        return [body for _, body in rows if body is not None]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        # A token lets a retry after a lost connection tell whether the first
        # attempt committed, so a record is never appended twice.
        token = uuid.uuid4().hex
        bodies = [json.dumps({**entry, "_t": token}) for entry in logs]

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

    def __init__(self, log_storage: BaseJournalBackend) -> None:
        self._pending: list[dict[str, Any]] = []  # before super(): its __init__ syncs
        super().__init__(log_storage)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        from optuna.distributions import distribution_to_json
        from optuna.storages.journal._storage import JournalOperation

        with self._thread_lock:
            self._pending.append({
                "op_code": JournalOperation.SET_TRIAL_PARAM, "worker_id": self._replay_result.worker_id,
                "trial_id": trial_id, "param_name": param_name,
                "param_value_internal": param_value_internal, "distribution": distribution_to_json(distribution),
            })

    def read_control(self) -> str | None:
        with self._thread_lock:  # the connection is shared with the heartbeat thread's reads
            return self._backend.read_control()

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
        from optuna.storages.journal._storage import JournalOperation

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


# ----------------------------------------------------------------- database

def retry_on_disconnect(fn):
    """Retry a control-plane call while the database is away (a restart, a network blip),
    for this process's patience (:mod:`runner.connection`).

    Each call runs in its own transaction, so running it again after a lost
    connection is safe.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        db = args[0] if args and isinstance(args[0], Database) else getattr(args[0], "db", None) if args else None
        # Connection lost, server shutting down, serialization failure: all leave
        # the transaction rolled back, so a rerun is safe.
        return connection.retry(
            lambda: fn(*args, **kwargs), transient=(sa.exc.OperationalError, sa.exc.InterfaceError),
            url=getattr(db, "url", None),
        )

    return wrapper


class Database:
    """One process's handle on the storage: control tables and per-study journals."""

    def __init__(self, url: str, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        sa_url = make_url(url).set(drivername="postgresql+psycopg2")
        # pool_pre_ping: a connection that died with a server restart is replaced, not used.
        self.connect_args = connect_args if connect_args is not None else libpq_args()
        self.engine = sa.create_engine(
            sa_url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args=self.connect_args
        )
        self._storages: dict[str, TuneJournalStorage] = {}

    @classmethod
    def open(cls, cli_url: str | None = None) -> "Database":
        """Resolve the URL, connect and make sure the schema exists."""
        url = resolve_url(cli_url)
        db = cls(url)
        db.ensure_schema()
        return db

    def ensure_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
                conn.exec_driver_sql(SCHEMA)
        except sa.exc.OperationalError as exc:
            if embedded.revive(self.url):  # our embedded server had died: it is back now
                return self.ensure_schema()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StorageError(f"cannot connect to {self.masked_url}: {reason}") from None
        except sa.exc.ProgrammingError as exc:
            if isinstance(exc.orig, psycopg2.errors.InsufficientPrivilege):
                raise StorageError(
                    f"{self.masked_url}: the database role may not create tables; it needs the CREATE "
                    "privilege on the database's public schema (GRANT CREATE ON SCHEMA public TO <role>), "
                    "or an administrator runs any tune command once to create them"
                ) from None
            raise

    def optuna_storage(self, study: str) -> TuneJournalStorage:
        """The Optuna storage holding ``study`` (cached: replays only new records)."""
        if study not in self._storages:
            self._storages[study] = TuneJournalStorage(PostgresJournalBackend(self.url, study, self.connect_args))
        return self._storages[study]

    def read_journals(self, offsets: dict[str, int], limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """New journal records of many studies in one query: ``{study: records from offset}``,
        at most ``limit`` per study.

        For followers (the app, ``tune status``) that replay records themselves;
        the cost depends on the number of new records only.
        """
        if not offsets:
            return {}
        names, starts = zip(*offsets.items())
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    """
                    SELECT o.stream, j.body
                    FROM unnest(CAST(:names AS text[]), CAST(:starts AS bigint[])) AS o(stream, first)
                    CROSS JOIN LATERAL (
                        SELECT seq, body FROM tune_journal
                        WHERE stream = o.stream AND seq >= o.first
                        ORDER BY seq LIMIT :limit
                        OFFSET 0  -- keeps the planner from flattening this into a scan of the whole table
                    ) AS j
                    ORDER BY o.stream, j.seq
                    """
                ),
                {"names": list(names), "starts": list(starts), "limit": limit},
            ).all()
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for stream, body in rows:
            out[stream].append(body)
        return out

    def forget_storage(self, study: str) -> None:
        storage = self._storages.pop(study, None)
        if storage is not None:
            storage._backend.close()

    def delete_study_records(self, study: str) -> None:
        """Remove every trace of a study (a fresh start): journal, control row, workers, events."""
        self.forget_storage(study)
        with self.engine.begin() as conn:
            for table, column in (
                ("tune_journal", "stream"), ("tune_streams", "stream"), ("tune_studies", "name"),
                ("tune_workers", "study"), ("tune_events", "study"), ("tune_param_claims", "study"),
            ):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = :s"), {"s": study})

    def dispose(self) -> None:
        for study in list(self._storages):
            self.forget_storage(study)
        self.engine.dispose()


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; our own status output replaces that."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
