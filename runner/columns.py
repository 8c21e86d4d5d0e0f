"""Plain aligned text tables for the CLI that never cut a cell.

A table too wide for the terminal loses whole columns, the least important first,
instead of showing ``1.154e+…`` for a number; piped (no terminal width), every
column is printed. A last column may wrap: at spaces, onto lines of its own
indented to where it starts, never inside a word.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

from .text import printable

GAP = "  "
MIN_WRAP = 20  # a wrapping column narrower than this is wrapped at this width anyway


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = True  # numbers right-aligned, names left
    drop: int = 0  # 0: always shown; else dropped to fit a narrow terminal, 1 first
    wrap: bool = False  # the last column only: wrapped at spaces to the width left


def terminal_width() -> int | None:
    """The terminal's width, or None when stdout is not a terminal (piped: nothing is cut)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def fit(widths: Sequence[int], drops: Sequence[int], width: int | None, gap: int) -> list[int]:
    """The indices of the columns to show: all of them, less the droppable ones (``drops``:
    0 never, else 1 first) until their ``widths`` and a ``gap`` after each but the last fit
    in ``width`` (None: no limit). Shared by the CLI's tables and the app's studies table."""
    keep = list(range(len(widths)))
    if width is None:
        return keep
    for i in sorted((i for i, d in enumerate(drops) if d), key=lambda i: drops[i]):
        if sum(widths[k] for k in keep) + gap * (len(keep) - 1) <= width:
            break
        keep.remove(i)
    return keep


def render(columns: Sequence[Column], rows: Sequence[Sequence[object]], width: int | None = None) -> str:
    """The table as lines of text; every cell escaped (runner.text.printable)."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max([cell_len(c.name), *(cell_len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    least = [min(w, MIN_WRAP) if c.wrap else w for w, c in zip(widths, columns)]
    keep = fit(least, [c.drop for c in columns], width, len(GAP))
    lines = [_line(columns, [c.name for c in columns], widths, keep, width)]
    lines += [_line(columns, row, widths, keep, width) for row in cells]
    return "\n".join(lines)


def _line(columns: Sequence[Column], row: Sequence[str], widths: list[int], keep: list[int],
          width: int | None) -> str:
    parts, start = [], 0
    for n, i in enumerate(keep):
        cell, column = row[i], columns[i]
        if column.wrap and n == len(keep) - 1:
            room = max(MIN_WRAP, width - start) if width is not None else None
            if room is not None and cell_len(cell) > room:
                wrapped = textwrap.wrap(cell, room, break_long_words=False, break_on_hyphens=False) or [""]
                parts.append(("\n" + " " * start).join(wrapped))
            else:
                parts.append(cell)
            break
        pad = " " * (widths[i] - cell_len(cell))
        parts.append(pad + cell if column.right else cell + ("" if n == len(keep) - 1 else pad))
        start += widths[i] + len(GAP)
    return GAP.join(parts).rstrip()
