"""How much of a search's best result is luck: statistics over many backtests.

* Probabilistic and Deflated Sharpe Ratio — Bailey & López de Prado, "The
  Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting
  and Non-Normality", Journal of Portfolio Management 40(5), 2014.
* Probability of Backtest Overfitting by combinatorially symmetric cross-
  validation (CSCV) — Bailey, Borwein, López de Prado & Zhu, "The Probability
  of Backtest Overfitting", Journal of Computational Finance, 2015 (2017).
* Spearman's rank correlation, for in-sample against out-of-sample order.

Sharpe ratios here are per observation (per bar), not annualised, as in the
papers: divide an annualised ratio by sqrt(bars per year) first. Kurtosis is
the plain (not excess) fourth standardised moment: 3 for a normal distribution.
Nothing here knows of Optuna: the caller collects the figures from its trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe(returns: np.ndarray) -> float:
    """Mean over (population) standard deviation of per-bar returns; 0 when they do not vary."""
    returns = np.asarray(returns, dtype=np.float64)
    std = float(returns.std())
    return float(returns.mean()) / std if std > 0 else 0.0


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of ``returns``; (0, 3) when they do not vary."""
    r = np.asarray(returns, dtype=np.float64)
    centred = r - r.mean()
    var = float(np.mean(centred**2))
    if var <= 0:
        return 0.0, 3.0
    return float(np.mean(centred**3)) / var**1.5, float(np.mean(centred**4)) / var**2


def probabilistic_sharpe(sr: float, benchmark: float, observations: int, skew: float = 0.0,
                         kurtosis: float = 3.0) -> float | None:
    """PSR: the probability that the true Sharpe ratio exceeds ``benchmark``, given an
    observed ``sr`` over ``observations`` returns of this skewness and kurtosis (eq. 2
    of the DSR paper). None where the formula has no value (fewer than 2 returns, or
    moments so extreme that the variance estimate is not positive)."""
    if observations < 2:
        return None
    spread = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not spread > 0:
        return None
    return _NORMAL.cdf((sr - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread))


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The Sharpe ratio the best of ``trials`` skill-less strategies is expected to show,
    when their Sharpe ratios vary with ``variance`` across trials (the false strategy
    theorem, as in the DSR paper's eq. 4). 0 for a single trial."""
    if trials < 2 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / trials)
        + EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    )


def deflated_sharpe(sr: float, trials: int, variance: float, observations: int, skew: float = 0.0,
                    kurtosis: float = 3.0) -> float | None:
    """DSR: the PSR of the best of ``trials`` against the Sharpe ratio their best would show
    by luck alone. Near 1: the best is unlikely to be luck; 0.5 or less: it is about what
    that many skill-less trials would produce."""
    return probabilistic_sharpe(sr, expected_max_sharpe(trials, variance), observations, skew, kurtosis)


@dataclass(frozen=True)
class OverfitProbability:
    """The outcome of CSCV over ``splits`` in-sample/out-of-sample splits."""

    pbo: float  # share of splits whose in-sample winner ranks at or below the median out of sample
    logits: np.ndarray  # per split: log(w / (1 - w)), w the winner's relative out-of-sample rank
    splits: int
    blocks: int
    strategies: int
    degradation: float  # slope of out-of-sample on in-sample Sharpe of the winners (< 0: decay)


def backtest_overfitting(returns: np.ndarray, blocks: int = 16) -> OverfitProbability:
    """PBO by CSCV: ``returns`` is a (bars x strategies) matrix of per-bar returns.

    The bars are cut into ``blocks`` (even) consecutive blocks of equal size (the
    remainder at the start is dropped); every choice of half of them is an in-sample
    set, the other half its out-of-sample set. For each split the strategy with the
    best in-sample Sharpe ratio is ranked out of sample (1 = worst, N = best);
    w = rank / (N + 1) and the split counts as overfit when log(w / (1 - w)) <= 0.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("returns must be a (bars x strategies) matrix")
    bars, strategies = matrix.shape
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number >= 2, got {blocks}")
    if strategies < 2:
        raise ValueError("PBO needs at least 2 strategies")
    size = bars // blocks
    if size < 2:
        raise ValueError(f"{bars} bars are too few for {blocks} blocks")
    cut = matrix[bars - size * blocks:].reshape(blocks, size, strategies)
    # Per block and strategy: sums of returns and of their squares. A split's mean and
    # variance follow from the sums over its blocks: one matrix product for all splits.
    sums, squares = cut.sum(axis=1), (cut * cut).sum(axis=1)
    chosen = np.zeros((math.comb(blocks, blocks // 2), blocks))
    for row, members in enumerate(combinations(range(blocks), blocks // 2)):
        chosen[row, list(members)] = 1.0
    half = size * blocks // 2
    is_sharpe = _sharpe_from_sums(chosen @ sums, chosen @ squares, half)
    oos_sharpe = _sharpe_from_sums((1 - chosen) @ sums, (1 - chosen) @ squares, half)
    winner = np.argmax(is_sharpe, axis=1)
    rows = np.arange(len(winner))
    winner_oos = oos_sharpe[rows, winner][:, None]
    # Rank of the winner out of sample, ties counted half (1 = worst, N = best).
    rank = (oos_sharpe < winner_oos).sum(axis=1) + ((oos_sharpe == winner_oos).sum(axis=1) - 1) / 2 + 1
    relative = rank / (strategies + 1)
    logits = np.log(relative / (1 - relative))
    x, y = is_sharpe[rows, winner], oos_sharpe[rows, winner]
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    return OverfitProbability(pbo=float(np.mean(logits <= 0)), logits=logits, splits=len(rows), blocks=blocks,
                              strategies=strategies, degradation=slope)


def _sharpe_from_sums(sums: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    mean = sums / n
    var = np.maximum(squares / n - mean * mean, 0.0)
    std = np.sqrt(var)
    return np.divide(mean, std, out=np.zeros_like(mean), where=std > 1e-15)


def spearman(a, b) -> float | None:
    """Spearman's rank correlation (ties get their average rank); None for fewer than
    3 pairs or when either side is constant."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.size < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    # Ties: every member of a group of equal values gets the group's mean rank.
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]
