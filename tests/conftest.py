"""Fixtures: a real PostgreSQL for every test that needs one; the ``db`` marker.

By default the embedded server (started once per test session in a temporary
``TUNE_HOME``); with ``TUNE_TEST_DATABASE_URL`` set, that external server.
Either way each test gets a database of its own, created for it and dropped
after it.

Every test under ``tests/integration/`` or ``tests/app/``, and every test that
uses one of the database fixtures, is marked ``db``: ``pytest -m "not db"``
runs the unit tests alone, with no PostgreSQL at all.

Plain helpers (``tune``, ``wait_for``, ``small_config``…) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url

TESTS = Path(__file__).resolve().parent
DB_DIRS = (TESTS / "integration", TESTS / "app")  # real PostgreSQL; the app under Pilot (run with them)
DB_FIXTURES = {"db", "db_url", "server_url", "tune_home"}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark ``db`` every test that needs PostgreSQL: by its folder or by its fixtures."""
    for item in items:
        path = Path(str(item.path)).resolve()
        if any(path.is_relative_to(d) for d in DB_DIRS) or DB_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session", autouse=True)
def session_home() -> Path:
    """A TUNE_HOME of the session's own for every test, database or not (the data
    cache of unit tests too): nothing lands in the user's real one."""
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
def tune_home(session_home) -> Path:
    """The session's TUNE_HOME, where the embedded server of the database tests lives."""
    return session_home


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


@pytest.fixture
def black_hole():
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    listener.close()
