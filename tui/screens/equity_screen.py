"""A trial's equity and drawdown over time, with buy-and-hold and the holdout marked.

Recomputed by runner/equity.py in a thread worker when the view opens (it loads the data
and runs the backtest again: about a second), then drawn at the pane's width.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from runner import explore

from .view_screen import ViewScreen


def render(curve: Any, width: int, height: int) -> str:
    """``curve``: a runner.equity.EquityCurve. Two plots one above the other, drawn one after
    the other (plotext's subplots would change its shared state for every later plot)."""
    import plotext as plt

    from runner.equity import thin

    shown = thin(curve, max(min(width - 12, 400), 2))
    x = list(range(len(shown)))
    labels = shown.labels
    if len(labels) > 1 and labels[0][:10] != labels[-1][:10]:
        labels = [t[:10] for t in labels]  # over days: the dates say enough
    ticks = sorted({round(i * (len(x) - 1) / 4) for i in range(5)})
    holdout = shown.holdout_start if shown.holdout_start is not None and shown.holdout_start < len(x) else None
    top = max(round(height * 0.62), 8)
    width = max(width, 30)

    plt.clf()
    plt.plotsize(width, top)
    plt.theme("clear")
    plt.plot(x, shown.equity.tolist(), marker="braille", color="green", label="strategy")
    if shown.buy_hold is not None:
        plt.plot(x, shown.buy_hold.tolist(), marker="braille", color="blue", label="buy & hold")
    if holdout is not None:
        plt.vline(holdout, color="red")
    plt.xticks(ticks, [labels[i] for i in ticks])
    plt.title("equity (growth of 1)" + (" · red line: the holdout starts" if holdout is not None else ""))
    upper = plt.build()

    plt.clf()
    plt.plotsize(width, max(height - top, 6))
    plt.theme("clear")
    plt.plot(x, (100 * shown.drawdown).tolist(), marker="braille", color="red", fillx=True)
    if holdout is not None:
        plt.vline(holdout, color="red")
    plt.xticks(ticks, [labels[i] for i in ticks])
    plt.title("drawdown %")
    return upper + "\n" + plt.build()


def figures(curve: Any) -> Text:
    text = Text(f"trial {curve.trial} · in sample: return {curve.total_return:+.1%}, max drawdown {curve.max_drawdown:.1%}")
    if curve.buy_hold is not None:
        text.append(f" · buy & hold over all bars {curve.buy_hold[-1] - 1:+.1%}", style="dim")
    if curve.holdout_start is not None:
        start = curve.holdout_start
        oos = curve.equity[-1] / curve.equity[start - 1] - 1 if start > 0 else curve.equity[-1] - 1
        text.append(f" · holdout: return {oos:+.1%} from {curve.label(start).replace('T', ' ')}", style="bold")
    return text


class EquityScreen(ViewScreen):
    KIND = "equity"
    POLLED = False  # computed once, when opened
    TITLE_TEXT = "equity curve"
    BODY = "#equity-figures"
    DEFAULT_CSS = """
    EquityScreen #equity-figures { height: auto; padding: 0 1; }
    EquityScreen #equity-plot { height: 1fr; }
    """

    def __init__(self, study: str, number: int, params: dict[str, Any]) -> None:
        super().__init__(study, (number,))
        self.number, self.params = number, params

    def compose_body(self) -> ComposeResult:
        yield Static(Text(f"recomputing trial {self.number}'s backtest…", style="dim"), id="equity-figures")
        yield Static(id="equity-plot")

    def on_mount(self) -> None:
        super().on_mount()
        self.draw_title(f"trial {self.number}")
        self.run_worker(self._compute, thread=True, exclusive=True, group="equity")

    def _compute(self) -> None:
        curve = self.app.feed.equity(self.study, self.number, self.params)  # type: ignore[attr-defined]
        self.app.call_from_thread(self.show, curve)

    def draw(self, curve: Any) -> None:
        self.body(figures(curve))
        plot = self.query_one("#equity-plot", Static)
        size = plot.content_size
        plot.update(Text.from_ansi(render(curve, size.width, size.height)))

    def on_resize(self) -> None:
        if self.data is not None and not isinstance(self.data, explore.Unavailable):
            self.draw(self.data)

