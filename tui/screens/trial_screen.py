"""Everything about one trial: parameters, every metric, state and reason, duplicate origin,
worker, timing, its holdout figures; e opens its equity curve."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from runner.explore import TrialDetail
from runner.status import format_value
from runner.text import printable

from ..widgets.trials_table import STATE_STYLES
from .view_screen import ViewScreen


def _cell(value) -> Text:
    if isinstance(value, float):
        return Text(format_value(value))
    return Text(printable("-" if value is None else value))


def render(t: TrialDetail) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("state", Text(t.kind, style=STATE_STYLES.get(t.kind, "")))
    for name, value in t.values.items():
        grid.add_row(Text(printable(name)), Text(format_value(value), style="bold green"))
    for name, note in t.notes.items():
        grid.add_row(Text(name.replace("_", " "), style="yellow"), _cell(note))
    if t.feasible is not None:
        grid.add_row("feasible", Text("yes", style="green") if t.feasible else Text("no", style="bold red"))
        for name, value in t.constraints.items():
            grid.add_row(Text(f"  {printable(name)}", style="dim"), _cell(value))
    grid.add_row("", "")
    grid.add_row(Text("parameters", style="bold underline"), "")
    for name, value in t.params.items():
        grid.add_row(Text(printable(name)), _cell(value))
    grid.add_row("", "")
    oos = t.out_of_sample or {}
    metrics = Table(box=None, padding=(0, 2), show_edge=False)
    metrics.add_column("metric", style="bold")
    metrics.add_column("in sample", justify="right")
    if t.out_of_sample is not None:
        metrics.add_column("holdout", justify="right")
    for name, value in t.metrics.items():
        row = [Text(printable(name)), _cell(value)]
        if t.out_of_sample is not None:
            row.append(_cell(oos.get(name)))
        metrics.add_row(*row)
    if t.metrics:
        grid.add_row(Text("metrics", style="bold underline"), metrics)
    if t.out_of_sample_error:
        grid.add_row(Text("holdout", style="red"), _cell(t.out_of_sample_error))
    grid.add_row("", "")
    grid.add_row("worker", _cell(t.worker or "not recorded"))
    grid.add_row("started", _cell(t.started))
    grid.add_row("finished", _cell(t.finished))
    grid.add_row("duration", _cell(f"{t.seconds:.2f} s" if t.seconds is not None else None))
    if t.intermediate:
        steps = "  ".join(f"{k}: {format_value(v)}" for k, v in sorted(t.intermediate.items()))
        grid.add_row("pruning steps", _cell(steps))
    return grid


class TrialScreen(ViewScreen):
    KIND = "trial"
    TITLE_TEXT = "trial"
    BINDINGS = [Binding("e", "equity", "Equity", tooltip="this trial's equity curve")]

    def __init__(self, study: str, number: int | None) -> None:
        super().__init__(study, () if number is None else (number,))

    def draw(self, data: TrialDetail) -> None:
        self.draw_title(f"#{data.number} · e: its equity curve")
        self.body(render(data))

    def action_equity(self) -> None:
        if isinstance(self.data, TrialDetail) and self.data.params:
            self.app.open_equity(self.study, self.data.number, self.data.params)  # type: ignore[attr-defined]
