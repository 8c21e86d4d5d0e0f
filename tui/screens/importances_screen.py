"""Which parameters matter: a bar per parameter of the selected study."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text

from runner.explore import Importances
from runner.text import printable

from .view_screen import ViewScreen


def utc(at: str | None) -> str:
    """An ISO time as UTC to the minute (the same text on every host)."""
    if not at:
        return "-"
    return datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render(data: Importances, width: int) -> Table | Text:
    if not data.bars:
        return Text(f"no importances: {printable(data.na or '')}", style="yellow")
    name_width = min(max(len(printable(n)) for n, _ in data.bars), 24)
    bar_width = max(width - name_width - 12, 10)
    table = Table.grid(padding=(0, 1))
    table.add_column(width=name_width, no_wrap=True, overflow="ellipsis")
    table.add_column(justify="right", width=5)
    table.add_column()
    top = max(v for _, v in data.bars) or 1.0
    for name, share in data.bars:
        table.add_row(Text(printable(name)), f"{share:.2f}", Text("█" * max(round(share / top * bar_width), 0), style="green"))
    source = {"live": "computed by a worker as trials arrived", "report": "from the trust report (tune report)"}
    table.add_row("", "", "")
    table.add_row("", "", Text(f"{printable(data.method or '')} over {data.trials} complete trials, "
                               f"{source.get(data.source, '')}, {utc(data.computed_at)}", style="dim"))
    table.add_row("", "", Text("share of the objective's variation each parameter explains; "
                               "low ones can be fixed and the space narrowed", style="dim"))
    return table


class ImportancesScreen(ViewScreen):
    KIND = "importances"
    TITLE_TEXT = "importances"

    def draw(self, data: Importances) -> None:
        self.body(render(data, self.size.width - 2))
