"""Keep TPE's proposals out of regions known to fail.

Telling a failure as an infeasible trial (runner.outcomes) makes TPE rank it
last, but TPE's kernels around the best trials still spill into a failing
region that borders the best one (a fifth of the attempts in
benchmarks/bench_failures.py --border). :class:`AvoidFailing` draws TPE's
proposal again, up to a few times, when

* the strategy itself rejects the combination (fast >= slow): a built-in
  strategy checks its parameters without data, so such combinations are mostly
  drawn again before anything runs — in effect removed from the space; or
* the nearest finished trial to it, in the space scaled to [0, 1] per
  parameter, failed or had invalid parameters (a 1-nearest-neighbour guess of
  the failing region, learnt from the study's own trials).

Only the multivariate TPE's joint proposal is filtered; its random startup
trials and the other samplers are left as they are (a GP or CMA-ES proposal
drawn again is the same point). When every draw is rejected, the last one is
used: the trial runs and is told as usual (invalid, failed), which teaches TPE
more than a substitute would — in benchmarks/bench_constraints.py --hard, a
random or nearby valid substitute found worse bests (worst seed 0.82 against
0.96 of the grid's best feasible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from .outcomes import FAILED, INVALID
from .space import WrappedSampler

# Draws per trial at most: in bench_failures --border, fewer than 1 % of trials
# found every one of 8 draws predicted to fail; more draws did not lower the
# share of failing attempts (the guess at the region's border is what limits it).
# A draw costs one Parzen-estimator sample, about 1-5 ms.
DRAWS = 8
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def failed(trial: FrozenTrial) -> bool:
    """Whether the trial failed or had invalid parameters, as the worker tells it."""
    return trial.constraints.get(FAILED, 0.0) > 0 or trial.constraints.get(INVALID, 0.0) > 0


def scaled(value: Any, d: BaseDistribution) -> float:
    """A parameter value scaled to [0, 1] over its distribution (categoricals: its index)."""
    if isinstance(d, CategoricalDistribution):
        return float(d.choices.index(value)) if value in d.choices else math.nan
    assert isinstance(d, (FloatDistribution, IntDistribution))
    low, high, v = float(d.low), float(d.high), float(value)
    if d.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return 0.0 if high == low else (v - low) / (high - low)


class AvoidFailing(WrappedSampler):
    """Wraps a TPE sampler; see the module's docstring.

    ``rejects(params)``: True when the strategy would reject the parameters
    (None: no such check, a user's own backtest)."""

    def __init__(self, inner: optuna.samplers.BaseSampler,
                 rejects: Callable[[Mapping[str, Any]], bool] | None = None, draws: int = DRAWS) -> None:
        super().__init__(inner)
        self.rejects, self.draws = rejects, draws
        # Finished trials are immutable: each is scaled once (a row), in the search space
        # last seen (_names, in order; the columns of categoricals among them).
        self._space: dict[str, BaseDistribution] = {}
        self._names: list[str] = []
        self._categorical: list[int] = []
        self._seen: set[int] = set()
        self._rows: list[list[float]] = []
        self._bad: list[bool] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None  # _rows, _bad as arrays, once one failed

    def sample_relative(self, study, trial, search_space):
        params = self.inner.sample_relative(study, trial, search_space)
        if not params:  # startup trials, or an independent sampler: nothing to filter
            return params
        known = self._known(study, search_space)
        for _ in range(self.draws - 1):
            if not self._avoid(params, known):
                return params
            params = self.inner.sample_relative(study, trial, search_space)
        return params

    def _avoid(self, params: dict[str, Any], known: tuple[np.ndarray, np.ndarray] | None) -> bool:
        if self.rejects is not None and self.rejects(params):
            return True
        if known is None:
            return False
        points, bad = known
        gaps = np.abs(points - self._point(params))
        gaps[:, self._categorical] = gaps[:, self._categorical] > 0  # same choice or not
        gaps[np.isnan(gaps)] = 1.0  # a parameter one of the two lacks: as far as it gets
        distance = np.square(gaps).sum(axis=1)
        # Failing only if every nearest trial (ties included) failed.
        return bool(bad[distance == distance.min()].all())

    def _point(self, params: Mapping[str, Any]) -> list[float]:
        return [scaled(params[n], self._space[n]) if n in params else math.nan for n in self._names]

    def _known(self, study: optuna.Study, space: dict[str, BaseDistribution]) -> tuple[np.ndarray, np.ndarray] | None:
        """The finished trials as points in the scaled space, and which of them failed;
        None when none failed (nothing to avoid). Each trial is scaled once."""
        if space != self._space:  # a new search space (rare): scale everything again
            self._space, self._names = dict(space), sorted(space)
            self._categorical = [i for i, n in enumerate(self._names) if isinstance(space[n], CategoricalDistribution)]
            self._seen, self._rows, self._bad, self._arrays = set(), [], [], None
        added = False
        for t in study.get_trials(deepcopy=False, states=_FINISHED):
            if t.number not in self._seen:
                self._seen.add(t.number)
                self._rows.append(self._point(t.params))
                self._bad.append(failed(t))
                added = True
        if True not in self._bad:
            return None
        if added or self._arrays is None:
            self._arrays = np.array(self._rows, dtype=float), np.array(self._bad)
        return self._arrays
