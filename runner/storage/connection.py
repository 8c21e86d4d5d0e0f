"""How every connection to PostgreSQL behaves: deadlines, keepalives and retries.

A server that accepts a TCP connection and never answers, or that freezes (a
network partition, a stopped process), would make a blocking libpq call wait
forever: ``connect_timeout`` covers only connection set-up in blocking mode,
TCP keepalives only a silent peer whose kernel has gone too, and a server-side
``statement_timeout`` nothing when the server itself is stuck. So every
psycopg2 call waits through :func:`_wait_with_deadline` (psycopg2's public
wait-callback hook): the socket is polled with ``select`` and a call that gets
no answer within its deadline fails like a lost connection — which every
caller already handles by reconnecting (:func:`retry`).

Process-wide settings (:func:`configure`): ``io_timeout`` — how long one round
trip may take; ``patience`` — how long :func:`retry` keeps trying before it
gives up (``None``: until the database is back; workers wait through outages
with their finished results in hand). Commands and the app use short values,
so they say what they waited for instead of hanging. ``on_back`` is told how
long a wait lasted once the database answers again (a worker records it in
its study's log).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions

from ..text import first_line

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to establish a connection (TCP, TLS, start-up, auth)

# SQLAlchemy's psycopg2 dialect recognises this text as a lost connection and
# discards the connection instead of returning it to the pool.
_LOST = "could not receive data from server"

_settings: dict[str, Any] = {"io_timeout": 30.0, "patience": 60.0}
_wait_hook: Callable[[], None] | None = None
_back_hook: Callable[[float], None] | None = None
_away_hook: Callable[[float], None] | None = None


def configure(*, io_timeout: float | None = None, patience: float | None | str = "keep",
              on_wait: Callable[[], None] | None | str = "keep",
              on_back: Callable[[float], None] | None | str = "keep",
              on_away: Callable[[float], None] | None | str = "keep") -> None:
    """Set this process's deadlines (see the module docstring). ``on_wait`` runs between
    retries in the main thread: a worker raises from it to leave a wait when signalled.
    ``on_away`` is told, from whichever thread waits, how long the wait has lasted so far
    (runner/notify.py: database unreachable); it must return at once."""
    global _wait_hook, _back_hook, _away_hook
    if io_timeout is not None:
        _settings["io_timeout"] = float(io_timeout)
    if patience != "keep":
        _settings["patience"] = patience
    if on_wait != "keep":
        _wait_hook = on_wait  # type: ignore[assignment]
    if on_back != "keep":
        _back_hook = on_back  # type: ignore[assignment]
    if on_away != "keep":
        _away_hook = on_away  # type: ignore[assignment]


def patience() -> float | None:
    return _settings["patience"]


def libpq_args(application_name: str = "tune") -> dict[str, Any]:
    """Connection parameters for every connection we open (TCP keepalives so a dead peer
    is noticed; they are ignored on Unix sockets)."""
    return {
        "connect_timeout": int(CONNECT_TIMEOUT),
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": 30_000,  # ms: unacknowledged data for this long means the peer is gone
        "application_name": application_name,
    }


def _wait_with_deadline(conn) -> None:
    """psycopg2 wait callback: drive a non-blocking call to completion within its deadline."""
    connecting = conn.status == psycopg2.extensions.STATUS_SETUP
    limit = CONNECT_TIMEOUT if connecting else _settings["io_timeout"]
    deadline = time.monotonic() + limit
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        readers: tuple[int, ...] = ()
        writers: tuple[int, ...] = ()
        if state == psycopg2.extensions.POLL_READ:
            readers = (conn.fileno(),)
        elif state == psycopg2.extensions.POLL_WRITE:
            writers = (conn.fileno(),)
        else:  # pragma: no cover - psycopg2 reports errors by raising from poll()
            raise psycopg2.OperationalError(f"unexpected poll state {state}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = "connecting" if connecting else "waiting for an answer"
            raise psycopg2.OperationalError(f"{_LOST}: database not answering ({what} for {limit:.0f} s)")
        select.select(readers, writers, (), min(remaining, 1.0))


class StorageError(Exception):
    """The database cannot be reached or used; the message is safe to print."""


class DatabaseAway(StorageError):
    """The database stayed unreachable for longer than this process's patience."""


T = TypeVar("T")


def pause(seconds: float) -> None:
    """Sleep between retries; the main thread's wait hook may end the wait (a signal)."""
    if _wait_hook is not None and threading.current_thread() is threading.main_thread():
        _wait_hook()
    time.sleep(seconds)
    if _wait_hook is not None and threading.current_thread() is threading.main_thread():
        _wait_hook()


def retry(fn: Callable[[], T], *, transient: tuple[type[BaseException], ...], url: str | None = None,
          what: str = "the database", on_retry: Callable[[], bool] | None = None) -> T:
    """Call ``fn`` until it succeeds, retrying on ``transient`` errors (a lost connection,
    a restarting server) for this process's patience; then raise :class:`DatabaseAway`.

    ``url``: if it is the embedded server, start it again when it has died.
    ``on_retry``: called before each retry; True means "already done" (the first attempt
    did commit after all) and ends the call with ``None``.
    """
    limit = _settings["patience"]
    started = time.monotonic()
    delay = 0.2
    warned = False
    while True:
        try:
            if warned and on_retry is not None and on_retry():
                return None  # type: ignore[return-value]
            result = fn()
            if warned:
                waited = time.monotonic() - started
                log.warning("%s is back after %.0f s", what, waited)
                if _back_hook is not None:
                    _back_hook(waited)
            return result
        except transient as exc:
            waited = time.monotonic() - started
            if limit is not None and waited > limit:
                raise DatabaseAway(f"{what} is unreachable ({waited:.0f} s): {first_line(exc)}") from None
            if not warned:
                log.warning("%s is unreachable (%s); waiting for it%s", what, first_line(exc),
                            " (finished results are kept)" if limit is None else f" for up to {limit:.0f} s")
                warned = True
            if _away_hook is not None:
                _away_hook(waited)
            if url is not None:
                from . import embedded

                embedded.revive(url)
            pause(delay)
            delay = min(delay * 2, 5.0)


# Installed for the whole process as soon as anything imports this module: no
# connection of ours is ever opened without a deadline.
psycopg2.extensions.set_wait_callback(_wait_with_deadline)

