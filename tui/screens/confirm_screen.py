"""A yes/no question; y or Enter confirms, n or Escape cancels."""

from __future__ import annotations

from textual.binding import Binding

from .choice_dialog import ChoiceDialog


class ConfirmScreen(ChoiceDialog):
    BINDINGS = [
        Binding("y,enter", "choose(True)", "Yes", show=False),
        Binding("n,escape", "choose(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(question, [("[u]Y[/u]es", "error", True), ("[u]N[/u]o", "default", False)], danger=True)
