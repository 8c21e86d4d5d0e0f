"""What every benchmark needs: a fresh database on the chosen server, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sqlalchemy.engine import make_url

from runner.storage import embedded, mask_url, resolve_url

# The brief's baseline search space (/work/shared/baselines/plain_optuna.py): four parameters.
SPACE = {"fast": IntDistribution(2, 50), "slow": IntDistribution(20, 200),
         "ma": CategoricalDistribution(["sma", "ema"]), "stop": FloatDistribution(0.005, 0.1, log=True)}


@dataclass(frozen=True)
class BenchDatabase:
    url: str  # the fresh database
    server: str  # masked URL of the server
    version: str  # PostgreSQL version
    name: str


@contextlib.contextmanager
def bench_database(storage: str | None) -> Iterator[BenchDatabase]:
    """``--storage URL``, else ``TUNE_STORAGE_URL``, else the embedded server (in a temporary
    ``TUNE_HOME`` unless one is set, stopped and removed at the end). Yields a fresh
    ``bench_<random>`` database on it and drops it on the way out."""
    temp_home = None
    if not storage and not os.environ.get("TUNE_STORAGE_URL") and not os.environ.get("TUNE_HOME"):
        temp_home = os.environ["TUNE_HOME"] = tempfile.mkdtemp(prefix="bench-tune-home-")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = None
    try:
        admin_url = resolve_url(storage)
        admin = psycopg2.connect(admin_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        yield BenchDatabase(url=url, server=mask_url(admin_url), version=version, name=name)
    finally:
        if admin is not None:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
        if temp_home:
            embedded.remove(Path(temp_home))  # run as root, its data lives outside TUNE_HOME
            shutil.rmtree(temp_home, ignore_errors=True)


def stop_workers(procs: list[subprocess.Popen], deadline: float = 60.0) -> None:
    """Stop worker processes started in sessions of their own: SIGTERM (they finish their
    trial and record their exit), then SIGKILL for any still there after ``deadline`` s."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    end = time.monotonic() + deadline
    for p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
