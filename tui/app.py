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

from .data import IDLE_POLL_SECONDS, POLL_SECONDS, ControlResult, FeedError, SnapshotReady, StudyFeed, ViewReady
from .screens.confirm_screen import ConfirmScreen
from .screens.equity_screen import EquityScreen
from .screens.filter_screen import FilterScreen
from .screens.heatmap_screen import HeatmapScreen
from .screens.help_screen import HelpScreen
from .screens.hosts_screen import HostsScreen
from .screens.importances_screen import ImportancesScreen
from .screens.quit_screen import STOP, QuitScreen
from .screens.refine_screen import RefineScreen
from .screens.slices_screen import SlicesScreen
from .screens.symbols_screen import SymbolsScreen
from .screens.trial_screen import TrialScreen
from .screens.view_screen import ViewScreen
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
        Binding("t", "toggle_axis", "Trial/time", show=False, tooltip="plot against trial number or time"),
        Binding("o", "sort", "Sort", show=False, tooltip="sort the studies by the next column (again: the one after)"),
        Binding("slash", "filter", "Filter", show=False,
                tooltip="show only the studies whose name or state holds a text (empty: all)"),
        Binding("enter", "trial_detail", "Trial", show=False,
                tooltip="every detail of a trial: the best's on a study, the row's in last trials"),
        Binding("i", "importances", "Importances", tooltip="which parameters matter (the selected study)"),
        Binding("l", "slices", "Slices", tooltip="the objective against each parameter, ← → to cycle"),
        Binding("h", "heatmap", "Heatmap", tooltip="best value over the two most important parameters (x, y: others)"),
        Binding("e", "equity", "Equity", tooltip="the best trial's equity and drawdown, buy & hold, the holdout marked"),
        Binding("a", "symbols", "Symbols", tooltip="every symbol of the run side by side: do their bests agree?"),
        Binding("n", "refine", "Refine", show=False, tooltip="narrow the space around the selected study's top trials, "
                                                 "start a new study from them (tune refine)"),
        Binding("w", "hosts", "Hosts", show=False, tooltip="hosts and workers: CPU, memory, load"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        Binding("q", "quit_app", "Quit", tooltip="quit: leave the workers running, or stop them"),
    ]

    def __init__(self, url: str, names: list[str] | None, notes: Iterable[str] = (), poll: bool = True) -> None:
        super().__init__()
        self.feed = StudyFeed(url, names)
        self.snapshot: Snapshot | None = None
        self.snapshots_seen = 0  # readings applied so far (tests wait on it)
        self._topbar: Text | None = None
        self.db_error: str | None = None
        self.db_stalled = 0  # seconds the current read has waited, once past STALL_SECONDS
        self.notes = list(notes)
        self._refining: str | None = None  # the study whose refinement is being planned or shown (n)
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
        """Poll about once a second (up to IDLE_POLL_SECONDS apart while nothing changes), or at
        once after a control action."""
        worker = get_current_worker()
        pause, seen = POLL_SECONDS, None
        while not worker.is_cancelled:
            message = self.feed.poll()
            self.post_message(message)
            if isinstance(message, SnapshotReady):
                view = self.feed.view(message.snapshot)  # the open insight view's data, when due
                if view is not None:
                    self.post_message(view)
                if message.snapshot.catching_up:
                    continue  # more history to read: no pause
                now_seen = message.snapshot.signature()
                pause = min(IDLE_POLL_SECONDS, pause * 1.5) if now_seen == seen else POLL_SECONDS
                seen = now_seen
            else:
                pause, seen = POLL_SECONDS, None
            if self._wake.wait(pause):
                pause = POLL_SECONDS  # a control action or a view: things are about to change
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

    def on_view_ready(self, message: ViewReady) -> None:
        screen = self.screen
        if isinstance(screen, ViewScreen) and screen.request == message.request:
            screen.show(message.data)

    # Keys that act on the selected study of the main screen: not offered over a view (its own
    # keys, escape, help and quit are), so the view's footer shows what it does.
    MAIN_SCREEN_ONLY = frozenset(b.action for b in BINDINGS if isinstance(b, Binding)) - {"help", "quit_app"}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MAIN_SCREEN_ONLY and isinstance(self.screen, ViewScreen):
            return False
        return True

    def want_view(self) -> None:
        """Tell the poller which view is on top (its data is computed after each reading)."""
        screen = self.screen
        self.feed.want(screen.request if isinstance(screen, ViewScreen) and screen.POLLED else None)
        self._wake.set()

    def on_feed_error(self, message: FeedError) -> None:
        self.db_error = message.reason
        self._draw_topbar()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "studies":
            self._draw_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "studies":
            self.action_trial_detail()
        elif event.data_table.id == "trials" and event.row_key.value is not None and (name := self._selected()):
            self.open_trial(name, int(event.row_key.value))

    def selected_view(self) -> StudyView | None:
        if self.snapshot is None:
            return None
        name = self.query_one(StudiesTable).selected_study
        return next((v for v in self.snapshot.studies if v.status.study == name), None)

    def _draw_detail(self) -> None:
        view = self.selected_view()
        plot = self.query_one(ConvergencePlot)
        subtitle = printable(view.status.study) if view else ""
        if str(plot.border_subtitle or "") != subtitle:  # set again, it would paint again: idle CPU (issue 14)
            plot.border_subtitle = Text(subtitle)
        plot.show(view)
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
        if text != self._topbar:  # the same text again would lay the screen out again: idle CPU (issue 14)
            self._topbar = text
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

    def _shown(self) -> list[str] | None:
        """The studies "every study shown" means: those the table's filter leaves (None: no
        filter, every study the app follows). Read on the UI thread, before a worker acts."""
        table = self.query_one(StudiesTable)
        return table.shown if table.filter_text else None

    def action_pause_all(self) -> None:
        shown = self._shown()
        self._control(lambda: self.feed.set_control(shown, Control.PAUSED))

    def action_resume_all(self) -> None:
        shown = self._shown()
        self._control(lambda: self.feed.set_control(shown, Control.RUNNING))

    def action_stop(self) -> None:
        if name := self._selected():
            question = f"Stop {name}? Its workers finish their running trial and exit."
            self.push_screen(ConfirmScreen(question), lambda yes: self._control_if(
                yes, lambda: self.feed.set_control([name], Control.STOPPED)))

    def action_stop_all(self) -> None:
        shown = self._shown()
        question = "Stop every study shown? Workers finish their running trial and exit."
        self.push_screen(ConfirmScreen(question), lambda yes: self._control_if(
            yes, lambda: self.feed.set_control(shown, Control.STOPPED)))

    def action_add_worker(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.add_worker(name))

    def action_remove_worker(self) -> None:
        if name := self._selected():
            self._control(lambda: self.feed.remove_worker(name))

    def action_refine(self) -> None:
        """Plan the refinement off the UI thread (it reads the study's trials), show the
        narrowed space, and on a yes write it and start the new study's workers."""
        name = self._selected()
        if name is None:
            return
        if self._refining is not None:
            # One at a time: a second plan of the same study would offer the same new name.
            self.notify(f"{printable(self._refining)}: its refinement is being prepared", markup=False,
                        severity="warning")
            return
        self._refining = name

        def plan() -> None:
            from runner.refine import describe  # the config's modules (pandas): only when asked

            try:
                prepared = self.feed.refine_prepare(name)
                if isinstance(prepared, ControlResult):
                    self.call_from_thread(self.notify, printable(prepared.message), markup=False, severity="error")
                    self.call_from_thread(self._refined)
                    return
                self.call_from_thread(self._confirm_refine, describe(prepared), prepared)
            except BaseException:
                self.call_from_thread(self._refined)
                raise

        self.notify(f"{printable(name)}: planning the refinement…", markup=False)
        self.run_worker(plan, thread=True, group="control")

    def _refined(self) -> None:
        self._refining = None

    def _confirm_refine(self, lines: list[str], prepared) -> None:
        """On the UI thread: the narrowed space, and on a yes the refinement made."""
        def answered(yes: bool | None) -> None:
            self._refined()
            self._control_if(yes, lambda: self.feed.refine_apply(prepared))

        self.push_screen(RefineScreen(lines), answered)

    def action_toggle_axis(self) -> None:
        self.query_one(ConvergencePlot).toggle_axis()

    def action_sort(self) -> None:
        self.query_one(StudiesTable).next_sort()

    def action_filter(self) -> None:
        table = self.query_one(StudiesTable)
        self.push_screen(FilterScreen(table.filter_text), table.set_filter)

    # ------------------------------------------------------------ insight views
    def _open(self, screen: ViewScreen) -> None:
        self.push_screen(screen, lambda _: self.want_view())

    def open_trial(self, study: str, number: int | None) -> None:
        self._open(TrialScreen(study, number))

    def open_equity(self, study: str, number: int, params: dict) -> None:
        self._open(EquityScreen(study, number, params))

    def action_trial_detail(self) -> None:
        # On the last-trials table, enter is the table's own (RowSelected, above): here, the study's best.
        if name := self._selected():
            self.open_trial(name, None)

    def action_importances(self) -> None:
        if name := self._selected():
            self._open(ImportancesScreen(name))

    def action_slices(self) -> None:
        if view := self._selected_view():
            self._open(SlicesScreen(view.status.study, view.status.metric, view.status.direction == "maximize"))

    def action_heatmap(self) -> None:
        if name := self._selected():
            self._open(HeatmapScreen(name, self.size.width))

    def action_equity(self) -> None:
        if view := self._selected_view():
            s = view.status
            if s.best_trial is None:
                self.notify(f"{printable(s.study)}: no complete trial yet", severity="warning", markup=False)
                return
            self.open_equity(s.study, s.best_trial, s.best_params)

    def action_symbols(self) -> None:
        if name := self._selected():
            self._open(SymbolsScreen(name))

    def action_hosts(self) -> None:
        self._open(HostsScreen("every study shown"))

    def _selected_view(self) -> StudyView | None:
        view = self.selected_view()
        if view is None:
            self.notify("no study selected", severity="warning", markup=False)
        return view

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
        shown = self._shown()

        def stop_then_exit() -> None:  # off the UI thread: the database may be slow or away
            result = self.feed.set_control(shown, Control.STOPPED)
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
