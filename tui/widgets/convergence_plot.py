"""ASCII convergence plot: each completed trial's value as a point, best-so-far as a line.

Drawn with plotext into a Static. Series are downsampled to the pane's width
before drawing (the lowest and highest value per column, and the best-so-far
at the column's end), so drawing costs the same for 100 trials or 100,000.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.widgets import Static

from runner.monitor import StudyView
from runner.text import printable


def downsample(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most two points (min and max of y) per column of x; x must be sorted."""
    if len(x) <= 2 * columns or columns < 2:
        return x, y
    edges = np.linspace(x[0], x[-1], columns + 1)
    bucket = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, columns - 1)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    centres = (edges[bucket[starts]] + edges[bucket[starts] + 1]) / 2
    return np.r_[centres, centres], np.r_[lows, highs]


def best_so_far(x: np.ndarray, y: np.ndarray, maximize: bool, columns: int) -> tuple[np.ndarray, np.ndarray]:
    best = np.maximum.accumulate(y) if maximize else np.minimum.accumulate(y)
    if len(x) > columns:  # the line only needs one point per column
        idx = np.unique(np.linspace(0, len(x) - 1, columns).astype(int))
        return x[idx], best[idx]
    return x, best


PINNED = " · worst 10% pinned"


def pin_worst(y: np.ndarray, maximize: bool) -> tuple[float, float] | None:
    """The range of the best 90 % of ``y`` (None below 20 values, or when flat): a few
    disastrous trials would squash the interesting band into one row, so the plots show
    that band and pin the rest to its edge (clip to this range)."""
    if len(y) < 20:
        return None
    lo, hi = (np.quantile(y, 0.1), y.max()) if maximize else (y.min(), np.quantile(y, 0.9))
    return (float(lo), float(hi)) if hi > lo else None


def render(view: StudyView, width: int, height: int, by_time: bool) -> str:
    import plotext as plt

    s = view.status
    # The drawing is read back with Text.from_ansi: names go in with their control characters escaped.
    study, metric = printable(s.study), printable(s.metric)
    plt.clf()
    plt.plotsize(max(width, 20), max(height, 6))
    plt.theme("clear")  # terminal's own colours: readable on dark and light themes
    numbers, values, seconds = view.series()
    if not values:
        plt.title(f"{study}: no completed trial yet")
        return plt.build()
    x = np.asarray(seconds if by_time else numbers, dtype=float)
    y = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if by_time and x[-1] > 300:
        x = x / 60.0
        unit = "minutes"
    else:
        unit = "seconds" if by_time else "trial"
    columns = max(width - 10, 10)
    maximize = s.direction == "maximize"
    bx, by = best_so_far(x, y, maximize, columns)
    clipped = ""
    if bounds := pin_worst(y, maximize):
        y, by = np.clip(y, *bounds), np.clip(by, *bounds)
        clipped = PINNED
    px, py = downsample(x, y, columns)
    plt.scatter(px.tolist(), py.tolist(), marker="dot")
    if len(s.metrics) > 1:  # no single "best so far" with several objectives
        plt.xlabel(f"{unit} · {metric} {'↑' if maximize else '↓'} (first of {len(s.metrics)} objectives){clipped}")
        return plt.build()
    plt.plot(bx.tolist(), by.tolist(), marker="braille", color="green")
    label = f"{unit} · {metric} {'↑' if maximize else '↓'} · line: best so far{clipped}"
    if len(label) > width - 8:  # plotext drops a label that does not fit: keep the essentials
        label = f"{unit} · {metric} {'↑' if maximize else '↓'} · line: best"
    plt.xlabel(label)
    return plt.build()


class ConvergencePlot(Static):
    DEFAULT_CSS = """
    ConvergencePlot { height: 1fr; min-height: 6; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._view: StudyView | None = None
        self._key: tuple | None = None
        self.by_time = False

    def show(self, view: StudyView | None) -> None:
        self._view = view
        self._redraw()

    def toggle_axis(self) -> None:
        self.by_time = not self.by_time
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        view = self._view
        width, height = self.content_size.width, self.content_size.height
        if view is None or width < 10 or height < 4:
            self.update("")
            self._key = None
            return
        key = (view.status.study, view.version, width, height, self.by_time)
        if key == self._key:
            return  # nothing new: keep the drawing
        self._key = key
        self.update(Text.from_ansi(render(view, width, height, self.by_time)))
