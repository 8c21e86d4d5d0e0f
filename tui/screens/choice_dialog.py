"""A question with a row of buttons, each a possible answer; keys choose too (subclasses bind them)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label
from textual.widgets.button import ButtonVariant

from runner.text import printable


class ChoiceDialog(ModalScreen):
    """Dismisses with the answer of the pressed button (or of ``action_choose``).

    ``question`` is plain text, shown as it is (it may hold a study name): never markup.
    ``choices``: (button label markup, variant, answer); the first one has the focus.
    """

    DEFAULT_CSS = """
    ChoiceDialog { align: center middle; }
    ChoiceDialog > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    ChoiceDialog.-danger > Vertical { border: thick $error; }
    ChoiceDialog Label { width: 100%; margin-bottom: 1; }
    ChoiceDialog Horizontal { height: auto; align: center middle; }
    ChoiceDialog Button { margin: 0 1; }
    """

    def __init__(self, question: str, choices: list[tuple[str, ButtonVariant, Any]], danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else None)
        self.question = question
        self.choices = choices

    def details(self) -> ComposeResult:
        """What a subclass shows above the question (nothing here)."""
        yield from ()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield from self.details()
            yield Label(printable(self.question), markup=False, id="question")
            with Horizontal():
                for i, (label, variant, _) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{i}", variant=variant)

    def on_mount(self) -> None:
        self.query_one("#choice-0", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.choices[int((event.button.id or "choice-0").removeprefix("choice-"))][2])

    def action_choose(self, answer: Any) -> None:
        self.dismiss(answer)
