"""The app's one door to the database: reading (a poller) and controlling.

Widgets never query anything. The app runs :meth:`StudyFeed.poll` in a thread
worker about once a second and hands the resulting snapshot to widgets through
a message; control actions (pause, resume, stop, workers) also run here, off
the UI thread. Every database call has a deadline (connect and statement
timeouts), so an unreachable database turns into a :class:`FeedError`
message instead of a frozen screen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from runner import control, explore, hosts, importances, outline, reaper, reports, spool, supervisor, validation
from runner.monitor import Monitor, Snapshot
from runner.states import Control
from runner.storage import Database, embedded
from runner.storage.connection import libpq_args
from runner.text import first_line

POLL_SECONDS = 1.0
# While nothing a person sees changes, the pause between polls grows by half up to this:
# a poll's cost is fixed per study (50 studies: idle CPU 1.75 % at one a second, issue 14).
# A control action still polls at once.
IDLE_POLL_SECONDS = 3.0
REAP_EVERY_POLLS = 5
# The studies' history is read in slices of this many journal records per poll, in all
# (about 1 s): the rows appear at once and fill in while the app stays live, and the
# memory a slice takes does not grow with the number of studies.
HISTORY_RECORDS_PER_POLL = 100_000
STATEMENT_TIMEOUT_MS = 5000
# An open view's data is recomputed when its study changed, at most every second and no
# sooner than this many times its last cost: its share of a core stays under 1/VIEW_COST_FACTOR
# however many trials it reads, so the refresh stays flat.
VIEW_COST_FACTOR = 20


class SnapshotReady(Message):
    """A new reading of every study."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ViewReady(Message):
    """What an open insight view shows (runner/explore.py's data), for ``request``."""

    def __init__(self, request: ViewRequest, data: Any) -> None:
        super().__init__()
        self.request = request
        self.data = data


@dataclass(frozen=True)
class ViewRequest:
    """The insight view open on screen: ``kind`` over ``study``, with the view's own choices
    (the heatmap's two parameters, a trial's number)."""

    kind: str  # importances | slices | heatmap | symbols | hosts | trial
    study: str
    options: tuple = ()


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
        self._wanted: ViewRequest | None = None
        self._view_lock = threading.Lock()
        self._view_key: tuple | None = None  # (request, study version) last computed
        self._view_due = 0.0  # monotonic time before which the view is not recomputed

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
                # Running trials with no live worker: nobody else is left to fail them. Not
                # while history is still being read: a trial whose end lies in the next page
                # only looks running (and a reap replays the whole study: issue 14).
                if not snapshot.catching_up:
                    reaper.reap_orphaned(self.db, snapshot.statuses)
            if self._polls == 1 or self._polls % REAP_EVERY_POLLS == 0:
                spool.deliver_all(self.db)  # results kept on disk by workers that exited during an outage
            return SnapshotReady(snapshot)
        except Exception as exc:  # any failure to read is shown in place, never raised into the UI
            embedded.revive(self.db.url)  # our embedded server died? start it again (rate-limited)
            return FeedError(first_line(exc))
        finally:
            self.poll_started = None

    # ------------------------------------------------------------ insight views
    def want(self, request: ViewRequest | None) -> None:
        """The view now open (None: none); the next poll computes its data."""
        with self._view_lock:
            self._wanted = request
            self._view_key = None
            self._view_due = 0.0

    def view(self, snapshot: Snapshot) -> ViewReady | None:
        """The open view's data from this poll's reading, when it is due (see VIEW_COST_FACTOR).
        Runs in the polling thread: the monitor's replay is read where it grows."""
        with self._view_lock:
            request = self._wanted
        if request is None:
            return None
        key = (request, _freshness(request, snapshot))
        now = time.monotonic()
        # want() forgets the last key when the request changes: a key kept is this request's.
        if self._view_key is not None and (key == self._view_key or now < self._view_due):
            return None
        try:
            data = self._compute(request, snapshot)
        except Exception as exc:  # shown in the view, never raised into the UI
            data = explore.Unavailable(first_line(exc))
        cost = time.monotonic() - now
        with self._view_lock:
            if self._wanted != request:
                return None  # closed or changed meanwhile
            self._view_key, self._view_due = key, now + max(1.0, VIEW_COST_FACTOR * cost)
        return ViewReady(request, data)

    def _compute(self, request: ViewRequest, snapshot: Snapshot) -> Any:
        kind, study = request.kind, request.study
        if kind == "hosts":
            return hosts.summarise([w for s in snapshot.statuses for w in s.workers])
        status = next((s for s in snapshot.statuses if s.study == study), None)
        if status is None:
            return explore.Unavailable(f"{study} is no longer in the database")
        if kind == "symbols":
            spaces = {s.study: self.monitor.space(s.study) for s in _run_of(status, snapshot.statuses)}
            return explore.symbols(self.db, snapshot.statuses, status.run, spaces)
        if kind == "trial":
            number = request.options[0] if request.options else status.best_trial
            trial = self.monitor.trial(study, number) if number is not None else None
            if number is None or trial is None:
                return explore.Unavailable("no trial to show yet" if number is None else f"trial {number} is not read yet")
            holdout = validation.results(self.db, study).get(number)
            return explore.trial_detail(study, trial, status.metrics, holdout)
        if kind == "slices":
            return self.monitor.slices(study, status.best_trial)
        found = explore.importances(importances.stored(self.db, [study]).get(study),
                                    reports.stored(self.db, [study]).get(study))
        if kind == "importances":
            return found
        if kind == "heatmap":
            x, y, bins = (request.options + (None, None, outline.HEATMAP_BINS))[:3]
            ranked = [name for name, _ in found.bars]  # as the importances view shows them
            heatmap = self.monitor.heatmap(study, x, y, bins, ranked, status.best_trial)
            return heatmap or explore.Unavailable("a heatmap needs two parameters and a complete trial")
        raise ValueError(f"unknown view {kind!r}")

    def equity(self, study: str, number: int, params: dict[str, Any]) -> Any:
        """Trial ``number``'s equity curve, recomputed here from the study's config and the
        trial's ``params``; an :class:`explore.Unavailable` says why not. Slow (loads the data
        and runs the backtest): call it from a thread worker."""
        from runner import equity  # pandas and the backtests: only when asked

        try:
            rows = control.list_studies(self.db, [study])
            if not rows:
                return explore.Unavailable(f"{study} is no longer in the database")
            row = rows[0]
            if not row.config_path:
                return explore.Unavailable("no config recorded for this study (it was registered elsewhere)")
            from runner.config import load_config  # pandas: only for an equity curve

            cfg = load_config(row.config_path)
            return equity.equity_curve(cfg, row.symbol, params, fold=row.fold, trial=number)
        except Exception as exc:
            return explore.Unavailable(first_line(exc))

    # ------------------------------------------------------------ control
    def set_control(self, studies: list[str] | None, state: str) -> ControlResult:
        names = studies if studies is not None else self.names  # None: every study not archived
        try:
            changed = control.set_control(self.db, names, state)
            started = sum(map(self._start_missing, control.list_studies(self.db, changed))) if state == Control.RUNNING else 0
        except Exception as exc:
            return ControlResult(False, f"could not set {state}: {first_line(exc)}")
        if not changed:
            return ControlResult(True, "no study to change")
        label = ", ".join(changed) if len(changed) <= 3 else f"{len(changed)} studies"
        return ControlResult(True, f"{label}: {state}" + (f" (started {started} worker(s))" if started else ""))

    def _start_missing(self, row) -> int:
        """Start, here, the workers a study lacks: after a resume of a study whose workers had
        exited, or a "+". Returns how many (none without a config recorded)."""
        if not row.config_path:
            return 0
        from runner.config import load_config  # pandas: only when a worker is started (issue 14)

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

    def refine_prepare(self, study: str):
        """The refinement of ``study`` planned (runner/refine.py), for the app to show first;
        or a ControlResult saying why not."""
        from runner import refine
        from runner.config import ConfigError

        try:
            return refine.prepare(self.db, study)
        except (refine.RefineError, ConfigError) as exc:
            return ControlResult(False, first_line(exc))
        except Exception as exc:
            return ControlResult(False, f"{study}: cannot refine: {first_line(exc)}")

    def refine_apply(self, prepared) -> ControlResult:
        """Write the refined config, start its study from the parent's top trials, follow it
        and start its workers here."""
        from runner import refine

        study = prepared.plan.study
        try:
            cfg, copied, enqueued, why = refine.apply(self.db, prepared)
            if self.names is not None and study not in self.names:
                self.names.append(study)  # the app follows it from the next poll
        except Exception as exc:
            return ControlResult(False, f"{study}: cannot refine: {first_line(exc)}")
        try:
            spawned = supervisor.start_workers(self.db, cfg)
            self._children += [w.process for w in spawned]
        except Exception as exc:
            return ControlResult(False, f"{study}: made ({prepared.out}), but no worker started here: "
                                        f"{first_line(exc)}; press r on it to try again")
        again = f", {enqueued} to run again" if enqueued else ""
        warning = f" ({why})" if why else ""
        return ControlResult(True, f"{study}: {copied} top trials copied{again}{warning}; {len(spawned)} worker(s) "
                                   f"started; config {prepared.out}")

    def remove_worker(self, study: str) -> ControlResult:
        try:
            desired = control.change_workers(self.db, study, -1)
        except Exception as exc:
            return ControlResult(False, f"{study}: {first_line(exc)}")
        return ControlResult(True, f"{study}: {desired} worker(s) wanted; the youngest retires after its trial")

    def close(self) -> None:
        self.db.dispose()


def _run_of(status, statuses):
    """The main studies (not the walk-forward folds) of ``status``'s run: the symbols view's rows."""
    return [s for s in statuses if s.run == status.run and s.fold is None]


def _freshness(request: ViewRequest, snapshot: Snapshot) -> tuple:
    """What the view's data depends on: it is recomputed when this changes (and is due).
    Hosts: every worker's heartbeat (their figures change with each); symbols: every
    study of the run; the other views: their study."""
    if request.kind == "hosts":
        return tuple((w["id"], w["heartbeat_at"]) for s in snapshot.statuses for w in s.workers)
    view = next((v for v in snapshot.studies if v.status.study == request.study), None)
    if view is None:
        return ()
    studies = _run_of(view.status, snapshot.statuses) if request.kind == "symbols" else [view.status]
    versions = {v.status.study: v.version for v in snapshot.studies}
    return tuple((s.study, versions[s.study], s.state, s.workers_alive) for s in studies)
