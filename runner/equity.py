"""A trial's equity curve, recomputed on demand (the app's "Equity curve" view).

The curve covers every bar of the symbol's data, in sample and holdout alike: growth
of 1.0 from the first bar's close, its drawdown below the running peak, buy-and-hold of
the symbol for reference, where the holdout starts and which bars the study trained on.
A built-in strategy is run again from the first bar (as the holdout's figures are); a
user's backtest is called on the whole frame and must give its per-bar returns under
"returns" (runner.study.RETURNS_KEY). :func:`thin` cuts a curve to a pane's width.

Nothing here imports Textual: the app draws what this module computes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .config import RunConfig
from .study import RETURNS_KEY, Objective


@dataclass(frozen=True, eq=False)
class EquityCurve:
    """One trial's curve. Every array has one value per point: per bar for the curve
    :func:`equity_curve` returns, per bucket of bars after :func:`thin`.

    ``times``: each point's timestamp (datetime64[ns]; ``labels`` gives them as text);
    ``index``: each point's bar number in the data (0 .. bars - 1);
    ``equity``: growth of 1.0 from the first bar's close (``equity[0] == 1``);
    ``drawdown``: ``equity`` below its running peak, a fraction <= 0 (-0.25: 25 % below);
    ``buy_hold``: the symbol's close relative to the first bar's (None without closes);
    ``holdout_start``: the point of the first out-of-sample bar (None without a holdout);
    ``window``: the points [start, end) the study trained on (a walk-forward fold's
    training window, else every bar before the holdout);
    ``total_return``, ``max_drawdown``: of ``equity`` over the bars of ``window``, as
    backtest.metrics defines them (``max_drawdown`` > 0), measured on every bar even after
    thinning. Over a window starting at the first bar they are the trial's own figures (a
    rolling fold's study ran on its window alone, warming up inside it: close, not equal).
    """

    study: str
    trial: int | None
    times: np.ndarray
    index: np.ndarray
    equity: np.ndarray
    drawdown: np.ndarray
    buy_hold: np.ndarray | None
    holdout_start: int | None
    window: tuple[int, int]
    total_return: float
    max_drawdown: float

    def __len__(self) -> int:
        return len(self.equity)

    @property
    def labels(self) -> list[str]:
        """``times`` as ISO-8601 text: dates alone when every point is at midnight, else to
        the second."""
        return [str(t) for t in np.datetime_as_string(self._times, unit=self._unit)]

    def label(self, i: int) -> str:
        """Point ``i``'s time as :attr:`labels` writes it, without writing them all."""
        return str(np.datetime_as_string(self._times[i], unit=self._unit))

    @property
    def _times(self) -> np.ndarray:
        return np.asarray(self.times, dtype="datetime64[ns]")

    @property
    def _unit(self) -> Literal["D", "s"]:
        times = self._times
        return "D" if bool(np.all(times == times.astype("datetime64[D]"))) else "s"


def equity_curve(cfg: RunConfig, symbol: str, params: Mapping[str, Any], fold: int | None = None,
                 trial: int | None = None) -> EquityCurve:
    """The equity curve of a trial's ``params`` (the searched ones; the config supplies the
    fixed ones) on ``symbol``, for the symbol's study or walk-forward fold ``fold``'s.
    ``trial``: its number, kept with the curve. Raises ValueError when a user's backtest
    gives no per-bar returns."""
    objective = Objective(cfg, symbol, fold)
    returns = objective.all_bar_returns(dict(params))
    if returns is None:
        raise ValueError(
            f"no equity curve for {cfg.strategy.name}: the user backtest must return its per-bar returns "
            f"under {RETURNS_KEY!r} (one number per bar of the data it is given) for an equity curve"
        )
    if not np.isfinite(returns).all():
        raise ValueError(f"the per-bar returns of {cfg.strategy.name} are not all finite numbers")
    bars = len(returns)
    times, close = objective.all_bar_prices()

    # The account opens at the first bar's close; a bar's growth is floored at zero (ruin), as
    # the engine's is. Built in: growth - 1 + 1 is the engine's growth, so its equity exactly.
    growth = returns[1:] + 1.0
    np.maximum(growth, 0.0, out=growth)
    equity = np.empty(bars)
    equity[0] = 1.0
    np.cumprod(growth, out=equity[1:])
    drawdown = _drawdown(equity)

    holdout = objective.holdout_start
    if fold is not None:  # a fold's study keeps no holdout of its own; the config's is after its folds
        last_fold_end = objective.fold_windows[-1][2]
        holdout = last_fold_end if last_fold_end < bars else None
        start, end, _ = objective.fold_windows[fold - 1]
    else:
        start, end = 0, bars if holdout is None else holdout
    total_return, max_drawdown = _figures(equity[start:end])
    buy_hold = None if close is None else np.asarray(close, dtype=np.float64) / float(close[0])
    return EquityCurve(
        study=cfg.study_name(symbol, fold), trial=trial, times=np.asarray(times, dtype="datetime64[ns]"),
        index=np.arange(bars), equity=equity, drawdown=drawdown, buy_hold=buy_hold, holdout_start=holdout,
        window=(start, end), total_return=total_return, max_drawdown=max_drawdown,
    )


def _drawdown(equity: np.ndarray) -> np.ndarray:
    """equity / running peak - 1 (the peak is >= equity[0] = 1, never zero)."""
    peaks = np.maximum.accumulate(equity)
    np.divide(equity, peaks, out=peaks)
    peaks -= 1.0
    return peaks


def _figures(equity: np.ndarray) -> tuple[float, float]:
    """Total return and maximum drawdown (> 0) of ``equity`` taken from its first value."""
    base = float(equity[0])
    if base <= 0.0:  # ruined before the window opened (a short in a rolling fold's warm-up)
        return -1.0, 1.0
    peaks = np.maximum.accumulate(equity)
    return float(equity[-1]) / base - 1.0, float(np.max(1.0 - equity / peaks))


def thin(curve: EquityCurve, columns: int) -> EquityCurve:
    """``curve`` with at most ``columns`` points (>= 2), so that a pane draws it at the same
    cost whatever the number of bars: the first bar alone, then the rest cut into
    ``columns - 1`` buckets of consecutive bars, each shown by its last bar's time, equity
    and buy-and-hold and by its deepest drawdown. The first and last values stay;
    ``holdout_start`` and ``window`` become points (a bucket counts as out of sample, or
    in the window, when its last bar does). A curve that fits comes back as it is."""
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 2:
        raise ValueError(f"columns must be an integer of at least 2, got {columns!r}")
    points = len(curve)
    if points <= columns:
        return curve
    ends = np.empty(columns, dtype=np.int64)  # each bucket's end (exclusive)
    ends[0] = 1
    ends[1:] = 1 + (points - 1) * np.arange(1, columns, dtype=np.int64) // (columns - 1)
    last = ends - 1
    starts = np.concatenate(([0], ends[:-1]))

    def point(bar_index: int) -> int:
        """The first bucket whose last point is ``bar_index`` or later (the number of
        buckets past the end): the one that holds it."""
        return int(np.searchsorted(last, bar_index, side="left"))

    start, end = curve.window
    return dataclasses.replace(
        curve,
        times=curve.times[last], index=curve.index[last], equity=curve.equity[last],
        drawdown=np.minimum.reduceat(curve.drawdown, starts),
        buy_hold=None if curve.buy_hold is None else curve.buy_hold[last],
        holdout_start=None if curve.holdout_start is None else point(curve.holdout_start),
        window=(point(start), point(end)),
    )
