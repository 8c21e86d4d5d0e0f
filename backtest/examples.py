"""A small example of a user backtest (see backtest.user for the contract).

Use it in a config as ``backtest.examples:trend_filtered_hold``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def trend_filtered_hold(params: dict, data: pd.DataFrame) -> dict[str, float]:
    """Hold the asset only while its close is at least ``threshold`` above its
    ``lookback``-bar average; otherwise stay in cash.

    Params: ``lookback`` (bars, default 50), ``threshold`` (fraction, default 0.0).
    Returns total_return, max_drawdown and exposure.
    """
    lookback = int(params.get("lookback", 50))
    threshold = float(params.get("threshold", 0.0))
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")

    close = data["close"]
    invested = close > close.rolling(lookback).mean() * (1.0 + threshold)
    # Decided at a bar's close, so held over the next bar: no look-ahead.
    held = invested.shift(1, fill_value=False).astype(float)
    equity = (1.0 + held * close.pct_change().fillna(0.0)).cumprod()
    drawdown = 1.0 - equity / equity.cummax()
    return {
        "total_return": float(equity.iloc[-1] - 1.0),
        "max_drawdown": float(drawdown.max()),
        "exposure": float(np.mean(held.to_numpy()[1:] != 0.0)) if len(held) > 1 else 0.0,
    }
