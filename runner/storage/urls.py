"""Which database: ``--storage``, ``TUNE_STORAGE_URL`` or the embedded server; URLs
checked before use and masked wherever they are shown."""

from __future__ import annotations

import os
import re
import warnings

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import make_url

from ..env import ENV_URL
from ..text import first_line
from . import embedded
from .connection import StorageError
from .embedded import EmbeddedError, HomeError


class BadStorageURL(StorageError):
    """The storage URL itself is wrong (bad input: exit 2)."""


# --------------------------------------------------------------------------- URLs

SECRET_QUERY_KEYS = ("password", "sslpassword")
_SECRET_IN_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_QUERY_KEYS) + r")=)[^&#]*")


def mask_url(url: str) -> str:
    """The URL with its password — in the user part or the query — shown as ``***``.
    Never print a URL otherwise.

    Works on the text itself, not on a parse, so that a malformed URL is masked
    too: whatever lies between ``scheme://user:`` and the last ``@`` (a password
    may hold an unescaped ``@``) is hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unparseable storage URL>" if "@" in url or ":" in url else url
    authority_end = len(rest)
    for delimiter in "?#":
        if delimiter in rest:
            authority_end = min(authority_end, rest.index(delimiter))
    at = rest.rfind("@", 0, authority_end)
    if at < 0:  # an "@" only after "?" or "#": treat everything up to the last "@" as the user part
        at = rest.rfind("@")
    if at >= 0:
        user, colon, _secret = rest[:at].partition(":")
        rest = f"{user}{':***' if colon and _secret else ''}{rest[at:]}"
    masked = f"{scheme}://{rest}"
    return _SECRET_IN_QUERY.sub(lambda m: m.group(1) + "***", masked)


def check_url(url: str) -> str:
    """Check a storage URL; return it as libpq wants it (``postgresql://…``)."""
    scheme, sep, rest = url.partition("://")
    if sep and rest.split("?", 1)[0].count("@") > 1:
        raise BadStorageURL(
            f"{mask_url(url)}: the user or password contains '@': percent-encode it as %40"
        )
    try:
        u = make_url(url)
        u.port  # noqa: B018 - parsing the port raises for "host:notaport"
    except Exception:
        raise BadStorageURL(f"{mask_url(url)}: not a valid storage URL (postgresql://user:password@host:port/database)") from None
    if u.get_backend_name() not in ("postgresql", "postgres"):
        raise BadStorageURL(f"{mask_url(url)}: only PostgreSQL URLs are supported (postgresql://…)")
    if not u.host and not u.query.get("host"):
        # libpq would silently pick its defaults (the local system server): say which one is meant.
        raise BadStorageURL(
            f"{mask_url(url)}: names no server; give a host (postgresql://user@HOST:5432/db) "
            "or a socket directory (postgresql://user@/db?host=/var/run/postgresql)"
        )
    libpq = u.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg2.extensions.parse_dsn(libpq)  # libpq's own check: unknown options, bad values
    except psycopg2.ProgrammingError as exc:
        raise BadStorageURL(f"{mask_url(url)}: {first_line(exc)}") from None
    return libpq


def resolve_url(cli_url: str | None = None) -> str:
    """The storage URL in force: ``--storage``, else ``TUNE_STORAGE_URL``, else embedded."""
    url = cli_url or os.environ.get(ENV_URL)
    if url:
        return check_url(url)
    return embedded_url()


def embedded_url() -> str:
    """Start (or attach to) the user's embedded PostgreSQL and return its URL
    (see :mod:`runner.embedded`: a private socket, no TCP)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            return embedded.ensure_running()
        except HomeError:
            raise
        except EmbeddedError as exc:
            raise StorageError(str(exc)) from None
        except Exception as exc:
            raise StorageError(f"could not start the embedded PostgreSQL: {type(exc).__name__}: {exc}") from None


def stop_embedded() -> bool:
    """Stop the embedded server if it runs; True if it was running."""
    try:
        return embedded.stop()
    except EmbeddedError as exc:
        raise StorageError(str(exc)) from None
