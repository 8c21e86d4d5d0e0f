"""One process's handle on the storage: the control-plane tables through SQLAlchemy,
and an Optuna storage per study."""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

import optuna
import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..states import WORKER_ATTR
from ..text import first_line
from . import connection, embedded
from .connection import StorageError, libpq_args
from .journal import PostgresJournalBackend, TuneJournalStorage, journal_checkout
from .schema import SCHEMA, SCHEMA_LOCK, SCHEMA_VERSION, is_current
from .urls import mask_url, resolve_url


def retry_on_disconnect(fn):
    """Retry a control-plane call while the database is away (a restart, a network blip),
    for this process's patience (:mod:`runner.connection`).

    Each call runs in its own transaction, so running it again after a lost
    connection is safe.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # The database is the first argument, or the first argument's ``db`` (a method).
        db = args[0] if args and isinstance(args[0], Database) else getattr(args[0] if args else None, "db", None)
        # Connection lost, server shutting down, serialization failure: all leave
        # the transaction rolled back, so a rerun is safe.
        return connection.retry(
            lambda: fn(*args, **kwargs), transient=(sa.exc.OperationalError, sa.exc.InterfaceError),
            url=getattr(db, "url", None),
        )

    return wrapper


# How long a thread waits for a one-connection process's connection (see Database):
# longer than one round trip may take (runner/storage/connection.py), so the wait
# ends by the holder's round trip ending, not by this.
SHARED_CONNECTION_WAIT = 120.0


class Database:
    """One process's handle on the storage: control tables and per-study journals.

    ``single_connection`` (workers): one connection to PostgreSQL for everything —
    the Optuna journal, control tables and the heartbeat thread take turns on it —
    so that a PostgreSQL with the default max_connections = 100 serves about 95
    workers (docs/ARCHITECTURE.md, "Connections"). A thread waits while another uses
    it (one round trip); nothing may hold it while asking for it again.
    """

    def __init__(self, url: str, connect_args: dict[str, Any] | None = None, single_connection: bool = False) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        sa_url = make_url(url).set(drivername="postgresql+psycopg2")
        self.connect_args = connect_args if connect_args is not None else libpq_args()
        self.single_connection = single_connection
        # pool_pre_ping: a connection that died with a server restart is replaced, not used;
        # a one-connection pool pings in _ping_unless_journal instead.
        pool: dict[str, Any] = (
            {"pool_size": 1, "max_overflow": 0, "pool_timeout": SHARED_CONNECTION_WAIT} if single_connection
            else {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4}
        )
        self.engine = sa.create_engine(sa_url, connect_args=self.connect_args, **pool)
        if single_connection:
            sa.event.listen(self.engine, "checkout", _ping_unless_journal)
        self._storages: dict[str, TuneJournalStorage] = {}

    @classmethod
    def open(cls, cli_url: str | None = None, single_connection: bool = False,
             application_name: str = "tune") -> Database:
        """Resolve the URL, connect and make sure the schema exists. ``application_name``:
        what pg_stat_activity shows for our connections."""
        url = resolve_url(cli_url)
        db = cls(url, connect_args=libpq_args(application_name), single_connection=single_connection)
        db.ensure_schema()
        return db

    def ensure_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                if is_current(conn):
                    return
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
                if is_current(conn):
                    return  # another process did it while we waited
                conn.exec_driver_sql(SCHEMA)
                conn.execute(sa.text("DELETE FROM tune_schema_version"))
                conn.execute(sa.text("INSERT INTO tune_schema_version VALUES (:v)"), {"v": SCHEMA_VERSION})
        except sa.exc.OperationalError as exc:
            if embedded.revive(self.url):  # our embedded server had died: it is back now
                return self.ensure_schema()
            raise StorageError(f"cannot connect to {self.masked_url}: {first_line(exc)}") from None
        except sa.exc.ProgrammingError as exc:
            if isinstance(exc.orig, psycopg2.errors.InsufficientPrivilege):
                raise StorageError(
                    f"{self.masked_url}: the database role may not create tables; it needs the CREATE "
                    "privilege on the database's public schema (GRANT CREATE ON SCHEMA public TO <role>), "
                    "or an administrator runs any tune command once to create them"
                ) from None
            raise

    @functools.cached_property
    def identity(self) -> str:
        """This database's own id (``tune_database``): the same from every host and URL."""
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT id FROM tune_database").scalar_one()

    def optuna_storage(self, study: str, keep: tuple[str, ...] | None = None) -> TuneJournalStorage:
        """The Optuna storage holding ``study`` (cached: replays only new records). ``keep``,
        for the first call only: other processes' metrics are skipped but these, from the
        first read on (TuneJournalStorage.skip_others_metrics)."""
        if study not in self._storages:
            self._storages[study] = TuneJournalStorage(PostgresJournalBackend(
                self.url, study, self.connect_args, engine=self.engine if self.single_connection else None), keep)
        return self._storages[study]

    def has_storage(self, study: str) -> bool:
        """Whether :meth:`optuna_storage` has ``study``'s storage made already (no read)."""
        return study in self._storages

    def read_journals(self, offsets: dict[str, int], limit: int | None = None,
                      keep: tuple[str, ...] | None = None) -> dict[str, list[dict[str, Any] | None]]:
        """New journal records of many studies in one query: ``{study: records from offset}``,
        at most ``limit`` per study.

        For followers (the app, ``tune status``) that replay records themselves;
        the cost depends on the number of new records only. ``keep``: read only the
        trials' states, values, parameters, constraints and their user attributes that
        hold one of these names: no intermediate values, metrics (most of a study's
        records) or worker marks; each record skipped is a None.
        """
        if not offsets:
            return {}
        names, starts = zip(*offsets.items())
        with self.engine.connect() as conn:
            # The planner cannot know how few records lie past each offset: with many or long
            # studies its estimate passes jit_above_cost, and compiling the query takes ~10 ms
            # of a poll that needs 2 (the refresh would grow with the history). Local to this
            # read's transaction, which ends with the connection's return to the pool.
            conn.exec_driver_sql("SET LOCAL jit = off")
            rows = conn.execute(
                sa.text(
                    """
                    SELECT o.stream, CASE WHEN CAST(:keep AS text[]) IS NOT NULL AND (
                        j.body->>'op_code' = '7'  -- an intermediate value
                        OR (j.body->>'op_code' = '8' AND NOT (j.body->'user_attr' ?| CAST(:keep AS text[])))
                        OR (j.body->>'op_code' = '9' AND j.body->'system_attr' ? :worker_attr)
                    ) THEN NULL ELSE j.body END
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
                {"names": list(names), "starts": list(starts), "limit": limit,
                 "keep": None if keep is None else list(keep), "worker_attr": WORKER_ATTR},
            ).all()
        out: dict[str, list[dict[str, Any] | None]] = {name: [] for name in names}
        for stream, body in rows:
            out[stream].append(body)
        return out

    def read_trial(self, study: str, number: int, span: tuple[int, int] | None = None) -> list[dict[str, Any]]:
        """Trial ``number``'s journal records, its CREATE_TRIAL first: within ``span`` (the
        seq of that record and of the last one of the trial, when the caller knows them),
        else found by counting the study's CREATE_TRIAL records (a scan of its journal)."""
        if span is not None:
            where, args = "seq BETWEEN :first AND :last", {"first": span[0], "last": span[1]}
        else:
            where, args = (
                "seq >= (SELECT seq FROM tune_journal WHERE stream = :s AND body->>'op_code' = '4'"
                " ORDER BY seq OFFSET :n LIMIT 1)"
            ), {"n": number}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "WITH t AS (SELECT seq, body FROM tune_journal WHERE stream = :s AND " + where + ")"
                    " SELECT body FROM t WHERE seq = (SELECT min(seq) FROM t) OR body->>'trial_id' = :id ORDER BY seq"
                ),
                {"s": study, "id": str(number), **args},
            ).scalars().all()
        return list(rows)

    def read_summaries(self, studies: list[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
        """The stored follower summaries (runner/monitor.py): ``{study: (the study row's
        created_at it was made for, body)}``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT study, created_at, body FROM tune_summaries WHERE study = ANY(:s)"),
                {"s": studies},
            ).all()
        return {r.study: (r.created_at, r.body) for r in rows}

    def write_summary(self, study: str, seq: int, created_at: Any, body: dict[str, Any]) -> None:
        """Store a follower's summary at journal offset ``seq``, unless a later one is stored
        or the study is no longer the one it was made for (a fresh start)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO tune_summaries (study, seq, created_at, body)"
                    " SELECT :s, :seq, :c, CAST(:b AS jsonb) WHERE EXISTS"
                    " (SELECT 1 FROM tune_studies WHERE name = :s AND created_at = :c)"
                    " ON CONFLICT (study) DO UPDATE SET seq = EXCLUDED.seq, created_at = EXCLUDED.created_at,"
                    " body = EXCLUDED.body, written_at = now()"
                    " WHERE tune_summaries.seq < EXCLUDED.seq OR tune_summaries.created_at <> EXCLUDED.created_at"
                ),
                {"s": study, "seq": seq, "c": created_at, "b": json.dumps(body, allow_nan=False)},
            )

    def forget_storage(self, study: str) -> None:
        storage = self._storages.pop(study, None)
        if storage is not None:
            storage.journal.close()

    _STUDY_TABLES = (
        ("tune_journal", "stream"), ("tune_streams", "stream"), ("tune_studies", "name"),
        ("tune_workers", "study"), ("tune_events", "study"), ("tune_param_claims", "study"),
        ("tune_holdout", "study"), ("tune_reports", "study"), ("tune_importances", "study"),
        ("tune_summaries", "study"), ("tune_notifications", "study"), ("tune_notify_best", "study"),
        ("tune_checkpoints", "stream"),
    )

    def delete_studies(self, studies: list[str], busy: Any) -> list[str]:
        """Remove every trace of ``studies`` (a fresh start, tune delete): journal, control
        rows, workers, events, holdout results, reports and importances — all or none, in one
        transaction: the studies' rows are locked first (a worker starting takes that lock too), then ``busy(conn,
        studies)`` names those that must not go (live workers); any, and nothing is deleted.
        Returns those ``busy`` named."""
        for study in studies:
            self.forget_storage(study)
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1 FROM tune_studies WHERE name = ANY(:s) FOR UPDATE"), {"s": list(studies)})
            refused = busy(conn, studies)
            if refused:
                return refused
            for table, column in self._STUDY_TABLES:
                conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = ANY(:s)"), {"s": list(studies)})
        return []

    def dispose(self) -> None:
        for study in list(self._storages):
            self.forget_storage(study)
        self.engine.dispose()


def _ping_unless_journal(dbapi_connection, connection_record, connection_proxy) -> None:
    """pool_pre_ping for a one-connection engine, except for the journal's checkouts:
    they are the hot path (several per trial) and handle a dead connection themselves
    (runner/storage/journal.py), so they do without the extra round trip."""
    if journal_checkout.active:
        return
    try:
        with dbapi_connection.cursor() as cur:
            cur.execute("SELECT 1")
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        raise sa.exc.DisconnectionError() from None  # the pool connects afresh and checks out again


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; our own status output replaces that."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # PED-ANOVA's note that it ranks low target values as good: runner/importances.py negates
    # a maximised objective for it, so the note says nothing to our users.
    warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes the importances", category=UserWarning)
