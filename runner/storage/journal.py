"""Trials as an Optuna journal in PostgreSQL, one stream of records per study.

:class:`PostgresJournalBackend` appends and reads records (Optuna's public
``BaseJournalBackend``); :class:`TuneJournalStorage` is Optuna's
``JournalStorage`` with fewer round trips per trial.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg2
import sqlalchemy as sa
from optuna.distributions import distribution_to_json
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import BaseJournalBackend, JournalStorage

from ..states import WORKER_ATTR
from ..text import first_line, storable
from . import checkpoint, connection
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
log = logging.getLogger(__name__)


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
        self._skip: dict[str, Any] = {"me": "", "keep": None}
        # The study's control state (running/paused/stopped; None without a control
        # row) as the last read, or append that read, saw it.
        self.last_control: str | None = None
        # The stream's generation: if the study is deleted and started fresh under
        # this process, its reads and writes fail instead of mixing two studies. None:
        # no such stream yet — it is created by the first append, never by a read, so
        # that opening a mistyped study name leaves nothing behind.
        found = self._execute("SELECT generation FROM tune_streams WHERE stream = %s", (stream,), fetch=True)
        self._generation: str | None = found[0][0] if found else None

    @property
    def stream(self) -> str:
        """The study whose records this backend reads and writes."""
        return self._stream

    def _create_stream(self) -> None:
        """The stream's head row, for a first append (another process may have made it meanwhile)."""
        self._execute("INSERT INTO tune_streams (stream) VALUES (%s) ON CONFLICT DO NOTHING", (self._stream,))
        self._generation = self._execute(
            "SELECT generation FROM tune_streams WHERE stream = %s", (self._stream,), fetch=True
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

    def _execute(self, sql: str, args, fetch: bool = False, on_retry=None,
                 before: tuple[str, dict[str, Any]] | None = None) -> list:
        """Run one statement (after ``before``'s, in the same round trip), reconnecting while
        the server is away (restart, network)."""

        def run(conn) -> list:
            with conn.cursor() as cur:
                if before is None:
                    cur.execute(sql, args)
                else:
                    # Two statements in one simple query: one round trip, one implicit
                    # transaction; the results are the last statement's. Rendered here
                    # (psycopg2 interpolates on the client anyway), so that neither's
                    # text is read as the other's placeholders.
                    cur.execute(cur.mogrify(before[0], before[1]) + b";\n" + cur.mogrify(sql, args))
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
        if self._skip["keep"] is not None:  # Optuna's replay cannot take a skipped record
            raise RuntimeError("a backend that skips records is read with read_records")
        return [record for record in self.read_records(log_number_from) if record is not None]

    def read_records(self, log_number_from: int) -> list[dict[str, Any] | None]:
        """:meth:`read_logs`, with None for each record this process skips (skip_metrics)."""
        return list(self.iter_records(log_number_from))

    def iter_records(self, log_number_from: int) -> Iterator[dict[str, Any] | None]:
        """:meth:`read_records` a page at a time, each read when the last is used up: a
        replay of a long history never holds all its records at once."""
        while True:
            page, _ = self._read_page(log_number_from)
            yield from page
            log_number_from += len(page)
            if len(page) < self.READ_PAGE:
                return

    def read_logs_and_control(self, log_number_from: int) -> tuple[list[dict[str, Any] | None], str | None]:
        """New records and the study's control state (running/paused/stopped, None without
        a control row): one round trip, as long as the records fit in one page."""
        records, control = self._read_page(log_number_from)
        if len(records) == self.READ_PAGE:
            records += self.read_records(log_number_from + len(records))
        return records, control

    def _read_page(self, log_number_from: int) -> tuple[list[dict[str, Any] | None], str | None]:
        # The head row comes with the records: no row, or another generation, means
        # the study was deleted under us (the records would belong to another study).
        rows = self._execute(
            f"""
            SELECT h.generation, (SELECT control FROM tune_studies WHERE name = h.stream), j.seq, {self._BODY}
            FROM tune_streams h LEFT JOIN LATERAL (
                SELECT seq, body FROM tune_journal WHERE stream = h.stream AND seq >= %(from)s
                ORDER BY seq LIMIT %(page)s
            ) j ON true
            WHERE h.stream = %(s)s ORDER BY j.seq
            """,
            {"from": log_number_from, "page": self.READ_PAGE, "s": self._stream, **self._skip},
            fetch=True,
        )
        if self._generation is None:  # nothing read yet: a stream made since is simply new
            if not rows:
                return [], None
            self._generation = rows[0][0]
        if not rows or rows[0][0] != self._generation:
            raise self._gone()
        self.last_control = rows[0][1]
        return [body for _, _, seq, body in rows if seq is not None], rows[0][1]

    # What a read returns for each record: the record, or NULL for another process's
    # metric (a user attribute) or worker mark (WORKER_ATTR, a system attribute only the
    # app's trial detail reads) when this process skips them (see skip_metrics).
    _BODY = f"""CASE WHEN %(keep)s::text[] IS NOT NULL AND NOT starts_with(j.body->>'worker_id', %(me)s)
                    AND ((j.body->>'op_code' = '8' AND NOT (j.body->'user_attr' ?| %(keep)s::text[]))
                         OR (j.body->>'op_code' = '9' AND j.body->'system_attr' ? '{WORKER_ATTR}'))
               THEN NULL ELSE j.body END"""

    def skip_metrics(self, me: str, keep: Iterable[str]) -> None:
        """Read other processes' user attributes as None (not transferred, not parsed,
        not replayed), except those named in ``keep``, and their worker marks (the
        ``tune:worker`` system attribute, runner/states.WORKER_ATTR); this process's own (worker ids
        starting with ``me``) are read in full. For a worker: its sampler reads
        parameters, values, states and constraints, never the other trials' metrics,
        which are most of a study's records; replaying them cost every worker CPU in
        proportion to the number of workers."""
        self._skip = {"me": me, "keep": sorted(keep)}

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.append_and_read(logs, None)

    def append_and_read(self, logs: list[dict[str, Any]], read_from: int | None,
                        before: tuple[str, dict[str, Any]] | None = None) -> list[dict[str, Any] | None] | None:
        """Append ``logs`` and, in the same round trip, read what others appended since
        ``read_from``: returns every record from ``read_from`` to the last of ``logs``, or
        None when they could not all be had in this one statement (then read them with
        :meth:`read_logs`); when it reads, it reads the control state too
        (:attr:`last_control`). ``before``: a statement of the caller's (SQL, args) run
        first, in the same round trip and transaction.

        A reader's records can lag behind the head: a record another appender committed
        while this statement waited for the head row's lock lies outside this
        statement's snapshot. The count tells: anything short of ``first - read_from``
        records is reported as None, never as a hole.
        """
        if not logs:
            return [] if read_from is None else None
        if self._generation is None:
            self._create_stream()
        # A token lets a retry after a lost connection tell whether the first
        # attempt committed, so a record is never appended twice.
        token = uuid.uuid4().hex
        bodies = [_record_text({**entry, "_t": token}) for entry in logs]
        committed_before = False  # a retry found the first attempt committed after all

        def already_written() -> bool:
            nonlocal committed_before
            committed_before = bool(self._execute(
                "SELECT 1 FROM tune_journal WHERE stream = %s AND seq >= "
                "(SELECT next_seq - 1000 FROM tune_streams WHERE stream = %s) AND body->>'_t' = %s LIMIT 1",
                (self._stream, self._stream, token),
                fetch=True,
            ))
            return committed_before

        args = {"n": len(bodies), "s": self._stream, "g": self._generation, "bodies": bodies,
                "from": -1 if read_from is None else read_from, "page": self.READ_PAGE, **self._skip}
        statement = (
            f"""
            WITH head AS (
                UPDATE tune_streams SET next_seq = next_seq + %(n)s
                WHERE stream = %(s)s AND generation = %(g)s RETURNING next_seq - %(n)s AS first
            ), written AS (
                INSERT INTO tune_journal (stream, seq, body)
                SELECT %(s)s, head.first + b.ord - 1, b.body::jsonb
                FROM head, unnest(%(bodies)s::text[]) WITH ORDINALITY AS b(body, ord)
                RETURNING 1
            )
            SELECT head.first, (SELECT count(*) FROM written), (SELECT control FROM tune_studies WHERE name = %(s)s),
                   j.seq, {self._BODY} FROM head
            LEFT JOIN LATERAL (
                SELECT seq, body FROM tune_journal
                WHERE stream = %(s)s AND seq >= %(from)s AND seq < head.first ORDER BY seq LIMIT %(page)s
            ) j ON true
            ORDER BY j.seq
            """
        )
        rows = self._execute(statement, args, fetch=True, on_retry=already_written, before=before)
        if not rows:
            if committed_before:
                return None  # the caller reads
            # The stream's head row is gone or of another generation: the study was
            # deleted (a fresh start) under this process. Writing on would corrupt the new one.
            raise self._gone()
        first, written = rows[0][0], rows[0][1]
        if written != len(bodies):
            raise self._gone()
        if read_from is None:
            return []
        self.last_control = rows[0][2]
        others = [body for *_, seq, body in rows if seq is not None]
        if len(others) != first - read_from:
            return None
        return others + [json.loads(text) for text in bodies]

    def load_checkpoint(self) -> bytes | None:
        """The stored replay checkpoint of this generation of the stream (checkpoint.py), if
        any (and if it covers no more records than the stream has)."""
        if self._generation is None:
            return None
        rows = self._execute(
            "SELECT c.body FROM tune_checkpoints c JOIN tune_streams h ON h.stream = c.stream"
            " AND h.generation = c.generation WHERE c.stream = %s AND c.generation = %s AND c.records <= h.next_seq",
            (self._stream, self._generation), fetch=True)
        return bytes(rows[0][0]) if rows else None

    def save_checkpoint(self, records: int, trials: int, body: bytes) -> None:
        """Store a replay checkpoint of ``records`` records, unless one of as many is stored or
        the stream is no longer this generation (the study started fresh meanwhile)."""
        if self._generation is None:
            return
        self._execute(
            """
            INSERT INTO tune_checkpoints (stream, generation, records, trials, body)
            SELECT %(s)s, %(g)s, %(r)s, %(t)s, %(b)s
            WHERE EXISTS (SELECT 1 FROM tune_streams WHERE stream = %(s)s AND generation = %(g)s)
            ON CONFLICT (stream) DO UPDATE SET generation = EXCLUDED.generation, records = EXCLUDED.records,
                trials = EXCLUDED.trials, body = EXCLUDED.body, written_at = now()
            WHERE tune_checkpoints.records < EXCLUDED.records
               OR tune_checkpoints.generation <> EXCLUDED.generation
            """,
            {"s": self._stream, "g": self._generation, "r": records, "t": trials, "b": psycopg2.Binary(body)},
        )

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


# Multivariate TPE stores a trial's relative parameters as system attributes during
# ask, for the other workers' samplers only (constant liar): the worker queues them
# with the parameters. Other samplers read back what they store (GridSampler's
# grid_id), so their attributes are written at once.
QUEUED_SYSTEM_ATTR = "tpe:relative_params:"


class TuneJournalStorage(JournalStorage):
    """Optuna's JournalStorage with fewer round trips per trial.

    * Every append reads, in the same statement, the records others appended
      since this process last read: a write costs one round trip, not an
      append and a read.
    * Parameters are written lazily: ``set_trial_param`` (called once per
      parameter by ``study.ask``) queues its record, and the queue goes out with
      the next journal write, or :meth:`flush` — one append for all of a
      trial's parameters (with ``snapshot_reads``, TPE's relative
      parameters too). :meth:`queue_trial_attrs` queues a trial's metrics the
      same way, to go out with its ``tell``.
    * ``snapshot_reads`` (the worker's trial loop): reads serve the replay as
      last brought up to date — by :meth:`refresh`, which the loop calls once
      per trial (it also returns the control state), or by an append — instead
      of asking the database each time. An append that reads reads the control
      state too, so the refresh right after a trial's ``tell`` costs nothing. Optuna's samplers read the study
      several times per ``ask``; one read per trial is fresh enough for them.

    The records are exactly Optuna's, in the same order, so any JournalStorage
    replays them. Only the moment of writing and reading changes; a caller that
    wants other processes to see the parameters at once (the worker, after
    ask: constant liar) calls :meth:`flush`.
    """

    def __init__(self, log_storage: PostgresJournalBackend, keep: Iterable[str] | None = None) -> None:
        """``keep``: skip other processes' metrics but these from the first read on (see
        :meth:`skip_others_metrics`) — super().__init__ reads the whole study."""
        if keep is not None:
            # Our worker-id prefix is made by super(), after which it reads: until then, a prefix
            # no worker id has (a new process has written nothing yet), then our own below.
            log_storage.skip_metrics("\x01", keep)
        # Before super(): its __init__ syncs.
        self._pending: list[dict[str, Any]] = []
        self._behind = False  # records of ours are written but not yet replayed: the next read must read
        self._just_written = False  # an append brought the replay up to date: Optuna's sync after it reads nothing
        self._written_and_read = False  # the last append read every record and the control state
        self._pending_statement: tuple[str, dict[str, Any]] | None = None  # see queue_statement
        self.snapshot_reads = False
        self.journal = log_storage  # ours, typed (JournalStorage keeps it as a BaseJournalBackend)
        # A worker's view (keep) starts from the study's replay checkpoint, if it has one
        # (checkpoint.py): records it covered, None if none was used.
        self._keep = tuple(keep) if keep is not None else None
        self.restored: int | None = None
        self._checkpoint_tried = False
        self._checkpoint_thread: threading.Thread | None = None
        self._checkpoint_warned = False
        self.checkpoint_due = False  # the worker should call save_checkpoint (which clears it)
        super().__init__(log_storage)
        if keep is not None:
            self.skip_others_metrics(keep)
            # The next worker to join need not read again what this one read: the worker
            # writes a checkpoint after its first trial (not before: it would delay it).
            self.checkpoint_due = self._replay_result.log_number_read - (self.restored or 0) >= checkpoint.MIN_RECORDS

    def _record(self, op_code: int, **fields: Any) -> dict[str, Any]:
        """A journal record as Optuna writes it."""
        return {"op_code": op_code, "worker_id": self._replay_result.worker_id, **fields}

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float, distribution) -> None:
        with self._thread_lock:
            self._pending.append(self._record(
                JournalOperation.SET_TRIAL_PARAM, trial_id=trial_id, param_name=param_name,
                param_value_internal=param_value_internal, distribution=distribution_to_json(distribution),
            ))

    def set_trial_system_attr(self, trial_id: int, key: str, value) -> None:
        if not (self.snapshot_reads and key.startswith(QUEUED_SYSTEM_ATTR)):
            super().set_trial_system_attr(trial_id, key, value)
            return
        with self._thread_lock:
            self._pending.append(self._record(JournalOperation.SET_TRIAL_SYSTEM_ATTR, trial_id=trial_id,
                                              system_attr={key: value}))

    def skip_others_metrics(self, keep: Iterable[str]) -> None:
        """Replay other processes' trials without their user attributes, except ``keep``
        (see PostgresJournalBackend.skip_metrics): for the worker, whose sampler never
        reads them. Call before the study is read: attributes replayed before stay."""
        # _worker_id_prefix: JournalStorage's per-process prefix of the worker ids it writes.
        self.journal.skip_metrics(self._worker_id_prefix, keep)

    def refresh(self, after_write: bool = False) -> str | None:
        """Write what is queued, read what is new, and return the study's control state
        (running/paused/stopped; None if the study has no control row): one round trip
        when nothing is queued.

        ``after_write``: if the last append (a trial's ``tell``) read every new record
        and the control state in its own statement, and nothing is queued since, return
        that state without a round trip — once; the next refresh reads."""
        with self._thread_lock:
            fresh, self._written_and_read = self._written_and_read, False
            if after_write and fresh and not self._pending:
                return self.journal.last_control
            if self._pending:
                self._append([])
            records, control = self.journal.read_logs_and_control(self._replay_result.log_number_read)
            self._apply(records)
            self._just_written = False
            return control

    def flush(self, before: tuple[str, dict[str, Any]] | None = None) -> None:
        """Write queued records now (and read what others wrote). ``before``: a statement
        (SQL, args) of the caller's to run in the same round trip, first."""
        with self._thread_lock:
            if self._pending or before is not None:
                self._append([], before)
            self._sync_with_backend()

    def queue_statement(self, statement: tuple[str, dict[str, Any]]) -> None:
        """A statement of the caller's (SQL, args; psycopg2 style) to run with the next append
        that has none of its own, in its round trip and transaction: the worker's holdout
        result rides with its trial's tell."""
        with self._thread_lock:
            self._pending_statement = statement

    def _append(self, records: list[dict[str, Any]], before: tuple[str, dict[str, Any]] | None = None) -> None:
        """Queued records first, then these; the queue empties only once written."""
        queued = None
        if before is None and self._pending_statement is not None and (self._pending or records):
            before = queued = self._pending_statement
        logs = self._pending + records
        if not logs:  # only the caller's statement
            assert before is not None
            self.journal._execute(before[0], before[1])
            return
        read = self.journal.append_and_read(logs, self._replay_result.log_number_read, before)
        self._pending = []
        if queued is not None:
            self._pending_statement = None
        self._behind = True
        self._written_and_read = read is not None
        if read is None:
            return  # the next sync reads
        self._apply(read)
        self._just_written = True

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        self._append([self._record(op_code, **extra_fields)])

    def _restore_checkpoint(self) -> None:
        self._checkpoint_tried = True
        assert self._keep is not None
        try:
            data = self.journal.load_checkpoint()
            if data is None:
                return
            replay, trials = checkpoint.restore(data, self._keep, self.journal.stream, self._worker_id_prefix)
        except (checkpoint.CheckpointError, psycopg2.ProgrammingError, psycopg2.DataError) as exc:
            # A cache: whatever is wrong with it (even a table missing), every record is read.
            log.warning("study %s: its replay checkpoint is not used, every record is read (%s)",
                        self.journal.stream, first_line(exc))
            return
        self._replay_result, self.restored = replay, replay.log_number_read
        log.info("study %s: read from its checkpoint (%d trials, %d records), then the records past it",
                 self.journal.stream, trials, replay.log_number_read)

    def save_checkpoint(self) -> bool:
        """Write this replay, in the worker's view, as the study's checkpoint (checkpoint.py):
        captured now, written by a thread of its own. False if the last one is being written
        still. A checkpoint is a cache: a failure is logged once and costs nothing else."""
        if self._keep is None:  # a checkpoint holds a worker's view: a storage in full has none to give
            return False
        if self._checkpoint_thread is not None and self._checkpoint_thread.is_alive():
            return False
        with self._thread_lock:
            state = checkpoint.capture(self._replay_result)
        self.checkpoint_due = False
        keep = self._keep

        def write() -> None:
            try:
                made = checkpoint.dump(state, keep)
                if made is not None and len(made[2]) > checkpoint.MAX_BYTES:
                    raise ValueError(f"{len(made[2]) / 2**20:.0f} MB is more than the "
                                     f"{checkpoint.MAX_BYTES / 2**20:.0f} MB one round trip may carry")
                if made is not None:
                    self.journal.save_checkpoint(*made)
            except Exception as exc:  # noqa: BLE001 - a cache: the next turn tries again
                if not self._checkpoint_warned:
                    self._checkpoint_warned = True
                    log.warning("study %s: its replay checkpoint was not stored: %s", self.journal.stream,
                                first_line(exc))

        self._checkpoint_thread = threading.Thread(target=write, name="checkpoint", daemon=True)
        self._checkpoint_thread.start()
        return True

    def finish_checkpoint(self, timeout: float = 5.0) -> None:
        """Wait for a checkpoint being written (at most ``timeout`` seconds)."""
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join(timeout)

    def _sync_with_backend(self) -> None:
        if self._keep is not None and not self._checkpoint_tried:  # the first read (super().__init__'s)
            self._restore_checkpoint()
        if self._pending and not self.snapshot_reads:  # a read writes what is queued first
            self._append([])
        if self._just_written:  # Optuna syncs after each write: the append read it all already
            self._just_written = False
            return
        if self.snapshot_reads and not self._behind:
            return
        self._apply(self.journal.iter_records(self._replay_result.log_number_read))
        self._just_written = False

    def _apply(self, records: Iterable[dict[str, Any] | None]) -> None:
        """Replay ``records``, all of them, then raise the first UpdateFinishedTrialError
        they caused: a record of ours for a trial another process finished first (the
        reaper took it during an outage). Optuna's replay stops at such a record and the
        next read would stop at the next one — a trial's metrics are many records."""
        error = None
        replay = self._replay_result
        for record in records:
            if record is None:  # a record this process skips (PostgresJournalBackend.skip_metrics)
                replay.log_number_read += 1
                continue
            try:
                replay.apply_logs((record,))
            except UpdateFinishedTrialError as exc:
                error = error or exc
        self._behind = False
        if error is not None:
            raise error

    def set_trial_attrs(self, trial_id: int, user: dict[str, Any], system: dict[str, Any] | None = None) -> None:
        """User and system attributes of a trial in one append (one record each, as Optuna writes them)."""
        with self._thread_lock:
            self._append(self._attr_records(trial_id, user, system))
            self._sync_with_backend()

    def queue_trial_attrs(self, trial_id: int, user: dict[str, Any], system: dict[str, Any] | None = None) -> None:
        """As :meth:`set_trial_attrs`, written with the next write (the trial's ``tell``)."""
        with self._thread_lock:
            self._pending += self._attr_records(trial_id, user, system)

    def _attr_records(self, trial_id: int, user: dict[str, Any], system: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [
            self._record(JournalOperation.SET_TRIAL_USER_ATTR, trial_id=trial_id, user_attr={key: value})
            for key, value in user.items()
        ] + [
            self._record(JournalOperation.SET_TRIAL_SYSTEM_ATTR, trial_id=trial_id, system_attr={key: value})
            for key, value in (system or {}).items()
        ]
