"""Time one optimizer trial's backtest call per built-in strategy.

Run from the repository root: python benchmarks/bench_backtest.py
Not a test (pytest does not collect it). For 50k and 1M bars it prints, per
strategy (MA crossover with SMA and with EMA, RSI reversion, channel breakout),
without and with a 5 % stop loss, the milliseconds per evaluate() call (median
of --repeats runs):

* new: a parameter set the worker has not seen (the indicator cache holds
  none of its indicators, only what every parameter set shares, such as the
  running sum of the closes);
* seen: the same parameter set again, its indicators taken from the cache;
* partial(10): evaluate_partial() with 10 steps (cached);
* pruned(10): what the runner does for a trial under a pruner with 10 steps,
  evaluate() on data.head() of 1/10, 2/10, ... of the bars and then on all of
  them, for a new parameter set: the heads share the cache, so the
  indicators are computed once for the trial (shown: with the cache, and in
  brackets without it);

next to the yardstick: a plain numpy backtest of an SMA crossover (the same
signal, next-bar execution, fees and the usual metrics, written the obvious
way), timed in the same loop, so that the ratio strategy / yardstick is
comparable between runs on a busy machine even when the milliseconds are not.

Then the indicator cache on a realistic sequence: the parameter sets that
Optuna's TPE sampler proposes (--tpe-trials, recorded on 50k bars) are replayed
on each data size with the cache on and off: hit rate of the indicator lookups,
mean ms per trial both ways, and the hit rate for smaller and larger budgets.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from backtest import (
    InvalidParams,
    PriceData,
    evaluate,
    evaluate_partial,
    synthetic_ohlcv,
)
from backtest.cache import DEFAULT_CACHE_BYTES

CASES = (
    ("ma_crossover sma", "ma_crossover", {"fast": 20, "slow": 100, "ma_type": "sma"}),
    ("ma_crossover ema", "ma_crossover", {"fast": 20, "slow": 100, "ma_type": "ema", "allow_short": True}),
    (
        "rsi_reversion",
        "rsi_reversion",
        {"period": 14, "lower": 30, "upper": 70, "exit": 50, "allow_short": True},
    ),
    ("channel_breakout", "channel_breakout", {"lookback": 55, "exit_lookback": 20, "allow_short": True}),
)
COSTS = {"fees_bps": 1.0, "slippage_bps": 1.0}
STOP_LOSS = 0.05
YARDSTICK = {"fast": 20, "slow": 100}

# Search spaces for the TPE sequence: the demo config's for the MA crossover.
SPACES = {
    "ma_crossover": {
        "fast": ("int", 2, 400, 1),
        "slow": ("int", 20, 2000, 10),
        "ma_type": ("cat", ["sma", "ema"]),
    },
    "rsi_reversion": {
        "period": ("int", 2, 50, 1),
        "lower": ("float", 10.0, 40.0),
        "exit": ("float", 40.0, 60.0),
        "upper": ("float", 60.0, 90.0),
        "allow_short": ("cat", [False, True]),
    },
    "channel_breakout": {
        "lookback": ("int", 5, 400, 1),
        "exit_lookback": ("int", 5, 200, 1),
        "allow_short": ("cat", [False, True]),
    },
}


# ---------------------------------------------------------------- the yardstick


def yardstick(data: PriceData, fast: int, slow: int, cost: float) -> dict[str, float]:
    """A plain numpy SMA crossover backtest, written the obvious way."""
    close, returns = data.close, data.close_returns
    bars = close.size
    running = np.cumsum(close - close[0])

    def sma(window: int) -> np.ndarray:
        average = np.full(bars, np.nan)
        average[window - 1] = running[window - 1] / window
        average[window:] = (running[window:] - running[:-window]) / window
        return average + close[0]

    signal = (sma(fast) > sma(slow)).astype(np.float64)
    held = np.zeros(bars)
    held[1:] = signal[:-1]
    bar_growth = np.maximum(1.0 + held * returns, 0.0)
    growth = bar_growth * (1.0 - cost) ** np.abs(np.diff(held, prepend=0.0))
    equity = np.cumprod(growth)
    bar_returns = growth[1:] - 1.0
    mean, deviation = bar_returns.mean(), bar_returns.std(ddof=1)
    downside = np.sqrt(np.mean(np.minimum(bar_returns, 0.0) ** 2))
    drawdown = np.max(1.0 - equity / np.maximum.accumulate(equity))
    starts = np.flatnonzero(np.diff(held, prepend=0.0))
    runs = np.multiply.reduceat(bar_growth, starts)
    sizes = np.abs(held[starts])
    closed = np.append(starts[1:], bars) < bars
    trades = (runs * (1.0 - cost) ** (sizes * np.where(closed, 2.0, 1.0)))[sizes > 0] - 1.0
    annual = math.sqrt(data.bars_per_year)
    return {
        "total_return": equity[-1] - 1.0,
        "sharpe": mean / deviation * annual,
        "sortino": mean / downside * annual,
        "max_drawdown": drawdown,
        "trades": trades.size,
        "win_rate": np.mean(trades > 0),
        "profit_factor": trades[trades > 0].sum() / -trades[trades < 0].sum(),
        "exposure": np.count_nonzero(held[1:]) / (bars - 1),
    }


# ---------------------------------------------------------------- timing


def _seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def interleaved_medians(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each call, the calls taking turns so that they share the machine's mood."""
    for call in calls.values():
        call()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(_seconds(call))
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


def pruned_trial(data: PriceData, name: str, params: dict, stop_loss: float | None, steps: int = 10) -> None:
    """The runner's evaluations of one trial under a pruner, for parameters the cache has not seen."""
    data.indicator_cache.max_bytes, budget = 0, data.indicator_cache.max_bytes  # forget the last trial's
    data.indicator_cache.max_bytes = budget
    bars = len(data)
    for step in range(1, steps):
        evaluate(data.head(bars * step // steps), name, params, stop_loss=stop_loss, **COSTS)
    evaluate(data, name, params, stop_loss=stop_loss, **COSTS)


def time_cases(data: PriceData, repeats: int) -> None:
    cost = (COSTS["fees_bps"] + COSTS["slippage_bps"]) / 1e4
    # The same bars with no per-window caching: every call computes its indicators.
    bare = PriceData(
        data.symbol, data.timestamps, data.open, data.high, data.low, data.close, data.bars_per_year
    )
    bare.indicator_cache.max_bytes = 0
    print(
        f"  {'strategy':<18}{'stop':>6}{'new':>10}{'ratio':>7}{'seen':>9}{'ratio':>7}"
        f"{'partial(10)':>13}{'pruned(10)':>22}{'yardstick':>11}"
    )
    for label, name, params in CASES:
        for stop_loss in (None, STOP_LOSS):
            costs = {"stop_loss": stop_loss, **COSTS}
            medians = interleaved_medians(
                {
                    "yardstick": partial(yardstick, data, YARDSTICK["fast"], YARDSTICK["slow"], cost),
                    "uncached": partial(evaluate, bare, name, params, **costs),
                    "cached": partial(evaluate, data, name, params, **costs),
                    "partial": partial(evaluate_partial, data, name, params, 10, **costs),
                    "pruned": partial(pruned_trial, data, name, params, stop_loss),
                    "pruned_bare": partial(pruned_trial, bare, name, params, stop_loss),
                },
                repeats,
            )
            ruler = medians["yardstick"]
            print(
                f"  {label:<18}{'-' if stop_loss is None else f'{stop_loss:.0%}':>6}"
                f"{medians['uncached']:10.2f}{medians['uncached'] / ruler:7.2f}"
                f"{medians['cached']:9.2f}{medians['cached'] / ruler:7.2f}"
                f"{medians['partial']:13.2f}{medians['pruned']:12.2f} ({medians['pruned_bare']:7.2f})"
                f"{ruler:11.2f}"
            )


# ---------------------------------------------------------------- the TPE sequence


def tpe_sequence(name: str, trials: int) -> list[dict]:
    """Parameter sets Optuna's TPE proposes for ``name`` on 50k bars (sharpe), valid ones only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = PriceData.from_frame(synthetic_ohlcv("TPE", seed=1, bars=50_000, freq="1min"), "TPE")
    proposed: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        params = {}
        for key, spec in SPACES[name].items():
            if spec[0] == "int":
                params[key] = trial.suggest_int(key, spec[1], spec[2], step=spec[3])
            elif spec[0] == "float":
                params[key] = trial.suggest_float(key, spec[1], spec[2])
            else:
                params[key] = trial.suggest_categorical(key, spec[1])
        try:
            value = evaluate(data, name, params, **COSTS)["sharpe"]
        except InvalidParams as exc:
            raise optuna.TrialPruned() from exc
        proposed.append(params)
        return value

    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=20)
    optuna.create_study(direction="maximize", sampler=sampler).optimize(objective, n_trials=trials)
    return proposed


def replay(data: PriceData, name: str, sequence: list[dict], max_bytes: int) -> tuple[float, float]:
    """(mean ms per trial, hit rate of the per-window indicator lookups), from an
    empty cache (the shared arrays computed beforehand, as after a worker's first trial)."""
    cache = data.indicator_cache
    cache.clear()
    evaluate(data, name, sequence[0], **COSTS)
    cache.max_bytes = 0  # empty but for the shared arrays
    cache.by_kind.clear()
    cache.max_bytes = max_bytes
    try:
        seconds = sum(_seconds(partial(evaluate, data, name, params, **COSTS)) for params in sequence)
        shared = ("running_sum", "price_moves", "return_range")
        hits = sum(counts[0] for kind, counts in cache.by_kind.items() if kind not in shared)
        misses = sum(counts[1] for kind, counts in cache.by_kind.items() if kind not in shared)
    finally:
        cache.clear()
        cache.max_bytes = DEFAULT_CACHE_BYTES
    return seconds / len(sequence) * 1e3, hits / max(hits + misses, 1)


def tpe_report(datasets: dict[int, PriceData], trials: int) -> None:
    print(f"\nIndicator cache on a TPE sequence ({trials} trials proposed by TPESampler(seed=0) on 50k bars)")
    budgets = (8 << 20, DEFAULT_CACHE_BYTES, 256 << 20)
    largest = max(datasets)
    for name in SPACES:
        sequence = tpe_sequence(name, trials)
        distinct = len({tuple(sorted(params.items())) for params in sequence})
        print(f"  {name}: {len(sequence)} valid parameter sets, {distinct} distinct")
        for bars, data in datasets.items():
            cached, rate = replay(data, name, sequence, DEFAULT_CACHE_BYTES)
            uncached, _ = replay(data, name, sequence, 0)
            print(
                f"    {bars:>9,} bars: hit rate {rate:6.1%}; ms per trial {cached:7.2f} with the cache, "
                f"{uncached:7.2f} without ({uncached / cached:.2f}x)"
            )
        # Hit rates for other budgets, replayed on the smallest data with the budget
        # scaled down, so the cache holds as many arrays as it would on the largest.
        smallest = min(datasets)
        scale = smallest / largest
        rates = []
        for budget in budgets:
            _, rate = replay(datasets[smallest], name, sequence, int(budget * scale))
            rates.append(f"{budget >> 20} MiB {rate:.1%}")
        print(f"    hit rate by budget at {largest:,} bars: " + ", ".join(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[50_000, 1_000_000], help="data sizes")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per figure (median)")
    parser.add_argument("--tpe-trials", type=int, default=200, help="trials of the TPE sequence (0: skip it)")
    args = parser.parse_args()

    datasets = {}
    for bars in args.bars:
        data = PriceData.from_frame(synthetic_ohlcv("BENCH", bars=bars, freq="1min"), "BENCH")
        datasets[bars] = data
        print(f"{bars:,} bars: ms per parameter set (median of {args.repeats}); ratio = ms / yardstick ms")
        time_cases(data, args.repeats)
    if args.tpe_trials > 0:
        tpe_report(datasets, args.tpe_trials)


if __name__ == "__main__":
    main()
