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
        mean = float(bar_returns.mean())
        deviation = float(bar_returns.std(ddof=1)) if bar_returns.size > 1 else 0.0
        downside = float(np.sqrt(np.mean(np.minimum(bar_returns, 0.0) ** 2)))
        exposure = float(np.count_nonzero(result.positions[1:bars]) / bar_returns.size)
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

    peaks = np.maximum.accumulate(equity)
    max_drawdown = float(np.max(1.0 - equity / peaks))
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


def _clip(value: float) -> float:
    return min(max(value, -RATIO_CAP), RATIO_CAP)


def _finite(value: float) -> float:
    """Last line of defence (e.g. equity overflowing after a million bars)."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return value if math.isfinite(value) else math.copysign(1e300, value)
