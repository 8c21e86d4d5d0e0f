"""Fixtures: a real PostgreSQL for every test that needs one.

By default the embedded server (started once per test session in a temporary
``TUNE_HOME``); with ``TUNE_TEST_DATABASE_URL`` set, that external server.
Either way each test gets a database of its own, created for it and dropped
after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tune_home() -> Path:
    # Not under pytest's tmp_path: run as root, the embedded server runs as another
    # user, and every pytest session start makes /tmp/pytest-of-root private again.
    home = Path(tempfile.mkdtemp(prefix="tune-test-home-"))
    previous = os.environ.get("TUNE_HOME")
    os.environ["TUNE_HOME"] = str(home)
    yield home
    from runner.storage import embedded

    embedded.remove(home)  # run as root, its data lives outside home
    if previous is None:
        os.environ.pop("TUNE_HOME", None)
    else:
        os.environ["TUNE_HOME"] = previous
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(tune_home) -> str:
    """URL of a maintenance database on the server the tests use."""
    external = os.environ.get("TUNE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from runner.storage import embedded_url, stop_embedded

    url = embedded_url()
    yield url
    stop_embedded()


@pytest.fixture
def db_url(server_url, monkeypatch) -> str:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"tune_test_{uuid.uuid4().hex[:10]}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("TUNE_STORAGE_URL", url)
    yield url
    _kill_workers_of(url)
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(server_url: str, sql: str) -> None:
    # A connection per statement: a test may restart the server in between.
    conn = psycopg2.connect(server_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _kill_workers_of(url: str) -> None:
    """A failed test may leave detached workers (their own session): end them."""
    import psutil

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('tune_workers') IS NOT NULL")
            if not cur.fetchone()[0]:
                return
            cur.execute("SELECT pid FROM tune_workers WHERE host = %s", (socket.gethostname(),))
            pids = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if "runner.cli" in " ".join(proc.cmdline()):
                proc.kill()
        except psutil.Error:
            pass


@pytest.fixture
def db(db_url):
    from runner.storage import Database

    database = Database.open(db_url)
    yield database
    database.dispose()


def tune(*args: str, env: dict | None = None, timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess:
    """Run the ``tune`` CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tune {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SMALL_CONFIG = """
[study]
name = "{name}"
target_trials = {target}
workers_per_symbol = {workers}
heartbeat_seconds = 0.5
grace_seconds = 3

[data]
symbols = {symbols}

[data.synthetic]
bars = 2000
seed = 1

[strategy]
name = "{strategy}"

[sampler]
seed = 3
n_startup_trials = 5

[space.fast]
type = "int"
low = 2
high = 20

[space.slow]
type = "int"
low = 25
high = 80
"""


def small_config(tmp_path: Path, name: str = "t", target: int = 20, workers: int = 1,
                 symbols=("AAA",), strategy: str = "ma_crossover", extra: str = "") -> Path:
    text = SMALL_CONFIG.format(name=name, target=target, workers=workers, symbols=list(symbols), strategy=strategy)
    return write_config(tmp_path / f"{name}.toml", text + extra)
