"""The synthetic studies the monitor's benchmarks fill (bench_refresh.py, bench_monitor.py):
an MA crossover over two integer parameters, and each trial's value, state and metrics
as a function of its number. Imports only Optuna: bench_monitor's app process measures
its memory with nothing else loaded."""

from __future__ import annotations

from optuna.distributions import IntDistribution
from optuna.trial import TrialState

SPACE = {"fast": IntDistribution(2, 20), "slow": IntDistribution(25, 80)}
CONFIG = """
[study]
name = "{name}"
target_trials = 20000
[data]
symbols = {symbols}
synthetic = {{bars = 2000}}
[strategy]
name = "ma_crossover"
[space]
fast = {{type = "int", low = 2, high = 20}}
slow = {{type = "int", low = 25, high = 80}}
"""


def metrics(value: float, i: int) -> dict:
    return {**{f"m{k:02d}": value * (k + 1) / 7.0 for k in range(11)}, "trades": 10 + i % 50}


def synthetic_trial(i: int) -> tuple[int, int, float, TrialState, dict | None]:
    """Trial i's parameters, value, state and reason: ~10 % pruned, ~3 % failed."""
    fast, slow = 2 + i % 19, 25 + (7 * i) % 56
    value = -((fast - 12) ** 2 + 0.1 * (slow - 50) ** 2) - (i % 7) / 3
    if i % 10 == 3:
        return fast, slow, value, TrialState.PRUNED, {"prune_reason": "fewer than 10 trades"}
    if i % 33 == 5:
        return fast, slow, value, TrialState.FAIL, {"fail_reason": "ValueError: synthetic failure"}
    return fast, slow, value, TrialState.COMPLETE, None
