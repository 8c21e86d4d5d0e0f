"""The tail of the selected study's worker log (events stored in the database, so every host's show)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from runner.monitor import StudyView
from runner.text import printable

LEVEL_STYLES = {"error": "bold red", "warning": "yellow", "info": "dim"}


class EventLog(Static):
    DEFAULT_CSS = """
    EventLog { height: 1fr; overflow-y: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._key: tuple | None = None

    def show(self, view: StudyView | None) -> None:
        key = (view.status.study, view.events_version) if view else None
        if key == self._key:
            return
        self._key = key
        if view is None or not view.events:
            self.update(Text("no events yet", style="dim"))
            return
        lines = Text()
        rows = max(self.content_size.height, 5)
        for e in view.events[-rows:]:
            lines.append(e.at.astimezone().strftime("%H:%M:%S "), style="dim")
            lines.append(printable(e.message), style=LEVEL_STYLES.get(e.level, ""))  # one line, shown as is
            lines.append("\n")
        lines.rstrip()
        self.update(lines)
