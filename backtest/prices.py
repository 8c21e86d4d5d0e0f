"""One symbol's bars as read-only numpy arrays, with cached indicators: what a backtest reads."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

import numpy as np
import pandas as pd

from .cache import IndicatorCache
from .data import PRICE_COLUMNS, validate_ohlcv
from .indicators import (
    ema,
    previous_max,
    previous_min,
    price_moves,
    running_sum,
    sma_from_running_sum,
    wilder_rsi_from_moves,
)

_NANOSECONDS_PER_YEAR = 365.25 * 24 * 3600 * 1e9


def _read_only(values: np.ndarray) -> np.ndarray:
    """``values`` as an array nothing can change: a read-only copy, unless they are
    already a read-only view of a file mapped read-only (runner's per-host data
    cache) — nothing can write those, and the processes of a host share their pages."""
    if _mapped_read_only(values):
        return values
    values = np.array(values, copy=True)
    values.setflags(write=False)
    return values


def _mapped_read_only(values: object) -> bool:
    if not isinstance(values, np.ndarray) or values.flags.writeable:
        return False
    base: object = values
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) and base.mode == "r":
            return True
        base = base.base
    return False


def close_to_close_returns(close: np.ndarray) -> np.ndarray:
    """close[t] / close[t-1] - 1, and 0 for the first bar."""
    returns = np.zeros(len(close))
    np.divide(close[1:], close[:-1], out=returns[1:])
    returns[1:] -= 1.0
    return returns


@dataclass(frozen=True, eq=False)
class PriceData:
    """One symbol's bars as read-only numpy arrays, prepared once per worker.

    ``close_returns[t]`` is close[t] / close[t-1] - 1 (0 for the first bar),
    precomputed because every backtest needs it. ``bars_per_year`` is measured
    from the timestamps ((bars - 1) / years spanned), so it fits any bar size
    and calendar: about 252 for exchange-traded daily bars, 8766 for 24/7 hourly.

    The indicator methods (``sma``, ``ema``, ``rsi``, ``previous_max``,
    ``previous_min``) return read-only arrays from ``indicator_cache``, an LRU
    shared with every ``head`` of this data: an optimizer that proposes a
    window it tried before gets the array back without recomputing it. What
    every window needs (the running sum of the closes, the bar-to-bar moves)
    is computed once, on first use, and kept (``indicator_cache.max_bytes = 0``
    turns off the caching of the per-window arrays only).
    """

    symbol: str
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    bars_per_year: float
    # close_returns computed before (a cache holds it, computed once per host); else from close.
    precomputed_returns: InitVar[np.ndarray | None] = None
    close_returns: np.ndarray = field(init=False, repr=False)
    indicator_cache: IndicatorCache = field(init=False, repr=False)
    # The full-length data a prefix (head) was cut from: indicators are computed on it,
    # so every prefix shares them.
    _root: PriceData = field(init=False, repr=False)

    def __post_init__(self, precomputed_returns: np.ndarray | None) -> None:
        for name in ("timestamps", "open", "high", "low", "close"):
            object.__setattr__(self, name, _read_only(getattr(self, name)))
        if precomputed_returns is None:
            returns = close_to_close_returns(self.close)
            returns.setflags(write=False)
        else:
            returns = _read_only(precomputed_returns)
            if returns.shape != self.close.shape:
                raise ValueError(f"close_returns has {len(returns)} values for {len(self.close)} bars")
        object.__setattr__(self, "close_returns", returns)
        object.__setattr__(self, "indicator_cache", IndicatorCache())
        object.__setattr__(self, "_root", self)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, symbol: str, *, validated: bool = False,
                   close_returns: np.ndarray | None = None) -> PriceData:
        """Validate a standard OHLCV frame (unless the caller has: ``validated``) and
        copy it into arrays — columns mapped read-only from a file are used as they
        are. ``close_returns``: the frame's, computed before (by a cache)."""
        if not validated:
            validate_ohlcv(df, symbol)
        timestamps = df.index.to_numpy(dtype="datetime64[ns]")
        span = (timestamps[-1] - timestamps[0]).astype("int64") / _NANOSECONDS_PER_YEAR
        return cls(
            symbol=symbol,
            timestamps=timestamps,
            open=df["open"].to_numpy(dtype="float64"),
            high=df["high"].to_numpy(dtype="float64"),
            low=df["low"].to_numpy(dtype="float64"),
            close=df["close"].to_numpy(dtype="float64"),
            bars_per_year=(len(df) - 1) / span,
            precomputed_returns=close_returns,
        )

    def __len__(self) -> int:
        return len(self.close)

    def head(self, bars: int) -> PriceData:
        """The first ``bars`` bars. Keeps this data's bars_per_year, so that
        annualised metrics of a prefix are comparable with the whole.

        The arrays are read-only views (nothing is copied) and the indicator
        cache is shared: an indicator at bar t depends on bars up to t only,
        so the prefix of the whole data's indicator is the prefix's indicator.
        """
        bars = len(self.close[:bars])
        prefix = object.__new__(PriceData)
        for name in ("symbol", "bars_per_year", "indicator_cache", "_root"):
            object.__setattr__(prefix, name, getattr(self, name))
        for name in ("timestamps", "open", "high", "low", "close", "close_returns"):
            object.__setattr__(prefix, name, getattr(self, name)[:bars])
        return prefix

    def return_range(self) -> tuple[float, float]:
        """Lowest and highest close-to-close return of the whole data (which
        bound those of every ``head``), cached."""
        root = self._root
        low, high = self.indicator_cache.get(
            ("return_range",), lambda: np.array([root.close_returns.min(), root.close_returns.max()]), pinned=True
        )
        return float(low), float(high)

    # ------------------------------------------------------------ cached indicators

    def _cached(self, key: tuple, compute) -> np.ndarray:
        return self.indicator_cache.get(key, compute)[: len(self.close)]

    def sma(self, window: int) -> np.ndarray:
        """``indicators.sma(close, window)``, cached (read-only)."""
        root = self._root
        window = int(window)

        def compute() -> np.ndarray:
            if window > len(root.close):
                return np.full(len(root.close), np.nan)
            running = root.indicator_cache.get(("running_sum",), lambda: running_sum(root.close), pinned=True)
            return sma_from_running_sum(running, root.close[0], window)

        return self._cached(("sma", window), compute)

    def ema(self, span: int) -> np.ndarray:
        """``indicators.ema(close, span)``, cached (read-only)."""
        root = self._root
        return self._cached(("ema", int(span)), lambda: ema(root.close, int(span)))

    def rsi(self, period: int) -> np.ndarray:
        """``indicators.wilder_rsi(close, period)``, cached (read-only)."""
        root = self._root
        period = int(period)

        def compute() -> np.ndarray:
            moves = root.indicator_cache.get(("price_moves",), lambda: price_moves(root.close), pinned=True)
            return wilder_rsi_from_moves(moves, period)

        return self._cached(("rsi", period), compute)

    def previous_max(self, column: str, window: int) -> np.ndarray:
        """``indicators.previous_max`` of a price column, cached (read-only)."""
        values = getattr(self._root, _price_column(column))
        return self._cached(("previous_max", column, int(window)), lambda: previous_max(values, int(window)))

    def previous_min(self, column: str, window: int) -> np.ndarray:
        """``indicators.previous_min`` of a price column, cached (read-only)."""
        values = getattr(self._root, _price_column(column))
        return self._cached(("previous_min", column, int(window)), lambda: previous_min(values, int(window)))


def _price_column(column: str) -> str:
    if column not in PRICE_COLUMNS:
        raise ValueError(f"column must be one of {', '.join(PRICE_COLUMNS)}, got {column!r}")
    return column
