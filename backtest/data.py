"""Loading, validating and preparing OHLCV price data.

``load_ohlcv`` turns a CSV or parquet file into the package's standard frame:
a tz-naive ``DatetimeIndex`` named ``timestamp`` and float64 columns
``open, high, low, close, volume`` (plus ``adj_close`` when the file has one).
``validate_ohlcv`` rejects data a backtest cannot trust, naming the symbol and
the offending row. ``PriceData`` (prices.py) is the read-only numpy bundle that
a worker prepares from it once and hands to every trial, so the hot path never
touches pandas.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")

# File column names, reduced by _column_key, mapped to the standard column names.
_COLUMN_ALIASES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adjclose": "adj_close",
}
# Accepted names for the timestamp column, most specific first.
_TIMESTAMP_KEYS = ("timestamp", "datetime", "date", "time")
# Names pandas gives to an index that was written out without a name.
_ANONYMOUS_INDEX_KEYS = ("unnamed0", "index")
_PARQUET_SUFFIXES = (".parquet", ".pq")



class DataError(ValueError):
    """Price data that cannot be used, with the symbol and (when known) the row.

    ``row`` is the 1-based number of the data row in the file (the first row
    after the header is row 1), or None when the problem is not tied to a row.
    """

    def __init__(
        self,
        symbol: str,
        message: str,
        row: int | None = None,
        timestamp: object = None,
    ) -> None:
        self.symbol = symbol
        self.message = message
        self.row = row
        self.timestamp = timestamp
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.row is None:
            return f"{self.symbol}: {self.message}"
        where = f"row {self.row}"
        if self.timestamp is not None:
            where += f" ({self.timestamp})"
        return f"{self.symbol}: {where}: {self.message}"


# --------------------------------------------------------------------------- loading


def load_ohlcv(
    path_template: str | Path,
    symbol: str,
    start: str | None = None,
    end: str | None = None,
    base_dir: Path | None = None,
) -> pd.DataFrame:
    """Load and validate one symbol's OHLCV data from CSV or parquet.

    ``path_template`` may contain ``{symbol}``; a relative path is resolved
    against ``base_dir`` (the config file's folder) when given. ``start`` and
    ``end`` are inclusive; an ``end`` given as a plain date (``2024-01-31``)
    includes that whole day, so intraday data is not cut at midnight.
    Raises DataError naming the symbol for anything unusable.
    """
    shown_path = str(path_template).format(symbol=symbol)
    path = data_path(path_template, symbol, base_dir)
    if not path.is_file():
        looked_in = "" if str(path) == shown_path else f" (looked for {path})"
        raise DataError(symbol, f"{shown_path} not found{looked_in}")

    raw = _read_table(path, symbol)
    timestamps = _extract_timestamps(raw, symbol, shown_path)
    columns = _extract_price_columns(raw, symbol, shown_path)
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(timestamps, name="timestamp"))

    keep = _period_mask(pd.DatetimeIndex(frame.index), start, end, symbol)
    row_numbers = np.flatnonzero(keep) + 1
    frame = frame[keep]
    validate_ohlcv(frame, symbol, row_numbers=row_numbers)
    return frame


def data_path(path_template: str | Path, symbol: str, base_dir: Path | None = None) -> Path:
    """The file ``load_ohlcv`` reads for ``symbol``: ``{symbol}`` filled in, ``~``
    expanded, a relative path taken from ``base_dir`` when given."""
    path = Path(str(path_template).format(symbol=symbol)).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path


def _read_table(path: Path, symbol: str) -> pd.DataFrame:
    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # the reader's own message says what is wrong
        raise DataError(symbol, f"cannot read {path}: {exc}") from exc


def _column_key(name: object) -> str:
    """'Adj Close', 'adj_close' and 'AdjClose' all become 'adjclose'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _extract_timestamps(raw: pd.DataFrame, symbol: str, shown_path: str) -> np.ndarray:
    """Find the time axis (index or column) and parse it to tz-naive UTC datetime64[ns]."""
    if isinstance(raw.index, pd.DatetimeIndex):
        return _to_naive_utc(raw.index).to_numpy(dtype="datetime64[ns]")

    columns = raw if isinstance(raw.index, pd.RangeIndex) else raw.reset_index()
    keys = {_column_key(name): name for name in reversed(list(columns.columns))}
    for key in _TIMESTAMP_KEYS + _ANONYMOUS_INDEX_KEYS:
        if key in keys:
            return _parse_timestamps(columns[keys[key]], symbol, str(keys[key]))
    raise DataError(
        symbol,
        f"{shown_path} has no timestamp column "
        "(expected a datetime index or a column named date, datetime, timestamp or time)",
    )


def _to_naive_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index


def _parse_timestamps(column: pd.Series, symbol: str, column_name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        parsed = pd.to_datetime(column, unit=_epoch_unit(column), errors="coerce")
    else:
        try:
            # utc=True reads naive values as UTC (unchanged after dropping the tz)
            # and converts aware ones, including files that mix UTC offsets.
            parsed = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError, OverflowError):
            # One format inferred from the first value did not fit every row:
            # parse each value on its own, which also pinpoints a bad row.
            parsed = pd.to_datetime(column, utc=True, format="mixed", errors="coerce")
        parsed = parsed.dt.tz_localize(None)

    missing = np.flatnonzero(parsed.isna().to_numpy())
    if missing.size:
        row = int(missing[0])
        value = column.iloc[row]
        what = "missing timestamp" if pd.isna(value) else f"cannot parse timestamp {value!r}"
        raise DataError(symbol, f"{what} in column {column_name!r}", row=row + 1)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _epoch_unit(column: pd.Series) -> Literal["s", "ms", "us", "ns"]:
    """Guess the unit of numeric epoch timestamps from their magnitude."""
    largest = float(np.nanmax(np.abs(column.to_numpy(dtype=float)))) if len(column) else 0.0
    if largest < 1e11:
        return "s"
    if largest < 1e14:
        return "ms"
    return "us" if largest < 1e17 else "ns"


def _extract_price_columns(raw: pd.DataFrame, symbol: str, shown_path: str) -> dict[str, np.ndarray]:
    found: dict[str, object] = {}
    for name in raw.columns:
        standard = _COLUMN_ALIASES.get(_column_key(name))
        if standard is not None and standard not in found:
            found[standard] = name
    if "close" not in found:
        raise DataError(symbol, f"{shown_path} has no close column (columns: {list(raw.columns)})")

    numbers = {standard: _to_float(raw[name], symbol, standard) for standard, name in found.items()}
    # Close-only files are usable: the bar's range collapses to its close.
    for standard in ("open", "high", "low"):
        numbers.setdefault(standard, numbers["close"])
    volume = numbers.get("volume", np.zeros(len(raw)))
    columns = {name: numbers[name] for name in PRICE_COLUMNS}
    columns["volume"] = np.nan_to_num(volume, nan=0.0)
    if "adj_close" in numbers:
        columns["adj_close"] = numbers["adj_close"]
    return columns


def _to_float(column: pd.Series, symbol: str, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype="float64", na_value=np.nan)
    numbers = pd.to_numeric(column, errors="coerce")
    not_numbers = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
    if not_numbers.size:
        row = int(not_numbers[0])
        raise DataError(symbol, f"{name} is not a number: {column.iloc[row]!r}", row=row + 1)
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _period_mask(index: pd.DatetimeIndex, start: str | None, end: str | None, symbol: str) -> np.ndarray:
    keep = np.ones(len(index), dtype=bool)
    if start is not None:
        keep &= index >= _naive_timestamp(start, symbol)
    if end is not None:
        end_time = _naive_timestamp(end, symbol)
        if re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", str(end)):
            keep &= index < end_time + pd.Timedelta(days=1)
        else:
            keep &= index <= end_time
    return keep


def _naive_timestamp(text: str, symbol: str) -> pd.Timestamp:
    try:
        moment = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise DataError(symbol, f"cannot parse start/end {text!r}") from exc
    if moment.tz is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment


# ------------------------------------------------------------------------ validation


def validate_ohlcv(
    df: pd.DataFrame,
    symbol: str,
    min_bars: int = 2,
    *,
    row_numbers: np.ndarray | None = None,
) -> None:
    """Raise DataError for the first problem found, naming the symbol and row.

    Checks: a DatetimeIndex without missing values; finite, positive
    open/high/low/close; high not below low; strictly increasing timestamps
    (the row that goes backwards, or the second of two equal timestamps);
    at least ``min_bars`` bars. ``row_numbers`` maps positions in ``df`` to
    file row numbers when ``df`` is a filtered part of a file (default:
    position + 1).
    """
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(symbol, "data has no DatetimeIndex")

    def fail(position: int, message: str) -> DataError:
        row = int(row_numbers[position]) if row_numbers is not None else position + 1
        moment = index[position]
        return DataError(symbol, message, row=row, timestamp=None if pd.isna(moment) else moment)

    missing_time = np.flatnonzero(index.isna())
    if missing_time.size:
        raise fail(int(missing_time[0]), "missing timestamp")

    missing = [name for name in PRICE_COLUMNS if name not in df.columns]
    if missing:
        raise DataError(symbol, f"missing column(s): {', '.join(missing)}")
    # Close first: in a close-only file open/high/low are copies of it, and
    # the error should name the column the file actually has.
    prices = {
        name: df[name].to_numpy(dtype="float64", na_value=np.nan) for name in ("close", "open", "high", "low")
    }

    for name, values in prices.items():
        not_finite = np.flatnonzero(~np.isfinite(values))
        if not_finite.size:
            position = int(not_finite[0])
            value = values[position]
            raise fail(position, f"{name} is {'NaN' if np.isnan(value) else value}")
    for name, values in prices.items():
        not_positive = np.flatnonzero(values <= 0)
        if not_positive.size:
            position = int(not_positive[0])
            raise fail(position, f"{name} is not positive ({values[position]})")
    inverted = np.flatnonzero(prices["high"] < prices["low"])
    if inverted.size:
        position = int(inverted[0])
        raise fail(position, f"high ({prices['high'][position]}) is below low ({prices['low'][position]})")

    times = index.asi8
    not_increasing = np.flatnonzero(times[1:] <= times[:-1])
    if not_increasing.size:
        position = int(not_increasing[0]) + 1
        if times[position] == times[position - 1]:
            raise fail(position, "duplicate timestamp (same as the previous row)")
        raise fail(position, f"timestamp goes backwards (previous row is {index[position - 1]})")

    if len(df) < min_bars:
        raise DataError(symbol, f"only {len(df)} bars, the parameters need at least {min_bars}")


# ------------------------------------------------------------------ prepared arrays


