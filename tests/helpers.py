"""Plain helpers shared by the test modules (and benchmarks/bench_faults.py).

Fixtures live in ``tests/conftest.py``; everything here is an ordinary function,
class or constant, imported as ``from tests.helpers import …``. Nothing here
connects to a database when imported: the database helpers take a URL.

Sections: running the CLI and waiting; configs; reading trials; the fault
suite's machinery (a second embedded server, a ledger backtest); text safety
(names and values full of markup and control characters); an HTTP endpoint ([notify]).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import optuna
import psutil
import psycopg2
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from textual.geometry import Region

from runner import control
from runner.monitor import EventRow, StudyView, TrialRow
from runner.status import StudyStatus
from runner.storage import Database, embedded

ROOT = Path(__file__).resolve().parents[1]  # the checkout under test: subprocesses run from here


# ------------------------------------------------------ the CLI, and waiting


def tune(*args: str, env: dict | None = None, timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess:
    """Run the ``tune`` CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tune {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _polls(timeout: float, message: str):
    """Yield until the caller returns; raise once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    for _ in _polls(timeout, message):
        if value := predicate():
            return value
        time.sleep(interval)


async def until(pilot, predicate, message: str = "condition", timeout: float = 45.0, interval: float = 0.1):
    """:func:`wait_for` for an app under Textual's Pilot: the app runs while we wait."""
    for _ in _polls(timeout, message):
        if value := predicate():
            return value
        await pilot.pause(interval)


def tables_measured(screen) -> bool:
    """Every DataTable on ``screen`` has measured the cells it holds. A DataTable widens
    its columns for new rows on its next idle, not when they are added, so a picture taken
    on a busy machine can catch the columns still at their labels' width."""
    from textual.render import measure
    from textual.widgets import DataTable

    for table in screen.query(DataTable):
        console = table.app.console
        for column in table.ordered_columns:
            widths = [measure(console, cell, 1) for cell in table.get_column(column.key)]
            if max(widths, default=0) > column.content_width:
                return False
    return True


async def settled(pilot, screen=None) -> None:
    """Wait until the tables on the screen have measured their rows, then let the layout land."""
    from textual.widgets import DataTable

    screen = screen or pilot.app.screen
    await until(pilot, lambda: tables_measured(screen), "the tables to measure their rows")
    for table in screen.query(DataTable):
        table.refresh()  # a header painted between the rows' arrival and their measuring stays narrow
    await pilot.pause()


def start_run(config, env: dict | None = None) -> subprocess.Popen:
    """``tune run CONFIG`` in the background (stdout and stderr together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "run", str(config)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )


def status_json(*args) -> dict:
    """``tune status … --json``, by study name."""
    proc = tune("status", *args, "--json", check=True)
    return {s["study"]: s for s in json.loads(proc.stdout)["studies"]}


# ------------------------------------------------------------------- configs


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
{data}

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


SMALL_DATA = """
[data.synthetic]
bars = 2000
seed = 1
"""


def small_config(tmp_path: Path, name: str = "t", target: int = 20, workers: int = 1,
                 symbols=("AAA",), strategy: str = "ma_crossover", extra: str = "", data: str = SMALL_DATA) -> Path:
    """``data``: the rest of the [data] table (synthetic bars by default, or ``path = ...``)."""
    text = SMALL_CONFIG.format(name=name, target=target, workers=workers, symbols=list(symbols), strategy=strategy,
                               data=data)
    return write_config(tmp_path / f"{name}.toml", text + extra)


USER_BACKTESTS = '''
import time

def odd_names(params, data):
    """Metric names and a message PostgreSQL cannot store as they are (NUL, a lone surrogate)."""
    if params["fast"] % 5 == 0:
        raise ValueError("bad\\x00value \\udc80")
    return {"sharpe": params["fast"] / 10, "trades": 50, "a\\x00b": 1.0, "col\\udc80": 2.0}

def flaky(params, data):
    """Raises for some parameters, returns NaN for others: each must fail only its trial."""
    fast = params["fast"]
    if fast % 3 == 0:
        raise ValueError(f"boom at fast={fast}")
    if fast % 3 == 1:
        return float("nan")
    return {"sharpe": fast / 10, "trades": 50}

def slow(params, data):
    """A backtest that takes a while, so that a trial is surely running when we act."""
    time.sleep(0.25)
    return {"sharpe": params["fast"] - params["slow"] / 10, "trades": 50}
'''


def user_config(tmp_path, function: str, **kw):
    """The small config with a backtest of ``USER_BACKTESTS`` (``flaky`` or ``slow``)."""
    (tmp_path / "mybt.py").write_text(USER_BACKTESTS)
    return small_config(tmp_path, strategy=f"mybt:{function}", **kw)


SEARCH_BACKTESTS = '''
def quadratic(params, data):
    """A smooth landscape whose partial scores rank trials like the full ones."""
    share = len(data) / 2000
    score = -abs(params["fast"] - 10) - abs(params["slow"] - 50) / 10 + 0.05 * share
    return {"sharpe": score, "trades": 10 * share, "max_drawdown": 0.1 + abs(params["fast"] - 10) / 100,
            "volatility": 0.2}

def small_space(params, data):
    return {"sharpe": params["a"] * (2 if params["b"] == "x" else 1), "trades": 50}

def few_trades(params, data):
    return {"sharpe": params["fast"] / 10, "trades": params["fast"]}

def crossover(params, data):
    """An MA-crossover-like landscape: fast >= slow is invalid, short slow windows trade
    too little for min_trades, large gaps draw down too much; best near fast=10, slow=24."""
    import backtest
    fast, slow = params["fast"], params["slow"]
    if fast >= slow:
        raise backtest.InvalidParams(f"fast ({fast}) must be below slow ({slow})")
    return {"sharpe": 2.0 - abs(fast - 10) / 10 - abs(slow - 24) / 20, "trades": 600 / slow,
            "max_drawdown": 0.1 + (slow - fast) / 100, "volatility": 0.2}

def stepped(params, data):
    import os
    with open(os.environ["BT_LEDGER"], "a") as out:
        out.write(repr(params["x"]) + "\\n")
    return {"sharpe": -abs(params["x"] - 0.6), "trades": 50}

def conditional(params, data):
    if (params["mode"] == "wide") != ("width" in params):
        raise ValueError(f"width given when mode is {params['mode']}: {params}")
    return {"sharpe": params.get("width", 1.0) * params["fast"], "trades": 50}
'''


def search_config(tmp_path, function: str, name: str, target: int = 12, workers: int = 1, extra: str = "",
                  space: str | None = None):
    """The small config with a backtest of ``SEARCH_BACKTESTS``; ``space`` replaces the [space] tables."""
    (tmp_path / "searchbt.py").write_text(SEARCH_BACKTESTS)
    path = small_config(tmp_path, name=name, target=target, workers=workers, strategy=f"searchbt:{function}")
    text = path.read_text()
    if space is not None:
        text = text[: text.index("[space.fast]")] + space
    path.write_text(text + extra)
    return path


CONDITIONAL_SPACE = '''
[space.fast]
type = "int"
low = 2
high = 20

[space.mode]
type = "categorical"
choices = ["narrow", "wide"]

[space.width]
type = "float"
low = 1.0
high = 3.0
when = { mode = "wide" }
'''


# ------------------------------------------------------------ reading trials


def trials_of(url: str, study: str, *, checked: bool = False) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as Optuna sees them ([] before a worker has created the study).
    ``checked``: through ``Database.open`` (schema checked; a dead embedded server started
    again; an unreachable one raises StorageError), as the fault suite reads."""
    db = Database.open(url) if checked else Database(url)
    try:
        return optuna.load_study(study_name=study, storage=db.optuna_storage(study)).get_trials(deepcopy=False)
    except KeyError:  # no worker has created the study yet
        return []
    finally:
        db.dispose()


def trials(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return trials_of(url, study, checked=True)


def count(trial_list, state) -> int:
    return sum(t.state == state for t in trial_list)


def live_workers(db: Database, study: str) -> list[dict]:
    return [
        {"id": w.id, "pid": w.pid, "status": w.status, "trial_id": w.trial_id}
        for w in control.list_workers(db, [study], live_only=True)
        if w.pid  # a launch claimed but not yet started has no process yet
    ]


# ------------------------------------------------------- the fault suite's machinery

LEDGER_BACKTEST = '''
import os, time

def counted(params, data):
    """Sleeps, then appends a line to the ledger: one line per finished backtest."""
    time.sleep(float(os.environ.get("BT_SLEEP", "0.2")))
    with open(os.environ["BT_LEDGER"], "a") as out:
        out.write(f"{params['fast']},{params['slow']}\\n")
    return {"sharpe": params["fast"] - params["slow"] / 10, "trades": 50}
'''


class Server:
    """A second embedded PostgreSQL with a TUNE_HOME of its own."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="tune-fault-"))
        self.url = embedded.ensure_running(self.home)
        self.pgdata = embedded.data_dir(self.home)

    def processes(self) -> list[psutil.Process]:
        info = embedded._postmaster_info(self.pgdata)
        if info is None:
            return []
        postmaster = psutil.Process(info["pid"])
        return [postmaster, *postmaster.children(recursive=True)]

    def stop(self) -> None:
        assert embedded.stop(self.home)

    def start(self) -> None:
        embedded.ensure_running(self.home)

    def remove(self) -> None:
        for proc in self.processes():  # a frozen server must not outlive the test
            try:
                proc.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
        embedded.remove(self.home)
        shutil.rmtree(self.home, ignore_errors=True)


def ledger_config(tmp_path: Path, name: str, target: int, workers: int = 1) -> Path:
    """The small config with the ledger backtest (``BT_LEDGER``, ``BT_SLEEP``: see :func:`worker_env`)."""
    (tmp_path / "ledgerbt.py").write_text(LEDGER_BACKTEST)
    # The ledger counts the trials' backtests: the end-of-study report's would count too.
    return small_config(tmp_path, name=name, target=target, workers=workers, strategy="ledgerbt:counted",
                        extra="\n[validation]\nreport_at_end = false\n")


def worker_env(tmp_path: Path, url: str | None, home: Path | None = None, sleep: float = 0.2) -> dict:
    env = {**os.environ, "BT_LEDGER": str(tmp_path / "ledger.txt"), "BT_SLEEP": str(sleep), "PYTHONUNBUFFERED": "1"}
    if url is None:
        env.pop("TUNE_STORAGE_URL", None)
    else:
        env["TUNE_STORAGE_URL"] = url
    if home is not None:
        env["TUNE_HOME"] = str(home)
    return env


def start_worker(config: Path, env: dict, log: Path | int | None = None) -> subprocess.Popen:
    """``tune worker CONFIG --symbol AAA`` in a session of its own."""
    out = open(log, "ab") if isinstance(log, Path) else log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "worker", str(config), "--symbol", "AAA"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )


@contextlib.contextmanager
def running_worker(config: Path, env: dict, log: Path | int | None = None):
    """:func:`start_worker`, killed on the way out if still running (a failed test leaves none)."""
    worker = start_worker(config, env, log)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()


def finished_backtests(tmp_path: Path) -> int:
    ledger = tmp_path / "ledger.txt"
    return len(ledger.read_text().splitlines()) if ledger.exists() else 0


def assert_nothing_lost(tmp_path: Path, url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    """The standard: finished backtests (ledger lines) == COMPLETE trials, and none RUNNING."""
    found = trials(url, study)
    assert count(found, TrialState.COMPLETE) == finished_backtests(tmp_path), (
        f"{finished_backtests(tmp_path)} backtests finished, {count(found, TrialState.COMPLETE)} COMPLETE trials"
    )
    assert count(found, TrialState.RUNNING) == 0
    return found


def fresh_database(server_url: str) -> str:
    """A new database on the server of ``server_url``; its URL."""
    name = f"tune_fault_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# ------------------------------------------------------------- text safety

MARKUP = ("[/x]", "[bold]", "[link=x]")
ANSI = "\x1b[31m"
SHOWN_ANSI = "\\x1b[31m"  # how the app shows it
NASTY = "[/x] [bold]b [link=x]l \x1b[31mred"
SHORT = "[/x][bold][link=x]\x1b[31m"  # for the plot's labels, which plotext drops when they do not fit
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
URL = "postgresql://tune@localhost:1/nowhere"  # never connected to: the tests feed fixed data


def assert_literal(text: str, *, ansi: bool = True) -> None:
    """Every markup tag of ``NASTY`` shown as text, its escape sequence shown escaped, none raw."""
    for tag in MARKUP:
        assert tag in text, f"{tag!r} not shown literally in:\n{text}"
    if ansi:
        assert SHOWN_ANSI in text, f"the escape sequence is not shown escaped in:\n{text}"
    assert "\x1b" not in text and "\x9b" not in text


def nasty_status(study: str = f"s{SHORT}", metric: str = SHORT) -> StudyStatus:
    return StudyStatus(
        study=study, run="s", symbol="AAA", state="running", control="running", metric=metric,
        direction="maximize", target=100, max_attempts=300, metrics=[metric], directions=["maximize"],
        complete=30, pruned=1, failed=1, duplicate=1, duplicate_sources={f"d{NASTY}": 1}, running=1, attempts=33,
        best_value=1.5, best_trial=7, best_params={f"p{NASTY}": f"v{NASTY}", "fast": 3},
        best_metrics={"sharpe": 1.5, "trades": f"t{NASTY}"},
        workers_alive=1, desired_workers=1,
        workers=[{"id": f"w{NASTY}", "host": f"h{NASTY}", "pid": 1, "status": "running", "alive": True,
                  "heartbeat_at": "", "trials_done": 3, "exit_reason": None}],
        ended_reason=f"error: {NASTY}", config_path=f"/tmp/{NASTY}.toml",
    )


def nasty_view(status: StudyStatus, completed: int = 30) -> StudyView:
    finished = datetime(2026, 1, 1, 12, 0)
    return StudyView(
        status=status,
        numbers=list(range(completed)), values=[1 + i / 20 for i in range(completed)],
        seconds=[10.0 * i for i in range(completed)], completed=completed,
        recent=[
            TrialRow(40, "failed", None, {"fast": 3}, finished, f"ValueError: [bad] thing {NASTY}"),
            TrialRow(41, "pruned", None, {"fast": 4}, finished, f"prune {NASTY}\nsecond line"),
            TrialRow(42, "complete", 1.2, {f"k{NASTY}": f"c{NASTY}", "fast": 5.5}, finished, ""),
        ],
        events=[EventRow(1, datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "warning", f"w{NASTY}",
                         f"trial 40 failed: ValueError: [/bold] {NASTY}")],
        version=1, events_version=1,
    )


def screen_text(app) -> str:
    """The text of a running Textual app's whole screen."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget) -> str:
    width, height = widget.outer_size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


# ------------------------------------------------------------ an HTTP endpoint


class Hook:
    """A local HTTP endpoint recording each POST (path, JSON body); ``status``: its answer."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[tuple[str, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body)))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args) -> None:
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
