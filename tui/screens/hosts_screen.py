"""Hosts and their workers: CPU and memory of the workers, the host's load and memory (as
the workers report them in their heartbeat), so an overloaded machine shows before it slows
every study."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from runner.hosts import MAX_LOAD_PER_CPU, MAX_MEM_PERCENT, HostRow
from runner.text import printable

from .view_screen import ViewScreen

COLUMNS = ("Host", "Workers", "CPU %", "Memory", "Load/CPU", "Host mem %", "Studies")


def megabytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB"


def cells(h: HostRow) -> list[Text]:
    load = h.load_per_cpu
    style = "bold red" if h.overloaded else ""
    return [
        Text(printable(h.host), style=style),
        Text(str(h.workers), justify="right"),
        Text("-" if h.cpu_percent is None else f"{h.cpu_percent:.0f}", justify="right"),
        Text(megabytes(h.rss_bytes), justify="right"),
        Text("-" if load is None else f"{load:.2f} ({h.host_load:.1f}/{h.host_cpus})", justify="right", style=style),
        Text("-" if h.host_mem_percent is None else f"{h.host_mem_percent:.0f}", justify="right", style=style),
        Text(printable(", ".join(h.studies))),
    ]


class HostsScreen(ViewScreen):
    KIND = "hosts"
    TITLE_TEXT = "hosts and workers"
    BODY = "#hosts-note"
    DEFAULT_CSS = """
    HostsScreen #hosts-table { height: auto; max-height: 1fr; }
    HostsScreen #hosts-note { height: auto; padding: 1 1; }
    """

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="hosts-table", cursor_type="row", zebra_stripes=True)
        yield Static(Text("reading…", style="dim"), id="hosts-note")

    def on_mount(self) -> None:
        super().on_mount()
        self.draw_title("every study shown")
        table = self.query_one("#hosts-table", DataTable)
        for title in COLUMNS:
            table.add_column(title, key=title)

    def draw(self, data: list[HostRow]) -> None:
        table = self.query_one("#hosts-table", DataTable)
        table.clear()
        for h in data:
            table.add_row(*cells(h), key=h.host)
        if not data:
            self.body(Text("no live worker", style="yellow"))
            return
        hot = [h.host for h in data if h.overloaded]
        note = Text(f"CPU %: the workers' own, 100 = one core · load/CPU above {MAX_LOAD_PER_CPU:g} or host memory "
                    f"above {MAX_MEM_PERCENT:g} %: overloaded", style="dim")
        if hot:
            note = Text(f"overloaded: {printable(', '.join(hot))} — fewer workers there (-) would speed each trial\n",
                        style="bold red") + note
        self.body(note)
