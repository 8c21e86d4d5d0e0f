"""The keys, and what the states mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

ABOUT = """\
**States**: *running* — live workers; *paused* — workers wait, using no CPU;
*stopped* — workers exited after their trial; *done* — target reached;
*capped* — attempt cap reached first; *exhausted* — every combination of a
finite space evaluated; *failed* — workers could not start
(see the log); *idle* — no live worker.

**Best**: `!` marks a best trial that breaks the constraints (none satisfies
them yet); `front N` is a multi-objective study's Pareto front size. **Dup**:
trials skipped as duplicates of an evaluated combination.

Pause, resume and stop are stored in the database: they work from any host
and survive this app's restart (`tune pause/resume/stop` from a shell do the
same). Workers run in their own session: closing this terminal does not stop
them.

Press `escape` or `?` to close.
"""


def key_table(bindings: list[Binding]) -> str:
    """The app's keys as a Markdown table, from its BINDINGS (one list to keep, as the palette)."""
    rows = ["| key | action |", "| --- | --- |", "| ↑ ↓ | select a study |"]
    for binding in bindings:
        key = {"plus": "+", "minus": "-", "question_mark": "?"}.get(binding.key, binding.key)
        rows.append(f"| `{key}` | {binding.tooltip or binding.description} |")
    rows.append("| `ctrl+p` | command palette (every action above) |")
    return "\n".join(rows)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "Close", show=False)]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80%; max-width: 90; height: 80%; border: thick $accent; background: $surface; }
    """

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.text = f"# tune-tui\n\n{key_table(bindings)}\n\n{ABOUT}"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
