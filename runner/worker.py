"""One optimizer process for one symbol's study: ask → backtest → tell, until done.

Started by ``tune run`` / the app (in its own process session, so an SSH
hang-up does not end it), or by hand on another host with the same storage
URL. Any number of workers may share a study.

Between trials the loop consults state that a heartbeat thread keeps fresh
(control: running / paused / stopped), so the loop itself pays no query for
it. A paused worker waits on an event: no CPU, no open transaction.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

import backtest

from . import control, dedup, importances, notify, reaper, spool, validation
from .config import ConfigError, RunConfig
from .heartbeat import Heartbeat
from .monitor import KIND_ATTRS, SummaryKeeper, category
from .outcomes import COMPLETE, FAILURE, INVALID_PARAMS, PRUNED, told
from .space import distributions, is_conditional, param_key, suggest
from .states import WORKER_ATTR, Control, EndCode, WorkerStatus
from .storage import Database, StorageError, TuneJournalStorage, checkpoint, connection, quiet_optuna
from .study import Objective, TrialPruned, open_study, seed_key, worker_seed

EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT = 0, 1, 2
DUPLICATE = "duplicate"
DUPLICATE_STREAK = 200  # duplicates in a row on a space that cannot be enumerated: the study ends

log = logging.getLogger("tune.worker")


class Interrupted(BaseException):
    """SIGTERM/SIGINT: fail the running trial with a reason and leave."""


@dataclass
class _Shared:
    """State shared between the trial loop and the heartbeat thread."""

    status: WorkerStatus = WorkerStatus.STARTING
    trial_id: int | None = None
    trials_done: int = 0
    control: Control = Control.RUNNING
    retire: bool = False  # more workers than wanted, and this one the youngest
    interrupted: bool = False
    in_objective: bool = False
    changed: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


class StudyTally:
    """The study's trials by kind (runner.monitor.category), counted in time proportional
    to what changed, not to the study's size: a finished trial never changes kind (Optuna
    refuses updates to it, and its kind's attributes are written before its state), so
    the finished prefix of the study is counted once and only the trials from the oldest
    unfinished one on are counted again."""

    def __init__(self, top: validation.TopValues | None = None) -> None:
        self._settled = 0  # trials[:settled] are finished and in _counts
        self._counts: collections.Counter[str] = collections.Counter()
        self.top = top  # the best values of complete trials, kept as they settle

    def count(self, trials: list[optuna.trial.FrozenTrial]) -> collections.Counter[str]:
        while self._settled < len(trials) and trials[self._settled].state.is_finished():
            trial = trials[self._settled]
            kind = category(trial)
            self._counts[kind] += 1
            if self.top is not None and kind == "complete" and trial.values:
                self.top.add(trial.values[0])
            self._settled += 1
        counts = self._counts.copy()
        counts.update(map(category, trials[self._settled:]))
        return counts


class Worker:
    def __init__(self, db: Database, cfg: RunConfig, symbol: str, launch_id: str | None = None,
                 fold: int | None = None) -> None:
        self.db = db
        self.cfg = cfg
        self.symbol = symbol
        self.launch_id = launch_id
        self.fold = fold  # a walk-forward fold's number; None: the symbol's main study
        self.study_name = cfg.study_name(symbol, fold)
        self.id = launch_id or "(registering)"
        self.index = 0  # given by the registration: unique in the study, seeds the sampler
        self.shared = _Shared()
        self.registration: control.WorkerRegistration | None = None
        self.claims: dedup.ClaimBook | None = None
        self.rng = random.Random()
        self._outage_noted = 0.0
        self._last_params: dict = {}
        self._top: validation.TopValues | None = None  # with a holdout: the study's best values so far
        self._objective: Objective | None = None  # for the report at the study's end
        self._summaries: SummaryKeeper | None = None  # this worker's turns at the study's stored summary
        self.notifier: notify.Notifier | None = None  # [notify]: what happens, told to a person

    def database_back(self, waited: float) -> None:
        """After an outage: say in the study's log that this worker waited it out (while it
        lasted, its log file said so; the database could not be told)."""
        if self.notifier is not None:
            self.notifier.back(waited)
        now = time.monotonic()
        if waited < 1.0 or now - self._outage_noted < 10.0:  # one line per outage, not per thread
            return
        self._outage_noted = now
        self.event("warning", f"the database was unreachable for {waited:.0f} s; this worker waited, "
                              "keeping its finished results, and goes on")

    # ------------------------------------------------------------- events
    def event(self, level: str, message: str) -> None:
        """A line in the worker's log file and in the study's log (the app's log pane)."""
        log.log(logging.getLevelName(level.upper()), "[%s] %s", self.study_name, message)
        try:
            control.add_event(self.db, self.study_name, self.id, level, message)
        except Exception:  # the log is best effort; the trial loop must go on
            pass

    # --------------------------------------------------------------- run
    def run(self) -> int:
        quiet_optuna()
        control.register_study(self.db, self.cfg, self.symbol, reset_control=False, fold=self.fold)
        # Registered first, so the heartbeat keeps this worker alive while its data loads,
        # and its index (the sampler's seed) is its own.
        self.registration = control.WorkerRegistration(self.db, self.study_name, self.launch_id)
        self.id, self.index = self.registration.id, self.registration.index
        self.db.identity  # noqa: B018 - read now: kept results name their database even in an outage
        self.rng = random.Random(worker_seed(self.cfg, seed_key(self.symbol, self.fold), self.index))
        beat = Heartbeat(self.db, self.study_name, self.registration, self.shared, self._set_control,
                         self.cfg.study.heartbeat_seconds, self.cfg.study.grace_seconds)
        beat.start()
        if self.cfg.notify is not None:
            self.notifier = notify.Notifier(self.db, self.cfg, self.study_name, self.id, self.event).start()
        reason, code = "crashed", EXIT_CRASH
        try:
            try:
                objective = Objective(self.cfg, self.symbol, self.fold)
            except (backtest.DataError, ValueError, ImportError) as exc:
                reason, code = f"cannot load data: {exc}", EXIT_BAD_INPUT
                self.event("error", reason)
                self._end(EndCode.DATA_ERROR, reason)  # no objective: no report, only the end told
                return code
            try:  # this host's data must split as it did for the study's trials so far
                control.pin_seen_bars(self.db, self.cfg, self.study_name, objective.seen_bars, self.fold)
            except ConfigError as exc:  # this worker's data, not the study's: it alone leaves
                self.event("error", str(exc))
                reason, code = str(exc), EXIT_BAD_INPUT
                return code
            # Other workers' metrics are most of the study's records and nothing here reads
            # them: only the attributes that say what kind a trial is are replayed — from the
            # first read on (open_study's), or a worker joining a study of 20,000 trials held
            # every trial's metrics (775 MB; benchmarks/bench_monitor.py).
            self.db.optuna_storage(self.study_name, keep=KIND_ATTRS)
            study = open_study(self.db, self.cfg, self.symbol, self.index, self.fold)
            self.claims = dedup.ClaimBook(self.db, self.cfg, self.study_name, self.id) if self.cfg.study.dedup else None
            # Results that workers of this study on this host could not deliver before they exited.
            spool.deliver_all(self.db, self.study_name)
            reaper.reap_lost_workers(self.db, self.study_name, reader=True)  # workers that died while none ran
            self.event("info", f"worker {self.id} (index {self.index}, pid {os.getpid()}) started")
            reason = self._loop(study, objective)
            code = EXIT_OK
        except Interrupted:
            reason = "interrupted"
            code = EXIT_OK
        except StorageError as exc:
            reason = f"storage error: {exc}"
        except Exception as exc:
            reason = f"crashed: {type(exc).__name__}: {exc}"
            log.exception("[%s] worker crashed", self.study_name)
        finally:
            beat.stop()
            status = WorkerStatus.EXITED if code in (EXIT_OK, EXIT_BAD_INPUT) else WorkerStatus.CRASHED
            self._record_exit(reason, status, code)
            if self.notifier is not None:
                if status == WorkerStatus.CRASHED:
                    self.notifier.crashed(reason)
                self.notifier.close()
        return code

    def _record_exit(self, reason: str, status: str, code: int) -> None:
        """Write the exit reason, always: if the database is away, it waits on disk (spool)."""
        connection.configure(patience=5.0, on_wait=None)  # leaving: no more waiting out an outage
        log.log(logging.INFO if code == EXIT_OK else logging.ERROR, "[%s] worker %s exited: %s",
                self.study_name, self.id, reason)
        try:
            assert self.registration is not None
            self.registration.exit(reason, status)
        except BaseException:
            spool.keep_exit(self.db.identity, self.study_name, self.id, reason, status)
            return
        try:
            control.add_event(self.db, self.study_name, self.id, "info" if code == EXIT_OK else "error",
                              f"worker {self.id} exited: {reason}")
        except BaseException:
            pass

    def _loop(self, study: optuna.Study, objective: Objective) -> str:
        space = distributions(self.cfg)
        storage = self.db.optuna_storage(self.study_name)
        # Reads within a trial (the sampler's, several per ask) come from the replay as
        # the refresh below left it: one read per trial instead of one per call.
        storage.snapshot_reads = True
        # With a holdout, a trial entering the top-K (by the first metric) is validated on it.
        tally = StudyTally(
            validation.TopValues(self.cfg.validation.top_k, self.cfg.direction)
            if objective.holdout_start is not None else None
        )
        self._top = tally.top
        self._objective = objective
        live = (importances.LiveImportances(self.db, self.study_name, self.cfg.directions,
                                            on_error=lambda message: self.event("warning", message))
                if self.cfg.validation.live_importances else None)
        self._summaries = SummaryKeeper(self.db, self.study_name)
        try:
            return self._trials(study, storage, space, objective, tally, live)
        finally:
            self._summaries.finish()
            storage.finish_checkpoint()
            if live is not None:
                live.finish()

    def _trials(self, study: optuna.Study, storage: TuneJournalStorage, space, objective: Objective,
                tally: StudyTally, live: importances.LiveImportances | None) -> str:
        """Trials until the study ends, is stopped, or this worker retires: why, for its exit."""
        target = self.cfg.study.target_trials
        cap = self.cfg.study.attempt_cap
        s = self.shared
        pending: dict | None = None  # a free combination to evaluate next (after a duplicate)
        streak = 0  # duplicates in a row
        while True:
            if s.interrupted:
                raise Interrupted()
            # Read between trials (one round trip: the control state and the study's new
            # records), so a pause or stop applies before the next trial is asked for; the
            # heartbeat thread keeps it fresh while paused.
            self._set_control(storage.refresh(after_write=True))
            if s.control == Control.STOPPED:
                return "stopped"
            if s.retire:
                return "retired (fewer workers wanted)"
            if s.control == Control.PAUSED:
                s.status = WorkerStatus.PAUSED
                s.changed.clear()
                while s.control == Control.PAUSED and not s.interrupted:
                    s.changed.wait(timeout=1.0)
                continue
            trials = storage.get_all_trials(study._study_id, deepcopy=False)
            kinds = tally.count(trials)
            complete, running = kinds["complete"], kinds["running"]
            # A duplicate runs no backtest: the cap counts what was run (seed 002).
            attempts = len(trials) - kinds["duplicate"] - kinds["waiting"]
            if complete >= target:
                return self._end(EndCode.TARGET_REACHED, f"target reached ({complete} complete)")
            if attempts >= cap:
                return self._end(EndCode.ATTEMPT_CAP, f"attempt cap reached ({attempts} trials run)")
            if complete + running >= target:
                # Enough trials are in flight to reach the target: wait for them
                # instead of overshooting; ask again if one of them fails.
                s.status = WorkerStatus.WAITING
                s.changed.clear()
                s.changed.wait(timeout=0.5)
                continue
            if live is not None:  # starts a thread now and then; costs nothing otherwise
                live.offer(trials, complete)
            if self.notifier is not None:
                self.notifier.progress(complete, kinds)
            s.status = WorkerStatus.RUNNING
            if pending is not None:
                # Enqueued only now, right before the ask that takes it: a study that ends
                # in between leaves no WAITING trial behind.
                study.enqueue_trial(pending, skip_if_exists=False)
                pending = None
            outcome = self._one_trial(study, storage, space, objective)
            if storage.checkpoint_due:  # (runner/storage/checkpoint.py) on a thread, between trials
                storage.save_checkpoint()
            if outcome != DUPLICATE:
                streak = 0
                continue
            streak += 1
            assert self.claims is not None  # only the claim book reports duplicates
            unclaimed = self.claims.pick_unclaimed(self.rng, near=self._last_params)
            if unclaimed is None:
                return self._end(EndCode.SPACE_EXHAUSTED,
                                 f"space exhausted: all {self.claims.space_size} combinations evaluated", log=True)
            if unclaimed:  # the sampler is stuck on taken combinations: evaluate a free one nearby next
                pending = unclaimed
            elif streak >= DUPLICATE_STREAK:
                # Duplicates spend no attempts; a sampler that proposes nothing else ends here.
                return self._end(EndCode.SPACE_EXHAUSTED,
                                 f"space exhausted: the sampler proposed {streak} duplicates in a row", log=True)

    def _end(self, code: EndCode, reason: str, log: bool = False) -> str:
        """Record why the study's workers stop for good; the reason is also this worker's exit
        reason. The first worker to end the study writes its trust report (runner/insight.py)."""
        first = control.set_ended(self.db, self.study_name, code, reason)
        if log:
            self.event("info", reason)
        if first and self.notifier is not None:
            self.notifier.ended(str(code), reason)
        if first and self._objective is not None and self.cfg.validation.report_at_end:
            self._write_report(self._objective)
        return reason

    def _write_report(self, objective: Objective) -> None:
        """The study's report at its end (off the trial loop: the study is over). A failure
        leaves a warning; ``tune report`` computes it again."""
        from . import insight

        try:
            started = time.monotonic()
            trials = insight.load_all_trials(self.db, self.study_name)
            # It runs the backtest (a user's code): a signal may interrupt it, as a trial.
            report = self._interruptible(insight.build, self.db, self.cfg, self.symbol, trials, objective, self.fold)
            insight.store(self.db, report)
            log.info("[%s] report written in %.1f s", self.study_name, time.monotonic() - started)
            main = self.cfg.study_name(self.symbol)
            rows = control.list_studies(self.db, [main]) if self.fold is not None else []
            if rows and rows[0].ended_code is not None:
                # A fold ended after its symbol's study: that report's walk-forward section
                # waited for this fold's best.
                trials = insight.load_all_trials(self.db, main)
                report = self._interruptible(insight.build, self.db, self.cfg, self.symbol, trials)
                insight.store(self.db, report)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:
            self.event("warning", f"the study's report was not written ({type(exc).__name__}: {exc}); "
                                  "tune report computes it")

    def _set_control(self, state: str | None) -> None:
        s = self.shared
        # None: the study was deleted under us (a fresh start).
        new = Control(state) if state is not None else Control.STOPPED
        if new != s.control:
            s.control = new
            s.changed.set()

    def _ask(self, study: optuna.Study, storage: TuneJournalStorage, space) -> tuple[optuna.Trial, dict]:
        if is_conditional(self.cfg):  # define-by-run: a parameter exists only when its condition holds
            trial = study.ask()
            params = suggest(trial, self.cfg, space)
        else:
            trial = study.ask(fixed_distributions=space)
            params = trial.params
        return trial, params

    def _one_trial(self, study, storage, space, objective: Objective) -> str:
        """Ask, claim, evaluate, tell; returns the outcome (complete, pruned, fail, duplicate)."""
        s = self.shared
        try:
            trial, params = self._ask(study, storage, space)
        except UpdateFinishedTrialError:
            # Our new trial was failed before we could claim it (a reaper took a very
            # slow ask for an orphan): nothing was evaluated, ask again.
            self.event("warning", "a trial was failed by another process before it started")
            return "lost"
        s.trial_id = trial._trial_id
        self._last_params = params
        if self._summaries is not None:
            self._summaries.offer(trial.number)
        if checkpoint.due(trial.number):
            storage.checkpoint_due = True  # for workers that join later: written after this trial
        # One append for all the parameters, now: other workers' samplers (constant
        # liar) should see where this trial is while it runs. The trial is claimed as
        # this worker's at once too, so that no reaper takes it for an orphan: with the
        # combination's key when deduplicating (a round trip of its own, as its answer
        # matters), else in the same round trip as the parameters.
        key = None  # the combination's canonical key, when deduplicating
        if self.claims is not None:
            storage.flush()
            key = param_key(self.cfg, params)
            duplicate = self.claims.claim(key, trial.number, trial._trial_id)
        else:
            duplicate = None
            assert self.registration is not None
            storage.flush(before=self.registration.trial_claim(trial._trial_id))
        if duplicate is not None:
            attrs = {"duplicate_of": duplicate.original, "duplicate_source": duplicate.source}
            self._finish(study, storage, trial, TrialState.FAIL, None, attrs, evaluated=False)
            s.trials_done += 1
            return DUPLICATE
        values = None
        try:
            evaluation = self._interruptible(self._evaluate, trial, objective, params)
            values, attrs = evaluation.values, _finite(evaluation.metrics)
            state, system = told(COMPLETE, self.cfg.constraints.values(evaluation.metrics))
        except TrialPruned as exc:
            # Too few trades: the run's metrics stay with the trial, and Optuna is told
            # how far it is from counting.
            attrs = {**_finite(exc.metrics), "prune_reason": str(exc)}
            state, system = told(PRUNED, self._user_constraints(exc.metrics) if exc.violation else None, exc.violation)
        except backtest.InvalidParams as exc:
            attrs = {"prune_reason": str(exc)}
            state, system = told(INVALID_PARAMS)
        except Interrupted:
            self._finish(study, storage, trial, TrialState.FAIL, None, {"fail_reason": "interrupted (worker stopped)"},
                         evaluated=False)
            dedup.release(self.db, self.study_name, [trial.number])  # never evaluated: free to retry
            raise
        except (Exception, KeyboardInterrupt, SystemExit) as exc:
            # A signal to this worker arrives as Interrupted (above); a KeyboardInterrupt or
            # SystemExit here came from the backtest's own code: it fails the trial only.
            reason = f"{type(exc).__name__}: {exc}"
            # fail_reason makes it "failed" to a person, whatever Optuna is told.
            attrs = {"fail_reason": reason}
            state, system = told(FAILURE, on_failure=self.cfg.study.on_failure)
            self.event("warning", f"trial {trial.number} failed: {reason}")
        if state == TrialState.COMPLETE and values and self._top is not None and self._top.enters(values[0]):
            storage.queue_statement(self._validate(objective, trial.number, params))
        self._finish(study, storage, trial, state, values, attrs, _constraints(system), claim_key=key)
        s.trials_done += 1
        if (self.notifier is not None and state == TrialState.COMPLETE and values
                and all(v <= 0 for v in (system or {}).values())):  # feasible: a candidate best
            self.notifier.trial_told(trial.number, values[0], params)
        return state.name.lower()

    def _validate(self, objective: Objective, number: int, params: dict) -> tuple[str, dict]:
        """Evaluate a trial that entered the top-K on the holdout: the statement that records
        the result (runner/validation.py), sent with the trial's tell — no round trip of its
        own. Only tune_holdout holds it, which no sampler reads. A failure is recorded as the
        result; a result lost with its tell is evaluated again by ``tune report``."""
        metrics, error = None, None
        try:
            metrics = self._interruptible(objective.holdout, params)
        except Interrupted:  # the trial is complete: it is told, and the loop stops at its next check
            error = validation.INTERRUPTED
        except (Exception, KeyboardInterrupt, SystemExit) as exc:  # the backtest's own, as in a trial
            error = f"{type(exc).__name__}: {exc}"
        return validation.record_statement(self.study_name, number, metrics, error)

    def _user_constraints(self, metrics: dict[str, float]) -> dict[str, float]:
        try:
            return self.cfg.constraints.values(metrics)
        except ValueError:  # a metric a constraint needs is missing: the failure shows on complete trials
            return {}

    def _interruptible(self, fn, *args):
        """Run the backtest where a signal may interrupt it (see install_signal_handlers);
        everywhere else a signal only raises a flag. With a pruner, the reports of
        intermediate values happen in here too: an interrupted report leaves a
        RUNNING trial that the Interrupted handler then fails, as for the backtest."""
        s = self.shared
        s.in_objective = True
        try:
            if s.interrupted:
                raise Interrupted()
            return fn(*args)
        finally:
            s.in_objective = False

    def _evaluate(self, trial: optuna.Trial, objective: Objective, params: dict):
        """The full evaluation, or — with a pruner — growing slices until pruned or complete."""
        pruner = self.cfg.pruner
        if not pruner.active:
            return objective(params)
        bars = objective.bars
        for step in range(1, pruner.steps):
            partial = objective(params, upto=bars * step // pruner.steps)
            trial.report(partial.value, step)
            if trial.should_prune():
                raise TrialPruned(
                    f"{pruner.type} pruner at step {step}/{pruner.steps}: "
                    f"{objective.metrics[0]} {partial.value:.4g} on the first {step}/{pruner.steps} of the period"
                )
        return objective(params)

    def _finish(self, study, storage, trial, state, values, attrs, system=None, evaluated: bool = True,
                claim_key: str | None = None) -> None:
        """Tell a trial's outcome. An evaluated result is written to local disk first and
        removed once the database has it: if the database is away, the worker waits for
        it (the result in hand); if the worker must exit meanwhile, the file remains and
        the next process delivers it (runner/spool.py)."""
        kept = None
        system = {**(system or {}), WORKER_ATTR: self.id}  # who ran it, for the trial's detail
        if evaluated:
            kept = spool.keep_result(self.db.identity, self.study_name, self.id, trial, state, values, attrs,
                                     system, claim_key)
        try:
            storage.queue_trial_attrs(trial._trial_id, attrs, system)  # written with the tell: one append
            if state == TrialState.COMPLETE:
                study.tell(trial, values)
            else:
                study.tell(trial, state=state)
        except UpdateFinishedTrialError:
            if kept is None:
                self.event("warning", f"trial {trial.number} was failed by another process while running")
            else:
                # Failed as lost while this worker could not reach the database: the
                # backtest did finish, so its result is recorded as a trial of its own.
                self.event("warning", spool.deliver_file(self.db, kept))
                kept = None
        finally:
            self.shared.trial_id = None
        spool.done(kept)


def _constraints(values: dict[str, float]) -> dict[str, float]:
    """Constraint values as Optuna 5 reads them (system attributes ``constraints:NAME``)."""
    return {f"constraints:{k}": v for k, v in values.items()}


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    # JSON (and so the journal) has no NaN/inf: store them as null.
    return {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in metrics.items()}
