"""Text from users is text, never markup: names, values, reasons and messages from a
config, the data or a backtest are shown literally, and their control characters never
reach the terminal raw."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets._toast import Toast

from runner.cli import status_table
from runner.export import trials_csv
from runner.monitor import EventRow, Snapshot, StudyView, TrialRow
from runner.status import StudyStatus, printable
from tests.conftest import small_config, tune
from tui import cli as tui_cli
from tui.app import TuneApp
from tui.screens.confirm_screen import ConfirmScreen
from tui.widgets.best_panel import BestPanel
from tui.widgets.convergence_plot import ConvergencePlot
from tui.widgets.event_log import EventLog
from tui.widgets.studies_table import StudiesTable
from tui.widgets.trials_table import TrialsTable

MARKUP = ("[/x]", "[bold]", "[link=x]")
ANSI = "\x1b[31m"
SHOWN_ANSI = "\\x1b[31m"  # how the app shows it
NASTY = "[/x] [bold]b [link=x]l \x1b[31mred"
SHORT = "[/x][bold][link=x]\x1b[31m"  # for the plot's labels, which plotext drops when they do not fit
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
URL = "postgresql://tune@localhost:1/nowhere"  # never connected to: the tests feed fixed data


def assert_literal(text: str, *, ansi: bool = True) -> None:
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
        events=[EventRow(1, datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc), "warning", f"w{NASTY}",
                         f"trial 40 failed: ValueError: [/bold] {NASTY}")],
        version=1, events_version=1,
    )


def screen_text(app: App) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def widget_text(widget) -> str:
    width, height = widget.outer_size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


# ----------------------------------------------------------------- widgets


class Widgets(App):
    CSS = """
    Screen { layout: vertical; }
    StudiesTable { height: 4; } ConvergencePlot { height: 14; } BestPanel { height: 18; }
    TrialsTable { height: 6; } EventLog { height: 4; }
    """

    def compose(self) -> ComposeResult:
        yield StudiesTable()
        yield ConvergencePlot()
        yield BestPanel()
        yield TrialsTable()
        yield EventLog()


@pytest.mark.parametrize("completed", [30, 0], ids=["trials", "no-trials"])
def test_every_widget_shows_names_values_and_reasons_literally(completed):
    view = nasty_view(nasty_status(), completed)
    app = Widgets()

    async def session():
        async with app.run_test(size=(240, 60)) as pilot:
            app.query_one(StudiesTable).show([view.status])
            for widget in (ConvergencePlot, BestPanel, TrialsTable, EventLog):
                app.query_one(widget).show(view)
            await pilot.pause()
            texts = {type(w).__name__: widget_text(w) for w in app.query("StudiesTable, ConvergencePlot, BestPanel, "
                                                                      "TrialsTable, EventLog")}
            assert_literal(texts["StudiesTable"])  # the study name
            assert_literal(texts["ConvergencePlot"])  # the metric (x label) or the study (title)
            best = texts["BestPanel"]
            assert_literal(best)
            for part in (f"p{printable(NASTY)}", f"v{printable(NASTY)}", f"h{printable(NASTY)}",
                         f"error: {printable(NASTY)}", f"d{printable(NASTY)}"):
                assert part in best, part
            trials = texts["TrialsTable"]
            assert_literal(trials)
            assert "ValueError: [bad] thing" in trials and "\\nsecond line" in trials
            assert f"k{printable(NASTY)}=c{printable(NASTY)}" in trials
            assert_literal(texts["EventLog"])
            assert "ValueError: [/bold]" in texts["EventLog"]
            assert "\x1b" not in screen_text(app)

    asyncio.run(session())


def test_a_dialog_question_is_shown_literally():
    app = Widgets()

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            app.push_screen(ConfirmScreen(f"Stop s{NASTY}? And more words to wrap the question."))
            await pilot.pause()
            assert_literal(screen_text(app))
            await pilot.press("n")

    asyncio.run(session())


# ----------------------------------------------------------------- the app


def run_app_with(snapshot: Snapshot, check, notes=()) -> None:
    app = TuneApp(URL, None, notes=list(notes), poll=False)

    async def session():
        async with app.run_test(size=(200, 50), notifications=True) as pilot:
            app.apply_snapshot(snapshot)
            await pilot.pause()
            await check(app, pilot)

    asyncio.run(session())


def test_app_shows_params_reasons_notes_and_database_errors_literally():
    view = nasty_view(nasty_status(study="plain-AAA"))
    snapshot = Snapshot(storage=URL, taken_at=datetime.now(), studies=[view])

    async def check(app, pilot):
        text = screen_text(app)
        assert_literal(text)
        assert "ValueError: [bad] thing" in text
        toasts = "\n".join(widget_text(t) for t in app.screen.query(Toast))
        assert "attached to every study in" in toasts
        assert_literal(toasts)  # the note
        app.on_feed_error(type("E", (), {"reason": f"down {NASTY}"})())
        await pilot.pause()
        assert_literal(widget_text(app.query_one("#topbar")))
        assert "\x1b" not in screen_text(app)

    run_app_with(snapshot, check, notes=[f"attached to every study in {NASTY}"])


def test_app_shows_a_study_name_literally_everywhere():
    # The name is in the table, the plot's border subtitle and the stop dialog.
    view = nasty_view(nasty_status())
    snapshot = Snapshot(storage=URL, taken_at=datetime.now(), studies=[view])

    async def check(app, pilot):
        assert_literal(widget_text(app.query_one("#studies")))
        assert_literal(widget_text(app.query_one("#plot")))  # border subtitle and x label
        await pilot.press("s")
        await pilot.pause()
        assert_literal(screen_text(app))
        await pilot.press("n")

    run_app_with(snapshot, check)


# ----------------------------------------------------------------- the tune CLI


@pytest.mark.parametrize("final", [False, True], ids=["status", "final"])
def test_status_table_shows_names_and_params_literally(final):
    console = Console(record=True, width=400, file=io.StringIO())
    console.print(status_table([nasty_status()], final=final))
    text = console.export_text()
    assert_literal(text)
    assert f"s{printable(SHORT)}" in text
    if final:
        assert f"p{printable(NASTY)}=v{printable(NASTY)}" in text


def test_printable_escapes_control_characters_only():
    assert printable("a\x1b[31mb\tc\nd\x07\x9b\x7f[/x]") == "a\\x1b[31mb\\tc\\nd\\x07\\x9b\\x7f[/x]"
    assert printable("ümlaut → ok") == "ümlaut → ok"
    assert printable(3) == "3"


def test_trials_csv_holds_no_control_characters():
    space = {"ma_type": CategoricalDistribution(["sma", f"[/x]{ANSI}e"]), "fast": IntDistribution(2, 20)}
    start = datetime(2026, 1, 1, 12, 0)

    def trial(n, state, value, params, attrs):
        return FrozenTrial(number=n, trial_id=n, state=state, value=value, values=None, datetime_start=start,
                           datetime_complete=start + timedelta(seconds=1), params=params, distributions=space,
                           user_attrs=attrs, system_attrs={}, intermediate_values={})

    trials = [
        trial(0, TrialState.COMPLETE, 1.5, {"ma_type": f"[/x]{ANSI}e", "fast": 3}, {"sharpe": 1.5, f"k{ANSI}": 2}),
        trial(1, TrialState.FAIL, None, {"ma_type": "sma", "fast": 4},
              {"fail_reason": f"ValueError: [bad] {ANSI}red\x1b[0m\tthen\r\nline two\x07\x00 \x1b]8;;http://x\x1b\\link\x1b]8;;\x07"}),
    ]
    text = trials_csv(trials)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 3  # every trial on one line
    for row in rows:
        for cell in row:
            assert not CONTROL.search(cell), repr(cell)
    header = rows[0]
    assert "k" in header and "param_ma_type" in header
    assert rows[1][header.index("param_ma_type")] == "[/x]e"
    assert rows[1][header.index("param_fast")] == "3"
    assert rows[2][header.index("fail_reason")] == "ValueError: [bad] red then  line two link"
    assert not CONTROL.search(text.replace("\r\n", ""))


# ----------------------------------------------------------------- end to end

NASTY_BACKTEST = '''
def nasty(params, data):
    """Completes only with the categorical value "[/x]"; fails with markup and ANSI otherwise."""
    if params["ma_type"] != "[/x]":
        raise ValueError("[/bold] \\x1b[31mred [bad] thing")
    return {"sharpe": params["fast"] / 10, "trades": 50}
'''

CATEGORICAL = '''
[space.ma_type]
type = "categorical"
choices = ["sma", "[/x]"]
'''


def test_run_status_export_and_app_with_markup_in_values_and_reasons(db, db_url, tmp_path):
    (tmp_path / "nastybt.py").write_text(NASTY_BACKTEST)
    config = small_config(tmp_path, name="mk", target=6, strategy="nastybt:nasty", extra=CATEGORICAL)
    proc = tune("run", str(config), env={"COLUMNS": "200"})
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert "Traceback" not in output and "MarkupError" not in output
    assert "ma_type=[/x]" in proc.stdout  # the final table's best params
    assert "\x1b" not in proc.stdout

    status = tune("status", env={"COLUMNS": "200"})
    assert status.returncode == 0, status.stdout + status.stderr
    assert "mk-AAA" in status.stdout

    csv_path = tmp_path / "trials.csv"
    export = tune("export", "mk-AAA", "--csv", str(csv_path))
    assert export.returncode == 0, export.stdout + export.stderr
    text = csv_path.read_text()
    assert "ValueError: [/bold] red [bad] thing" in text and "[/x]" in text
    assert not CONTROL.search(text.replace("\n", ""))

    app = TuneApp(db_url, ["mk-AAA"], poll=True)

    async def session():
        async with app.run_test(size=(200, 50)) as pilot:
            deadline = asyncio.get_running_loop().time() + 30
            while not (app.snapshot and app.snapshot.studies and app.snapshot.studies[0].events):
                assert asyncio.get_running_loop().time() < deadline, "a first reading with events"
                await pilot.pause(0.1)
            await pilot.pause()
            best = widget_text(app.query_one(BestPanel))
            assert "[/x]" in best, best
            trials = widget_text(app.query_one(TrialsTable))
            events = widget_text(app.query_one(EventLog))
            shown = "ValueError: [/bold] \\x1b[31mred [bad] thing"
            assert shown in trials or shown in events, trials + events
            assert "\x1b" not in screen_text(app)
            await pilot.press("q")
            await pilot.press("enter")

    asyncio.run(session())


# ----------------------------------------------------------------- a crash


def test_a_crash_of_the_app_exits_1_with_one_line(monkeypatch, tmp_path, capsys):
    import tui.app

    class Crashing(TuneApp):
        CSS_PATH = Path(tui.app.__file__).with_name(TuneApp.CSS_PATH)

        def on_mount(self) -> None:
            raise ValueError(f"[/x] {ANSI}boom\nsecond line")

        def run(self, **kwargs):
            return super().run(headless=True)

    monkeypatch.setenv("TUNE_HOME", str(tmp_path))
    monkeypatch.setattr(tui.app, "TuneApp", Crashing)
    monkeypatch.setattr(tui_cli, "start", lambda args: (URL, None, []))
    code = tui_cli.run_app(argparse.Namespace(config=None, storage=URL))
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: the app crashed: ValueError: [/x] {SHOWN_ANSI}boom"), lines[0]
    assert "\x1b" not in err and "Traceback" not in err
    log = tmp_path / "logs" / "tune-tui-crash.log"
    assert str(log) in lines[0]
    assert "Traceback" in log.read_text() and "ValueError" in log.read_text()
