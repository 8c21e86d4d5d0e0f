"""Following studies as they run: the one read path of ``tune status`` and the app.

A :class:`Monitor` keeps, per study, a replay of its journal and running
aggregates (counts, best trial, recent finishes, the convergence series). Each
:meth:`Monitor.poll` reads only what is new — journal records past the last
one seen, events past the last id — plus the small control rows (studies,
workers), and updates the aggregates from the trials those records touched.
So a poll costs the same whether a study holds a hundred trials or a hundred
thousand; only the first poll replays history.
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution, distribution_to_json
from optuna.trial import FrozenTrial, TrialState

from . import control
from .outline import Heatmap, Outline, Slice
from .states import LIVE_WORKER_STATUSES, StudyState, WorkerStatus
from .status import StudyStatus, derive_state
from .storage import Database, JournalReplay, PostgresJournalBackend
from .storage.replay import new_trial, rebuild_trial
from .text import first_line

log = logging.getLogger("tune.worker")  # only SummaryKeeper logs: in a worker

THROUGHPUT_WINDOW = timedelta(minutes=5)
RECENT_TRIALS = 15
EVENTS_KEPT = 60
EVENT_ID_WINDOW = 50  # how far below the newest id a late-committing event is still picked up


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    finished_at: datetime | None
    note: str  # fail or prune reason


@dataclass(frozen=True)
class EventRow:
    id: int
    at: datetime
    level: str
    worker: str | None
    message: str


@dataclass
class StudyView:
    """Everything the app shows for one study."""

    status: StudyStatus
    # Completed trials in order of completion: trial number, value, seconds since the
    # study's first trial. The follower's own lists, which only grow: read the first
    # ``completed`` entries (the poll thread may be appending to them meanwhile).
    numbers: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    completed: int = 0
    recent: list[TrialRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    version: int = 0  # grows whenever trials changed
    events_version: int = 0  # grows whenever events arrived

    def series(self) -> tuple[list[int], list[float], list[float]]:
        n = self.completed
        return self.numbers[:n], self.values[:n], self.seconds[:n]


@dataclass
class Snapshot:
    storage: str
    taken_at: datetime
    studies: list[StudyView]
    catching_up: bool = False  # more history is waiting to be read (a bounded poll)

    @property
    def statuses(self) -> list[StudyStatus]:
        return [v.status for v in self.studies]

    def signature(self) -> tuple:
        """What changes when something a person sees changes (trials, events, workers, state,
        control): equal for two snapshots of studies at rest."""
        return tuple((v.status.study, v.version, v.events_version, v.status.state, v.status.control,
                      v.status.workers_alive, v.status.desired_workers, v.status.running) for v in self.studies)


# The user attributes category() reads: a worker replays other workers' trials with
# these only (it counts trials by kind and reads no metric of theirs).
KIND_ATTRS = ("duplicate_source", "fail_reason")
# What a follower reads of the user attributes: those, and what the last trials' notes say.
# The metrics (most of a study's records) are read back for the one trial that shows them.
NOTE_ATTRS = (*KIND_ATTRS, "prune_reason", "duplicate_of")
FULL_KEPT = 64  # trials read back whole (the best, a detail view's), per follower


def category(trial: FrozenTrial) -> str:
    """complete | pruned | failed | duplicate | running | waiting: duplicates are FAILED trials
    to Optuna (see runner/dedup.py) but their own kind to a person; a failed backtest is a
    PRUNED infeasible trial to Optuna (on_failure = "avoid", runner/worker.py) but failed."""
    if trial.state == TrialState.FAIL:
        return "duplicate" if "duplicate_source" in trial.user_attrs else "failed"
    if trial.state == TrialState.PRUNED and "fail_reason" in trial.user_attrs:
        return "failed"  # a failure told to Optuna as an infeasible pruned trial (on_failure = "avoid")
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
            TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}[trial.state]


def feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    """a is at least as good as b everywhere and better somewhere (signs: +1 maximise, -1 minimise)."""
    better = False
    for x, y, sign in zip(a, b, signs):
        if sign * x < sign * y:
            return False
        better = better or sign * x > sign * y
    return better


SERIES_CAP = 4096  # convergence points a follower keeps; past it, thinned to half (see _Follower._thin)
SPANS_KEPT = 512  # finished trials whose records' seq range a follower remembers (a cheap Monitor.trial)
SUMMARY_EVERY = 5000  # journal records past the stored summary before a follower writes a new one
SUMMARY_AT_REST = 200  # ... or, once its study is at rest, this many (a summary costs a write of ~100 kB)
SUMMARY_FORMAT = 2
SUMMARY_TRIALS = 250  # a worker that takes trial k * SUMMARY_TRIALS brings the summary up to date
READ_PAGE_RECORDS = 100_000  # journal records a poll reads at a time, in all its studies
SUMMARY_PAGE = 5000  # journal records a worker's summary thread reads at a time (its connection is shared)


class _Follower:
    """Incremental state of one study: what it shows, none of it growing with the trials."""

    def __init__(self, name: str, created_at: datetime) -> None:
        self.name = name
        self.created_at = created_at  # a study started fresh is a new row: a new follower
        self.replay = JournalReplay()
        self.kinds: dict[int, str] = {}  # the open trials' kinds (finished ones are in counts)
        self.counts: collections.Counter[str] = collections.Counter()
        self.duplicate_sources: collections.Counter[str] = collections.Counter()
        self.best: FrozenTrial | None = None  # best feasible trial (any trial while none is feasible)
        self.constrained = False
        self.front: list[FrozenTrial] = []  # multi-objective: the Pareto front (of feasible trials)
        # Where each recent, best or front trial's records lie in the journal (create, last),
        # so that its full record (metrics, intermediate values) reads back cheaply.
        self.spans: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self.pinned_spans: dict[int, tuple[int, int]] = {}  # the best's and the front's
        # The slices and heatmap views' data: built when a view first asks (Monitor.outline),
        # then kept as trials finish.
        self.outline: Outline | None = None
        self.maximize = False  # the first objective's direction
        self.finishes: list[datetime] = []  # recent finish times, sorted
        self.first_start: datetime | None = None
        # The convergence series, thinned past SERIES_CAP: rebound (never changed in place
        # but by appending), so a view of the lists stays valid while the poller goes on.
        self.numbers: list[int] = []
        self.values: list[float] = []
        self.seconds: list[float] = []
        self.recent: collections.deque[TrialRow] = collections.deque(maxlen=RECENT_TRIALS)
        self.events: collections.deque[EventRow] = collections.deque(maxlen=EVENTS_KEPT)
        self.version = 0
        self.events_version = 0
        self.summary_offset = 0  # the journal records the stored summary covers
        self.full: collections.OrderedDict[int, FrozenTrial] = collections.OrderedDict()  # trials read back whole

    @property
    def offset(self) -> int:
        return self.replay.offset

    def apply(self, records: list[dict[str, Any] | None], directions: list[str]) -> None:
        if not records:
            return
        signs = [1 if d == "maximize" else -1 for d in directions]
        self.maximize = signs[0] > 0
        for trial, created, last in self.replay.apply(records):
            kind, old = category(trial), self.kinds.get(trial.number)
            if old == kind:
                continue
            if old is not None:
                self.counts[old] -= 1
            self.counts[kind] += 1
            if trial.datetime_start and (self.first_start is None or trial.datetime_start < self.first_start):
                self.first_start = trial.datetime_start
            if not trial.state.is_finished():
                self.kinds[trial.number] = kind
                continue
            self.kinds.pop(trial.number, None)
            self.spans[trial.number] = (created, last)
            if len(self.spans) > SPANS_KEPT:
                self.spans.popitem(last=False)
            self._finished(trial, kind, signs, (created, last))
        self.version += 1

    def _finished(self, trial: FrozenTrial, kind: str, signs: list[int], span: tuple[int, int]) -> None:
        if trial.datetime_complete:
            # Trials finish out of id order (workers, a late reap): keep the list sorted, and
            # only the window before the latest finish (no later "now" counts older ones: a
            # history read at once would otherwise keep every finish, summaries too).
            bisect.insort(self.finishes, trial.datetime_complete)
            del self.finishes[: bisect.bisect_left(self.finishes, self.finishes[-1] - THROUGHPUT_WINDOW)]
        attrs = trial.user_attrs
        if kind == "duplicate":
            self.duplicate_sources[attrs["duplicate_source"]] += 1
            note = f"duplicate of #{attrs.get('duplicate_of', '?')} ({attrs['duplicate_source']})"  # one record each
        else:
            note = attrs.get("fail_reason") or attrs.get("prune_reason") or ""
        self.recent.append(
            TrialRow(trial.number, kind, trial.values[0] if trial.values else None, dict(trial.params),
                     trial.datetime_complete, note)
        )
        if kind != "complete" or not trial.values:
            return
        if self.outline is not None:
            try:
                self.outline.add(trial)
            except Exception:  # never let a view's data stop the counts: built again when next asked
                self.outline = None
        ok = feasible(trial)
        self.constrained = self.constrained or bool(trial.constraints)
        if len(signs) > 1:
            if ok:
                self._update_front(trial, signs, span)
        else:
            value, sign = trial.values[0], signs[0]
            best_ok = self.best is not None and feasible(self.best)
            if self.best is None or (ok and not best_ok) or (ok == best_ok and sign * value > sign * self.best.values[0]):
                self.best = trial
                self.pinned_spans = {trial.number: span}
        if len(self.values) >= SERIES_CAP:
            self._thin()
        self.numbers.append(trial.number)
        self.values.append(trial.values[0])
        start = self.first_start or trial.datetime_start or trial.datetime_complete
        done = trial.datetime_complete
        self.seconds.append((done - start).total_seconds() if done is not None and start is not None else 0.0)

    def _thin(self) -> None:
        """Halve the convergence series: of each run of four points, the lowest and the
        highest value stay (in their order), so the plot's envelope and the best so far
        are kept; older history ends up coarser, as a plot of it needs."""
        values = np.asarray(self.values, dtype=float)
        n = len(values) // 4 * 4
        groups = values[:n].reshape(-1, 4)
        lo, hi = groups.argmin(axis=1), groups.argmax(axis=1)
        base = np.arange(0, n, 4)
        keep = np.unique(np.concatenate([base + lo, base + hi, np.arange(n, len(values))]))
        self.numbers = [self.numbers[i] for i in keep]
        self.values = [self.values[i] for i in keep]
        self.seconds = [self.seconds[i] for i in keep]

    def _update_front(self, trial: FrozenTrial, signs: list[int], span: tuple[int, int]) -> None:
        if any(dominates(f.values, trial.values, signs) or f.values == trial.values for f in self.front):
            return
        self.front = [f for f in self.front if not dominates(trial.values, f.values, signs)] + [trial]
        self.pinned_spans = {f.number: self.pinned_spans.get(f.number, span) for f in self.front}

    def span(self, number: int) -> tuple[int, int] | None:
        return self.pinned_spans.get(number) or self.spans.get(number)

    def trials_per_minute(self, now: datetime) -> float:
        del self.finishes[: bisect.bisect_left(self.finishes, now - THROUGHPUT_WINDOW)]
        if not self.finishes:
            return 0.0
        # Rate over the window, or over the study's life if that is shorter.
        span = THROUGHPUT_WINDOW.total_seconds()
        if self.first_start is not None:
            span = min(span, max((now - self.first_start).total_seconds(), 1.0))
        return 60.0 * len(self.finishes) / span

    # -------------------------------------------------------------- the stored summary
    def summary(self) -> dict[str, Any]:
        """What this follower knows, as JSON (tune_summaries.body): a follower made from it
        (:meth:`from_summary`) at the same journal offset shows the same."""
        r = self.replay
        window_start = datetime.now() - THROUGHPUT_WINDOW
        return {
            "format": SUMMARY_FORMAT, "offset": r.offset, "created": r.created, "study": r.study,
            "open": [[trial_json(t), r.spans[n]] for n, t in r.open.items()],
            "kinds": {str(n): k for n, k in self.kinds.items()}, "counts": dict(self.counts),
            "duplicate_sources": dict(self.duplicate_sources),
            "best": trial_json(self.best) if self.best else None, "constrained": self.constrained,
            "front": [trial_json(t) for t in self.front], "maximize": self.maximize,
            "spans": [[n, *s] for n, s in self.spans.items()],
            "pinned_spans": [[n, *s] for n, s in self.pinned_spans.items()],
            "finishes": [t.isoformat() for t in self.finishes if t >= window_start],
            "first_start": self.first_start.isoformat() if self.first_start else None,
            "numbers": self.numbers, "values": self.values, "seconds": self.seconds,
            "recent": [[t.number, t.state, t.value, t.params, t.finished_at.isoformat() if t.finished_at else None,
                        t.note] for t in self.recent],
        }

    @classmethod
    def from_summary(cls, name: str, created_at: datetime, body: dict[str, Any]) -> _Follower:
        f = cls(name, created_at)
        r = f.replay
        r.offset, r.created, r.study = body["offset"], body["created"], body["study"]
        for t, span in body["open"]:
            trial = new_trial(t, t["number"])
            r.open[trial.number], r.spans[trial.number] = trial, span
        f.kinds = {int(n): k for n, k in body["kinds"].items()}
        f.counts.update(body["counts"])
        f.duplicate_sources.update(body["duplicate_sources"])
        f.best = new_trial(body["best"], body["best"]["number"]) if body["best"] else None
        f.constrained, f.maximize = body["constrained"], body["maximize"]
        f.front = [new_trial(t, t["number"]) for t in body["front"]]
        f.spans.update((n, (a, b)) for n, a, b in body["spans"])
        f.pinned_spans.update((n, (a, b)) for n, a, b in body["pinned_spans"])
        f.finishes = [datetime.fromisoformat(t) for t in body["finishes"]]
        f.first_start = datetime.fromisoformat(body["first_start"]) if body["first_start"] else None
        f.numbers, f.values, f.seconds = body["numbers"], body["values"], body["seconds"]
        f.recent.extend(TrialRow(n, k, v, p, datetime.fromisoformat(at) if at else None, note)
                        for n, k, v, p, at, note in body["recent"])
        f.summary_offset = r.offset
        return f


def trial_json(t: FrozenTrial) -> dict[str, Any]:
    """A trial as the summary keeps it: the CREATE_TRIAL record that makes it again
    (storage.replay.new_trial), with its number; no intermediate values, which the
    followers never read."""
    return {
        "number": t.number, "state": t.state.value, "values": t.values,
        "params": {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()},
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "user_attrs": t.user_attrs, "system_attrs": t.system_attrs,
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }


def compromise(front: list[FrozenTrial], signs: list[int]) -> FrozenTrial | None:
    """The front's trial nearest the ideal point, each objective scaled to [0, 1] over the front."""
    if not front:
        return None
    lows = [min(sign * t.values[i] for t in front) for i, sign in enumerate(signs)]
    highs = [max(sign * t.values[i] for t in front) for i, sign in enumerate(signs)]

    def distance(t: FrozenTrial) -> float:
        return sum(
            (1 - ((sign * t.values[i] - lo) / (hi - lo) if hi > lo else 1.0)) ** 2
            for i, (sign, lo, hi) in enumerate(zip(signs, lows, highs))
        )

    return min(front, key=lambda t: (distance(t), t.number))


class Monitor:
    """Polls the database for the named studies (all studies when ``names`` is None).

    A follower starts from the study's stored summary (``tune_summaries``, if any, for
    the study as it is now) and reads only the journal past it; every SUMMARY_EVERY
    records it has read past the stored one, and once the study is at rest, it stores
    its own. No trial's metrics are read but the best's (and a detail view's), each
    once: the first screen, a refresh and the memory held cost the same at a hundred
    trials or a hundred thousand."""

    def __init__(self, db: Database, names: list[str] | None = None, detail: bool = True,
                 archived: bool = False) -> None:
        """``detail``: the best trial's metrics (its user attributes) and the studies'
        events too; without, what ``tune status``'s table shows: counts, rates, best
        values and parameters."""
        self.db = db
        self.names = names
        self.archived = archived  # with names None: the archived studies too (tune status --archived)
        self.detail = detail
        self._followers: dict[str, _Follower] = {}
        self._last_event_id: int | None = None
        self._event_ids: collections.deque[int] = collections.deque(maxlen=4 * EVENT_ID_WINDOW)
        self._summaries = True  # False once a summary could not be written (a read-only role)

    def poll(self, with_workers: bool = True, max_records: int | None = None) -> Snapshot:
        """Read what is new. ``max_records`` bounds the journal records read in this poll,
        shared evenly among the studies, so that the first poll of a long history returns
        quickly, and holds as much memory with 50 studies as with 5; the rest follows in
        later polls (``Snapshot.catching_up``). Without it, everything new is read, in
        pages of READ_PAGE_RECORDS in all (one query for 17 million records would outlast
        the server's answer deadline, and hold them all in memory at once)."""
        now = datetime.now()
        rows = control.list_studies(self.db, self.names, archived=self.archived)
        fresh = [r for r in rows if (f := self._followers.get(r.name)) is None or f.created_at != r.created_at]
        stored = self.db.read_summaries([r.name for r in fresh]) if fresh else {}
        for row in fresh:
            self._followers[row.name] = self._start(row, stored.get(row.name))
        names = [r.name for r in rows]
        workers = control.list_workers(self.db, names) if rows else []
        by_name = {r.name: r for r in rows}
        working = {w.study for w in workers if w.alive}
        behind = self._read(names, by_name, working, max_records or READ_PAGE_RECORDS)
        while behind and max_records is None:
            behind = self._read(behind, by_name, working, READ_PAGE_RECORDS)
        catching_up = bool(behind)
        if self.detail:  # events are detail
            self._read_events(names)
        views = []
        for row in rows:
            f = self._followers[row.name]
            mine = [w for w in workers if w.study == row.name]
            views.append(self._view(row, f, mine, now, with_workers))
        return Snapshot(storage=self.db.masked_url, taken_at=now, studies=views, catching_up=catching_up)

    def _read(self, names: list[str], by_name: dict[str, control.StudyRow], working: set[str],
              budget: int) -> list[str]:
        """Read and apply up to ``budget`` new journal records, shared among ``names``;
        returns the studies with more to read."""
        if not names:
            return []
        limit = max(1, budget // len(names))
        new_records = self.db.read_journals({n: self._followers[n].offset for n in names}, limit=limit,
                                            keep=NOTE_ATTRS)
        behind = []
        for name, records in new_records.items():
            f = self._followers[name]
            f.apply(records, by_name[name].direction)
            truncated = len(records) >= limit
            if truncated:
                behind.append(name)
            # At rest (read to its end, no trial open, no worker on it): its journal will not
            # grow soon, so a summary of it all makes the next first look read (almost) nothing.
            at_rest = not truncated and not f.replay.open and name not in working
            unsummarised = f.offset - f.summary_offset
            # While catching up on history, less often: the summary at the end stands for it all.
            if unsummarised >= SUMMARY_EVERY * (10 if truncated else 1) or (at_rest and unsummarised >= SUMMARY_AT_REST):
                self._store_summary(f)
        return behind

    @staticmethod
    def _start(row: control.StudyRow, stored: tuple[datetime, dict[str, Any]] | None) -> _Follower:
        if stored is not None and stored[0] == row.created_at and stored[1].get("format") == SUMMARY_FORMAT:
            try:
                return _Follower.from_summary(row.name, row.created_at, stored[1])
            except (KeyError, TypeError, ValueError):  # a damaged summary: read the journal instead
                pass
        return _Follower(row.name, row.created_at)

    def _store_summary(self, f: _Follower) -> None:
        f.summary_offset = f.offset
        if not self._summaries:
            return
        try:
            self.db.write_summary(f.name, f.offset, f.created_at, f.summary())
        except ValueError:  # a value JSON cannot hold (inf): the next one, maybe
            pass
        except sa.exc.DBAPIError:  # no right to write (a read-only role): follow without
            self._summaries = False

    def summarise(self, page: int = SUMMARY_PAGE) -> None:
        """Read up to each study's end, ``page`` records at a time (in all), and store a summary of
        whatever lies past the stored one (a worker's :class:`SummaryKeeper`)."""
        while self.poll(with_workers=False, max_records=page).catching_up:
            pass
        for f in self._followers.values():
            if f.offset > f.summary_offset:
                self._store_summary(f)

    # For the insight views (runner/explore.py); call them from the thread that polls, as
    # the replay grows there.
    def trial(self, name: str, number: int) -> FrozenTrial | None:
        """Trial ``number`` of ``name``, whole (metrics and intermediate values): an open one
        as followed, a finished one read back from the journal (then kept, a few)."""
        f = self._followers.get(name)
        if f is None or not 0 <= number < f.replay.created:
            return None
        if number in f.replay.open:  # still changing: read back each time
            return rebuild_trial(self.db.read_trial(name, number, (f.replay.spans[number], f.offset)), number)
        found = f.full.get(number)
        if found is None:
            found = rebuild_trial(self.db.read_trial(name, number, f.span(number)), number)
            if found is None:
                return None
            f.full[number] = found
            if len(f.full) > FULL_KEPT:
                f.full.popitem(last=False)
        f.full.move_to_end(number)
        return found

    def outline(self, name: str) -> Outline | None:
        """The study's slices and heatmap: built from its complete trials, read back from the
        journal, when first asked, then kept as trials finish; rebuilt once when a trial
        came in another distribution (a refined space)."""
        f = self._followers.get(name)
        if f is None or not f.counts["complete"]:
            return None
        if f.outline is None or f.outline.stale:
            f.outline = Outline.of(self._complete_trials(name, f.offset), f.maximize)
        return f.outline

    def _complete_trials(self, name: str, upto: int):
        """The study's complete trials in its first ``upto`` journal records, read in pages."""
        replay = JournalReplay()
        while replay.offset < upto:
            page = self.db.read_journals({name: replay.offset}, limit=min(PostgresJournalBackend.READ_PAGE, upto - replay.offset),
                                         keep=KIND_ATTRS)[name]
            if not page:
                return
            for trial, _, _ in replay.apply(page):
                if trial.state.is_finished() and category(trial) == "complete":
                    yield trial

    def slices(self, name: str, best: int | None) -> list[Slice]:
        """One slice per parameter of ``name``'s complete trials, trial ``best`` marked."""
        outline = self.outline(name)
        return outline.slices(self.trial(name, best) if best is not None else None) if outline else []

    def heatmap(self, name: str, x: str | None, y: str | None, bins: int, ranked: list[str] | None,
                best: int | None) -> Heatmap | None:
        """The best value per cell over ``x`` and ``y`` (see :meth:`Outline.heatmap`)."""
        outline = self.outline(name)
        marked = self.trial(name, best) if best is not None else None
        return outline.heatmap(x, y, bins, ranked, marked) if outline else None

    def space(self, name: str) -> dict[str, BaseDistribution]:
        """The distributions the study's best trial was asked in (its space, in one trial)."""
        f = self._followers.get(name)
        best = f and (f.best or next(iter(f.front), None))
        return dict(best.distributions) if best else {}

    def _read_events(self, names: list[str]) -> None:
        if not names:
            return
        with self.db.engine.connect() as conn:
            if self._last_event_id is None:  # first poll: only the recent tail
                floor = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM tune_events")).scalar_one()
                self._last_event_id = max(floor - 20 * EVENTS_KEPT, 0)
            # Ids come from a sequence, and concurrent inserts may commit out of id order:
            # re-read a short window below the highest id seen, skipping ids already shown.
            rows = conn.execute(
                sa.text(
                    "SELECT id, study, worker, at, level, message FROM tune_events"
                    " WHERE id > :last AND study = ANY(:names) ORDER BY id"
                ),
                {"last": max(self._last_event_id - EVENT_ID_WINDOW, 0), "names": names},
            ).all()
        for r in rows:
            if r.id in self._event_ids:
                continue
            self._event_ids.append(r.id)
            f = self._followers[r.study]
            f.events.append(EventRow(r.id, r.at, r.level, r.worker, r.message))
            f.events_version += 1
            self._last_event_id = max(self._last_event_id, r.id)

    def _whole(self, f: _Follower, t: FrozenTrial) -> FrozenTrial:
        """``t`` with its metrics (read back once) when this monitor shows them."""
        return (self.trial(f.name, t.number) or t) if self.detail else t

    def _view(self, row: control.StudyRow, f: _Follower, workers, now: datetime, with_workers: bool) -> StudyView:
        c = f.counts
        metrics, directions = list(row.metric), list(row.direction)
        s = StudyStatus(
            study=row.name, run=row.run_name, symbol=row.symbol, fold=row.fold, state="idle", control=row.control,
            metric=metrics[0], direction=directions[0], metrics=metrics, directions=directions,
            target=row.target_trials, max_attempts=row.max_attempts, ended_code=row.ended_code,
            ended_reason=row.ended_reason,
            complete=c["complete"], pruned=c["pruned"], failed=c["failed"], duplicate=c["duplicate"],
            running=c["running"], attempts=f.replay.created, duplicate_sources=dict(f.duplicate_sources),
            trials_per_minute=f.trials_per_minute(now), desired_workers=row.desired_workers,
            config_path=row.config_path, archived=row.archived_at is not None, parent=row.parent,
        )
        if len(metrics) > 1:
            signs = [1 if d == "maximize" else -1 for d in directions]
            s.pareto_front = [_trial_summary(t) for t in sorted(f.front, key=lambda t: t.number)]
            s.front_size = len(f.front)
            chosen = compromise(f.front, signs)
            if chosen is not None:
                s.compromise_trial = _trial_summary(chosen)
                _set_best(s, self._whole(f, chosen), f.constrained)
        elif f.best is not None:
            s.best_value = f.best.values[0]
            _set_best(s, self._whole(f, f.best), f.constrained)
        s.workers_alive = sum(w.alive for w in workers)
        if with_workers:
            s.workers = [
                {"id": w.id, "study": w.study, "host": w.host, "pid": w.pid,
                 # a live status with a stale heartbeat: the worker is lost, whatever it last said
                 "status": w.status if w.alive or w.status not in LIVE_WORKER_STATUSES else WorkerStatus.LOST,
                 "alive": w.alive, "heartbeat_at": w.heartbeat_at.isoformat(), "trials_done": w.trials_done,
                 "exit_reason": w.exit_reason,
                 # as of its last heartbeat (runner/hosts.py sums them per host); None when not measured
                 "cpu_percent": w.cpu_percent, "rss_bytes": w.rss_bytes, "host_load": w.host_load,
                 "host_cpus": w.host_cpus, "host_mem_percent": w.host_mem_percent}
                for w in workers
            ]
        s.state = derive_state(row.control, row.ended_code, s)
        s.eta_seconds = _eta(s)
        return StudyView(
            status=s, numbers=f.numbers, values=f.values, seconds=f.seconds, completed=len(f.values),
            recent=list(f.recent), events=list(f.events), version=f.version, events_version=f.events_version,
        )


def _trial_summary(t: FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": list(t.values), "params": dict(t.params)}


def _set_best(s: StudyStatus, t: FrozenTrial, constrained: bool) -> None:
    s.best_trial = t.number
    s.best_params = dict(t.params)
    s.best_metrics = dict(t.user_attrs)
    s.best_on_bound = on_bound(t.params, t.distributions)
    if constrained:
        s.best_constraints = dict(t.constraints)
        s.best_feasible = feasible(t)


def _eta(s: StudyStatus) -> float | None:
    remaining = max(s.target - s.complete, 0)
    if remaining == 0:
        return 0.0
    complete_share = s.complete / s.attempts if s.attempts else 0.0
    rate = s.trials_per_minute * complete_share
    if rate > 0 and s.state == StudyState.RUNNING:  # a paused or stopped study has no ETA
        return 60.0 * remaining / rate
    return None


def on_bound(params: dict[str, Any], dists: dict[str, BaseDistribution]) -> list[str]:
    """The numeric parameters of a trial that sit on a bound of the space, e.g.
    "slow = 20 (low)": a best trial there suggests widening the space on that side."""
    out = []
    for name, value in params.items():
        d = dists.get(name)
        if isinstance(d, (IntDistribution, FloatDistribution)) and not isinstance(value, bool):
            if value <= d.low:
                out.append(f"{name} = {value} (low)")
            elif value >= d.high:  # Optuna moves a high off the step grid down onto it
                out.append(f"{name} = {value} (high)")
    return out


class SummaryKeeper:
    """A worker's share of keeping its study's stored summary current (issue 14).

    Followers (the app, ``tune status``) store summaries as they read; a study run by
    workers alone, or for hours after the app quit, would otherwise leave the next first
    look to read its whole history. Trial numbers are unique across workers, so "the
    worker that took trial k * SUMMARY_TRIALS" is one worker on any host, with no
    claim to make: it brings the summary up to the journal's end on a thread of its own,
    off the trial loop. Its follower is kept, so the next time reads only what is new.
    A summary is a cache: a failure is logged once and costs nothing else.
    """

    def __init__(self, db: Database, study: str) -> None:
        self.monitor = Monitor(db, [study], detail=False)
        self.thread: threading.Thread | None = None
        self._warned = False

    def offer(self, number: int) -> bool:
        """Start bringing the summary up to date if trial ``number`` is this worker's turn
        and the previous turn is done."""
        if number == 0 or number % SUMMARY_TRIALS or (self.thread is not None and self.thread.is_alive()):
            return False
        self.thread = threading.Thread(target=self._run, name="summary", daemon=True)
        self.thread.start()
        return True

    def finish(self, timeout: float = 5.0) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            self.monitor.summarise()
        except Exception as exc:  # noqa: BLE001 - a cache: the next turn tries again
            if not self._warned:
                self._warned = True
                log.warning("the study's summary was not stored: %s", first_line(exc))
