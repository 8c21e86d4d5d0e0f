"""The studies table: one row per study, updated in place so the cursor never jumps.

It sorts by a column (``o`` cycles), filters by a text in a study's name or state (``/``),
keeps the selected study selected whatever the order, and shows only the columns that fit
its width, whole, folding away the least telling first (runner/columns.py's rule).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from runner.columns import fit
from runner.status import StudyStatus, best_label, format_eta
from runner.text import printable

STATE_STYLES = {
    "running": "bold green", "paused": "bold yellow", "stopped": "bold red", "done": "bold cyan",
    "capped": "cyan", "exhausted": "cyan", "failed": "bold red", "idle": "dim",
}

# (key, label, right-aligned, drop order: 0 always shown, else folded away to fit, 1 first)
COLUMNS = (
    ("study", "Study", False, 0), ("state", "State", False, 0), ("progress", "Progress", False, 7),
    ("rate", "/min", True, 4), ("best", "Best", True, 0), ("pruned", "Prun", True, 3), ("failed", "Fail", True, 6),
    ("duplicate", "Dup", True, 2), ("running", "Run", True, 1), ("workers", "Wkr", True, 8), ("eta", "ETA", True, 5),
)
LABELS = {key: label for key, label, _, _ in COLUMNS}
CELL_PADDING = 2  # a DataTable cell's padding, both sides


def progress_bar(done: int, target: int, width: int = 5) -> Text:
    share = min(done / target, 1.0) if target else 0.0
    filled = round(share * width)
    bar = Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")
    return bar + Text(f" {done}/{target}")


def cells(s: StudyStatus) -> dict[str, object]:
    right = lambda v: Text(str(v), justify="right")  # noqa: E731
    return {
        "study": Text(printable(s.study)),  # a str cell would be read as markup
        "state": Text(s.state, style=STATE_STYLES.get(s.state, "")),
        "progress": progress_bar(s.complete, s.target),
        "rate": right(f"{s.trials_per_minute:.0f}"),
        "best": right(best_label(s)),
        "pruned": right(s.pruned),
        "failed": right(s.failed),
        "duplicate": right(s.duplicate),
        "running": right(s.running),
        "workers": right(f"{s.workers_alive}/{s.desired_workers}"),
        "eta": right(format_eta(s.eta_seconds)),
    }


def sort_key(column: str, s: StudyStatus):
    """Figures largest first (the best by the study's direction, the ETA soonest), names A-Z."""
    if column == "study":
        return (0, s.study)
    if column == "state":
        return (0, s.state, s.study)
    if column == "best":
        value = s.best_value
        if value is None:
            return (1, 0.0, s.study)
        return (0, -value if s.direction == "maximize" else value, s.study)
    if column == "eta":
        return (s.eta_seconds is None, s.eta_seconds or 0.0, s.study)
    figure = {"progress": s.complete / s.target if s.target else 0.0, "rate": s.trials_per_minute, "pruned": s.pruned,
              "failed": s.failed, "duplicate": s.duplicate, "running": s.running, "workers": s.workers_alive}[column]
    return (0, -figure, s.study)


def matches(s: StudyStatus, text: str) -> bool:
    text = text.casefold()
    return not text or text in s.study.casefold() or text in s.state.casefold()


class StudiesTable(DataTable):
    """Rows keyed by study name; cells are rewritten only when their text changes."""

    DEFAULT_CSS = """
    StudiesTable { height: auto; max-height: 50%; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.sort_column: str | None = None  # None: as listed (run, symbol, fold)
        self.filter_text = ""
        self._statuses: list[StudyStatus] = []
        self._layout: tuple = ()  # (rows, columns, sort column) as shown: another one fills the table again
        self._cells: dict[str, dict[str, str]] = {}

    @property
    def shown(self) -> list[str]:
        """The studies the filter leaves, in the order shown."""
        return list(self._cells)

    @property
    def selected_study(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return row_key.value

    def show(self, statuses: list[StudyStatus]) -> None:
        self._statuses = statuses
        values = {s.study: cells(s) for s in statuses}
        shown = [s for s in statuses if matches(s, self.filter_text)]
        if self.sort_column is not None:
            shown.sort(key=lambda s: sort_key(self.sort_column, s))  # type: ignore[arg-type]
        order = [s.study for s in shown]
        columns = self._fitting(values)
        if (order, columns, self.sort_column) != self._layout:
            self._rebuild(order, columns, values)
            return
        for name in order:
            have = self._cells[name]
            for key in columns:
                value = values[name][key]
                if have.get(key) != str(value):
                    self.update_cell(name, key, value, update_width=True)
                    have[key] = str(value)

    def _fitting(self, values: dict[str, dict[str, object]]) -> list[str]:
        """The columns that fit the table's width, whole (all of them before the first layout)."""
        widths = [max([cell_len(self._label(key)), *(cell_len(str(v[key])) for v in values.values())])
                  for key, _, _, _ in COLUMNS]
        room = self.size.width - 2 if self.size.width else None  # the scrollbar's share
        keep = fit(widths, [drop for *_, drop in COLUMNS], room, gap=CELL_PADDING)
        return [COLUMNS[i][0] for i in keep]

    def _label(self, key: str) -> str:
        return LABELS[key] + (" ▼" if key == self.sort_column else "")

    def _rebuild(self, order: list[str], columns: list[str], values: dict[str, dict[str, object]]) -> None:
        """Rows in a new order (sort, filter, a study added or gone) or other columns: the table
        is filled again and the selected study stays selected."""
        selected = self.selected_study
        self.clear(columns=True)
        right = {key: r for key, _, r, _ in COLUMNS}
        for key in columns:
            label = self._label(key)
            self.add_column(Text(label, justify="right") if right[key] else label, key=key)
        self._cells = {}
        for name in order:
            self.add_row(*(values[name][k] for k in columns), key=name)
            self._cells[name] = {k: str(values[name][k]) for k in columns}
        self._layout = (order, columns, self.sort_column)
        if selected in self._cells:
            self.move_cursor(row=order.index(selected), animate=False)

    def next_sort(self) -> None:
        keys = [None] + [key for key, *_ in COLUMNS]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.show(self._statuses)

    def set_filter(self, text: str | None) -> None:
        if text is None:
            return
        self.filter_text = text
        self.show(self._statuses)

    def on_resize(self) -> None:
        if self._statuses:
            self.show(self._statuses)
