"""The best value per cell over two parameters, shaded (as backtesting.py's heatmap); x and y
change the parameters, the two most important first."""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.binding import Binding

from runner.outline import Heatmap
from runner.text import printable

from .view_screen import ViewScreen

# Dark to bright (viridis' stops): the best cells are the brightest, on dark and light themes.
SHADES = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"]


def shade(value: float, low: float, high: float, maximize: bool) -> str:
    share = 0.5 if high <= low else (value - low) / (high - low)
    share = share if maximize else 1 - share
    return SHADES[min(int(share * len(SHADES)), len(SHADES) - 1)]


def render(h: Heatmap) -> Table:
    values = [v for row in h.cells for v in row if v is not None]
    low, high = min(values), max(values)
    width = max([5, *(len(printable(x)) for x in h.x_labels), *(len(f"{v:.3g}") + 1 for v in values)])
    table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, pad_edge=False)
    table.add_column(Text(f"{printable(h.y_param)} ↓", style="bold"), justify="right", no_wrap=True)
    for label in h.x_labels:
        table.add_column(Text(printable(label), justify="center"), width=width, justify="center", no_wrap=True)
    for row_index in reversed(range(len(h.y_labels))):  # the highest values of y on top
        cells: list[Text] = [Text(printable(h.y_labels[row_index]))]
        for col_index, value in enumerate(h.cells[row_index]):
            if value is None:
                cells.append(Text("·", style="dim"))
                continue
            colour = shade(value, low, high, h.maximize)
            bright = SHADES.index(colour) >= 5
            mark = "★" if h.best == (col_index, row_index) else ""
            cells.append(Text(f"{mark}{value:.3g}".center(width), style=Style(
                bgcolor=colour, color="black" if bright else "white", bold=bool(mark))))
        table.add_row(*cells)
    return table


def bins_for(width: int) -> int:
    """As many cells across as fit the screen with their values, none cut: a cell is up to 8
    columns ("-0.148" with a star, and its padding), the parameter's labels take about 10."""
    return max(4, min(12, (width - 10) // 8))


def legend(h: Heatmap) -> Text:
    text = Text("\n")
    for colour in SHADES:
        text.append("  ", style=Style(bgcolor=colour))
    worst, best = ("low", "high") if h.maximize else ("high", "low")
    text.append(f"  {worst} → {best} · across: {printable(h.x_param)} · ★ the best cell · each cell: the best value "
                f"of the trials in it ({h.trials} in all) · x / y: other parameters", style="dim")
    return text


class HeatmapScreen(ViewScreen):
    KIND = "heatmap"
    TITLE_TEXT = "heatmap"
    BINDINGS = [
        Binding("x", "axis(0)", "X param", tooltip="heatmap: another parameter across"),
        Binding("y", "axis(1)", "Y param", tooltip="heatmap: another parameter down"),
    ]

    def draw(self, data: Heatmap) -> None:
        self.draw_title(f"{data.x_param} × {data.y_param}")
        table = render(data)
        self.body(_stack(table, legend(data)))

    def action_axis(self, which: int) -> None:
        """The next parameter on that axis, in order of importance (the other axis's skipped);
        with two parameters, the axes swap."""
        if not isinstance(self.data, Heatmap):
            return
        order = self.data.order or [self.data.x_param, self.data.y_param]
        current = [self.data.x_param, self.data.y_param]
        other = current[1 - which]
        choices = [p for p in order if p != other]
        if len(choices) < 2:  # two parameters only: x and y swap
            self.ask((current[1], current[0]))
            return
        current[which] = choices[(choices.index(current[which]) + 1) % len(choices)] if current[which] in choices else choices[0]
        self.ask((current[0], current[1]))

    def __init__(self, study: str, width: int) -> None:
        super().__init__(study, (None, None, bins_for(width)))

    def ask(self, options: tuple) -> None:
        super().ask(options[:2] + self.options[2:])


def _stack(*parts) -> Table:
    grid = Table.grid()
    for part in parts:
        grid.add_row(part)
    return grid
