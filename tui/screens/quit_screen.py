"""Quitting asks what becomes of the workers: leave them running (the default) or stop them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

LEAVE, STOP = "leave", "stop"


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with "leave", "stop", or None (stay)."""

    BINDINGS = [
        Binding("l,enter", "choose('leave')", "Leave running", show=False),
        Binding("s", "choose('stop')", "Stop all", show=False),
        Binding("escape,c", "choose(None)", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    QuitScreen Label { width: 100%; margin-bottom: 1; }
    QuitScreen Horizontal { height: auto; align: center middle; }
    QuitScreen Button { margin: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Quit tune-tui. The workers run on their own: leave them running "
                        "(come back with tune-tui), or stop every study shown?")
            with Horizontal():
                yield Button("[u]L[/u]eave running", id=LEAVE, variant="primary")
                yield Button("[u]S[/u]top all", id=STOP, variant="error")
                yield Button("[u]C[/u]ancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{LEAVE}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (LEAVE, STOP) else None)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
