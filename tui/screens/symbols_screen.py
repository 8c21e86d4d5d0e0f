"""The symbols of a run side by side: each one's best parameters, in and out of sample, DSR
and PBO, and how far apart the bests lie. Do the symbols agree on a region, or is each best
its own lucky spot? o cycles the sort; enter opens a row's best trial."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from runner.explore import SymbolRow, SymbolsView
from runner.outline import label
from runner.status import format_value
from runner.text import printable

from .view_screen import ViewScreen

# (key, heading): the fixed columns; the parameters follow
FIXED = (("symbol", "Symbol"), ("state", "State"), ("complete", "Done"), ("in_sample", "Best"),
         ("out_of_sample", "Holdout"), ("dsr", "DSR"), ("pbo", "PBO"))


def cell_values(r: SymbolRow) -> dict[str, object]:
    return {"symbol": r.symbol, "state": r.state, "complete": r.complete, "in_sample": r.in_sample,
            "out_of_sample": r.out_of_sample, "dsr": r.dsr, "pbo": r.pbo}


def sort_rows(view: SymbolsView, column: str) -> list[SymbolRow]:
    """Best first for figures (by the objective's direction for Best and Holdout), names A-Z."""
    def key(r: SymbolRow):
        v = cell_values(r).get(column, r.params.get(column))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            sign = -1 if column in ("pbo",) or (column in ("in_sample", "out_of_sample") and not view.maximize) else 1
            return (0, -sign * v, "")
        return (1 if v is None else 0, 0, str(v))
    return sorted(view.rows, key=key)


def agreement(view: SymbolsView) -> Text:
    if not view.spread:
        return Text("")
    text = Text("spread of the bests over each searched range: ", style="bold")
    text.append("  ".join(f"{printable(p)} {s:.0%}" for p, s in view.spread.items()))
    wide = [p for p, s in view.spread.items() if s > 0.5]
    text.append("\n")
    if wide:
        text.append(f"the symbols disagree on {printable(', '.join(wide))}: each best may be its own lucky spot",
                    style="yellow")
    else:
        text.append("the symbols' bests lie in one region", style="green")
    return text


class SymbolsScreen(ViewScreen):
    KIND = "symbols"
    TITLE_TEXT = "symbols side by side"
    BODY = "#symbols-agreement"
    BINDINGS = [Binding("o", "sort", "Sort", tooltip="symbols: sort by the next column")]
    DEFAULT_CSS = """
    SymbolsScreen #symbols-table { height: auto; max-height: 1fr; }
    SymbolsScreen #symbols-agreement { height: auto; padding: 1 1; }
    """

    def __init__(self, study: str) -> None:
        super().__init__(study)
        self.sort_column = "in_sample"

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="symbols-table", cursor_type="row", zebra_stripes=True)
        yield Static(Text("reading…", style="dim"), id="symbols-agreement")

    def columns(self) -> list[tuple[str, str]]:
        params = self.data.params if isinstance(self.data, SymbolsView) else []
        return [*FIXED, *((p, p) for p in params)]

    def draw(self, data: SymbolsView) -> None:
        heading = dict(self.columns())
        self.draw_title(f"run {data.run} · {data.metric} · sorted by {heading.get(self.sort_column, self.sort_column)} · "
                        "o: sort · enter: a best trial")
        table = self.query_one("#symbols-table", DataTable)
        selected = self.selected
        table.clear(columns=True)
        for key, title in self.columns():
            marker = " ▼" if key == self.sort_column else ""
            right = key not in ("symbol", "state")
            table.add_column(Text(printable(title) + marker, justify="right" if right else "left"), key=key)
        for r in sort_rows(data, self.sort_column):
            values = {**cell_values(r), **r.params}
            cells = []
            for key, _ in self.columns():
                v = values.get(key)
                text = format_value(v) if isinstance(v, float) else "-" if v is None else label(v)
                cells.append(Text(printable(text), justify="left" if key in ("symbol", "state") else "right"))
            table.add_row(*cells, key=r.study)
        if selected is not None and selected in {r.study for r in data.rows}:
            table.move_cursor(row=table.get_row_index(selected))
        self.body(agreement(data))

    @property
    def selected(self) -> str | None:
        table = self.query_one("#symbols-table", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_sort(self) -> None:
        keys = [k for k, _ in self.columns()]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column in keys else keys[0]
        if isinstance(self.data, SymbolsView):
            self.draw(self.data)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.app.open_trial(event.row_key.value, None)  # type: ignore[attr-defined]
