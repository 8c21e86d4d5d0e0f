"""The selected study's last finished trials, newest first; enter on a row opens the trial."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from runner.monitor import StudyView
from runner.status import format_value
from runner.text import printable

STATE_STYLES = {"complete": "green", "pruned": "yellow", "failed": "red", "duplicate": "magenta"}
COLUMNS = ("#", "state", "value", "params / reason")


class TrialsTable(DataTable):
    DEFAULT_CSS = """
    TrialsTable { height: 1fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.show_cursor = False  # until the table has the focus (tab)
        self._key: tuple | None = None

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False

    @property
    def selected_trial(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or 0)

    def show(self, view: StudyView | None) -> None:
        key = (view.status.study, view.version) if view else None
        if key == self._key:
            return
        self._key = key
        selected = self.selected_trial
        rows = []
        for t in reversed(view.recent if view else []):
            detail = t.note or " ".join(f"{k}={format_value(v) if isinstance(v, float) else v}" for k, v in t.params.items())
            rows.append((str(t.number), t.state, format_value(t.value), printable(detail)))
        # Columns sized from the rows themselves: a table refilled in place keeps stale widths otherwise.
        widths = [max([cell_len(label)] + [cell_len(r[i]) for r in rows]) for i, label in enumerate(COLUMNS)]
        self.clear(columns=True)
        for label, width in zip(COLUMNS, widths):
            self.add_column(label, width=width)
        for number, state, value, detail in rows:
            self.add_row(
                Text(number, justify="right"), Text(state, style=STATE_STYLES.get(state, "")),
                Text(value, justify="right"), Text(detail),  # reasons and values are text, not markup
                key=number,
            )
        if selected is not None and str(selected) in {r[0] for r in rows}:  # the row chosen stays chosen
            self.move_cursor(row=[r[0] for r in rows].index(str(selected)), animate=False)
