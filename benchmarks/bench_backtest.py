"""Time one optimizer trial's backtest call per built-in strategy.

Run from the repository root: python benchmarks/bench_backtest.py
Not a test (pytest does not collect it): it only prints milliseconds per call
of evaluate(), evaluate() with a stop loss, and evaluate_partial() with 10 steps.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest import PriceData, evaluate, evaluate_partial, synthetic_ohlcv  # noqa: E402

CASES = (
    ("ma_crossover", {"fast": 20, "slow": 100, "ma_type": "sma"}),
    ("ma_crossover", {"fast": 20, "slow": 100, "ma_type": "ema", "allow_short": True}),
    ("rsi_reversion", {"period": 14, "lower": 30, "upper": 70, "exit": 50, "allow_short": True}),
    ("channel_breakout", {"lookback": 55, "exit_lookback": 20, "allow_short": True}),
)
COSTS = {"fees_bps": 1.0, "slippage_bps": 1.0}


def milliseconds_per_call(call, min_seconds: float = 1.0) -> float:
    call()  # warm-up
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        call()
        calls += 1
    return (time.perf_counter() - started) / calls * 1e3


def main() -> None:
    for bars in (50_000, 1_000_000):
        data = PriceData.from_frame(synthetic_ohlcv("BENCH", bars=bars), "BENCH")
        print(f"{bars:,} bars")
        for name, params in CASES:
            plain = milliseconds_per_call(partial(evaluate, data, name, params, **COSTS))
            stopped = milliseconds_per_call(partial(evaluate, data, name, params, stop_loss=0.05, **COSTS))
            steps = milliseconds_per_call(partial(evaluate_partial, data, name, params, 10, **COSTS))
            print(
                f"  {name:<17} {params}\n"
                f"    evaluate {plain:7.2f} ms  with stop_loss {stopped:7.2f} ms  partial(10) {steps:7.2f} ms"
            )


if __name__ == "__main__":
    main()
