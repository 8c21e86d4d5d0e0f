"""One call per optimizer trial: run a backtest and score it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .engine import run_backtest, simulate
from .metrics import compute_metrics
from .prices import PriceData
from .strategies import Strategy


def evaluate(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None = None,
    fees_bps: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss: float | None = None,
) -> dict[str, float]:
    """Backtest over the whole period and return its metrics (see metrics.METRICS)."""
    result = simulate(data, strategy, params, fees_bps, slippage_bps, stop_loss, reuse_buffers=True)
    return compute_metrics(result)


def evaluate_partial(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None,
    steps: int,
    fees_bps: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss: float | None = None,
) -> list[dict[str, float]]:
    """Metrics after k/steps of the bars, for k = 1..steps (for pruning).

    The backtest runs once on the full data; since nothing at bar t depends
    on later bars, the metrics of the first m bars equal those of a backtest
    run on those m bars alone. Step k covers the first ``len(data) * k // steps``
    bars (at least 2), so the last element equals ``evaluate(...)`` exactly.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    result = simulate(data, strategy, params, fees_bps, slippage_bps, stop_loss, reuse_buffers=True)
    bars = len(data)
    return [compute_metrics(result, upto=max(2, bars * k // steps)) for k in range(1, steps + 1)]


def evaluate_since(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None,
    start: int,
    fees_bps: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss: float | None = None,
) -> dict[str, float]:
    """Metrics of bars ``start`` onward (an out-of-sample window), the backtest run over
    all of ``data`` so that the strategy is warmed up when the window opens (see
    BacktestResult.since)."""
    result = run_backtest(data, strategy, params, fees_bps, slippage_bps, stop_loss)
    return compute_metrics(result.since(start))


def bar_returns(
    data: PriceData,
    strategy: str | Strategy,
    params: Mapping[str, object] | None,
    fees_bps: float = 0.0,
    slippage_bps: float = 0.0,
    stop_loss: float | None = None,
) -> np.ndarray:
    """The strategy's net return of every bar but the first (which has none)."""
    return run_backtest(data, strategy, params, fees_bps, slippage_bps, stop_loss).returns[1:]
