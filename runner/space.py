"""The search space: one home for what the config's [space] means to Optuna and to us.

* :func:`distributions` — the Optuna distribution of each parameter;
* :func:`is_conditional` — whether a parameter exists only under a condition
  (then trials are suggested define-by-run, and the space is not enumerable);
* :func:`suggest` — a trial's parameters, conditions honoured;
* :func:`grid_points`, :func:`grid_size` — every value of a discrete space, and how many combinations;
* :func:`param_key` — the canonical key of a combination (deduplication);
* :func:`exact` / :class:`ExactSteps` — a float on a step at its exact grid value
  (``low + k*step`` rounded to the decimals the user wrote), wherever it comes from.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .config.model import CategoricalParam, FloatParam, IntParam, RunConfig

GRID_LIMIT = 100_000  # combinations we enumerate (dedup picks a free one among them)
# Optuna's GridSampler rescans every earlier trial after each one (quadratic):
# 800 trials took 41 s in memory (benchmarks/bench_samplers.py). Beyond this, TPE.
GRID_SAMPLER_LIMIT = 5_000


GRID_SIZE_CAP = 10**18  # grid_size stops counting here: any such space is far beyond every limit


def grid_size(cfg: RunConfig) -> int | None:
    """Number of distinct parameter combinations (at most GRID_SIZE_CAP), or None
    if a float has no step. Arithmetic only: fast for any range."""
    size = 1
    for p in cfg.space.values():
        if isinstance(p, CategoricalParam):
            n = len(p.choices)
        elif isinstance(p, IntParam):
            n = (p.high - p.low) // p.step + 1
        elif p.step is not None:
            steps = (p.high - p.low) / p.step
            n = float_steps(p) + 1 if steps < GRID_SIZE_CAP else GRID_SIZE_CAP
        else:
            return None
        size = min(size * n, GRID_SIZE_CAP)
    return size



def is_conditional(cfg: RunConfig) -> bool:
    """True if some parameter exists only when a condition (``when``) holds."""
    return any(p.when for p in cfg.space.values())


def distributions(cfg: RunConfig) -> dict[str, BaseDistribution]:
    space: dict[str, BaseDistribution] = {}
    for name, p in cfg.space.items():
        if isinstance(p, FloatParam):
            space[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            space[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, CategoricalParam):
            space[name] = CategoricalDistribution(p.choices)
    return space


def has_float_steps(cfg: RunConfig) -> bool:
    return any(isinstance(p, FloatParam) and p.step is not None for p in cfg.space.values())


def grid_points(cfg: RunConfig) -> dict[str, list]:
    """Every value of every parameter of a discrete space (the grid sampler, dedup's free combinations)."""
    points: dict[str, list] = {}
    for name, p in cfg.space.items():
        if isinstance(p, CategoricalParam):
            points[name] = list(p.choices)
        elif isinstance(p, IntParam):
            points[name] = list(range(p.low, p.high + 1, p.step))
        else:
            assert p.step is not None, "a discrete space: config checks every float has a step"
            count = float_steps(p) + 1
            points[name] = [step_value(p, i) for i in range(count)]
    return points


def float_steps(p: FloatParam) -> int:
    """Steps from low to the last value on the grid: Optuna's, which is below high when the
    step does not divide the range (0.01..0.2 by 0.05 ends at 0.16)."""
    assert p.step is not None
    # As Optuna adjusts high (decimal arithmetic): a float's error cannot lose the last step.
    return int((Decimal(str(p.high)) - Decimal(str(p.low))) // Decimal(str(p.step)))


def _decimals(x: float) -> int:
    exponent = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def step_value(p: FloatParam, k: int) -> float:
    """The k-th value of a float on a step, as the user would write it: ``low + k*step``
    rounded to the decimals of low and step (0.2 + 2*0.2 is 0.6, not 0.6000000000000001)."""
    assert p.step is not None
    return round(p.low + k * p.step, min(15, max(_decimals(p.low), _decimals(p.step))))


def exact(cfg: RunConfig, name: str, value: Any) -> Any:
    """A parameter's value on its grid: floats on a step at their exact grid value."""
    p = cfg.space.get(name)
    if isinstance(p, FloatParam) and p.step is not None and isinstance(value, (int, float)):
        return step_value(p, round((value - p.low) / p.step))
    return value


class WrappedSampler(optuna.samplers.BaseSampler):
    """A sampler that hands everything to ``inner``; subclasses change what they must."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class ExactSteps(WrappedSampler):
    """Wraps the configured sampler so that every float on a step it proposes is the
    exact grid value: that value is what Optuna stores, the backtest gets, and
    status, export and CSV show. Everything else is the wrapped sampler's."""

    def __init__(self, inner: optuna.samplers.BaseSampler, cfg: RunConfig) -> None:
        super().__init__(inner)
        self.cfg = cfg

    def sample_relative(self, study, trial, search_space):
        return {k: exact(self.cfg, k, v) for k, v in self.inner.sample_relative(study, trial, search_space).items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return exact(self.cfg, param_name, self.inner.sample_independent(study, trial, param_name, param_distribution))


def suggest(trial: optuna.Trial, cfg: RunConfig, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The trial's parameters. Conditional ones are suggested only when their condition holds."""
    params: dict[str, Any] = {}
    # Unconditional first, so that every condition can be checked against them.
    for name in sorted(space, key=lambda n: cfg.space[n].when is not None):
        when = cfg.space[name].when
        if when and any(params.get(other) != value for other, value in when.items()):
            continue
        params[name] = _suggest_one(trial, name, space[name])
    return params


def _suggest_one(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, CategoricalDistribution)
    return trial.suggest_categorical(name, d.choices)


def param_key(cfg: RunConfig, params: dict[str, Any]) -> str:
    parts = []
    for name in sorted(params):
        value, spec = params[name], cfg.space.get(name)
        if isinstance(spec, FloatParam):
            if spec.step is not None:
                value = round((value - spec.low) / spec.step)
            else:
                value = float(f"{value:.{cfg.study.float_precision}g}")
        parts.append([name, value])
    return json.dumps(parts, separators=(",", ":"))
