"""Starting and stopping worker processes on this host.

Workers are started in their own process session (``start_new_session``), so
a closed terminal or a dropped SSH connection does not reach them, and their
output goes to a log file under ``TUNE_HOME/logs``. The storage URL travels in
the environment, never on the command line (``ps`` shows command lines).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import control, reaper
from .states import Control
from .storage import ENV_URL, Database, tune_home
from .storage.embedded import private_dir

if TYPE_CHECKING:  # the config imports pandas: a watching app that starts no worker never needs it
    from .config import RunConfig


@dataclass
class SpawnedWorker:
    study: str
    symbol: str
    fold: int | None
    index: int
    process: subprocess.Popen
    log_path: Path


def log_dir() -> Path:
    """``TUNE_HOME/logs``, owner-only: logs hold config paths and failure reasons."""
    return private_dir(tune_home() / "logs")


def open_log(path: Path):
    """Append to a worker's log, created owner-only (0600)."""
    # O_NOFOLLOW: a log name that is a link (planted by someone) is refused, not written through.
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600), "ab")


def spawn_worker(cfg: RunConfig, symbol: str, index: int, worker_id: str, storage_url: str,
                 fold: int | None = None) -> SpawnedWorker:
    study = cfg.study_name(symbol, fold)
    log_path = log_dir() / f"{study}.log"
    cmd = [
        sys.executable, "-m", "runner.cli", "worker", str(cfg.source_path),
        "--symbol", symbol, "--worker-id", worker_id, *(("--fold", str(fold)) if fold is not None else ()),
    ]
    env = {**os.environ, ENV_URL: storage_url, "PYTHONUNBUFFERED": "1"}
    with open_log(log_path) as out:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, close_fds=True,
        )
    return SpawnedWorker(study, symbol, fold, index, process, log_path)


def prepare_studies(db: Database, cfg: RunConfig, *, new_run: bool,
                    seen: dict[str, list[str | None] | None] | None = None) -> list[str]:
    """Register the config's studies; returns notes for the user.

    ``new_run`` (``tune run``): the config is run as written — control back to
    running, the worker count to the config's, and with ``resume = false`` the
    old trials deleted (unless workers of the study are alive somewhere: then it
    attaches instead). Otherwise (the app): studies are attached to as they are,
    paused or stopped ones included; nothing is deleted.
    """
    notes = []
    if seen is not None and not (new_run and not cfg.study.resume):
        # Every study's split against the data first: a refusal changes no study.
        for row in control.list_studies(db, cfg.study_names()):
            control.check_seen_bars(cfg, row.name, row.seen_bars, seen[row.name], row.fold)
    for symbol, fold in cfg.study_units():
        name = cfg.study_name(symbol, fold)
        # Deleted unless workers of it are alive, checked under its row's lock (a worker
        # that starts takes it too): then attached to instead.
        if new_run and not cfg.study.resume and db.delete_studies([name], control.live_studies):
            live = control.list_workers(db, [name], live_only=True)
            notes.append(f"{name}: {len(live)} live worker(s); attaching instead of starting fresh")
        control.register_study(db, cfg, symbol, reset_control=new_run, fold=fold)
        if seen is not None:  # check_data's: the data's split must be the study's own
            control.pin_seen_bars(db, cfg, name, seen[name], fold)
    if not new_run and not cfg.study.resume:
        notes.append("resume = false: the app attaches to existing studies; tune run starts them fresh")
    return notes


def spawn_missing(db: Database, cfg: RunConfig, study: control.StudyRow) -> list[SpawnedWorker]:
    """Start, on this host, the workers the study lacks (desired minus live, anywhere).

    The decision and the claim are one transaction (:func:`control.claim_launches`):
    two launchers at once start each missing worker once, and each gets an index of
    its own — a distinct sampler seed.
    """
    spawned = []
    for worker_id, index in control.claim_launches(db, study.name, socket.gethostname()):
        worker = spawn_worker(cfg, study.symbol, index, worker_id, db.url, study.fold)
        control.set_launched_pid(db, worker_id, worker.process.pid)
        spawned.append(worker)
    return spawned


def start_workers(db: Database, cfg: RunConfig) -> list[SpawnedWorker]:
    """Start the workers each running study still lacks (live workers elsewhere count);
    paused or stopped studies stay as the user left them."""
    spawned = []
    for row in control.list_studies(db, cfg.study_names()):
        if row.control == Control.RUNNING:
            spawned += spawn_missing(db, cfg, row)
    return spawned


def terminate(db: Database, workers: list[SpawnedWorker], timeout: float = 15.0) -> None:
    """SIGTERM every worker (each fails its running trial as interrupted), then wait; kill
    stragglers and fail their trials at once (no worker may be left to notice)."""
    for w in workers:
        if w.process.poll() is None:
            try:
                os.killpg(w.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    killed: list[int] = []
    for w in workers:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            w.process.wait(remaining)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(w.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended just now
            w.process.wait()
            killed.append(w.process.pid)
    if killed:
        for study in reaper.declare_dead(db, socket.gethostname(), killed):
            reaper.reap_lost_workers(db, study)
