"""``tune-tui [CONFIG] [--storage URL]``: start or attach to a run and watch it.

* With CONFIG: register its studies, start the workers each one lacks (none
  when they already run, here or elsewhere), and show them.
* With neither: the same with the bundled demo, on the embedded database.
* With only ``--storage``: attach to every study that database holds, to read
  and control, including studies whose workers run on other hosts.

Bad input exits 2 with one line, before the screen opens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from runner.cli import add_storage_option, add_version_option
from runner.commands import run_reporting_errors
from runner.storage import ENV_URL, Database, connection, quiet_optuna


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune-tui", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", help="config file (default: the bundled demo, unless --storage is given)")
    add_storage_option(parser)
    add_version_option(parser)
    return parser


def start(args) -> tuple[str, list[str] | None, list[str]]:
    """Prepare the run; return (url, study names or None for all, notes for the screen)."""
    attach_only = args.config is None and (args.storage or os.environ.get(ENV_URL))
    if attach_only:
        db = Database.open(args.storage)
        db.dispose()
        return db.url, None, [f"attached to every study in {db.masked_url}"]
    # Only here: the config and the data check import pandas (~60 MB), which an app that
    # only watches never needs (issue 14).
    from runner import notify, supervisor
    from runner.config import load_config
    from runner.study import check_data

    cfg = load_config(args.config)
    notify.check_environment(cfg)  # a [notify] channel's secret missing: said now, not by each worker
    seen = check_data(cfg)
    db = Database.open(args.storage)
    try:
        notes = supervisor.prepare_studies(db, cfg, new_run=False, seen=seen)
        spawned = supervisor.start_workers(db, cfg)
    finally:
        db.dispose()
    notes.append(f"started {len(spawned)} worker(s)" if spawned else "attached to the running workers")
    return db.url, cfg.study_names(), notes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_optuna()
    # Each read or control action waits at most this long for the database; the app
    # shows "not answering" after a few seconds and keeps retrying in the background.
    connection.configure(io_timeout=10.0, patience=5.0)
    return run_reporting_errors(run_app, args)


# How long a signalled app may take to leave before it is ended without ceremony. When the
# terminal went away (SIGHUP), Textual's output thread can block on, or die writing to, the
# closed terminal, and the app's shutdown then waits on it forever: a tune-tui that outlives
# its SSH session, holding connections and memory. Nothing is lost by ending it: the
# workers run in their own sessions and every state lives in the database.
LEAVE_DEADLINE = 5.0


def exit_after(seconds: float, code: int) -> None:
    """End the process with `code` in `seconds` unless it has ended by then (a daemon thread)."""

    def end() -> None:
        time.sleep(seconds)
        terminal = sys.__stdout__
        try:  # the terminal may still be there (SIGTERM): give it its normal screen back
            if terminal is not None:
                os.write(terminal.fileno(), b"\x1b[?1049l\x1b[?25h")
        except (OSError, ValueError):
            pass
        os._exit(code)

    threading.Thread(target=end, name="tune-tui-leave-deadline", daemon=True).start()


def run_app(args) -> int:
    """Run the app: 0 when it was quit; 1 and one line on stderr when it ended on an error."""
    url, names, notes = start(args)  # bad input stops here, before the screen opens
    import io
    import traceback

    from rich.console import Console

    from runner import supervisor
    from runner.text import printable

    from .app import TuneApp

    app = TuneApp(url, names, notes)
    # On an unhandled exception Textual ends the app and, once the screen is closed, prints
    # a traceback panel with every frame's locals: a screenful (and locals may hold the
    # database URL). Keep it off the terminal: the traceback goes to a log file instead.
    printed = io.StringIO()
    app.error_console = Console(file=printed, width=120, color_system=None, markup=False, highlight=False)

    hung_up = threading.Event()

    def leave(signum, frame) -> None:
        # SIGTERM (kill) or SIGHUP (the terminal went away): leave as "q" does, so the
        # terminal gets its normal screen back; the workers run on.
        if signum == signal.SIGHUP:
            hung_up.set()
        app.call_later(app.exit, "workers left running; tune-tui attaches to them again, tune status shows them")
        exit_after(LEAVE_DEADLINE, 128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    error = getattr(app, "_exception", None)  # Textual keeps the first unhandled exception here
    if app.return_code or error is not None:  # Textual sets return_code to 1 on an unhandled exception
        what = "unknown error"
        if error is not None:
            message = str(error).strip().splitlines()
            what = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
        line = f"error: the app crashed: {printable(what)}"
        details = "".join(traceback.format_exception(error)) if error is not None else printed.getvalue()
        try:
            log = supervisor.log_dir() / "tune-tui-crash.log"
            log.write_text(details)
            line += printable(f" (traceback in {log})")
        except OSError:
            pass
        print(line, file=sys.stderr)
        return 1
    if printed.getvalue():  # not expected when nothing failed: never swallow it
        sys.stderr.write(printed.getvalue())
    if result and not hung_up.is_set():  # after a hang-up there is no terminal to print to
        print(printable(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
