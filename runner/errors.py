"""Errors the commands report as one line, in a module light enough for every command
to import (runner/commands.py reads no config, and so imports no pandas, for tune status)."""

from __future__ import annotations

from pathlib import Path

from .text import printable


class ConfigError(Exception):
    """A config that cannot be used; ``str()`` is one line: file: field: problem.

    Control characters and line breaks anywhere (a file name, a key, a quoted
    value) are escaped, and a long field or problem is cut, so it stays one line.
    """

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field, self.problem = printable(field, 300), printable(problem, 5000)
        shown = printable(self.path)
        super().__init__(f"{shown}: {self.field}: {self.problem}" if self.field else f"{shown}: {self.problem}")
