"""Quitting asks what becomes of the workers: leave them running (the default) or stop them."""

from __future__ import annotations

from textual.binding import Binding

from .choice_dialog import ChoiceDialog

LEAVE, STOP = "leave", "stop"


class QuitScreen(ChoiceDialog):
    """Dismisses with "leave", "stop", or None (stay)."""

    BINDINGS = [
        Binding("l,enter", "choose('leave')", "Leave running", show=False),
        Binding("s", "choose('stop')", "Stop all", show=False),
        Binding("escape,c", "choose(None)", "Cancel", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(
            "Quit tune-tui. The workers run on their own: leave them running "
            "(come back with tune-tui), or stop every study shown?",
            [("[u]L[/u]eave running", "primary", LEAVE), ("[u]S[/u]top all", "error", STOP),
             ("[u]C[/u]ancel", "default", None)],
        )
