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

Implementation: positions are piecewise constant, so the engine works on
their *runs* (start bar and position of each stretch of equal positions,
a few thousand for a million bars) wherever it can: shifting the signal,
the stop-loss, costs, trades and exposure are computed per run, and only
returns and equity are computed per bar, each in as few passes over the
arrays as numpy allows. The arithmetic per bar is unchanged, so results are
bit for bit those of the straightforward per-bar formulas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .cache import scratch_buffer
from .data import DataError
from .prices import PriceData
from .strategies import InvalidParams, Strategy, get_strategy


@dataclass(frozen=True)
class Runs:
    """Runs of constant position: run i holds ``values[i]`` over bars
    ``starts[i]`` up to the next start (the last up to the end). ``starts[0]``
    is 0 and neighbouring values differ. ``growth[i]`` is the product of the
    run's bar growth factors before costs (``max(1 + position * return, 0)``).
    """

    starts: np.ndarray
    values: np.ndarray
    growth: np.ndarray


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-bar arrays of one backtest (all of length ``len(data)``).

    ``positions[t]`` is held over bar t; ``asset_returns[t]`` is the close-to-
    close return of bar t; ``returns[t]`` is the strategy's return over bar t
    net of costs; ``equity`` starts at 1.0 and compounds ``returns``.
    ``runs`` describes ``positions`` run by run (what trades are built from).
    """

    timestamps: np.ndarray
    positions: np.ndarray
    asset_returns: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    cost_rate: float
    bars_per_year: float
    runs: Runs = field(repr=False)

    @cached_property
    def trades(self) -> np.ndarray:
        """Net return of every round trip over the whole backtest."""
        return self.trade_returns()

    def runs_upto(self, upto: int | None = None) -> Runs:
        """The runs of ``positions[:upto]`` (the last one cut at ``upto``)."""
        runs = self.runs
        bars = len(self.positions[:upto])
        if bars == len(self.positions):
            return runs
        if bars == 0:
            return Runs(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0))
        count = int(np.searchsorted(runs.starts, bars))
        growth = runs.growth[:count]
        last = int(runs.starts[count - 1])
        end = int(runs.starts[count]) if count < runs.starts.size else len(self.positions)
        if end > bars:  # the last run is cut: its growth so far, computed as for a run ending here
            growth = growth.copy()
            growth[-1] = _run_growth(self.positions[last:bars], self.asset_returns[last:bars], [0])[0]
        return Runs(runs.starts[:count], runs.values[:count], growth)

    def trade_returns(self, upto: int | None = None) -> np.ndarray:
        """Net return of each trade in the first ``upto`` bars (default: all).

        A trade is a run of bars holding the same non-zero position (a flip
        from long to short is two trades). Its return compounds the bars it is
        held, its entry cost and, if it closes inside the period, its exit
        cost; a trade still open at the end is valued at the last close
        without an exit cost, matching the equity curve.
        """
        runs = self.runs_upto(upto)
        if runs.starts.size == 0:
            return np.empty(0)
        sizes = np.abs(runs.values)
        closed = np.ones(sizes.size)
        closed[:-1] = 2.0  # every run but the last ends inside the period
        costs = (1.0 - self.cost_rate) ** (sizes * closed)
        is_trade = sizes > 0
        return runs.growth[is_trade] * costs[is_trade] - 1.0

    def since(self, start: int) -> BacktestResult:
        """The backtest measured from bar ``start`` on, as an account opened at the close
        of bar ``start - 1`` sees it: that bar is the new first bar (flat, equity 1), the
        position the strategy holds over bar ``start`` is entered then at its cost, and
        every later bar is as in the whole run. The strategy's indicators had every earlier
        bar to warm up on, as they would trading live; nothing before ``start`` enters the
        figures. An account ruined before ``start`` stays ruined (equity 0)."""
        bars = len(self.positions)
        if not 1 <= start < bars:
            raise ValueError(f"start {start} must be within 1 .. {bars - 1}")
        anchor = start - 1
        positions = np.array(self.positions[anchor:], dtype=np.float64)
        asset_returns = np.array(self.asset_returns[anchor:], dtype=np.float64)
        returns = np.array(self.returns[anchor:], dtype=np.float64)
        positions[0] = asset_returns[0] = returns[0] = 0.0
        held = positions[1]
        # The first measured bar: the whole entry cost of the held position (the whole run
        # paid only for the change of position there, or nothing if it was carried in).
        first = max(1.0 + held * asset_returns[1], 0.0) * (1.0 - self.cost_rate) ** abs(held)
        returns[1] = first - 1.0
        equity = np.empty(len(positions))
        equity[0] = 1.0
        base = float(self.equity[start])
        if base > 0.0 and float(self.equity[anchor]) > 0.0:
            equity[1:] = first * (self.equity[start:] / base)
        else:
            equity[1:] = 0.0
        starts, values = runs_of(positions)
        return BacktestResult(
            timestamps=self.timestamps[anchor:], positions=positions, asset_returns=asset_returns, returns=returns,
            equity=equity, cost_rate=self.cost_rate, bars_per_year=self.bars_per_year,
            runs=Runs(starts, values, _run_growth(positions, asset_returns, starts)),
        )

    def held_bars(self, upto: int | None = None) -> int:
        """How many of bars 1 .. upto-1 hold a non-zero position."""
        return int(np.count_nonzero(self.positions[1:upto]))


def runs_of(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and float64 values of the runs of equal values in ``signal``
    (any numeric or bool array; -0.0 equals 0.0)."""
    if signal.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    changes = np.flatnonzero(signal[1:] != signal[:-1])
    starts = np.empty(changes.size + 1, dtype=np.int64)
    starts[0] = 0
    np.add(changes, 1, out=starts[1:])
    return starts, signal[starts].astype(np.float64)


def _run_growth(held: np.ndarray, asset_returns: np.ndarray, starts) -> np.ndarray:
    """Product of each run's bar growth before costs (max(1 + held * r, 0))."""
    growth = np.multiply(held, asset_returns)
    growth += 1.0
    np.maximum(growth, 0.0, out=growth)
    return np.multiply.reduceat(growth, starts)


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
    return simulate(data, strategy, params, fees_bps, slippage_bps, stop_loss, reuse_buffers=False)


def simulate(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None,
    fees_bps: float,
    slippage_bps: float,
    stop_loss: float | None,
    *,
    reuse_buffers: bool,
) -> BacktestResult:
    """``run_backtest``; with ``reuse_buffers`` the per-bar arrays of the
    result live in this thread's scratch buffers (see cache.scratch_buffer)
    and stay valid only until the next such call: for callers that reduce
    the result to metrics at once. ``positions`` may then be int8."""
    chosen = get_strategy(strategy) if isinstance(strategy, str) else strategy
    resolved = chosen.resolve_params(params)
    bars = len(data)
    signal = np.asarray(chosen.signal_fn(data, **resolved))
    if signal.dtype.kind not in "biu":  # integer levels are used as they are
        signal = signal.astype(np.float64, copy=False)
    needed = chosen.min_bars(resolved)
    if bars < needed:
        raise DataError(data.symbol, f"only {bars} bars, the parameters need at least {needed}")
    integers = signal.dtype.kind in "biu"  # finite by construction
    if signal.shape != (bars,) or not (integers or np.isfinite(signal).all()):
        raise ValueError(
            f"strategy {chosen.name} must return {bars} finite positions, got shape {signal.shape}"
        )
    cost_rate = _cost_rate(fees_bps, slippage_bps)

    starts, values = _held_runs(*runs_of(signal), bars)
    if stop_loss is not None:
        starts, values = _apply_stop_loss(starts, values, data.close, _stop_fraction(stop_loss))

    lengths = np.diff(starts, append=bars)
    if reuse_buffers and _small_integers(values):
        held = np.repeat(values.astype(np.int8), lengths)  # a byte a bar; exact in the products below
        growth = np.multiply(held, data.close_returns, out=scratch_buffer("growth", bars))
    else:
        held = np.repeat(values, lengths)
        growth = np.multiply(held, data.close_returns)
    growth += 1.0
    if _may_lose_everything(values, data):
        np.maximum(growth, 0.0, out=growth)
    run_growth = np.multiply.reduceat(growth, starts)
    if cost_rate > 0.0 and starts.size > 1:
        # (1 - cost) ** units traded, at the first bar of each new position
        # (a factor of exactly 1 everywhere else).
        growth[starts[1:]] *= (1.0 - cost_rate) ** np.abs(np.diff(values))
    equity = np.cumprod(growth, out=scratch_buffer("equity", bars) if reuse_buffers else None)
    returns = np.subtract(growth, 1.0, out=growth)
    return BacktestResult(
        timestamps=data.timestamps,
        positions=held,
        asset_returns=data.close_returns,
        returns=returns,
        equity=equity,
        cost_rate=cost_rate,
        bars_per_year=data.bars_per_year,
        runs=Runs(starts, values, run_growth),
    )


def _held_runs(starts: np.ndarray, values: np.ndarray, bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of the held positions from the runs of the signal: the signal of
    bar t is held over bar t+1, and the first bar is flat."""
    if values[0] == 0.0:  # the flat first bar joins the signal's first run
        held_starts = starts + 1
        held_starts[0] = 0
        held_values = values
    else:
        held_starts = np.concatenate(([0], starts + 1))
        held_values = np.concatenate(([0.0], values))
    if held_starts[-1] >= bars:  # the signal of the last bar is never held
        held_starts, held_values = held_starts[:-1], held_values[:-1]
    return held_starts, held_values


def _small_integers(values: np.ndarray) -> bool:
    """Whether every value is an integer that int8 holds."""
    return bool(np.all(np.abs(values) <= 127.0) and np.all(values == np.round(values)))


def _may_lose_everything(values: np.ndarray, data: PriceData) -> bool:
    """Whether 1 + position * return can fall below zero on some bar: only
    then does the floor at zero need a pass over the bars. Decided from the
    extreme positions and the extreme returns of the whole data (which bound
    those of any prefix)."""
    low, high = data.return_range()
    smallest = min(values.min() * low, values.min() * high, values.max() * low, values.max() * high)
    return not smallest >= -1.0


def _apply_stop_loss(
    starts: np.ndarray, values: np.ndarray, close: np.ndarray, stop_loss: float
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten each trade from the bar after its loss first reaches ``stop_loss``.

    A trade's entry close is the close of the bar before its run (where the
    entry traded). Its loss at each bar's close is checked per bar; the first
    bar at or past the stop, found per run with one search in the sorted hit
    bars, splits the run into the part held and a flat rest. Runs are those
    of the strategy's own positions, so after a stop the position stays flat
    until the strategy's signal changes.
    """
    lengths = np.diff(starts, append=close.size)
    active = np.flatnonzero(values != 0.0)
    if active.size == 0:
        return starts, values
    loss = np.repeat(close[np.maximum(starts - 1, 0)], lengths)  # each bar's entry close
    np.divide(close, loss, out=loss)
    np.subtract(1.0, loss, out=loss)  # the loss of a long; a short's is its negative
    side = np.repeat(np.sign(values).astype(np.int8), lengths)
    hit = np.greater_equal(loss, stop_loss)
    hit &= side > 0
    short_hit = np.less_equal(loss, -stop_loss)
    short_hit &= side < 0
    hit |= short_hit
    hits = np.flatnonzero(hit)
    if hits.size == 0:
        return starts, values
    first = np.searchsorted(hits, starts[active])
    found = first < hits.size
    active, first_hit = active[found], hits[first[found]]
    flat_from = first_hit + 1
    ends = starts[active] + lengths[active]
    stopped = flat_from < ends
    if not stopped.any():
        return starts, values
    flat_from = flat_from[stopped]
    new_starts = np.concatenate((starts, flat_from))
    new_values = np.concatenate((values, np.zeros(flat_from.size)))
    order = np.argsort(new_starts, kind="stable")
    new_starts, new_values = new_starts[order], new_values[order]
    keep = np.ones(new_values.size, dtype=bool)
    keep[1:] = new_values[1:] != new_values[:-1]  # a flat rest joins a flat run after it
    return new_starts[keep], new_values[keep]


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
