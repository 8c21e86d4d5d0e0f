"""Bounds, one-line errors and the value checks the config model uses.

Each bound keeps a value inside what a later stage can hold: an int4 column,
numpy's seed, a file name, memory. The README's config reference lists them.
"""

from __future__ import annotations

import datetime as _dt
import string
import unicodedata
from typing import Annotated, Any

import pandas as pd
from pandas.tseries.frequencies import to_offset
from pydantic import AfterValidator, BeforeValidator, Field

from ..errors import ConfigError  # noqa: F401 - re-exported: runner.config.ConfigError
from ..text import printable

MAX_CONFIG_BYTES = 1_000_000  # a config file larger than this is not read
MAX_DEPTH = 16  # nesting of tables and arrays
MAX_TRIALS = 10_000_000  # target_trials; max_attempts up to 3 x this (the default cap), in int4
MAX_BARS = 10_000_000  # synthetic bars (about 1.5 GB per process at the limit); also min_trades
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_INT_PARAM = 2**53  # int parameters: exact as floats (Optuna's samplers model them as floats)
MAX_FLOAT_PARAM = 1e300  # float parameters' low, high, step: samplers widen the range, which must stay finite
MAX_FLOAT_STEPS = 1e15  # a float's (high - low) / step
MAX_BPS = 10_000  # fees and slippage are below 100 %
NAME_MAX = 100  # study.name; the study {name}-{symbol} stays under 200 bytes
SYMBOL_MAX = 64
PATH_MAX = 4096  # data.path, and each resulting file-name component at most 255 bytes
COMPONENT_MAX = 255
_REPR_MAX = 100  # a value quoted in an error message is cut to this


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails: still one line
        text = f"<{type(value).__name__}>"
    return printable(text, _REPR_MAX)


def _date_to_text(value: Any) -> Any:
    # TOML has dates (start = 2021-01-01): take them as the same text in quotes.
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return value


# The timestamps the data can have: pandas' nanosecond range.
_TIME_MIN, _TIME_MAX = pd.Timestamp.min, pd.Timestamp.max


def parse_time(text: str) -> pd.Timestamp:
    """``text`` as a timestamp (tz-aware ones in naive UTC, as backtest.data reads them);
    ValueError for anything pandas cannot parse or cannot hold."""
    try:
        moment = pd.Timestamp(text)
    except Exception as exc:
        raise ValueError(f"cannot parse {_short_repr(text)} as a date/time ({type(exc).__name__})") from None
    if moment is pd.NaT or pd.isna(moment):
        raise ValueError(f"{_short_repr(text)} is not a date/time")
    if moment.tz is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    if not _TIME_MIN <= moment <= _TIME_MAX:
        raise ValueError(f"{_short_repr(text)} is outside {_TIME_MIN:%Y-%m-%d} … {_TIME_MAX:%Y-%m-%d}")
    return moment


def _check_time(text: str | None) -> str | None:
    if text is not None:
        parse_time(text)
    return text


TimeText = Annotated[str, BeforeValidator(_date_to_text), Field(max_length=100), AfterValidator(_check_time)]


def _check_freq(text: str) -> str:
    try:
        offset = to_offset(text)
    except Exception:
        raise ValueError(f"{_short_repr(text)} is not a pandas frequency (e.g. 1min, 15min, 1h, 1D, B)") from None
    if offset is None or offset.n <= 0:
        raise ValueError(f"{_short_repr(text)} must be a positive frequency")
    return text


def _check_symbol(symbol: str) -> str:
    if symbol.startswith("-"):
        raise ValueError(f"symbol {symbol!r} must not start with '-' (it would read as a command-line option)")
    return symbol


def _check_path_template(template: str | None) -> str | None:
    if template is None:
        return None
    if any(unicodedata.category(c) == "Cc" for c in template):
        raise ValueError("must not contain control characters")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"braces do not match ({exc}; write {{{{ and }}}} for a literal brace)") from None
    for name, spec, conv in fields:
        if name != "symbol" or spec or conv:
            raise ValueError(f"only {{symbol}} may appear in braces (found {{{printable(name, 50)}}})")
    return template


