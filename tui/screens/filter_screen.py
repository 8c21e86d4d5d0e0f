"""The studies table's filter: a text that a study's name or state must hold (empty: all)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class FilterScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    DEFAULT_CSS = """
    FilterScreen { align: center middle; }
    FilterScreen > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    FilterScreen Label { width: 100%; margin-bottom: 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Show the studies whose name or state holds (e.g. BTC, running, failed); empty: all. "
                        "Enter applies, escape cancels.", markup=False)
            yield Input(value=self.current, placeholder="text or state", id="filter-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
