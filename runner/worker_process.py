"""The worker as a process: signals, logging, and how it waits for the database.

``tune worker`` (runner/commands.py) calls :func:`run_worker`; the trial loop itself is
runner/worker.py.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from .config import RunConfig
from .storage import Database, connection
from .worker import Interrupted, Worker, _Shared


def install_signal_handlers(shared: _Shared) -> None:
    """SIGTERM/SIGINT end the worker cleanly; SIGHUP (terminal closed) is ignored.

    A signal during a backtest interrupts it (the trial is failed as
    "interrupted"); at any other moment (a database call) it only raises a
    flag the loop reads before its next step, so no write is cut in half.
    """

    def _interrupt(signum, frame):
        shared.interrupted = True
        shared.changed.set()
        if shared.in_objective:
            shared.in_objective = False
            raise Interrupted()

    def _leave_a_wait() -> None:
        # Between two attempts to reach an absent database: a signal ends the wait
        # (a finished result stays on disk, runner/spool.py).
        if shared.interrupted:
            raise Interrupted()

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A worker waits out a database outage for as long as it lasts: its results are data.
    connection.configure(patience=None, on_wait=_leave_a_wait)


def setup_logging() -> None:
    """Worker log lines with time and level, on stdout (the log file). A log line that
    cannot be written (a full disk) is dropped: logging must never end a worker."""
    logging.raiseExceptions = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _quiet_exit() -> None:
    """If stdout cannot be flushed (a full disk), Python would exit 120 at shutdown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError):
                pass


def run_worker(cfg: RunConfig, symbol: str, storage_url: str | None, launch_id: str | None = None,
               fold: int | None = None) -> int:
    setup_logging()
    try:
        # One connection (see Database), named so that a DBA can tell whose it is.
        db = Database.open(storage_url, single_connection=True, application_name=f"tune-worker {os.getpid()}")
        try:
            worker = Worker(db, cfg, symbol, launch_id, fold)
            install_signal_handlers(worker.shared)
            connection.configure(on_back=worker.database_back)
            return worker.run()
        finally:
            db.dispose()
    finally:
        _quiet_exit()
