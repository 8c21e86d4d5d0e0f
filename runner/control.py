"""Control-plane state in the database: studies' run state, live workers, events.

Pause, resume and stop are rows here, not signals: they work from any host,
survive the app's restart, and workers read them between trials (their
heartbeat thread fetches them, so the trial loop pays no query for it).

A worker is *alive* while its heartbeat is younger than the study's grace
period. A worker whose heartbeat is older is *lost* (killed, host down); its
running trial is failed by whoever notices first (:func:`reap_lost_workers`).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from optuna.distributions import (
    CategoricalDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)

from .errors import ConfigError
from .states import LIVE_WORKER_STATUSES, NEEDS_NO_WORKERS, Control, EndCode, WorkerStatus
from .storage import Database, retry_on_disconnect
from .text import printable, storable

LIVE_STATUSES = [str(s) for s in LIVE_WORKER_STATUSES]  # as bound query parameters



# Live workers of study :s (heartbeat within the study's grace), as a subquery.
_LIVE_COUNT = """
    SELECT count(*) FROM tune_workers w JOIN tune_studies st ON st.name = w.study
    WHERE w.study = :s AND w.status = ANY(:live)
      AND w.heartbeat_at > now() - make_interval(secs => st.grace_seconds)
"""


@dataclass(frozen=True)
class StudyRow:
    name: str
    run_name: str
    symbol: str
    config_path: str | None
    metric: list[str]  # one per objective
    direction: list[str]
    target_trials: int
    max_attempts: int
    desired_workers: int
    grace_seconds: float
    control: Control
    ended_code: EndCode | None
    ended_reason: str | None
    created_at: datetime
    updated_at: datetime
    next_worker_index: int = 0
    fold: int | None = None  # a walk-forward fold's number; None: the symbol's main study
    space: dict | None = None  # {param: Optuna distribution JSON} the study's trials were asked in
    split: dict | None = None  # control.split_settings of the config that registered it
    seen_bars: list | None = None  # validation.seen_bars of its first worker's data (pin_seen_bars)
    archived_at: datetime | None = None  # tune archive; None: shown
    parent: str | None = None  # the study it was refined from (tune refine); None: a run of its own


class StudyExists(ValueError):
    """register_study(new_only=True) of a study that exists (another process made it first)."""


class NoStudyConfig(ValueError):
    """study_config: no such study, no config on record, or a config that is not its own."""


def study_config(db: Database, study: str, given: str | None):
    """The study's control row and its config (``given``, else where it was run from);
    NoStudyConfig when there is no such study or the config is not its own (ConfigError when
    the config is broken). For tune refine, stage, report and the app's refine."""
    from .config import load_config  # the config's modules (pandas) only for those that need one

    rows = list_studies(db, [study])
    if not rows:
        raise NoStudyConfig(f"no such study: {printable(study)} (see tune status)")
    row = rows[0]
    path = given or row.config_path
    if not path:
        raise NoStudyConfig(f"{printable(study)}: the study has no config on record; give it with --config")
    cfg = load_config(path)
    if row.fold not in cfg.folds() or cfg.study_name(row.symbol, row.fold) != study:
        raise NoStudyConfig(f"{path}: its studies are {', '.join(cfg.study_names())}, not {printable(study)}")
    return row, cfg


@retry_on_disconnect
def register_study(db: Database, cfg, symbol: str, *, reset_control: bool, fold: int | None = None,
                   new_only: bool = False, parent: str | None = None) -> None:
    """Create or refresh the control row of one symbol's study from a config.

    ``new_only``: create it, or raise StudyExists and change nothing (tune refine: two at
    once must not both take one name). ``parent``: the study it is refined from, kept when
    the row is made (its lineage).

    ``reset_control`` sets the study back to running (an explicit ``tune run``
    or app start means "run this"); a worker joining later does not reset it.
    """
    from .space import distributions  # the config's modules (pandas) only for those that register

    name = cfg.study_name(symbol, fold)
    space = {k: distribution_to_json(d) for k, d in distributions(cfg).items()}
    values = {
        "name": name, "run_name": cfg.study.name, "symbol": symbol, "fold": fold,
        "config_path": str(cfg.source_path) if cfg.source_path else None,
        "metric": list(cfg.study.metrics), "direction": list(cfg.directions),
        "target_trials": cfg.study.target_trials, "max_attempts": cfg.study.attempt_cap,
        "desired_workers": cfg.study.workers_per_symbol, "grace_seconds": cfg.study.grace_seconds,
        "space": json.dumps(space), "split": json.dumps(split_settings(cfg)), "parent": parent,
        "notify": list(cfg.notify.events) if cfg.notify is not None else None,
    }
    # An explicit run (tune run, the app) means "run this config as written".
    reset = (", control = 'running', ended_code = NULL, ended_reason = NULL, desired_workers = EXCLUDED.desired_workers"
             ", archived_at = NULL" if reset_control else "")
    with db.engine.begin() as conn:
        old = conn.execute(
            sa.text("SELECT metric, direction, space, split, seen_bars FROM tune_studies WHERE name = :n FOR UPDATE"),
            {"n": name}
        ).first()
        if old is not None and new_only:
            raise StudyExists(f"{name} exists already")
        if old is not None:
            _check_same_study(cfg, name, list(old.metric), list(old.direction), old.space or {}, space)
            check_same_split(cfg, name, old.split, old.seen_bars)
        on_conflict = ("DO NOTHING" if new_only else """DO UPDATE SET
                    config_path = EXCLUDED.config_path, metric = EXCLUDED.metric,
                    direction = EXCLUDED.direction, target_trials = EXCLUDED.target_trials,
                    max_attempts = EXCLUDED.max_attempts, grace_seconds = EXCLUDED.grace_seconds,
                    space = EXCLUDED.space, split = EXCLUDED.split, notify = EXCLUDED.notify,
                    updated_at = now()""" + reset)
        made = conn.execute(
            sa.text(
                """
                INSERT INTO tune_studies (name, run_name, symbol, fold, config_path, metric, direction,
                    target_trials, max_attempts, desired_workers, grace_seconds, space, split, parent, notify)
                VALUES (:name, :run_name, :symbol, :fold, :config_path, :metric, :direction,
                    :target_trials, :max_attempts, :desired_workers, :grace_seconds, CAST(:space AS jsonb),
                    CAST(:split AS jsonb), :parent, :notify)
                ON CONFLICT (name) """ + on_conflict + " RETURNING name"
            ),
            values,
        ).first()
        if made is None:  # new_only, and another process inserted it since the SELECT above
            raise StudyExists(f"{name} exists already")


def split_settings(cfg) -> dict:
    """What decides which bars a study's trials see: the holdout and the walk-forward folds."""
    wf = cfg.validation.walk_forward
    return {"holdout": cfg.validation.holdout, "walk_forward": wf.model_dump() if wf else None}


def check_same_split(cfg, name: str, old: dict | None, pinned: list | None = None) -> None:
    """A study's trials must all have seen the same bars: resuming (or reporting on) it with
    another holdout or other folds would mix trials scored on what is now the holdout or a
    fold's test window into what the report calls in sample. A ConfigError (exit 2) instead.
    A study from before [validation] (None) had neither. With the bars its trials saw
    pinned (pin_seen_bars), another way to write the same holdout (a fraction as its
    timestamp) is the same split: the pin, checked against the data, decides."""
    old = old or {"holdout": None, "walk_forward": None}
    new = split_settings(cfg)
    if pinned is not None:
        old, new = {**old, "holdout": None}, {**new, "holdout": None}
    if old != new:
        raise ConfigError(
            cfg.source_path or "config", "validation",
            f"{name} was run with holdout = {old['holdout']!r}, walk_forward = {old['walk_forward']!r}; "
            f"this config has holdout = {new['holdout']!r}, walk_forward = {new['walk_forward']!r}: its trials "
            f"saw other bars. Use a new study.name, or resume = false to start {name} fresh")


@retry_on_disconnect
def pin_seen_bars(db: Database, cfg, name: str, seen: list[str | None] | None, fold: int | None = None) -> None:
    """Keep the bars a study's trials see (validation.seen_bars) with the study the first
    time, and check them every later time: a ConfigError (exit 2) if the data changed so
    that its trials would now see other bars — appended bars move a fractional holdout
    (and the folds), so later trials would be scored on bars the earlier ones never saw
    and the report would call the study's out-of-sample figures what they are not."""
    with db.engine.begin() as conn:
        pinned = conn.execute(
            sa.text("UPDATE tune_studies SET seen_bars = COALESCE(seen_bars, CAST(:w AS jsonb)) "
                    "WHERE name = :s RETURNING seen_bars"),
            {"s": name, "w": None if seen is None else json.dumps(seen)},
        ).scalar()
    check_seen_bars(cfg, name, pinned, seen, fold)


def check_seen_bars(cfg, name: str, pinned: list | None, seen: list[str | None] | None,
                    fold: int | None = None) -> None:
    """The ConfigError of :func:`pin_seen_bars`, from a study row read already (no write)."""
    if pinned is None or pinned == seen:
        return
    saw = f"{name}'s trials saw the bars from {pinned[0]} to before {pinned[1] or 'the end of the data'}"
    fresh = f"a new study.name, or resume = false to start {name} fresh"
    if seen is None:
        raise ConfigError(cfg.source_path or "config", "validation.holdout",
                          f"{saw}; this config keeps no bars unseen. Use {fresh}")
    # A main study's unseen bars start at its holdout: pinning that keeps the split (with the
    # same first bar; and for every symbol only if they share that timestamp).
    keep = (f'holdout = "{pinned[1]}" (a timestamp; every symbol\'s holdout then starts there) to keep '
            "the split, or " if pinned[1] and fold is None and pinned[0] == seen[0] else "")
    raise ConfigError(
        cfg.source_path or "config", "validation",
        f"the data changed: {saw}; with this data they would see the bars from {seen[0]} to before "
        f"{seen[1] or 'the end of the data'}. Use {keep}{fresh}")


def _check_same_study(cfg, name: str, metric: list[str], direction: list[str],
                      old_space: dict[str, str], new_space: dict[str, str]) -> None:
    """A config that resumes a study must ask the same question: the same objectives, and
    each parameter it keeps in a distribution Optuna accepts for the trials already there
    (a range may change; an int may not become a categorical). Otherwise: a ConfigError
    (exit 2) before any worker starts, instead of workers that crash or old trials that
    quietly mean something else."""
    path = cfg.source_path or "config"
    fresh = f"use a new study.name, or resume = false to start {name} fresh"
    if metric != list(cfg.study.metrics) or direction != list(cfg.directions):
        raise ConfigError(path, "study.metric",
                          f"{name} has trials for {', '.join(metric)} ({', '.join(direction)}), "
                          f"not {', '.join(cfg.study.metrics)} ({', '.join(cfg.directions)}): {fresh}")
    for param, text in old_space.items():
        if param not in new_space:
            continue  # a parameter left out: the old trials keep their values
        old, new = json_to_distribution(text), json_to_distribution(new_space[param])
        try:
            check_distribution_compatibility(old, new)
            if isinstance(old, CategoricalDistribution) and isinstance(new, CategoricalDistribution) \
                    and old.choices != new.choices:
                raise ValueError("categorical choices cannot change")  # Optuna refuses it at ask
        except ValueError as exc:
            raise ConfigError(path, f"space.{param}",
                              f"{name} has trials with {param} as {old}; it cannot become {new} ({exc}): {fresh}") from None


def list_studies(db: Database, names: list[str] | None = None, archived: bool = False) -> list[StudyRow]:
    """The named studies (archived or not), or every study — the archived ones only with ``archived``."""
    # The columns named: a database that a newer version gave more columns still reads here.
    sql = f"SELECT {', '.join(f.name for f in fields(StudyRow))} FROM tune_studies"
    params: dict = {}
    if names is not None:
        sql += " WHERE name = ANY(:names)"
        # As stored: a name from a command line may hold bytes that are not UTF-8 ($'\xff'),
        # which no study's name has; the query must still run to say so.
        params["names"] = [storable(n) for n in names]
    elif not archived:
        sql += " WHERE archived_at IS NULL"
    with db.engine.connect() as conn:
        # A run's studies by symbol, each followed by its folds in number order (wf2 before wf10).
        rows = conn.execute(sa.text(sql + " ORDER BY run_name, symbol, COALESCE(fold, 0), name"),
                            params).mappings().all()
    return [
        StudyRow(**{**row, "control": Control(row["control"]),
                    "ended_code": EndCode(row["ended_code"]) if row["ended_code"] else None})
        for row in rows
    ]


def with_folds(db: Database, rows: list[StudyRow]) -> list[StudyRow]:
    """``rows`` and the walk-forward folds of each main study among them (a fold is its
    symbol's study's part), in list_studies' order."""
    mains = [r for r in rows if r.fold is None]
    if not mains:
        return rows
    with db.engine.connect() as conn:
        folds = [r[0] for r in conn.execute(sa.text(
            "SELECT name FROM tune_studies WHERE fold IS NOT NULL AND (run_name, symbol) IN"
            " (SELECT * FROM unnest(CAST(:runs AS text[]), CAST(:symbols AS text[])))"),
            {"runs": [r.run_name for r in mains], "symbols": [r.symbol for r in mains]})]
    return list_studies(db, sorted({*(r.name for r in rows), *folds})) if folds else rows


def live_studies(conn, studies: list[str]) -> list[str]:
    """Those of ``studies`` with a live worker (on an open connection: tune delete's check,
    in its own transaction)."""
    return sorted(r[0] for r in conn.execute(sa.text(
        "SELECT DISTINCT w.study FROM tune_workers w JOIN tune_studies s ON s.name = w.study"
        " WHERE w.study = ANY(:s) AND w.status = ANY(:live)"
        " AND w.heartbeat_at > now() - make_interval(secs => s.grace_seconds)"),
        {"s": list(studies), "live": list(LIVE_STATUSES)}))


@retry_on_disconnect
def set_archived(db: Database, names: list[str], archived: bool) -> list[str]:
    """Archive (or bring back) the named studies; returns those that changed."""
    with db.engine.begin() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "UPDATE tune_studies SET archived_at = CASE WHEN :a THEN now() END, updated_at = now()"
            " WHERE name = ANY(:names) AND (archived_at IS NULL) = :a RETURNING name"),
            {"a": archived, "names": list(names)})]


@retry_on_disconnect
def set_control(db: Database, names: list[str] | None, control: Control | str) -> list[str]:
    """Set pause/resume/stop for the named studies (all but the archived ones when ``names`` is None).

    Returns the names that exist. A stopped study is stopped for good until a
    new ``tune run`` or app start resets it.
    """
    sql = "UPDATE tune_studies SET control = :c, updated_at = now()"
    params: dict = {"c": str(Control(control))}
    if names is not None:
        if Control(control) == Control.RUNNING:
            sql += ", archived_at = NULL"  # resuming an archived study by name means "show and run it"
        sql += " WHERE name = ANY(:names)"
        params["names"] = list(names)
    else:
        sql += " WHERE archived_at IS NULL"  # every study: those not archived
    with db.engine.begin() as conn:
        return [r[0] for r in conn.execute(sa.text(sql + " RETURNING name"), params)]


@retry_on_disconnect
def change_workers(db: Database, study: str, delta: int) -> int:
    """Ask for one worker more or fewer (relative to the live ones); returns the new desired count.

    Fewer: the youngest surplus worker retires after its running trial. More:
    the caller starts the process (``supervisor.spawn_worker``).
    """
    with db.engine.begin() as conn:
        return conn.execute(
            sa.text(
                f"UPDATE tune_studies SET desired_workers = GREATEST(({_LIVE_COUNT}) + :d, 0), updated_at = now()"
                " WHERE name = :s RETURNING desired_workers"
            ),
            {"s": study, "d": delta, "live": list(LIVE_STATUSES)},
        ).scalar_one()


@retry_on_disconnect
def set_ended(db: Database, study: str, code: EndCode, reason: str) -> bool:
    """Record why the study's workers stopped for good: a code to act on, a message to read.
    True for the first caller since the study last started (the one to write its report)."""
    # Two statements: a CTE's FOR UPDATE read of the row the same statement updates sees
    # no row (PostgreSQL skips a row its own command changed), so "first" was always true
    # and every worker of a study wrote its report and told its end.
    with db.engine.begin() as conn:
        before = conn.execute(sa.text("SELECT ended_code FROM tune_studies WHERE name = :s FOR UPDATE"),
                              {"s": study}).first()
        if before is None:
            return False
        conn.execute(sa.text("UPDATE tune_studies SET ended_code = :c, ended_reason = :r, updated_at = now() "
                             "WHERE name = :s"), {"c": str(code), "r": reason, "s": study})
    return before.ended_code is None


@retry_on_disconnect
def add_event(db: Database, study: str, worker: str | None, level: str, message: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tune_events (study, worker, level, message) VALUES (:s, :w, :l, :m)"),
            {"s": study, "w": worker, "l": level, "m": storable(message)[:2000]},
        )


# ------------------------------------------------------------------ workers


@dataclass(frozen=True)
class Resources:
    """What a worker uses and what its host bears, measured at a heartbeat
    (runner/heartbeat.py) and written with it; a field is None when not measured."""

    cpu_percent: float | None = None  # this process's CPU % since its last heartbeat; 100 = one core
    rss_bytes: int | None = None  # its resident memory
    host_load: float | None = None  # the host's 1-minute load average
    host_cpus: int | None = None  # the host's logical CPUs
    host_mem_percent: float | None = None  # the host's memory in use, %


class WorkerRegistration:
    """A worker's row in ``tune_workers`` and the queries on it.

    ``launch_id``: the row a launcher claimed for this process (:func:`claim_launches`),
    adopted here; without one (a worker started by hand), or if that row was given up
    meanwhile, a new row. Either way the worker gets an index no other worker of the
    study ever had (:attr:`index`: its sampler seed).
    """

    @retry_on_disconnect
    def __init__(self, db: Database, study: str, launch_id: str | None = None) -> None:
        self.db = db
        self.study = study
        host, pid = socket.gethostname(), os.getpid()
        with db.engine.begin() as conn:
            # One registration at a time per study: two workers starting together
            # would each count the live workers without the other and set the
            # desired count one too low (and the younger would retire at once).
            conn.execute(sa.text("SELECT 1 FROM tune_studies WHERE name = :s FOR UPDATE"), {"s": study})
            row = None
            if launch_id is not None:
                row = conn.execute(
                    sa.text(
                        "UPDATE tune_workers SET host = :h, pid = :p, heartbeat_at = now()"
                        " WHERE id = :id AND study = :s AND status = 'starting' RETURNING id, worker_index"
                    ),
                    {"id": launch_id, "s": study, "h": host, "p": pid},
                ).first()
            if row is None:
                row = conn.execute(
                    sa.text(
                        """
                        WITH ix AS (
                            UPDATE tune_studies SET next_worker_index = next_worker_index + 1
                            WHERE name = :s RETURNING next_worker_index - 1 AS i
                        )
                        INSERT INTO tune_workers (id, study, host, pid, status, worker_index)
                        SELECT :id, :s, :h, :p, 'starting', ix.i FROM ix RETURNING id, worker_index
                        """
                    ),
                    {"id": f"{host}-{uuid.uuid4().hex[:8]}", "s": study, "h": host, "p": pid},
                ).one()
            self.id, self.index = row
            if self.id == launch_id:
                return  # a launcher counted this worker when it claimed the row
            # A worker that joins (say, started by hand on another host) is wanted:
            # raise the desired count to include it, so it is not retired at once.
            conn.execute(
                sa.text(
                    f"UPDATE tune_studies SET desired_workers = GREATEST(desired_workers, ({_LIVE_COUNT}))"
                    " WHERE name = :s"
                ),
                {"s": study, "live": list(LIVE_STATUSES)},
            )

    @retry_on_disconnect
    def heartbeat(self, status: str, trial_id: int | None, trials_done: int,
                  resources: Resources | None = None) -> tuple[str | None, bool]:
        """Record liveness and return the study's control state (None if the study is gone).

        ``resources``, what the worker and its host use, is written in the same
        statement (None: not measured, the columns are cleared rather than left stale).
        A worker presumed lost (a stall longer than the grace period) comes back
        to life here; its trial was failed meanwhile and its tell is refused.
        """
        r = resources or Resources()
        with self.db.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    f"""
                    UPDATE tune_workers me SET heartbeat_at = now(), status = :st, trial_id = :t, trials_done = :n,
                        last_trial_at = CASE WHEN me.trials_done <> :n THEN now() ELSE me.last_trial_at END,
                        cpu_percent = :cpu, rss_bytes = :rss, host_load = :load, host_cpus = :ncpu,
                        host_mem_percent = :mem
                    WHERE id = :id
                    RETURNING (SELECT control FROM tune_studies WHERE name = :s),
                              (SELECT desired_workers FROM tune_studies WHERE name = :s),
                              ({_LIVE_COUNT} AND (w.started_at, w.id) < (me.started_at, me.id))
                    """
                ),
                {"st": status, "t": trial_id, "n": trials_done, "id": self.id, "s": self.study,
                 "live": list(LIVE_STATUSES), "cpu": r.cpu_percent, "rss": r.rss_bytes, "load": r.host_load,
                 "ncpu": r.host_cpus, "mem": r.host_mem_percent},
            ).first()
        if row is None:
            return None, False
        control_state, desired, older_live = row
        # The youngest workers beyond the desired count retire (the app's "-" key).
        return control_state, desired is not None and older_live >= desired

    def trial_claim(self, trial_id: int | None) -> tuple[str, dict[str, Any]]:
        """The statement (psycopg2 style) that claims the running trial as this worker's,
        so that no reaper takes it for an orphan; the worker sends it with its trial's
        parameters, in one round trip."""
        return ("UPDATE tune_workers SET trial_id = %(t)s, heartbeat_at = now() WHERE id = %(id)s",
                {"t": trial_id, "id": self.id})

    @retry_on_disconnect
    def exit(self, reason: str, status: WorkerStatus = WorkerStatus.EXITED) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE tune_workers SET status = :st, exit_reason = :r, trial_id = NULL, heartbeat_at = now()"
                    " WHERE id = :id"
                ),
                {"st": status, "r": storable(reason)[:2000], "id": self.id},
            )


@retry_on_disconnect
def claim_launches(db: Database, study: str, host: str) -> list[tuple[str, int]]:
    """Decide and claim, atomically, the workers ``study`` lacks: returns (worker id, index)
    per worker the caller must now start.

    Under the study row's lock, the missing count (desired minus live, anywhere) is
    taken as rows in ``tune_workers`` (status ``starting``) before any process
    exists, so two launchers at once — ``tune run`` and ``tune-tui``, or two hosts —
    never both start the same worker, and no two workers share an index. A claimed
    row whose process never comes is reaped like any silent worker.
    """
    with db.engine.begin() as conn:
        row = conn.execute(
            sa.text("SELECT desired_workers, ended_code FROM tune_studies WHERE name = :s FOR UPDATE"),
            {"s": study},
        ).first()
        if row is None or row.ended_code in NEEDS_NO_WORKERS:
            return []
        live = conn.execute(sa.text(_LIVE_COUNT), {"s": study, "live": list(LIVE_STATUSES)}).scalar_one()
        missing = max(row.desired_workers - live, 0)
        if not missing:
            return []
        first = conn.execute(
            sa.text("UPDATE tune_studies SET next_worker_index = next_worker_index + :n WHERE name = :s"
                    " RETURNING next_worker_index - :n"),
            {"s": study, "n": missing},
        ).scalar_one()
        launches = [(f"{host}-{uuid.uuid4().hex[:8]}", first + k) for k in range(missing)]
        conn.execute(
            sa.text("INSERT INTO tune_workers (id, study, host, pid, status, worker_index)"
                    " VALUES (:id, :s, :h, 0, 'starting', :i)"),
            [{"id": wid, "s": study, "h": host, "i": index} for wid, index in launches],
        )
    return launches


@retry_on_disconnect
def set_launched_pid(db: Database, worker_id: str, pid: int) -> None:
    """The process started for a claimed row (so it can be found and signalled before it registers)."""
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE tune_workers SET pid = :p WHERE id = :id AND pid = 0"), {"p": pid, "id": worker_id})


@retry_on_disconnect
def record_exit(db: Database, worker_id: str, reason: str, status: str) -> None:
    """A worker's exit reason, written late (it exited while the database was away)."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE tune_workers SET status = :st, exit_reason = :r, trial_id = NULL WHERE id = :id"),
            {"st": status, "r": storable(reason)[:2000], "id": worker_id},
        )


@dataclass(frozen=True)
class WorkerRow:
    id: str
    study: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    status: str
    trial_id: int | None
    trials_done: int
    exit_reason: str | None
    worker_index: int
    alive: bool
    # as of the last heartbeat (Resources); None when not measured
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    host_load: float | None = None
    host_cpus: int | None = None
    host_mem_percent: float | None = None


def list_workers(db: Database, studies: list[str] | None = None, live_only: bool = False) -> list[WorkerRow]:
    """Workers with an ``alive`` flag: live status and a heartbeat within the study's grace."""
    # The columns named: a database that a newer version gave more columns still reads here.
    columns = ", ".join(f"w.{f.name}" for f in fields(WorkerRow) if f.name != "alive")
    sql = f"""
        SELECT {columns},
               (w.status = ANY(:live) AND w.heartbeat_at > now() - make_interval(secs => s.grace_seconds)) AS alive
        FROM tune_workers w JOIN tune_studies s ON s.name = w.study
    """
    params: dict = {"live": list(LIVE_STATUSES)}
    if studies is not None:
        sql += " WHERE w.study = ANY(:studies)"
        params["studies"] = list(studies)
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(sql + " ORDER BY w.study, w.started_at"), params).mappings().all()
    workers = [WorkerRow(**row) for row in rows]
    return [w for w in workers if w.alive] if live_only else workers
