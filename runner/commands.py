"""The ``tune`` commands (runner/cli.py parses the arguments, then calls :func:`dispatch`).

Bad input (a broken config, a bad data file, an unknown study) prints one line to
stderr and exits 2; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time

import sqlalchemy as sa

from . import control, reaper, spool
from .env import ENV_URL
from .errors import ConfigError
from .monitor import Monitor
from .states import FINISHED_WELL, Control
from .status import StudyStatus, best_label, format_eta
from .storage import (
    BadStorageURL,
    Database,
    EmbeddedError,
    HomeError,
    StorageError,
    connection,
    mask_url,
    quiet_optuna,
    resolve_url,
    stop_embedded,
)
from .text import first_line, printable

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _load_config(path):
    """The config (or the demo's): imported here, so that commands without one (tune status)
    never import pandas and the strategies."""
    from .config import load_config

    return load_config(path)


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def cmd_worker(args) -> int:
    from .worker_process import run_worker

    cfg = _load_config(args.config)
    if args.symbol not in cfg.data.symbols:
        raise UsageError(f"{args.config}: symbol {args.symbol!r} is not in data.symbols ({', '.join(cfg.data.symbols)})")
    if args.fold is not None and args.fold not in cfg.folds():
        raise UsageError(f"{args.config}: no walk-forward fold {args.fold} (folds: "
                         f"{', '.join(str(f) for f in cfg.folds() if f) or 'none configured'})")
    return run_worker(cfg, args.symbol, args.storage, args.worker_id, args.fold)


def cmd_status(args) -> int:
    names = _load_config(args.config).study_names() if args.config else None
    db = Database.open(args.storage)
    spool.deliver_all(db)  # results kept on disk by workers that exited during an outage
    monitor = Monitor(db, names, detail=args.json, archived=args.archived)  # the table shows no trial's metrics
    statuses = monitor.poll().statuses
    if reaper.reap_orphaned(db, statuses):  # no worker was left to fail those trials
        statuses = monitor.poll().statuses  # reads only the new records
    if args.json:
        from . import importances, reports

        names = [s.study for s in statuses]
        # Each study's trust report as tune report last stored it (null: never computed), and
        # its importances as a worker last recomputed them while it ran (null: not yet).
        kept, live = reports.stored(db, names), importances.stored(db, names)
        studies = [{**s.to_json(), "report": kept.get(s.study), "importances": live.get(s.study)}
                   for s in statuses]
        print(json.dumps({"storage": db.masked_url, "studies": studies}, indent=2, default=str))
    else:
        from .columns import terminal_width

        print(f"storage: {printable(db.masked_url)}")
        if statuses:
            print(status_table(statuses, width=terminal_width()))
            for s in statuses:  # the lineage (tune refine)
                if s.parent:
                    print(f"{printable(s.study)}: refined from {printable(s.parent)}")
        else:
            hidden = 0 if args.archived or names else len(control.list_studies(db, None, archived=True))
            print(f"no studies ({hidden} archived: tune status --archived)" if hidden else "no studies")
    db.dispose()
    return EXIT_OK


def status_table(statuses: list[StudyStatus], final: bool = False, width: int | None = None) -> str:
    """The status table as plain text; ``final`` (the end of ``tune run``) trades live columns
    for the best params. No cell is ever cut: too narrow a ``width`` drops whole columns, the
    least telling first (runner/columns.py), and the best params wrap between parameters.
    Every cell is escaped: names and parameter values are shown literally."""
    from .columns import Column, render

    columns = [Column("study", right=False), Column("state", right=False), Column("complete"),
               Column("pruned", drop=3), Column("failed", drop=7), Column("dup", drop=6)]
    if not final:
        columns += [Column("running", drop=2), Column("/min", drop=1), Column("workers", drop=5),
                    Column("eta", drop=4)]
    columns.append(Column("best"))
    if final:
        columns.append(Column("best params", right=False, wrap=True))
    rows = []
    for s in statuses:
        state = f"{s.state}, archived" if s.archived else s.state
        row = [s.study, state, f"{s.complete}/{s.target}", str(s.pruned), str(s.failed), str(s.duplicate)]
        if not final:
            row += [str(s.running), f"{s.trials_per_minute:.0f}", str(s.workers_alive), format_eta(s.eta_seconds)]
        row.append(best_label(s))
        if final:
            row.append(_params_text(s.best_params))
        rows.append(row)
    return render(columns, rows, width)


def _params_text(params: dict) -> str:
    """``name=value`` pairs for one line (names and values escaped, floats shortened)."""
    return " ".join(f"{_short(k)}={_short(v)}" for k, v in params.items())


def _short(v) -> str:
    """A parameter name or value for a table cell: floats shortened, control characters escaped."""
    return f"{v:.4g}" if isinstance(v, float) else printable(v)


def cmd_control(args) -> int:
    if not args.studies and not args.all:
        raise UsageError(f"tune {args.command}: name one or more studies, or --all")
    db = Database.open(args.storage)
    target = {"pause": Control.PAUSED, "resume": Control.RUNNING, "stop": Control.STOPPED}[args.command]
    names = None if args.all else args.studies
    if names:
        known = {r.name for r in control.list_studies(db, names)}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"no such study: {', '.join(missing)} (see tune status)")
    changed = control.set_control(db, names, target)
    for name in changed:
        print(f"{name}: {target}")
    db.dispose()
    return EXIT_OK


def _named_studies(db: Database, names: list[str]) -> list:
    """The named studies with their walk-forward folds; a UsageError naming any unknown one."""
    rows = control.list_studies(db, names)
    known = {r.name for r in rows}
    missing = [n for n in dict.fromkeys(names) if n not in known]
    if missing:
        raise UsageError(f"no such study: {', '.join(map(printable, missing))} (see tune status --archived)")
    return control.with_folds(db, rows)


def _study_config(db: Database, study: str, given: str | None):
    """The study's control row, its config (``given``, else where it was run from) and that
    config's path; a UsageError when there is no such study or the config is not its own."""
    try:
        row, cfg = control.study_config(db, study, given)
    except control.NoStudyConfig as exc:
        raise UsageError(str(exc)) from None
    return row, cfg, given or row.config_path


def cmd_refine(args) -> int:
    import math
    import shlex

    from . import refine

    if args.top < 1:
        raise UsageError(f"--top must be at least 1 (got {args.top})")
    if not (math.isfinite(args.fix_below) and 0 <= args.fix_below < 1):
        raise UsageError(f"--fix-below must be in [0, 1) (got {args.fix_below})")
    db = Database.open(args.storage)
    try:
        prepared = refine.prepare(db, args.study, config=args.config, output=args.output, top_k=args.top,
                                  fix_below=args.fix_below)
    except refine.RefineError as exc:
        raise UsageError(str(exc)) from None
    for line in refine.describe(prepared):
        print(printable(line))
    try:
        new, copied, enqueued, why = refine.apply(db, prepared)
    except refine.RefineError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {prepared.out}: {exc.strerror or exc}") from None
    study = prepared.plan.study
    if why:
        print(f"warning: {printable(why)}", file=sys.stderr)
    print(f"{printable(study)}: {copied} of the parent's top trials copied with their results"
          + (f", {enqueued} enqueued to run again" if enqueued else ""))
    if copied >= new.study.target_trials:
        print(f"note: the copies reach target_trials ({new.study.target_trials}) already: raise it in the file "
              "for the refined study to search")
    print(f"run it: tune run {printable(shlex.quote(str(prepared.out)))}")
    db.dispose()
    return EXIT_OK


def cmd_stage(args) -> int:
    from pathlib import Path

    from . import stage

    db = Database.open(args.storage)
    row, cfg, path = _study_config(db, args.study, args.config)
    try:
        content = stage.staged(db, row, cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        versioned, latest = stage.write(content, args.study, Path(args.dir))
    except OSError as exc:
        raise UsageError(f"cannot write to {args.dir}: {exc.strerror or exc}") from None
    print(f"{printable(args.study)}: trial {content['metadata']['best_trial_number']} staged in {versioned}"
          f" (and {latest.name})")
    if not content["metadata"]["reproduced"]:
        print(f"warning: its parameters, run again on {printable(path)}'s data, do not give the value staged:"
              " has the data changed, or is the backtest not deterministic?", file=sys.stderr)
    db.dispose()
    return EXIT_OK


def cmd_archive(args) -> int:
    db = Database.open(args.storage)
    rows = _named_studies(db, args.studies)
    changed = set(control.set_archived(db, [r.name for r in rows], not args.undo))
    for r in rows:
        if args.undo:
            state = "back" if r.name in changed else "was not archived"
        else:
            state = "archived" if r.name in changed else "already archived"
        print(f"{printable(r.name)}: {state}")
    db.dispose()
    return EXIT_OK


def _refuse_live(live: list[str]) -> None:
    if live:
        raise UsageError(f"{', '.join(map(printable, live))}: workers are still running it; nothing deleted; "
                         f"stop them first (tune stop {' '.join(map(printable, live))})")


def cmd_delete(args) -> int:
    db = Database.open(args.storage)
    rows = _named_studies(db, args.studies)
    names = [r.name for r in rows]
    with db.engine.connect() as conn:
        _refuse_live(control.live_studies(conn, names))
    label = ", ".join(map(printable, names))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"tune delete: deletes {label} for good; add --yes to confirm")
        # The question on stderr, so that it shows when stdout goes to a file; end of input: no.
        print(f"delete {label} and every trial of theirs, for good? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_FAIL
    # All or none, checked again under the studies' locks: a worker may have started meanwhile.
    _refuse_live(db.delete_studies(names, control.live_studies))
    db.dispose()
    for name in names:
        print(f"{printable(name)}: deleted")
    return EXIT_OK


def cmd_export(args) -> int:
    from pathlib import Path

    from .export import load_trials, summary, trials_csv

    db = Database.open(args.storage)
    trials = load_trials(db, args.study)  # once, for the summary and the CSV
    try:
        data = summary(db, args.study, trials)
    except KeyError:
        raise UsageError(f"no such study: {args.study} (see tune status)") from None
    if args.json:
        text = json.dumps(data, indent=2, default=str) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)
    # The CSV first: a bad --csv path stops before anything is printed.
    for path, content in ((args.csv, trials_csv(trials) if args.csv else ""), (args.output, text)):
        if path:
            try:
                Path(path).write_text(content)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not args.output:
        sys.stdout.write(text)
    db.dispose()
    return EXIT_OK


def cmd_report(args) -> int:
    """Compute a study's trust report (runner/insight.py), store it, and print it."""
    from . import insight
    from .export import load_trials
    from .study import check_data

    db = Database.open(args.storage)
    row, cfg, _ = _study_config(db, args.study, args.config)
    control.check_same_split(cfg, args.study, row.split, row.seen_bars)  # the report's windows must be the trials' own
    # Bad data or holdout: one line, exit 2; so is data that no longer splits as the trials saw it.
    # A main study's report tests its folds' bests on their windows: theirs are checked too.
    seen = check_data(cfg)
    for fold in cfg.folds() if row.fold is None else [row.fold]:
        name = cfg.study_name(row.symbol, fold)
        control.pin_seen_bars(db, cfg, name, seen[name], fold)
    quiet_optuna()
    report = insight.build(db, cfg, row.symbol, load_trials(db, args.study), fold=row.fold)
    insight.store(db, report)
    db.dispose()
    if args.json:
        print(json.dumps(insight.json_safe(report), indent=2))
    else:
        print_report(insight.json_safe(report), insight.readings(report))
    return EXIT_OK


def print_report(report: dict, readings: list[str]) -> None:
    """The report for a person, top to bottom; every text from the study is shown literally."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    say = lambda text, style="": console.print(Text(printable(text), style=style))  # noqa: E731
    say(f"{report['study']}: {report['trials']['complete']} complete trials, "
        f"{report['metric']} ({report['direction']})", "bold")
    best = report.get("best")
    if best is None:
        say("no complete trial yet")
        return
    say(f"best: trial {best['trial']}, {report['metric']} {_short(best['value'])}  {_params_text(best['params'])}")
    selected = report.get("selected") or {}
    if selected.get("rule") == "robust":
        chosen = _params_text(selected["params"])
        say(f"selected (robust: the best median over a trial and its neighbours, of the top "
            f"{selected['candidates']}): trial {selected['trial']}, {report['metric']} {_short(selected['value'])}, "
            f"neighbourhood median {_short(selected['neighbourhood_median'])}  {chosen}")
    holdout = report.get("holdout") or {}
    if "top" in holdout:
        console.print()
        say(f"in sample ({holdout['bars_in_sample']} bars) against the holdout ({holdout['bars_holdout']} bars):",
            "bold")
        keys = list(holdout["top"][0]["in_sample"]) if holdout["top"] else []
        # One column pair per metric, in sample then out of sample: narrow enough for 80 columns.
        table = Table(box=None, pad_edge=False)
        table.add_column("trial", justify="right", no_wrap=True)
        for k in keys:
            table.add_column(Text(printable(_REPORT_LABELS.get(k, k))[:10]), justify="right", no_wrap=True)
            table.add_column("oos", justify="right", no_wrap=True, style="bold")
        for r in holdout["top"]:
            oos = r["out_of_sample"]
            cells = [str(r["trial"])]
            for i, k in enumerate(keys):
                cells.append(_figure(r["in_sample"].get(k)))
                if oos is not None:
                    cells.append(_figure(oos.get(k)))
                else:  # the evaluation failed: its reason, once
                    cells.append(f"failed: {r['error'] or 'n/a'}"[:40] if i == 0 else "")
            table.add_row(*(Text(printable(c)) for c in cells))
        console.print(table)
    else:
        console.print()
        say(f"holdout: n/a ({holdout.get('n/a', '')})")
    console.print()
    for line in readings:
        say(line)
    for name in ("deflated_sharpe", "pbo", "robustness", "importances"):
        section = report.get(name) or {}
        if "n/a" in section:
            say(f"{name.replace('_', ' ')}: n/a ({section['n/a']})", "dim")
    wf = report.get("walk_forward") or {}
    if wf.get("folds"):
        console.print()
        say(f"walk-forward ({wf['mode']}): each fold's best, in sample and on the window after it:", "bold")
        for f in wf["folds"]:
            if "out_of_sample" not in f:
                say(f"  fold {f['fold']}: n/a ({f.get('n/a', '')})")
                continue
            say(f"  fold {f['fold']}: trial {f['trial']}  {_params_text(f['params'])}  "
                f"return {_figure(f['in_sample']['total_return'])} "
                f"in sample, {_figure(f['out_of_sample']['total_return'])} out of sample")
        if isinstance(wf.get("efficiency"), dict):
            say(f"walk-forward efficiency: n/a ({wf['efficiency']['n/a']})", "dim")
    importances = {k: v for k, v in (report.get("importances") or {}).items() if k not in ("method", "n/a")}
    if importances:
        console.print()
        say("parameter importances (PED-ANOVA):", "bold")
        for k, v in importances.items():
            if isinstance(v, float):  # NaN is None here (json_safe)
                say(f"  {k:<20} {v:5.2f}  {'#' * round(v * 30)}")


_REPORT_LABELS = {"total_return": "return", "max_drawdown": "max dd"}


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else printable(value)


def cmd_db(args) -> int:
    if args.action == "url":
        print(mask_url(resolve_url(args.storage)))
        return EXIT_OK
    if args.storage or os.environ.get(ENV_URL):
        raise UsageError("tune db stop stops the embedded database only; this command was given an external URL")
    print("embedded database stopped" if stop_embedded() else "embedded database was not running")
    return EXIT_OK


def cmd_run(args) -> int:
    """Start a config's studies headless, follow them with progress bars, print the results."""
    from rich.console import Console

    from . import notify, supervisor
    from .study import check_data

    cfg = _load_config(args.config)
    notify.check_environment(cfg)  # a [notify] channel's secret missing: said now, not by each worker
    seen = check_data(cfg)
    db = Database.open(args.storage)
    spool.deliver_all(db)
    console = Console(stderr=False)
    console.print(f"storage: {printable(db.masked_url)}", markup=False)
    for note in supervisor.prepare_studies(db, cfg, new_run=True, seen=seen):
        console.print(printable(note), markup=False)
    if cfg.notify is not None:
        console.print(printable(notify.describe(cfg.notify)), markup=False)
    names = cfg.study_names()
    monitor = Monitor(db, names)  # one follower for the whole run: each poll reads only what is new
    workers: list = []
    # From before the first worker starts: a Ctrl-C at any moment stops every worker started.
    with _CatchInterrupts() as signals:
        try:
            workers += supervisor.start_workers(db, cfg)
            console.print(printable(f"started {len(workers)} worker(s) for {len(names)} studies; "
                                    f"logs in {supervisor.log_dir()}"), markup=False)
            _follow_run(monitor, names, cfg.study.target_trials, workers, console, signals)
        finally:
            if signals.caught:
                console.print("interrupted: stopping workers (their running trials are marked failed)…")
                supervisor.terminate(db, workers)
    try:
        return _report_run(monitor, workers, console, signals.caught)
    finally:
        db.dispose()


class _CatchInterrupts:
    """Ctrl-C and SIGTERM set a flag instead of raising: the run then stops its workers."""

    def __enter__(self) -> _CatchInterrupts:
        self.caught = False
        self._previous = [signal.signal(sig, self._catch) for sig in (signal.SIGINT, signal.SIGTERM)]
        return self

    def _catch(self, signum, frame) -> None:
        self.caught = True

    def __exit__(self, *exc) -> None:
        for sig, handler in zip((signal.SIGINT, signal.SIGTERM), self._previous):
            signal.signal(sig, handler)


def _follow_run(monitor: Monitor, names: list[str], target: int, workers, console, signals: _CatchInterrupts) -> None:
    """Progress bars until every worker started here has exited and none is alive anywhere."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), console=console,
    )
    with progress:
        tasks = {n: progress.add_task(n, total=target, info="") for n in names}
        statuses: dict[str, StudyStatus] = {}
        while not signals.caught:
            try:
                statuses = {s.study: s for s in monitor.poll(with_workers=False).statuses}
            except (sa.exc.OperationalError, StorageError):
                time.sleep(1.0)  # database restarting: the workers retry too; so do we
                continue
            for name, task in tasks.items():
                s = statuses.get(name)
                if s is not None:
                    info = f"pruned {s.pruned} failed {s.failed} dup {s.duplicate} best {best_label(s)} {s.state}"
                    progress.update(task, completed=min(s.complete, s.target), info=info)
            if all(w.process.poll() is not None for w in workers) and not any(
                    s.workers_alive for s in statuses.values()):
                return
            time.sleep(0.5)


def _report_run(monitor: Monitor, workers, console, interrupted: bool) -> int:
    """The final table and the exit code of ``tune run``."""
    try:
        statuses = monitor.poll(with_workers=False).statuses
    except (sa.exc.OperationalError, StorageError) as exc:
        raise StorageError(f"could not read the final results: {first_line(exc)}") from None
    console.print(status_table(statuses, final=True, width=console.width if console.is_terminal else None),
                  markup=False, highlight=False, emoji=False, soft_wrap=True)
    crashed = [w for w in workers if w.process.returncode not in (0, None)]
    for w in crashed:
        console.print(printable(f"worker {w.index} of {w.study} exited with code {w.process.returncode}; log: {w.log_path}"),
                      style="red", markup=False, highlight=False)
    if interrupted:
        return EXIT_INTERRUPTED
    if any(w.process.returncode == 2 for w in crashed):
        return EXIT_USAGE
    # A study whose finite space is used up has ended as well as it can.
    return EXIT_OK if all(s.state in FINISHED_WELL for s in statuses) else EXIT_FAIL


def cmd_dashboard(args) -> int:
    try:
        from .dashboard import serve
    except ImportError:
        raise UsageError("tune dashboard needs optuna-dashboard: pip install 'tune-tui[dashboard]'") from None
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a port (1-65535)")
    db = Database.open(args.storage)
    print(f"every study of {printable(db.masked_url)} at http://{printable(args.host)}:{args.port}/ "
          "(read-only; Ctrl-C stops it)", flush=True)
    try:
        serve(db, args.host, args.port)
    except OSError as exc:  # the port is taken, or the address is not this host's
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    finally:
        db.dispose()
    return EXIT_OK


def cmd_notify(args) -> int:
    """One test message through each [notify] channel of a config: is the token right, does
    the chat get it? Exit 1 if a channel did not take it."""
    from . import notify

    cfg = _load_config(args.config)
    if cfg.notify is None:
        raise UsageError(f"{printable(str(cfg.source_path))}: no [notify] table (see the README's Notifications)")
    notify.check_environment(cfg)
    if cfg.notify.dry_run:
        print("dry_run = true: workers write their messages to their logs; sending a test anyway")
    results = notify.send_test(cfg)
    for channel, error in results:
        print(printable(f"{channel}: {'sent' if error is None else error}"))
    if not results:
        print("no channel configured")
    return EXIT_FAIL if any(error is not None for _, error in results) else 0


COMMANDS = {"run": cmd_run, "worker": cmd_worker, "status": cmd_status, "pause": cmd_control,
            "resume": cmd_control, "stop": cmd_control, "export": cmd_export, "report": cmd_report,
            "refine": cmd_refine, "stage": cmd_stage, "archive": cmd_archive, "delete": cmd_delete, "dashboard": cmd_dashboard,
            "notify": cmd_notify, "db": cmd_db}


class CommandTimeout(StorageError):
    """A short command ran past its overall deadline (the database too slow or frozen)."""


# A command that reads or changes a little (status, pause, export, …) gives up after
# this long in all, and any one round trip to the database after IO_TIMEOUT_SECONDS.
COMMAND_DEADLINE_SECONDS = 300  # a backstop: a hang ends sooner, at a round trip's deadline
IO_TIMEOUT_SECONDS = 15.0
PATIENCE_SECONDS = 15.0  # how long a command retries a lost connection


@contextlib.contextmanager
def deadline(seconds: int | None, what: str):
    """Raise :class:`CommandTimeout` in the main thread after ``seconds`` (None: no deadline)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise CommandTimeout(f"gave up after {seconds} s waiting for {what}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_reporting_errors(fn, *args):
    """Run a command; bad input prints one line and gives 2, an unusable database 1.
    Shared by ``tune`` and ``tune-tui``: no traceback for what the user can fix."""
    try:
        return fn(*args)
    except (ConfigError, UsageError, BadStorageURL, HomeError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (StorageError, EmbeddedError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:  # stdout gone or full (a closed pipe, a full disk)
        try:
            print(f"error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        except OSError:
            pass
        return EXIT_FAIL


# Commands that run until their work is done; the others are short and get a deadline.
LONG_RUNNING = ("run", "worker")
# Commands whose own work (backtests) may take long: each round trip keeps its deadline,
# the command as a whole has none.
# delete: it waits for a person's answer; refine: it computes importances and runs a backtest.
COMPUTING = ("report", "delete", "refine")


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command: short ones under a deadline, every one reporting bad input
    as one line."""
    quiet_optuna()
    if args.command not in LONG_RUNNING:
        connection.configure(io_timeout=IO_TIMEOUT_SECONDS, patience=PATIENCE_SECONDS)
        limit = None if args.command in COMPUTING else COMMAND_DEADLINE_SECONDS
    else:
        limit = None
    what = f"the database ({mask_url(args.storage)})" if getattr(args, "storage", None) else "the database"
    with deadline(limit, what):
        return run_reporting_errors(COMMANDS[args.command], args)
