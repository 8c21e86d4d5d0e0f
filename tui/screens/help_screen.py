"""The keys, and what the states mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# tune-tui

| key | action |
| --- | --- |
| ↑ ↓ | select a study |
| `p` / `r` | pause / resume the selected study |
| `P` / `R` | pause / resume every study shown |
| `s` / `S` | stop the selected study / every study (asks first) |
| `+` / `-` | one worker more / fewer for the selected study |
| `t` | plot against trial number or time |
| `ctrl+p` | command palette |
| `?` | this help |
| `q` | quit: leave the workers running, or stop them |

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


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "Close", show=False)]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80%; max-width: 90; height: 80%; border: thick $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
