"""The app's one door to the database: reading (a poller) and controlling.

Widgets never query anything. The app runs :meth:`StudyFeed.poll` in a thread
worker about once a second and hands the resulting snapshot to widgets through
a message; control actions (pause, resume, stop, workers) also run here, off
the UI thread. Every database call has a deadline (connect and statement
timeouts), so an unreachable database turns into a :class:`FeedError`
message instead of a frozen screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual.message import Message

from runner import control, reaper, spool, supervisor
from runner.config import load_config
from runner.monitor import Monitor, Snapshot
from runner.states import Control
from runner.storage import Database, embedded
from runner.storage.connection import libpq_args
from runner.text import first_line

POLL_SECONDS = 1.0
REAP_EVERY_POLLS = 5
# A study's history is read in slices of this many journal records per poll
# (about 0.3 s): the rows appear at once and fill in while the app stays live.
HISTORY_RECORDS_PER_POLL = 20_000
STATEMENT_TIMEOUT_MS = 5000


class SnapshotReady(Message):
    """A new reading of every study."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class FeedError(Message):
    """The database could not be read; the app keeps the last snapshot and retries."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


@dataclass
class ControlResult:
    ok: bool
    message: str


class StudyFeed:
    """Reads and controls the studies the app shows (``names``; all when None)."""

    def __init__(self, url: str, names: list[str] | None) -> None:
        self.db = Database(
            url, connect_args={**libpq_args("tune-tui"), "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"},
        )
        self.poll_started: float | None = None  # monotonic time the read in progress began
        self.names = names
        self.monitor = Monitor(self.db, names)
        self._children: list = []  # workers this app started: waited for, so none lingers as a zombie
        self._polls = 0

    @property
    def masked_url(self) -> str:
        return self.db.masked_url

    def poll(self) -> Message:
        self.poll_started = time.monotonic()
        try:
            snapshot = self.monitor.poll(max_records=HISTORY_RECORDS_PER_POLL)
            self._polls += 1
            if self._polls % REAP_EVERY_POLLS == 0:
                self._children = [p for p in self._children if p.poll() is None]
                # Running trials with no live worker: nobody else is left to fail them.
                reaper.reap_orphaned(self.db, snapshot.statuses)
            if self._polls == 1 or self._polls % REAP_EVERY_POLLS == 0:
                spool.deliver_all(self.db)  # results kept on disk by workers that exited during an outage
            return SnapshotReady(snapshot)
        except Exception as exc:  # any failure to read is shown in place, never raised into the UI
            embedded.revive(self.db.url)  # our embedded server died? start it again (rate-limited)
            return FeedError(first_line(exc))
        finally:
            self.poll_started = None

    # ------------------------------------------------------------ control
    def set_control(self, studies: list[str] | None, state: str) -> ControlResult:
        names = studies if studies is not None else self.names
        try:
            changed = control.set_control(self.db, names, state)
            started = sum(map(self._start_missing, control.list_studies(self.db, changed))) if state == Control.RUNNING else 0
        except Exception as exc:
            return ControlResult(False, f"could not set {state}: {first_line(exc)}")
        label = ", ".join(changed) if len(changed) <= 3 else f"{len(changed)} studies"
        return ControlResult(True, f"{label}: {state}" + (f" (started {started} worker(s))" if started else ""))

    def _start_missing(self, row) -> int:
        """Start, here, the workers a study lacks: after a resume of a study whose workers had
        exited, or a "+". Returns how many (none without a config recorded)."""
        if not row.config_path:
            return 0
        spawned = supervisor.spawn_missing(self.db, load_config(row.config_path), row)
        self._children += [w.process for w in spawned]
        return len(spawned)

    def add_worker(self, study: str) -> ControlResult:
        """One more worker for ``study``, started on this host from the study's config."""
        try:
            desired = control.change_workers(self.db, study, +1)
            row = control.list_studies(self.db, [study])[0]
            if row.control == Control.STOPPED:  # a "+" on a stopped study runs it again; a paused one stays paused
                control.set_control(self.db, [study], Control.RUNNING)
            if not self._start_missing(row):
                return ControlResult(False, f"{study}: no worker started here (no config recorded, or the study has ended)")
        except Exception as exc:
            return ControlResult(False, f"{study}: cannot start a worker here: {first_line(exc)}")
        return ControlResult(True, f"{study}: starting a worker ({desired} wanted)")

    def remove_worker(self, study: str) -> ControlResult:
        try:
            desired = control.change_workers(self.db, study, -1)
        except Exception as exc:
            return ControlResult(False, f"{study}: {first_line(exc)}")
        return ControlResult(True, f"{study}: {desired} worker(s) wanted; the youngest retires after its trial")

    def close(self) -> None:
        self.db.dispose()

