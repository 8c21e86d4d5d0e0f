"""The studies table: one row per study, updated in place so the cursor never jumps."""

from __future__ import annotations

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from runner.status import StudyStatus, best_label, format_eta
from runner.text import printable

STATE_STYLES = {
    "running": "bold green", "paused": "bold yellow", "stopped": "bold red", "done": "bold cyan",
    "capped": "cyan", "exhausted": "cyan", "failed": "bold red", "idle": "dim",
}

# (key, label, right-aligned)
COLUMNS = (
    ("study", "Study", False), ("state", "State", False), ("progress", "Progress", False),
    ("rate", "/min", True), ("best", "Best", True), ("pruned", "Prun", True), ("failed", "Fail", True),
    ("duplicate", "Dup", True), ("running", "Run", True), ("workers", "Wkr", True), ("eta", "ETA", True),
)


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


class StudiesTable(DataTable):
    """Rows keyed by study name; cells are rewritten only when their text changes."""

    DEFAULT_CSS = """
    StudiesTable { height: auto; max-height: 50%; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label, right in COLUMNS:
            self.add_column(Text(label, justify="right") if right else label, key=key)
        self._shown: dict[str, dict[str, str]] = {}

    @property
    def selected_study(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return row_key.value

    def show(self, statuses: list[StudyStatus]) -> None:
        present = {s.study for s in statuses}
        for gone in [name for name in self._shown if name not in present]:  # deleted elsewhere
            self.remove_row(gone)
            del self._shown[gone]
        for s in statuses:
            values = cells(s)
            if s.study not in self._shown:
                self.add_row(*values.values(), key=s.study)
                self._shown[s.study] = {k: str(v) for k, v in values.items()}
                continue
            shown = self._shown[s.study]
            for key, value in values.items():
                if shown.get(key) != str(value):
                    self.update_cell(s.study, key, value, update_width=True)
                    shown[key] = str(value)
