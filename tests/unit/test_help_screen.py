"""The help screen's key table is built from the app's BINDINGS: one list to keep."""

from __future__ import annotations

from textual.binding import Binding

from tui.app import TuneApp
from tui.screens.help_screen import key_table


def test_every_binding_of_the_app_is_a_row_with_its_tooltip():
    table = key_table(TuneApp.BINDINGS)
    rows = table.splitlines()
    assert rows[:2] == ["| key | action |", "| --- | --- |"]
    assert len(rows) == 2 + 1 + len(TuneApp.BINDINGS) + 1  # header, the arrows, the bindings, ctrl+p
    for binding in TuneApp.BINDINGS:
        assert binding.tooltip, binding.key  # every key of the app explains itself
        assert binding.tooltip in table


def test_keys_are_shown_as_typed():
    table = key_table([Binding("plus", "a", "A", tooltip="more"), Binding("minus", "b", "B", tooltip="fewer"),
                       Binding("question_mark", "c", "C", tooltip="help"), Binding("P", "d", "D", tooltip="all")])
    assert table.splitlines()[3:7] == ["| `+` | more |", "| `-` | fewer |", "| `?` | help |", "| `P` | all |"]


def test_the_description_stands_in_for_a_missing_tooltip_and_the_palette_comes_last():
    rows = key_table([Binding("x", "x", "Do x")]).splitlines()
    assert rows[2] == "| ↑ ↓ | select a study |"
    assert rows[3] == "| `x` | Do x |"
    assert rows[-1] == "| `ctrl+p` | command palette (every action above) |"
