"""The frame of every insight view: a title, the view's body, the footer; escape goes back.

A view names what it shows with a :class:`tui.data.ViewRequest`; while it is on top,
the app's poller computes that request's data after each reading (tui/data.py) and the
app hands it to :meth:`ViewScreen.show`. The view only draws.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from runner import explore
from runner.text import printable

from ..data import ViewRequest


class ViewScreen(Screen[None]):
    KIND: ClassVar[str] = ""
    POLLED: ClassVar[bool] = True  # the poller recomputes its data as the study changes
    BODY: ClassVar[str] = "#view-body"  # the Static that body() fills (a view's own compose_body names its own)
    TITLE_TEXT: ClassVar[str] = ""
    BINDINGS = [Binding("escape", "close", "Back", tooltip="back to the studies")]
    DEFAULT_CSS = """
    ViewScreen #view-title { height: 1; background: $panel; }
    ViewScreen #view-scroll { height: 1fr; }
    ViewScreen #view-body { padding: 0 1; }
    """

    def __init__(self, study: str, options: tuple = ()) -> None:
        super().__init__()
        self.study = study
        self.options = options
        self.data: Any = None

    @property
    def request(self) -> ViewRequest:
        return ViewRequest(self.KIND, self.study, self.options)

    def compose(self) -> ComposeResult:
        yield Static(id="view-title")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="view-scroll"):
            yield Static(Text("reading…", style="dim"), id="view-body")

    def on_mount(self) -> None:
        self.draw_title()

    def on_screen_resume(self) -> None:
        self.app.want_view()  # type: ignore[attr-defined]

    def draw_title(self, extra: str = "") -> None:
        text = Text(f" {self.TITLE_TEXT} ", style="bold reverse")
        text.append(f" {printable(self.study)}")
        if extra:
            text.append(f" │ {printable(extra)}", style="dim")
        self.query_one("#view-title", Static).update(text)

    def show(self, data: Any) -> None:
        if data == self.data:
            return  # a redraw of the same would only reset the view's cursor and scroll
        self.data = data
        if isinstance(data, explore.Unavailable):
            self.body(Text(f"nothing to show: {printable(data.reason)}", style="yellow"))
            return
        self.draw(data)

    def draw(self, data: Any) -> None:
        raise NotImplementedError

    def body(self, renderable: Any) -> None:
        self.query_one(self.BODY, Static).update(renderable)

    def ask(self, options: tuple) -> None:
        """Change the view's choices (another parameter, another trial): a new request."""
        self.options = options
        self.app.want_view()  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.dismiss(None)
