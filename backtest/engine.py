"""The backtest engine: turns a strategy's signals into held positions, costs,
returns, equity and trades, all vectorised over bars.

Timing convention (no look-ahead): the signal of bar t is decided at bar t's
close and traded there, so the position held over bar t+1 (earning bar t+1's
close-to-close return) is the signal of bar t. The first bar is always flat.

Costs: each unit of position traded costs ``(fees_bps + slippage_bps) / 1e4``
of equity, charged at the first bar the new position is held (the bar whose
return the trade affects), as the factor ``(1 - cost) ** |change|``; for a
change of one unit this is exactly a deduction of ``cost``. Charging there,
rather than at the signal bar, keeps every bar's return a function of data up
to that bar only, so the metrics of a prefix equal those of a backtest run on
that prefix alone. Equity is floored at zero (a short can lose more than 100 %
in one bar; the account is then ruined and stays at zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .data import DataError, PriceData
from .strategies import InvalidParams, Strategy, get_strategy


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-bar arrays of one backtest (all of length ``len(data)``).

    ``positions[t]`` is held over bar t; ``asset_returns[t]`` is the close-to-
    close return of bar t; ``returns[t]`` is the strategy's return over bar t
    net of costs; ``equity`` starts at 1.0 and compounds ``returns``.
    """

    timestamps: np.ndarray
    positions: np.ndarray
    asset_returns: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    cost_rate: float
    bars_per_year: float

    @cached_property
    def trades(self) -> np.ndarray:
        """Net return of every round trip over the whole backtest."""
        return self.trade_returns()

    def trade_returns(self, upto: int | None = None) -> np.ndarray:
        """Net return of each trade in the first ``upto`` bars (default: all).

        A trade is a run of bars holding the same non-zero position (a flip
        from long to short is two trades). Its return compounds the bars it is
        held, its entry cost and, if it closes inside the period, its exit
        cost; a trade still open at the end is valued at the last close
        without an exit cost, matching the equity curve.
        """
        held = self.positions[:upto]
        if held.size == 0:
            return np.empty(0)
        run_starts = np.flatnonzero(np.diff(held, prepend=0.0))
        if run_starts.size == 0:
            return np.empty(0)
        bar_growth = np.maximum(1.0 + held * self.asset_returns[:upto], 0.0)
        run_growth = np.multiply.reduceat(bar_growth, run_starts)
        run_sizes = np.abs(held[run_starts])
        closed = np.append(run_starts[1:], held.size) < held.size
        unit_cost_factor = 1.0 - self.cost_rate
        costs = unit_cost_factor ** (run_sizes * np.where(closed, 2.0, 1.0))
        is_trade = run_sizes > 0
        return run_growth[is_trade] * costs[is_trade] - 1.0


def run_backtest(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None = None,
    fees_bps: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss: float | None = None,
) -> BacktestResult:
    """Backtest one parameter set of a strategy on prepared data.

    ``params`` overlays the strategy's defaults; unknown names raise
    InvalidParams. Data shorter than the strategy's ``min_bars(params)``
    raises DataError. ``stop_loss`` (a fraction, e.g. 0.05): when a trade's
    loss from its entry close reaches it at some bar's close, the trade is
    closed at that close and the strategy stays flat until its signal changes
    (goes flat, flips, or re-enters after going flat).
    """
    chosen = get_strategy(strategy) if isinstance(strategy, str) else strategy
    resolved = chosen.resolve_params(params)
    signal = np.asarray(chosen.signal_fn(data, **resolved), dtype=np.float64)
    bars = len(data)
    needed = chosen.min_bars(resolved)
    if bars < needed:
        raise DataError(data.symbol, f"only {bars} bars, the parameters need at least {needed}")
    if signal.shape != (bars,) or not np.isfinite(signal).all():
        raise ValueError(
            f"strategy {chosen.name} must return {bars} finite positions, got shape {signal.shape}"
        )
    cost_rate = _cost_rate(fees_bps, slippage_bps)

    held = np.empty(bars)
    held[0] = 0.0
    held[1:] = signal[:-1]
    if stop_loss is not None:
        held = _apply_stop_loss(held, data.close, _stop_fraction(stop_loss))

    growth = np.maximum(1.0 + held * data.close_returns, 0.0)
    if cost_rate > 0.0:
        units_traded = np.abs(np.diff(held, prepend=0.0))
        growth *= (1.0 - cost_rate) ** units_traded
    return BacktestResult(
        timestamps=data.timestamps,
        positions=held,
        asset_returns=data.close_returns,
        returns=growth - 1.0,
        equity=np.cumprod(growth),
        cost_rate=cost_rate,
        bars_per_year=data.bars_per_year,
    )


def _apply_stop_loss(held: np.ndarray, close: np.ndarray, stop_loss: float) -> np.ndarray:
    """Flatten each trade from the bar after its loss first reaches ``stop_loss``.

    Vectorised per bar: every bar knows where its run of constant position
    started (a running maximum of run-start indices), hence the entry close
    (the close of the bar before the run, where the entry traded). A bar is
    flattened if any earlier bar of the same run hit the stop, counted as a
    difference of a running count of hits. Runs are those of the strategy's
    own positions, so after a stop the position stays flat until the
    strategy's signal changes.
    """
    bar = np.arange(held.size)
    run_start = np.maximum.accumulate(np.where(np.diff(held, prepend=0.0) != 0.0, bar, 0))
    entry_close = close[np.maximum(run_start - 1, 0)]
    loss = np.sign(held) * (1.0 - close / entry_close)
    hit = (held != 0.0) & (loss >= stop_loss)
    hits_before = np.zeros(held.size, dtype=np.int64)
    np.cumsum(hit[:-1], out=hits_before[1:])
    stopped = hits_before > hits_before[run_start]
    return np.where(stopped, 0.0, held)


def _cost_rate(fees_bps: float, slippage_bps: float) -> float:
    rate = (float(fees_bps) + float(slippage_bps)) / 1e4
    if not (math.isfinite(rate) and fees_bps >= 0 and slippage_bps >= 0 and rate < 1.0):
        raise InvalidParams(
            f"fees_bps ({fees_bps}) and slippage_bps ({slippage_bps}) must be >= 0 and sum below 10000"
        )
    return rate


def _stop_fraction(stop_loss: float) -> float:
    value = float(stop_loss)
    if not (math.isfinite(value) and value > 0.0):
        raise InvalidParams(f"stop_loss must be a positive fraction (0.05 = 5 %), got {stop_loss!r}")
    return value
