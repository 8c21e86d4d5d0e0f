"""Nothing another local user can reach; no surprise server.

The embedded-server tests start servers of their own (a TUNE_HOME each), so they
run on either test server; the second-OS-user test needs root (to create that user).
URL masking, owner-only files and bad TUNE_HOMEs need no database: tests/unit/test_security.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from runner.storage import embedded
from tests.helpers import tune

INTRUDER = "tune_intruder"


# ------------------------------------------------------ the embedded server


@pytest.fixture
def long_home():
    """A TUNE_HOME whose socket path is too long for the data directory (≈150 chars),
    inside a parent only its owner may enter."""
    parent = Path(tempfile.mkdtemp(prefix="tune-sec-"))
    os.chmod(parent, 0o700)
    home = parent / ("h" * 60) / ("o" * 60)
    yield home
    embedded.remove(home)
    shutil.rmtree(parent, ignore_errors=True)


def _psql() -> Path:
    return embedded._binaries() / "bin" / "psql"


def test_long_home_socket_is_private_and_nothing_else_changes(long_home):
    parent_mode = stat.S_IMODE(os.stat(long_home.parent.parent).st_mode)
    url = embedded.ensure_running(long_home)
    pgdata = embedded.data_dir(long_home)
    sock = embedded.socket_dir(pgdata, embedded._service_ids()[0])
    if not embedded._running_as_root():
        assert sock != pgdata  # the path is too long: our own short directory is used
    assert str(sock) in url
    st = os.lstat(sock)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == embedded._service_ids()[0]
    assert stat.S_IMODE(os.stat(sock / embedded.SOCKET_NAME).st_mode) & 0o077 == 0
    # We never open up directories we did not create, and what we create is ours alone.
    assert stat.S_IMODE(os.stat(long_home.parent.parent).st_mode) == parent_mode == 0o700
    assert stat.S_IMODE(os.stat(long_home).st_mode) == 0o700
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('listen_addresses'), current_setting('unix_socket_permissions')")
            assert cur.fetchone() == ("", "0700")  # no TCP at all
    finally:
        conn.close()


def test_a_planted_socket_directory_is_refused(long_home):
    if embedded._running_as_root():
        pytest.skip("as root the socket lives in the server's own data directory")
    pgdata = embedded.data_dir(long_home)
    long_home.mkdir(parents=True, mode=0o700)
    pgdata.mkdir(mode=0o700)
    sock = embedded.socket_dir(pgdata, os.geteuid())
    sock.mkdir(mode=0o777)
    os.chmod(sock, 0o777)
    try:
        with pytest.raises(embedded.EmbeddedError, match="not a private"):
            embedded.ensure_running(long_home)
    finally:
        shutil.rmtree(sock, ignore_errors=True)


def _ensure_intruder() -> None:
    try:
        subprocess.run(["id", INTRUDER], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER],
                       check=True, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a second OS user needs root")
@pytest.mark.skipif(shutil.which("runuser") is None, reason="runuser (util-linux) is needed to act as another user")
def test_another_local_user_cannot_reach_the_embedded_server(long_home):
    url = embedded.ensure_running(long_home)
    _ensure_intruder()
    sock_dir = url.split("host=", 1)[1]
    # A real client, run as the other user, at the socket (there is no TCP port: see
    # test_no_tcp_port_is_opened_by_the_embedded_server).
    attempts = [
        [str(_psql()), url, "-c", "SELECT 1"],
        [str(_psql()), f"host={sock_dir} user=postgres dbname=postgres", "-c", "SELECT 1"],
    ]
    for attempt in attempts:
        proc = subprocess.run(["runuser", "-u", INTRUDER, "--", *attempt], capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0, f"{INTRUDER} connected with {attempt[1:]}: {proc.stdout}"
        assert "(1 row)" not in proc.stdout
    # Nor can it even look at the socket.
    proc = subprocess.run(["runuser", "-u", INTRUDER, "--", "ls", sock_dir], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    # While we can.
    psycopg2.connect(url).close()


def test_a_role_without_create_privilege_is_told_which_privilege(server_url):
    import uuid

    from sqlalchemy.engine import make_url

    name = f"tune_test_{uuid.uuid4().hex[:10]}"
    role = f"tune_nocreate_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
            cur.execute(f'CREATE ROLE "{role}" LOGIN')
        db_admin = psycopg2.connect(make_url(server_url).set(database=name).render_as_string(hide_password=False))
        db_admin.autocommit = True
        with db_admin.cursor() as cur:
            cur.execute(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{role}"')
        db_admin.close()
        url = make_url(server_url).set(database=name, username=role, password=None).render_as_string(hide_password=False)
        proc = tune("status", "--storage", url, timeout=60)
        assert proc.returncode == 1
        assert "CREATE" in proc.stderr and "privilege" in proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_no_tcp_port_is_opened_by_the_embedded_server(long_home):
    url = embedded.ensure_running(long_home)
    pid = embedded._postmaster_info(embedded.data_dir(long_home))["pid"]
    import psutil

    listening = [c for c in psutil.net_connections(kind="inet") if c.pid == pid and c.status == psutil.CONN_LISTEN]
    assert listening == []
    assert "host=" in url and socket.gethostname() not in url
