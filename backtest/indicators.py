"""Causal indicators on numpy arrays, written for speed without scipy or numba.

Every output at index t is computed from inputs at indices <= t only, and is
bit-for-bit the same whatever values follow t: no computation depends on the
array's length (the recursive filter's block layout is fixed by its decay
alone). The no-look-ahead tests and prefix evaluation rely on this.
"""

from __future__ import annotations

import numpy as np

# The recursive filter rescales values by decay**-k inside a block; capping the
# exponent at 300 (factor ~1e130) leaves room for inputs up to ~1e170.
_MAX_BLOCK_EXPONENT = 300.0
# Longer blocks mean fewer Python-level carry steps but larger temporaries and
# a longer cumulative sum (its rounding error grows with the block length).
_MAX_BLOCK_LENGTH = 4096


def exponential_filter(values: np.ndarray, decay: float, initial: float = 0.0) -> np.ndarray:
    """y[t] = decay * y[t-1] + (1 - decay) * values[t], starting from y[-1] = initial.

    A Python loop costs ~20 ms per 50k values, so the recursion is solved in
    fixed-length blocks instead. Inside a block the zero-start response is
    (1-decay) * decay**k * cumsum(values * decay**-k), one vectorised pass
    over all blocks at once (as rows of a 2-D array); each block's true start
    value then adds decay**(k+1) * start. Only the block start values are
    chained in Python, one step per block (a dozen for 50k values).
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    count = values.size
    if count == 0 or decay == 0.0:
        return values.copy()

    log_growth = -np.log(decay)  # decay**-k == exp(k * log_growth)
    block = int(max(1, min(_MAX_BLOCK_LENGTH, _MAX_BLOCK_EXPONENT // log_growth)))
    n_blocks = -(-count // block)
    padded = np.zeros(n_blocks * block)
    padded[:count] = values
    rows = padded.reshape(n_blocks, block)

    steps = np.arange(block) * log_growth
    responses = np.cumsum(rows * np.exp(steps), axis=1)
    responses *= (1.0 - decay) * np.exp(-steps)

    # Chain the blocks: a block ends at (its zero-start end) + decay**block * start.
    decay_per_block = decay**block
    starts = np.empty(n_blocks)
    state = float(initial)
    for index, zero_start_end in enumerate(responses[:, -1].tolist()):
        starts[index] = state
        state = zero_start_end + decay_per_block * state
    responses += np.outer(starts, np.exp(-steps) * decay)
    return responses.ravel()[:count]


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN until ``window`` values are available."""
    values = np.asarray(values, dtype=np.float64)
    result = np.full(values.size, np.nan)
    if window > values.size:
        return result
    # Summing deviations from the first value keeps the running sum small, so
    # differences of the running sum lose less precision over long series.
    base = values[0]
    running = np.cumsum(values - base)
    result[window - 1] = running[window - 1] / window
    result[window:] = (running[window:] - running[:-window]) / window
    return result + base


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), starting at the
    first value (pandas' ``ewm(span=span, adjust=False).mean()``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    return exponential_filter(values, decay=1.0 - 2.0 / (span + 1.0), initial=values[0])


def wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI (0..100); NaN for the first ``period`` bars.

    Average gain and loss start as plain means of the first ``period`` changes
    and are then smoothed with alpha = 1 / period. A bar whose average gain and
    loss are both zero (no movement at all) gets the neutral value 50.
    """
    close = np.asarray(close, dtype=np.float64)
    rsi = np.full(close.size, np.nan)
    if close.size <= period:
        return rsi
    changes = np.diff(close)
    gains = np.maximum(changes, 0.0)
    losses = np.maximum(-changes, 0.0)
    decay = 1.0 - 1.0 / period

    def wilder_average(moves: np.ndarray) -> np.ndarray:
        seed = moves[:period].mean()
        return np.concatenate(([seed], exponential_filter(moves[period:], decay, seed)))

    average_gain = wilder_average(gains)
    average_loss = wilder_average(losses)
    total = average_gain + average_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi[period:] = np.where(total > 0, 100.0 * average_gain / total, 50.0)
    return rsi


def _rolling_extreme(values: np.ndarray, window: int, pick) -> np.ndarray:
    """pick (np.maximum or np.minimum) over values[t-window+1 .. t]; NaN before.

    Doubling: after the loop ``spans[i]`` covers values[i .. i+span-1] with
    span the largest power of two <= window, and two overlapping spans cover
    any window. O(n log window) instead of O(n * window) for a sliding view.
    """
    values = np.asarray(values, dtype=np.float64)
    result = np.full(values.size, np.nan)
    if window > values.size:
        return result
    spans = values
    span = 1
    while span * 2 <= window:
        spans = pick(spans[:-span], spans[span:])
        span *= 2
    windows = values.size - window + 1
    result[window - 1 :] = pick(spans[:windows], spans[window - span : window - span + windows])
    return result


def previous_max(values: np.ndarray, window: int) -> np.ndarray:
    """Highest of the ``window`` values before t (t itself excluded); NaN before."""
    result = np.full(len(values), np.nan)
    result[1:] = _rolling_extreme(values, window, np.maximum)[:-1]
    return result


def previous_min(values: np.ndarray, window: int) -> np.ndarray:
    """Lowest of the ``window`` values before t (t itself excluded); NaN before."""
    result = np.full(len(values), np.nan)
    result[1:] = _rolling_extreme(values, window, np.minimum)[:-1]
    return result
