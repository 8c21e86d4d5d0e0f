"""Text from users (configs, data, backtests, exceptions), made safe for where it goes.

* :func:`printable` — for a terminal or a one-line message: every control
  character, line separator and lone surrogate becomes a visible escape, so an
  ANSI sequence or a newline in a name or a reason is shown, never acted upon.
  It covers characters only: text that may look like Rich/Textual markup
  (``[/x]``) is shown as a ``rich.text.Text`` or with ``markup=False``.
* :func:`storable` — for PostgreSQL, which refuses NUL and lone surrogates in
  text and jsonb (a refused record would fail the worker, not the trial).
* :func:`first_line` — an exception as one line, for messages.
"""

from __future__ import annotations

import re

# C0 controls (ESC, BEL, backspace, CR, newline, tab…), DEL, C1 controls, the Unicode
# line and paragraph separators, the bidirectional overrides and isolates (which reorder
# the text shown around them), and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one line safe to show in a terminal, cut to ``limit`` characters (with …)."""
    text = value if isinstance(value, str) else str(value)
    cut = limit is not None and len(text) > limit
    if cut:  # escaping only lengthens: cut first, so a huge text costs nothing
        text = text[:limit]
    text = _UNSAFE.sub(_escape, text)
    if limit is not None and (cut or len(text) > limit):
        text = text[: limit - 1] + "…"
    return text


def storable(text: str) -> str:
    """``text`` as PostgreSQL stores it: NUL and lone surrogates as visible escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (the driver's own for a wrapped
    database error), or its type's name when it has none."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
