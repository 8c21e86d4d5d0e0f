"""Text from users is text, never markup: in the app's widgets, dialogs and crash report
(fed fixed data: no database). The tune CLI's table and the CSV: tests/unit/test_text_safety.py;
end to end on PostgreSQL: tests/integration/test_text_safety.py."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets._toast import Toast

from runner.monitor import Snapshot
from runner.text import printable
from tests.helpers import (
    ANSI,
    NASTY,
    SHOWN_ANSI,
    URL,
    assert_literal,
    nasty_status,
    nasty_view,
    screen_text,
    widget_text,
)
from tui import cli as tui_cli
from tui.app import TuneApp
from tui.screens.confirm_screen import ConfirmScreen
from tui.widgets.best_panel import BestPanel
from tui.widgets.convergence_plot import ConvergencePlot
from tui.widgets.event_log import EventLog
from tui.widgets.studies_table import StudiesTable
from tui.widgets.trials_table import TrialsTable

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
