"""Nothing another local user can reach; no password printed; no surprise server.

The embedded-server tests start servers of their own (a TUNE_HOME each), so they
run on either test server; the second-OS-user test needs root (to create that user).
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
from runner.storage import BadStorageURL, check_url, mask_url
from tests.conftest import tune

INTRUDER = "tune_intruder"


# ------------------------------------------------------------------- URLs


@pytest.mark.parametrize("url, secret", [
    ("postgresql://u:p@ss@db.example/tune", "p@ss"),
    ("postgresql://u:p@ss@word@db.example:5432/tune?sslmode=require", "p@ss@word"),
    ("postgresql://u:s3cr3t@db.example/tune", "s3cr3t"),
    ("postgresql://u:a/b@c@db.example/tune", "a/b@c"),
    ("postgresql://u@db.example/tune?password=hunter2", "hunter2"),
    ("postgresql://u:pw@@db.example/tune", "pw@"),
    ("postgresql://u:pw#x@db.example/tune", "pw#x"),
])
def test_a_password_is_never_shown_whatever_it_contains(url, secret):
    masked = mask_url(url)
    assert secret not in masked
    assert "***" in masked
    assert "db.example" in masked


def test_an_unescaped_at_in_the_password_is_rejected_with_a_hint():
    with pytest.raises(BadStorageURL) as err:
        check_url("postgresql://u:p@ss@db.example/tune")
    assert "%40" in str(err.value) and "p@ss" not in str(err.value) and "ss@" not in str(err.value)


@pytest.mark.parametrize("command", [["db", "url"], ["status"]])
def test_cli_masks_and_rejects_an_at_in_the_password(command):
    proc = tune(*command, "--storage", "postgresql://u:p@ss@db.example/tune", timeout=60)
    assert proc.returncode == 2
    assert "p@ss" not in proc.stdout + proc.stderr and "ss@db" not in proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["postgresql://", "postgresql:///tune", "postgresql://u@/tune"])
def test_a_url_that_names_no_server_is_refused(url):
    with pytest.raises(BadStorageURL, match="names no server"):
        check_url(url)
    proc = tune("status", "--storage", url, timeout=60)
    assert proc.returncode == 2 and "names no server" in proc.stderr


def test_a_socket_directory_in_the_query_names_a_server():
    assert check_url("postgresql://u@/tune?host=/var/run/postgresql").startswith("postgresql://")


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


def test_log_files_and_spool_are_owner_only(tmp_path, monkeypatch):
    from runner import spool, supervisor

    monkeypatch.setenv("TUNE_HOME", str(tmp_path / "home"))
    logs = supervisor.log_dir()
    with supervisor.open_log(logs / "x.log") as out:
        out.write(b"line\n")
    assert stat.S_IMODE(os.stat(tmp_path / "home").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(logs).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(logs / "x.log").st_mode) == 0o600
    path = spool.keep_exit("s-AAA", "w1", "stopped", "exited")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_an_unusable_tune_home_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = tune("status", env={"TUNE_HOME": str(blocker / "home"), "TUNE_STORAGE_URL": ""}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "TUNE_HOME" in proc.stderr and "Traceback" not in proc.stderr


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
