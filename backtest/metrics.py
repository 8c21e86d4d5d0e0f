"""Performance metrics of a backtest, every one a finite float.

The optimizer rejects NaN and infinity, so each metric has an explicit rule
for the cases where its textbook formula has no finite value:

* sharpe: 0 when the returns have (numerically) zero volatility.
* sortino: 0 when there is no downside and no positive mean; RATIO_CAP when
  there is no downside but a positive mean (no losing bar at all).
* calmar and return_on_risk: the drawdown in the denominator is floored at
  DRAWDOWN_FLOOR (1 %), so a run with no or a tiny drawdown scores
  100 x its return instead of dividing by zero, and a lucky run without
  losses cannot dominate an optimization with an arbitrarily large ratio.
* profit_factor: gross profit / gross loss of trades; RATIO_CAP when there
  are winning trades and no losing ones, 0 when there are no winning trades
  (so also with no trades at all).
* win_rate: 0 with no trades.
* cagr: -1 once equity is zero (ruin); 0 for a period of zero length.
* Ratios (sharpe, sortino, calmar, return_on_risk, profit_factor, cagr) are
  clipped to [-RATIO_CAP, RATIO_CAP]; annualising a short, lucky prefix can
  otherwise overflow.

Annualisation uses the data's measured ``bars_per_year``, never 252.
``max_drawdown`` is a positive fraction (0.25 means equity fell 25 % below
its running peak).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .cache import scratch_buffer

if TYPE_CHECKING:
    from .engine import BacktestResult

METRICS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "return_on_risk",
)
METRIC_DIRECTIONS = {
    name: "minimize" if name in ("max_drawdown", "volatility") else "maximize" for name in METRICS
}

RATIO_CAP = 1000.0
DRAWDOWN_FLOOR = 0.01
# Volatility below this fraction of the mean return's size is rounding noise
# (e.g. a constant position on a constant-growth price), treated as zero.
_RELATIVE_NOISE = 1e-9


def compute_metrics(result: BacktestResult, upto: int | None = None) -> dict[str, float]:
    """Metrics of the first ``upto`` bars of ``result`` (default: all bars).

    Because returns at bar t depend on data up to t only, this equals the
    metrics of a backtest run on those first ``upto`` bars alone (same
    bars_per_year).
    """
    bars = len(result.returns) if upto is None else max(1, min(int(upto), len(result.returns)))
    equity = result.equity[:bars]
    bar_returns = result.returns[1:bars]  # the first bar has no return
    bars_per_year = result.bars_per_year
    trade_returns = result.trades if bars == len(result.returns) else result.trade_returns(bars)

    final_equity = float(equity[-1])
    total_return = final_equity - 1.0
    years = (bars - 1) / bars_per_year
    if final_equity <= 0.0:
        cagr = -1.0
    elif years > 0.0:
        cagr = math.expm1(min(math.log(final_equity) / years, math.log(RATIO_CAP + 1.0)))
    else:
        cagr = 0.0

    if bar_returns.size:
        # np.mean, np.std(ddof=1) and np.sqrt(np.mean(np.minimum(r, 0) ** 2)),
        # step by step as numpy computes them (same results), in one scratch buffer.
        count = bar_returns.size
        scratch = scratch_buffer("metrics", count)
        mean = float(np.add.reduce(bar_returns)) / count
        if count > 1:
            np.subtract(bar_returns, mean, out=scratch)
            np.multiply(scratch, scratch, out=scratch)
            deviation = math.sqrt(float(np.add.reduce(scratch)) / (count - 1))
        else:
            deviation = 0.0
        np.minimum(bar_returns, 0.0, out=scratch)
        np.multiply(scratch, scratch, out=scratch)
        downside = math.sqrt(float(np.add.reduce(scratch)) / count)
        exposure = result.held_bars(bars) / count
    else:
        mean = deviation = downside = exposure = 0.0
    annualiser = math.sqrt(bars_per_year)
    if deviation <= _RELATIVE_NOISE * abs(mean):
        deviation = 0.0
    sharpe = mean / deviation * annualiser if deviation > 0.0 else 0.0
    if downside > 0.0:
        sortino = mean / downside * annualiser
    else:
        sortino = RATIO_CAP if mean > 0.0 else 0.0

    max_drawdown = _max_drawdown(equity)
    risk = max(max_drawdown, DRAWDOWN_FLOOR)

    wins = trade_returns[trade_returns > 0.0]
    gross_loss = -float(trade_returns[trade_returns < 0.0].sum())
    gross_win = float(wins.sum())
    if gross_loss > 0.0:
        profit_factor = gross_win / gross_loss
    else:
        profit_factor = RATIO_CAP if gross_win > 0.0 else 0.0

    metrics = {
        "total_return": total_return,
        "cagr": _clip(cagr),
        "volatility": deviation * annualiser,
        "sharpe": _clip(sharpe),
        "sortino": _clip(sortino),
        "calmar": _clip(cagr / risk),
        "max_drawdown": max_drawdown,
        "trades": float(trade_returns.size),
        "win_rate": wins.size / trade_returns.size if trade_returns.size else 0.0,
        "profit_factor": _clip(profit_factor),
        "exposure": exposure,
        "return_on_risk": _clip(total_return / risk),
    }
    return {name: _finite(value) for name, value in metrics.items()}


# Bars per block of the drawdown search (see _max_drawdown).
_DRAWDOWN_BLOCK = 2048


def _max_drawdown(equity: np.ndarray) -> float:
    """max(1 - equity / running peak), exactly, without a running maximum over
    every bar (a sequential scan, the slowest pass of all).

    The equity is cut into blocks; one vectorised pass each finds every
    block's highest and lowest value, hence the peak before each block. A
    block that makes no new high has its drawdown at its lowest value, the
    peak being the one before it; for the others that value is a lower bound
    and the lowest value against the block's own high an upper bound. Only
    blocks whose upper bound beats the best value found are scanned bar by
    bar. Each value is the same expression of the same two numbers as in the
    per-bar formula (rounding is monotonic, so the bounds hold for the
    rounded values too): the result is identical.
    """
    blocks = equity.size // _DRAWDOWN_BLOCK
    if blocks < 4:
        return _block_drawdown(equity, None)
    body = equity[: blocks * _DRAWDOWN_BLOCK].reshape(blocks, _DRAWDOWN_BLOCK)
    tail = equity[blocks * _DRAWDOWN_BLOCK :]
    highs = body.max(axis=1)
    lows = body.min(axis=1)
    if tail.size:
        highs = np.append(highs, tail.max())
        lows = np.append(lows, tail.min())
    if not (np.isfinite(highs).all() and np.isfinite(lows).all() and highs[0] > 0.0):
        return _block_drawdown(equity, None)  # overflow or ruin from the start: the plain formula
    peaks_before = np.maximum.accumulate(highs)[:-1]  # of blocks 1, 2, ...
    later_highs, later_lows = highs[1:], lows[1:]
    lower = 1.0 - later_lows / peaks_before
    upper = 1.0 - later_lows / np.maximum(peaks_before, later_highs)
    best = max(_block_drawdown(equity[:_DRAWDOWN_BLOCK], None), float(lower.max()))
    candidates = np.flatnonzero((upper > best) & (later_highs > peaks_before))
    for index in candidates[np.argsort(-upper[candidates], kind="stable")].tolist():
        if upper[index] <= best:
            break
        first = (index + 1) * _DRAWDOWN_BLOCK
        block = equity[first : first + _DRAWDOWN_BLOCK]
        best = max(best, _block_drawdown(block, float(peaks_before[index])))
    return best


def _block_drawdown(equity: np.ndarray, peak_before: float | None) -> float:
    """max(1 - equity / running peak) over ``equity``, the running peak
    starting from ``peak_before`` (None: from the first value)."""
    peaks = np.maximum.accumulate(equity)
    if peak_before is not None:
        np.maximum(peaks, peak_before, out=peaks)
    np.divide(equity, peaks, out=peaks)
    np.subtract(1.0, peaks, out=peaks)
    return float(np.max(peaks))


def _clip(value: float) -> float:
    return min(max(value, -RATIO_CAP), RATIO_CAP)


def _finite(value: float) -> float:
    """Last line of defence (e.g. equity overflowing after a million bars)."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return value if math.isfinite(value) else math.copysign(1e300, value)
