"""The objective against each parameter's values, one parameter at a time (← → cycle)."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from runner.outline import Slice
from runner.text import printable

from ..widgets.convergence_plot import PINNED, pin_worst
from .view_screen import ViewScreen


def render(s: Slice, metric: str, maximize: bool, width: int, height: int) -> str:
    import plotext as plt

    plt.clf()
    plt.plotsize(max(width, 30), max(height, 8))
    plt.theme("clear")
    name = printable(s.param)
    ys, clipped = np.asarray(s.ys, dtype=float), ""
    if bounds := pin_worst(ys, maximize):
        ys, clipped = np.clip(ys, *bounds), PINNED
    plt.scatter(s.xs, ys.tolist(), marker="dot")
    if s.best_x is not None and s.best_y is not None:
        plt.scatter([s.best_x], [s.best_y], marker="x", color="green")
    if s.categorical:
        plt.xticks(list(range(len(s.choices))), [printable(c) for c in s.choices])
        plt.xlim(-0.5, len(s.choices) - 0.5)
    elif s.log:
        plt.xscale("log")
    plt.xlabel(f"{name}{' (log)' if s.log else ''} · {printable(metric)} {'↑' if maximize else '↓'} · x: the best · "
               f"{s.trials} trials{clipped}")
    return plt.build()


class SlicesScreen(ViewScreen):
    KIND = "slices"
    TITLE_TEXT = "slices"
    BODY = "#slice-plot"
    BINDINGS = [
        Binding("right,right_square_bracket", "step(1)", "Next param", tooltip="slices: the next parameter"),
        Binding("left,left_square_bracket", "step(-1)", "Prev param", tooltip="slices: the previous parameter"),
    ]
    DEFAULT_CSS = "SlicesScreen #slice-plot { height: 1fr; }"

    def __init__(self, study: str, metric: str, maximize: bool) -> None:
        super().__init__(study)
        self.metric, self.higher_is_better = metric, maximize
        self.index = 0

    def compose_body(self) -> ComposeResult:
        yield Static(Text("reading…", style="dim"), id="slice-plot")

    def draw(self, data: list[Slice]) -> None:
        if not data:
            self.body(Text("no complete trial yet", style="yellow"))
            return
        self.index %= len(data)
        s = data[self.index]
        self.draw_title(f"{s.param} ({self.index + 1}/{len(data)}) · ← → another parameter")
        plot = self.query_one("#slice-plot", Static)
        size = plot.content_size
        self.body(Text.from_ansi(render(s, self.metric, self.higher_is_better, size.width, size.height)))

    def action_step(self, delta: int) -> None:
        self.index += delta
        if isinstance(self.data, list):
            self.draw(self.data)

    def on_resize(self) -> None:
        if isinstance(self.data, list):
            self.draw(self.data)
