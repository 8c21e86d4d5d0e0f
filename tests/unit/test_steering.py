"""runner.steering: TPE's proposals kept out of combinations the strategy rejects and
of regions where trials failed; backtest's parameter checks that make the first possible."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

import backtest
from runner.config import load_config
from runner.outcomes import FAILURE, INVALID_PARAMS, told
from runner.space import distributions
from runner.steering import AvoidFailing
from runner.study import search_sampler, strategy_rejects
from tests.helpers import search_config, small_config

# fast 2..60 against slow 10..60: about half of the combinations have fast >= slow.
OVERLAPPING = '''
[space.fast]
type = "int"
low = 2
high = 60

[space.slow]
type = "int"
low = 10
high = 60
'''


@pytest.mark.parametrize(("name", "params", "error"), [
    ("ma_crossover", {"fast": 30, "slow": 20}, "fast (30) must be below slow (20)"),
    ("ma_crossover", {"fast": 5, "slow": 20, "ma_type": "wma"}, "ma_type must be 'sma' or 'ema'"),
    ("ma_crossover", {"fast": 5, "slow": 20, "speed": 1}, "unknown parameter(s) for ma_crossover: speed"),
    ("rsi_reversion", {"lower": 60, "exit": 50}, "need 0 <= lower (60.0) < exit (50.0)"),
    ("channel_breakout", {"lookback": 0}, "lookback must be a positive integer"),
])
def test_a_strategy_checks_its_parameters_without_data(name, params, error):
    strategy = backtest.get_strategy(name)
    with pytest.raises(backtest.InvalidParams, match=error.replace("(", r"\(").replace(")", r"\)")):
        strategy.check(params)
    strategy.check(strategy.defaults)  # the defaults pass


def _plain_and_steered(cfg, n: int = 60):
    """Invalid combinations proposed after the startup trials, by plain TPE and by the worker's sampler."""
    counts = []
    for sampler in (optuna.samplers.TPESampler(seed=3, n_startup_trials=5, multivariate=True),
                    search_sampler(cfg, "AAA", 0)):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        invalid = 0
        for i in range(n):
            trial = study.ask(fixed_distributions=distributions(cfg))
            fast, slow = trial.params["fast"], trial.params["slow"]
            if fast >= slow:
                invalid += i >= 5
                state, cons = told(INVALID_PARAMS)
                for k, v in cons.items():
                    trial.set_constraint(k, v)
                study.tell(trial, state=state)
            else:
                study.tell(trial, -abs(fast - 40) - abs(slow - 45))  # best near the fast = slow line
        counts.append(invalid)
    return counts


def test_the_worker_sampler_mostly_skips_combinations_the_strategy_rejects(tmp_path):
    path = small_config(tmp_path, name="ov")
    text = path.read_text()
    path.write_text(text[: text.index("[space.fast]")] + OVERLAPPING)
    cfg = load_config(path)
    plain, steered = _plain_and_steered(cfg)
    # The best borders the invalid half: plain TPE proposes into it (21 of 55 here); the
    # worker's sampler draws again, and runs one only when 8 draws in a row were invalid.
    assert plain >= 10
    assert steered <= plain // 2


def test_a_users_backtest_has_no_parameter_check_but_its_sampler_still_avoids_failures(tmp_path):
    cfg = load_config(search_config(tmp_path, "quadratic", "uf", space=OVERLAPPING))
    assert strategy_rejects(cfg) is None
    sampler = search_sampler(cfg, "AAA", 0)
    assert isinstance(sampler, AvoidFailing) and sampler.rejects is None


def test_only_a_multivariate_tpe_is_steered(tmp_path):
    assert isinstance(search_sampler(load_config(small_config(tmp_path)), "AAA", 0), AvoidFailing)
    for extra in ("multivariate = false\n", 'type = "random"\n', 'type = "qmc"\n'):
        path = small_config(tmp_path)
        path.write_text(path.read_text().replace("[sampler]\n", "[sampler]\n" + extra, 1))
        assert not isinstance(search_sampler(load_config(path), "AAA", 0), AvoidFailing)


def _finished(study, params, failing):
    """A finished trial at ``params``: failed (told as the worker tells it) or complete."""
    study.enqueue_trial(params)
    trial = study.ask(fixed_distributions=SPACE)
    if not failing:
        study.tell(trial, 1.0)
        return
    state, cons = told(FAILURE)
    for k, v in cons.items():
        trial.set_constraint(k, v)
    study.tell(trial, state=state)


SPACE = {"a": IntDistribution(0, 100), "b": IntDistribution(0, 100), "kind": CategoricalDistribution(["x", "y"])}


def test_a_proposal_is_avoided_when_its_nearest_finished_trial_failed():
    study = optuna.create_study(direction="maximize")
    for a, b, kind, bad in [(10, 10, "x", False), (90, 90, "x", True), (90, 10, "y", False), (50, 50, "y", True)]:
        _finished(study, {"a": a, "b": b, "kind": kind}, bad)
    sampler = AvoidFailing(optuna.samplers.RandomSampler(seed=0))
    known = sampler._known(study, SPACE)
    assert known is not None and known[1].tolist() == [False, True, False, True]
    avoid = lambda **p: sampler._avoid(p, known)  # noqa: E731
    assert avoid(a=85, b=88, kind="x")  # next to the failure at (90, 90, x)
    assert not avoid(a=12, b=9, kind="x")  # next to the success at (10, 10, x)
    # Another choice of a categorical counts as far: (90, 12, y)'s nearest is the success
    # (90, 10, y), not the failure (90, 90, x); (52, 49, y)'s is the failure (50, 50, y).
    assert not avoid(a=90, b=12, kind="y")
    assert avoid(a=52, b=49, kind="y")


def test_nothing_is_avoided_before_anything_failed():
    study = optuna.create_study(direction="maximize")
    _finished(study, {"a": 1, "b": 1, "kind": "x"}, False)
    assert AvoidFailing(optuna.samplers.RandomSampler(seed=0))._known(study, SPACE) is None
