"""Storage without a database: URLs checked and masked, the retry loop, an unreachable server.

(The journal on a real PostgreSQL is tested in tests/integration/test_storage.py.)
"""

from __future__ import annotations

import pytest

from runner.storage import Database, StorageError, mask_url, resolve_url


def test_mask_url_hides_the_password():
    masked = mask_url("postgresql://alice:s3cret@db.example:5432/tune")
    assert "s3cret" not in masked
    assert masked == "postgresql://alice:***@db.example:5432/tune"


def test_resolve_url_rejects_non_postgres():
    with pytest.raises(StorageError, match="only PostgreSQL"):
        resolve_url("sqlite:///x.db")


def test_unreachable_database_is_one_clear_error():
    with pytest.raises(StorageError, match=r"cannot connect to postgresql://u:\*\*\*@127\.0\.0\.1:1/x"):
        Database.open("postgresql://u:pw@127.0.0.1:1/x")


def test_passwords_in_the_query_string_are_masked_too():
    masked = mask_url("postgresql://bob@db.example/tune?password=s3cret&sslmode=require&sslpassword=k3y")
    assert "s3cret" not in masked and "k3y" not in masked
    assert "sslmode=require" in masked


def test_a_malformed_url_is_bad_input():
    from runner.storage import BadStorageURL

    with pytest.raises(BadStorageURL, match="not a valid storage URL"):
        resolve_url("postgresql://u:pw@host:notaport/db")
    assert resolve_url("postgres://u:pw@h:5432/db") == "postgresql://u:pw@h:5432/db"


# ------------------------------------------------------------ more URLs


@pytest.mark.parametrize("url", [
    "postgresql://u@db.example/tune", "postgresql://u@/tune?host=/run/postgresql", "postgresql://db.example:5433/tune",
    "plainname",
])
def test_a_url_without_a_password_is_shown_as_it_is(url):
    assert mask_url(url) == url


@pytest.mark.parametrize("url, secret", [
    ("user:pw@db.example/tune", "pw"),  # no scheme: not parsed, not shown
    ("postgresql://u:pw@db.example/tune?PASSWORD=hunter2&sslmode=require", "hunter2"),
    ("postgresql://u:p%40ss@db.example/tune", "p%40ss"),
    ("postgresql://u:pw@db.example/tune#frag", "pw@"),
])
def test_odd_urls_are_masked_too_and_masking_twice_changes_nothing(url, secret):
    masked = mask_url(url)
    assert secret not in masked
    assert mask_url(masked) == masked


def test_an_empty_password_is_not_announced():
    assert mask_url("postgresql://u:@db.example/tune") == "postgresql://u@db.example/tune"


@pytest.mark.parametrize("url, checked", [
    ("postgres://u:pw@h/db", "postgresql://u:pw@h/db"),
    ("postgresql+psycopg2://u:pw@h:5432/db", "postgresql://u:pw@h:5432/db"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:p%40ss@h/db"),  # an escaped '@' is fine
    ("postgresql://u:pw@h/db?sslmode=require", "postgresql://u:pw@h/db?sslmode=require"),
])
def test_check_url_gives_a_libpq_url(url, checked):
    from runner.storage import check_url

    assert check_url(url) == checked


@pytest.mark.parametrize("url, words", [
    ("mysql://u:secret@h/db", "only PostgreSQL"),
    ("postgresql://u:secret@h:port/db", "not a valid storage URL"),
    ("  ", "not a valid storage URL"),
    ("postgresql://u:secret@/db", "names no server"),
])
def test_check_url_refuses_and_never_shows_the_password(url, words):
    from runner.storage import BadStorageURL, check_url

    with pytest.raises(BadStorageURL, match=words) as info:
        check_url(url)
    assert "secret" not in str(info.value)


# ------------------------------------------------------------ retry


class Flaky:
    """Fails ``failures`` times with ``error``, then returns "ok"."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or ConnectionError("could not connect to server: Connection refused\nIs the server running?")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


@pytest.fixture
def clock(monkeypatch):
    """retry() on a fake clock: pause() only advances it (no test sleeps); returns the pauses taken."""
    from types import SimpleNamespace

    from runner.storage import connection

    now = [1000.0]
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(connection, "pause", pause)
    monkeypatch.setattr(connection, "time", SimpleNamespace(monotonic=lambda: now[0], sleep=pause))
    previous = connection.patience()
    yield pauses
    connection.configure(patience=previous)


def test_retry_returns_once_the_call_succeeds_backing_off_up_to_5_s(clock):
    from runner.storage.connection import configure, retry

    configure(patience=60.0)
    fn = Flaky(7)
    assert retry(fn, transient=(ConnectionError,)) == "ok"
    assert fn.calls == 8
    assert clock == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_retry_gives_up_after_its_patience_with_database_away(clock):
    from runner.storage.connection import DatabaseAway, StorageError, configure, retry

    configure(patience=10.0)
    fn = Flaky(1000)
    with pytest.raises(DatabaseAway) as info:
        retry(fn, transient=(ConnectionError,), what="the test database")
    assert isinstance(info.value, StorageError)
    message = str(info.value)
    assert message.startswith("the test database is unreachable (")
    assert message.endswith("could not connect to server: Connection refused")  # its first line only
    assert sum(clock[:-1]) <= 10.0 < sum(clock)  # tried until the patience was spent, then once more
    assert fn.calls == len(clock) + 1


def test_retry_without_patience_waits_as_long_as_it_takes(clock):
    from runner.storage.connection import configure, retry

    configure(patience=None)
    fn = Flaky(100)
    assert retry(fn, transient=(ConnectionError,)) == "ok"
    assert sum(clock) > 300  # far beyond any patience


def test_retry_does_not_retry_other_errors(clock):
    from runner.storage.connection import configure, retry

    configure(patience=60.0)
    fn = Flaky(1, error=ValueError("a bug, not an outage"))
    with pytest.raises(ValueError, match="a bug"):
        retry(fn, transient=(ConnectionError,))
    assert fn.calls == 1 and clock == []


def test_retry_stops_when_on_retry_says_the_first_attempt_did_commit(clock):
    from runner.storage.connection import configure, retry

    configure(patience=60.0)
    fn = Flaky(1)
    asked = []
    assert retry(fn, transient=(ConnectionError,), on_retry=lambda: asked.append(1) or True) is None
    assert fn.calls == 1 and asked == [1]
