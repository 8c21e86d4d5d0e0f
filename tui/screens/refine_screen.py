"""The narrowed space of a refinement (``tune refine``), shown before it is made: y or
Enter writes the new config and starts its study's workers, n or Escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label

from runner.text import printable

from .choice_dialog import ChoiceDialog


class RefineScreen(ChoiceDialog):
    BINDINGS = [
        Binding("y,enter", "choose(True)", "Refine", show=False),
        Binding("n,escape", "choose(False)", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    RefineScreen > Vertical { width: 90%; max-width: 120; }
    RefineScreen Label.-line { margin-bottom: 0; }
    RefineScreen #question { margin-top: 1; }
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__("Write this config and start its workers?",
                         [("[u]Y[/u]es, refine", "primary", True), ("[u]N[/u]o", "default", False)])
        self.lines = lines

    def details(self) -> ComposeResult:
        for line in self.lines:  # a config's names and values: shown as they are, never markup
            yield Label(printable(line), markup=False, classes="-line")
