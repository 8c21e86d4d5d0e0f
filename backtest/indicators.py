"""Causal indicators on numpy arrays, written for speed without scipy or numba.

Every output at index t is computed from inputs at indices <= t only, and is
bit-for-bit the same whatever values follow t: no computation depends on the
array's length (the recursive filter's block layout is fixed by its decay
alone). The no-look-ahead tests and prefix evaluation rely on this.
"""

from __future__ import annotations

import numpy as np

from .cache import scratch_buffer

# The recursive filter rescales values by decay**-k inside a block; capping the
# exponent at 300 (factor ~1e130) leaves room for inputs up to ~1e170.
_MAX_BLOCK_EXPONENT = 300.0
# Longer blocks mean fewer Python-level carry steps but larger temporaries and
# a longer cumulative sum (its rounding error grows with the block length).
_MAX_BLOCK_LENGTH = 4096
# Values per slice of the block-start correction (fits a core's L2 cache).
_OUTER_CHUNK = 1 << 15


def exponential_filter(values: np.ndarray, decay: float, initial: float = 0.0, *,
                       scratch: str | None = None) -> np.ndarray:
    """y[t] = decay * y[t-1] + (1 - decay) * values[t], starting from y[-1] = initial.

    A Python loop costs ~20 ms per 50k values, so the recursion is solved in
    fixed-length blocks instead. Inside a block the zero-start response is
    (1-decay) * decay**k * cumsum(values * decay**-k), one vectorised pass
    over all blocks at once (as rows of a 2-D array); each block's true start
    value then adds decay**(k+1) * start. Only the block start values are
    chained in Python, one step per block (a dozen for 50k values).

    Every step writes into one buffer (no padded copy of the input); the
    arithmetic is the same as ever, so results are bit for bit unchanged.
    ``scratch``: write into that named scratch buffer (see cache.scratch_buffer) instead
    of a new array, for a caller that is done with the result before the next such call.
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
    full_blocks = count // block
    steps = np.arange(block) * log_growth
    rise = np.exp(steps)
    fall = np.exp(-steps)

    if scratch is None:
        responses = np.empty((n_blocks, block))
    else:
        responses = scratch_buffer(scratch, n_blocks * block).reshape(n_blocks, block)
    np.multiply(values[: full_blocks * block].reshape(full_blocks, block), rise, out=responses[:full_blocks])
    if full_blocks < n_blocks:  # the last block, padded with zeros
        rest = count - full_blocks * block
        np.multiply(values[full_blocks * block :], rise[:rest], out=responses[-1, :rest])
        responses[-1, rest:] = 0.0
    np.cumsum(responses, axis=1, out=responses)
    responses *= (1.0 - decay) * fall

    # Chain the blocks: a block ends at (its zero-start end) + decay**block * start.
    decay_per_block = decay**block
    starts = np.empty(n_blocks)
    state = float(initial)
    for index, zero_start_end in enumerate(responses[:, -1].tolist()):
        starts[index] = state
        state = zero_start_end + decay_per_block * state
    # += outer(starts, fall * decay), a few rows at a time so that the outer
    # product stays in cache instead of being one more array of full size.
    start_response = fall * decay
    rows = max(1, _OUTER_CHUNK // block)
    chunk = np.empty((min(rows, n_blocks), block))
    for first in range(0, n_blocks, rows):
        part = chunk[: min(rows, n_blocks - first)]
        np.multiply.outer(starts[first : first + rows], start_response, out=part)
        responses[first : first + rows] += part
    return responses.ravel()[:count]


def running_sum(values: np.ndarray) -> np.ndarray:
    """cumsum(values - values[0]): what every simple moving average of ``values`` needs.

    Summing deviations from the first value keeps the running sum small, so
    differences of the running sum lose less precision over long series.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    running = np.subtract(values, values[0])
    return np.cumsum(running, out=running)


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN until ``window`` values are available."""
    values = np.asarray(values, dtype=np.float64)
    if window > values.size:
        return np.full(values.size, np.nan)
    return sma_from_running_sum(running_sum(values), values[0], window)


def sma_from_running_sum(running: np.ndarray, base: float, window: int) -> np.ndarray:
    """``sma(values, window)`` from ``running_sum(values)`` and ``base = values[0]``,
    so that one running sum serves every window."""
    result = np.empty(running.size)
    if window > running.size:
        result.fill(np.nan)
        return result
    result[: window - 1] = np.nan
    result[window - 1] = running[window - 1] / window
    tail = result[window:]
    np.subtract(running[window:], running[:-window], out=tail)
    tail /= window
    result += base
    return result


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), starting at the
    first value (pandas' ``ewm(span=span, adjust=False).mean()``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    return exponential_filter(values, decay=1.0 - 2.0 / (span + 1.0), initial=values[0])


def price_moves(close: np.ndarray) -> np.ndarray:
    """Rows 0 and 1: the gains and the losses (both >= 0) of each bar's close
    over the previous one, as Wilder's RSI of every period needs them."""
    close = np.asarray(close, dtype=np.float64)
    moves = np.empty((2, max(close.size - 1, 0)))
    np.subtract(close[1:], close[:-1], out=moves[0])
    np.negative(moves[0], out=moves[1])
    np.maximum(moves, 0.0, out=moves)
    return moves


def wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI (0..100); NaN for the first ``period`` bars.

    Average gain and loss start as plain means of the first ``period`` changes
    and are then smoothed with alpha = 1 / period. A bar whose average gain and
    loss are both zero (no movement at all) gets the neutral value 50.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.size <= period:
        return np.full(close.size, np.nan)
    return wilder_rsi_from_moves(price_moves(close), period)


def wilder_rsi_from_moves(moves: np.ndarray, period: int) -> np.ndarray:
    """``wilder_rsi(close, period)`` from ``price_moves(close)``."""
    bars = moves.shape[1] + 1
    rsi = np.empty(bars)
    if bars <= period:
        rsi.fill(np.nan)
        return rsi
    rsi[:period] = np.nan
    decay = 1.0 - 1.0 / period
    # The averages start at plain means of the first `period` moves (bar
    # `period`) and are smoothed from there on (bars after it).
    first_gain = moves[0, :period].mean()
    first_loss = moves[1, :period].mean()
    first_total = first_gain + first_loss
    rsi[period] = 100.0 * first_gain / first_total if first_total > 0 else 50.0
    if bars > period + 1:
        gain = exponential_filter(moves[0, period:], decay, first_gain, scratch="rsi_gain")
        total = exponential_filter(moves[1, period:], decay, first_loss, scratch="rsi_loss")
        total += gain
        smoothed = rsi[period + 1 :]
        with np.errstate(invalid="ignore", divide="ignore"):
            np.multiply(gain, 100.0, out=smoothed)
            smoothed /= total
        np.copyto(smoothed, 50.0, where=~(total > 0))
    return rsi


def _previous_extreme(values: np.ndarray, window: int, pick) -> np.ndarray:
    """pick (np.maximum or np.minimum) over values[t-window .. t-1]; NaN before.

    Doubling: after the loop ``spans[i]`` covers values[i .. i+span-1] with
    span the largest power of two <= window, and two overlapping spans cover
    any window. O(n log window) instead of O(n * window) for a sliding view;
    the doublings alternate between two reused scratch buffers.
    """
    values = np.asarray(values, dtype=np.float64)
    result = np.empty(values.size)
    if window >= values.size:
        result.fill(np.nan)
        return result
    result[:window] = np.nan
    spans = values
    span = 1
    while span * 2 <= window:
        out = scratch_buffer(f"extreme{span.bit_length() % 2}", spans.size - span)
        spans = pick(spans[:-span], spans[span:], out=out)
        span *= 2
    count = values.size - window
    pick(spans[:count], spans[window - span : window - span + count], out=result[window:])
    return result


def previous_max(values: np.ndarray, window: int) -> np.ndarray:
    """Highest of the ``window`` values before t (t itself excluded); NaN before."""
    return _previous_extreme(values, window, np.maximum)


def previous_min(values: np.ndarray, window: int) -> np.ndarray:
    """Lowest of the ``window`` values before t (t itself excluded); NaN before."""
    return _previous_extreme(values, window, np.minimum)
