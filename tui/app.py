"""The tune-tui app: a studies table, the selected study's detail, keys to control.

All reading happens in one thread worker (:meth:`TuneApp.poll_studies`) that
posts a snapshot about once a second; control actions run in thread workers
too. The UI thread only draws, so a slow or absent database never blocks a
key press.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from runner.monitor import Snapshot, StudyView
from runner.states import Control
from runner.text import printable

from .data import POLL_SECONDS, ControlResult, FeedError, SnapshotReady, StudyFeed
from .screens.confirm_screen import ConfirmScreen
from .screens.help_screen import HelpScreen
from .screens.quit_screen import STOP, QuitScreen
from .widgets.best_panel import BestPanel
from .widgets.convergence_plot import ConvergencePlot
from .widgets.event_log import EventLog
from .widgets.studies_table import StudiesTable
from .widgets.trials_table import TrialsTable

STALL_SECONDS = 3.0  # a read outstanding this long: "database not answering"



class TuneApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tune-tui"
    # Below 100 columns or 32 rows the lower row (last trials, log) folds away (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("p", "pause", "Pause", tooltip="pause the selected study (its running trials finish)"),
        Binding("r", "resume", "Resume", tooltip="resume the selected study (restarts its workers if they exited)"),
        Binding("P", "pause_all", "Pause all", show=False, tooltip="pause every study shown"),
        Binding("R", "resume_all", "Resume all", show=False, tooltip="resume every study shown"),
        Binding("s", "stop", "Stop", tooltip="stop the selected study (asks first)"),
        Binding("S", "stop_all", "Stop all", show=False, tooltip="stop every study shown (asks first)"),
        Binding("plus", "add_worker", "+Worker", tooltip="one more worker for the selected study, started here"),
        Binding("minus", "remove_worker", "-Worker", tooltip="one worker fewer (the youngest retires after its trial)"),
        Binding("t", "toggle_axis", "Trial/time", tooltip="plot against trial number or time"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        Binding("q", "quit_app", "Quit", tooltip="quit: leave the workers running, or stop them"),
    ]

    def __init__(self, url: str, names: list[str] | None, notes: Iterable[str] = (), poll: bool = True) -> None:
        super().__init__()
        self.feed = StudyFeed(url, names)
        self.snapshot: Snapshot | None = None
        self.snapshots_seen = 0  # readings applied so far (tests wait on it)
        self.db_error: str | None = None
        self.db_stalled = 0  # seconds the current read has waited, once past STALL_SECONDS
        self.notes = list(notes)
        self._poll = poll
        self._wake = threading.Event()

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        yield StudiesTable(id="studies")
        with Horizontal(id="detail"):
            yield ConvergencePlot(id="plot")
            yield BestPanel(id="best")
        with Horizontal(id="lower"):
            with Vertical(id="trials-box"):
                yield TrialsTable(id="trials")
            with Vertical(id="events-box"):
                yield EventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plot").border_title = "convergence"
        self.query_one("#best").border_title = "best"
        self.query_one("#trials-box").border_title = "last trials"
        self.query_one("#events-box").border_title = "log"
        self.query_one(StudiesTable).focus()
        self._draw_topbar()
        for note in self.notes:
            self.notify(printable(note), timeout=8, markup=False)  # notes name studies and paths: text, not markup
        if self._poll:
            self.poll_studies()
            self.set_interval(1.0, self._watch_stall)

    # ------------------------------------------------------------ reading
    @work(thread=True, exclusive=True, group="poll")
    def poll_studies(self) -> None:
        """Poll about once a second, or at once after a control action."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            message = self.feed.poll()
            self.post_message(message)
            if isinstance(message, SnapshotReady) and message.snapshot.catching_up:
                continue  # more history to read: no pause
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _watch_stall(self) -> None:
        """A read that takes this long means the database is frozen or cut off: say so at
        once, rather than show the last figures as live (the read itself gives up later)."""
        started = self.feed.poll_started
        waited = time.monotonic() - started if started is not None else 0.0
        stalled = int(waited) if waited > STALL_SECONDS else 0
        if stalled != self.db_stalled:
            self.db_stalled = stalled
            self._draw_topbar()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Show a snapshot (also the entry point of tests with fixed data)."""
        self.snapshot = snapshot
        self.snapshots_seen += 1
        self.db_error = None
        self.query_one(StudiesTable).show(snapshot.statuses)
        self._draw_topbar()
        self._draw_detail()

    def on_feed_error(self, message: FeedError) -> None:
        self.db_error = message.reason
        self._draw_topbar()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "studies":
            self._draw_detail()

    def selected_view(self) -> StudyView | None:
        if self.snapshot is None:
            return None
        name = self.query_one(StudiesTable).selected_study
        return next((v for v in self.snapshot.studies if v.status.study == name), None)

    def _draw_detail(self) -> None:
        view = self.selected_view()
        self.query_one("#plot").border_subtitle = Text(printable(view.status.study)) if view else ""
        self.query_one(ConvergencePlot).show(view)
        self.query_one(BestPanel).show(view)
        self.query_one(TrialsTable).show(view)
        self.query_one(EventLog).show(view)

    def _draw_topbar(self) -> None:
        text = Text(" tune-tui ", style="bold reverse")
        if self.db_stalled:  # first, so that a narrow terminal still shows it
            text.append(f" ⚠ database not answering ({self.db_stalled} s) — figures may be stale │", style="bold red")
        elif self.db_error:
            text.append(f" ⚠ database unreachable: {printable(self.db_error)} — retrying │", style="bold red")
        if self.snapshot is not None:
            statuses = self.snapshot.statuses
            rate = sum(s.trials_per_minute for s in statuses)
            workers = sum(s.workers_alive for s in statuses)
            text.append(f" {len(statuses)} studies │ {rate:,.0f} trials/min │ {workers} workers alive │")
            if self.snapshot.catching_up:
                text.append(" reading history… │", style="bold yellow")
        else:
            text.append(" reading… │")
        text.append(f" {printable(self.feed.masked_url)}", style="dim")
        self.query_one("#topbar", Static).update(text)

    # ------------------------------------------------------------ control
    def _selected(self) -> str | None:
        name = self.query_one(StudiesTable).selected_study
        if name is None:
            self.notify("no study selected", severity="warning", markup=False)
        return name

    def _control(self, fn: Callable[[], ControlResult]) -> None:
        """Run a control action off the UI thread, report it, refresh at once."""

        def job() -> None:
            result = fn()
            self.call_from_thread(self.notify, printable(result.message), markup=False,
                                  severity="information" if result.ok else "error")
            self._wake.set()

        self.run_worker(job, thread=True, group="control")

    def _control_if(self, confirmed: bool | None, fn: Callable[[], ControlResult]) -> None:
        if confirmed:
            self._control(fn)

    def action_pause(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.set_control([name], Control.PAUSED))

    def action_resume(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.set_control([name], Control.RUNNING))

    def action_pause_all(self) -> None:
        self._control(lambda: self.feed.set_control(None, Control.PAUSED))

    def action_resume_all(self) -> None:
        self._control(lambda: self.feed.set_control(None, Control.RUNNING))

    def action_stop(self) -> None:
        if name := self._selected():
            question = f"Stop {name}? Its workers finish their running trial and exit."
            self.push_screen(ConfirmScreen(question), lambda yes: self._control_if(
                yes, lambda: self.feed.set_control([name], Control.STOPPED)))

    def action_stop_all(self) -> None:
        question = "Stop every study shown? Workers finish their running trial and exit."
        self.push_screen(ConfirmScreen(question), lambda yes: self._control_if(
            yes, lambda: self.feed.set_control(None, Control.STOPPED)))

    def action_add_worker(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.add_worker(name))

    def action_remove_worker(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.remove_worker(name))

    def action_toggle_axis(self) -> None:
        self.query_one(ConvergencePlot).toggle_axis()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_bindings()))

    def action_quit_app(self) -> None:
        self.push_screen(QuitScreen(), self._quit_with)

    def _quit_with(self, choice: str | None) -> None:
        if choice is None:
            return
        if choice != STOP:
            self.exit("workers left running; tune-tui attaches to them again, tune status shows them")
            return

        def stop_then_exit() -> None:  # off the UI thread: the database may be slow or away
            result = self.feed.set_control(None, Control.STOPPED)
            self.call_from_thread(self.exit, result.message)

        self.notify("stopping every study shown…", markup=False)
        self.run_worker(stop_then_exit, thread=True, group="control")

    def on_unmount(self) -> None:
        self.feed.close()

    @classmethod
    def key_bindings(cls) -> list[Binding]:
        """The app's keys (every entry of BINDINGS is a Binding): one list for help and palette."""
        return [b for b in cls.BINDINGS if isinstance(b, Binding)]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # Every key's action, found by name in the palette (from BINDINGS: one list to keep).
        for binding in self.key_bindings():
            if binding.action not in ("help", "quit_app"):
                key = {"plus": "+", "minus": "-"}.get(binding.key, binding.key)
                help_text = f"{binding.tooltip} (key {key})"
                yield SystemCommand(binding.description, help_text, partial(self.run_action, binding.action))
