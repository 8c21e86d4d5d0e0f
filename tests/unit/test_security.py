"""No password printed, whatever it contains; owner-only files; a bad TUNE_HOME or URL is
one line and exit 2. None of this needs a database (the CLI is stopped before it opens one);
the embedded server's privacy is tested in tests/integration/test_security.py."""

from __future__ import annotations

import os
import stat

import pytest

from runner.storage import BadStorageURL, check_url, mask_url
from tests.helpers import tune

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


# ------------------------------------------------------ files and TUNE_HOME


def test_log_files_and_spool_are_owner_only(tmp_path, monkeypatch):
    from runner import spool, supervisor

    monkeypatch.setenv("TUNE_HOME", str(tmp_path / "home"))
    logs = supervisor.log_dir()
    with supervisor.open_log(logs / "x.log") as out:
        out.write(b"line\n")
    assert stat.S_IMODE(os.stat(tmp_path / "home").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(logs).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(logs / "x.log").st_mode) == 0o600
    path = spool.keep_exit("db-id", "s-AAA", "w1", "stopped", "exited")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_an_unusable_tune_home_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = tune("status", env={"TUNE_HOME": str(blocker / "home"), "TUNE_STORAGE_URL": ""}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "TUNE_HOME" in proc.stderr and "Traceback" not in proc.stderr


def test_a_tune_home_others_can_write_or_own_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone could plant links in logs/ or forge kept results
    proc = tune("status", env={"TUNE_HOME": str(shared), "TUNE_STORAGE_URL": ""}, timeout=60)
    assert proc.returncode == 2 and "writable by other users" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    if os.geteuid() == 0:
        os.chmod(shared, 0o700)
        os.chown(shared, 65534, 65534)  # nobody's
        proc = tune("status", env={"TUNE_HOME": str(shared), "TUNE_STORAGE_URL": ""}, timeout=60)
        assert proc.returncode == 2 and "belongs to another user" in proc.stderr


def test_a_planted_link_in_place_of_a_log_is_not_written_through(tmp_path, monkeypatch):
    from runner import supervisor

    monkeypatch.setenv("TUNE_HOME", str(tmp_path / "home"))
    victim = tmp_path / "victim"
    victim.write_text("")
    (supervisor.log_dir() / "s-AAA.log").symlink_to(victim)
    with pytest.raises(OSError):
        supervisor.open_log(supervisor.log_dir() / "s-AAA.log")
    assert victim.read_text() == ""
