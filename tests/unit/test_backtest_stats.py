"""backtest.stats against the papers' worked examples and synthetic cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest import stats


def test_deflated_sharpe_reproduces_the_papers_worked_example():
    """Bailey & López de Prado (2014), section 4: an annualised Sharpe ratio of 2.5 over
    5 years of daily returns (T = 1250), the best of N = 100 trials whose annualised
    Sharpe ratios vary with V = 1/2, returns with skewness -3 and kurtosis 10: the
    expected maximum is 0.1132 per day and DSR = 0.9004."""
    daily_sr, daily_var = 2.5 / math.sqrt(250), 0.5 / 250
    assert stats.expected_max_sharpe(100, daily_var) == pytest.approx(0.1132, abs=5e-4)
    assert stats.deflated_sharpe(daily_sr, 100, daily_var, 1250, skew=-3, kurtosis=10) == pytest.approx(
        0.9004, abs=5e-4)
    # Fewer trials, less deflation; normal returns, a higher probability.
    assert stats.deflated_sharpe(daily_sr, 10, daily_var, 1250, skew=-3, kurtosis=10) > 0.9004
    assert stats.deflated_sharpe(daily_sr, 100, daily_var, 1250) > 0.9004


def test_probabilistic_sharpe_is_one_half_at_the_benchmark_and_none_without_a_value():
    assert stats.probabilistic_sharpe(0.1, 0.1, 500, skew=-1, kurtosis=6) == pytest.approx(0.5)
    assert stats.probabilistic_sharpe(0.1, 0.0, 1) is None  # one return: no estimate
    assert stats.probabilistic_sharpe(2.0, 0.0, 100, skew=5, kurtosis=3) is None  # variance estimate <= 0
    assert stats.expected_max_sharpe(1, 0.01) == 0.0  # a single trial selects nothing


def test_moments_of_known_distributions():
    rng = np.random.default_rng(1)
    skew, kurt = stats.moments(rng.standard_normal(400_000))
    assert skew == pytest.approx(0.0, abs=0.02) and kurt == pytest.approx(3.0, abs=0.05)
    skew, kurt = stats.moments(rng.exponential(size=400_000))  # skewness 2, kurtosis 9
    assert skew == pytest.approx(2.0, abs=0.1) and kurt == pytest.approx(9.0, abs=0.6)
    assert stats.moments(np.ones(10)) == (0.0, 3.0)


def _noise(rng, bars, strategies):
    return rng.standard_normal((bars, strategies)) * 0.01


def test_the_best_of_many_noise_strategies_is_not_significant_once_deflated():
    rng = np.random.default_rng(7)
    returns = _noise(rng, 1000, 200)
    srs = np.array([stats.sharpe(returns[:, j]) for j in range(200)])
    best = int(np.argmax(srs))
    skew, kurt = stats.moments(returns[:, best])
    # Undeflated, the lucky best looks significant; deflated by 200 trials, it does not.
    assert stats.probabilistic_sharpe(srs[best], 0.0, 1000, skew, kurt) > 0.95
    assert stats.deflated_sharpe(srs[best], 200, float(srs.var()), 1000, skew, kurt) < 0.9
    # A strategy with real skill (per-bar Sharpe 0.2) among the same noise stays significant.
    returns[:, 0] = rng.standard_normal(1000) * 0.01 + 0.002
    srs[0] = stats.sharpe(returns[:, 0])
    skew, kurt = stats.moments(returns[:, 0])
    assert stats.deflated_sharpe(srs[0], 200, float(srs.var()), 1000, skew, kurt) > 0.99


def test_pbo_by_hand_on_two_blocks():
    """Two strategies, two blocks. Each wins one block: whichever wins in sample is the
    worse out of sample, in both splits (PBO 1). One wins both: never overfit (PBO 0)."""
    a_then_b = np.array([[0.02, 0.00], [0.01, -0.01], [-0.01, 0.02], [0.00, 0.01]])
    result = stats.backtest_overfitting(a_then_b, blocks=2)
    assert (result.splits, result.pbo) == (2, 1.0)
    assert np.allclose(result.logits, math.log((1 / 3) / (2 / 3)))  # rank 1 of 2
    always_a = np.array([[0.02, 0.00], [0.01, -0.01], [0.03, 0.01], [0.01, 0.00]])
    assert stats.backtest_overfitting(always_a, blocks=2).pbo == 0.0


def test_pbo_of_pure_noise_is_near_one_half():
    values = [stats.backtest_overfitting(_noise(np.random.default_rng(seed), 1600, 20), blocks=16).pbo
              for seed in range(8)]
    assert 0.35 < float(np.mean(values)) < 0.65


def test_pbo_of_one_skilled_strategy_among_noise_is_near_zero():
    rng = np.random.default_rng(3)
    returns = _noise(rng, 1600, 20)
    returns[:, 5] += 0.002  # per-bar Sharpe 0.2: it wins in sample and out of sample
    result = stats.backtest_overfitting(returns, blocks=16)
    assert result.splits == math.comb(16, 8)
    assert result.pbo < 0.02


def test_pbo_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="even"):
        stats.backtest_overfitting(np.zeros((100, 3)), blocks=5)
    with pytest.raises(ValueError, match="at least 2 strategies"):
        stats.backtest_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="too few"):
        stats.backtest_overfitting(np.zeros((20, 3)), blocks=16)


def test_spearman_matches_the_textbook_example():
    """IQ against hours of television a week (the classic worked example): rho = -29/165."""
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    assert stats.spearman(iq, tv) == pytest.approx(-29 / 165)
    assert stats.spearman([1, 2, 2, 3], [10, 20, 20, 30]) == pytest.approx(1.0)  # ties
    assert stats.spearman([1, 2], [2, 1]) is None
    assert stats.spearman([1, 1, 1], [1, 2, 3]) is None
