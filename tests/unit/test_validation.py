"""The holdout kept from the optimizer, the top-K tracker, the neighbourhood (no database)."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from runner import insight, validation
from runner.config import ConfigError, load_config
from runner.study import Objective, check_data
from tests.helpers import small_config, write_config

HOLDOUT = "\n[validation]\nholdout = {holdout}\n"

LAST_SEEN = '''
def last_seen(params, data):
    """The last timestamp the backtest was given, as its metric."""
    return {"sharpe": data.index[-1].timestamp(), "trades": 50, "first": data.index[0].timestamp(), "returns": [0.0] * len(data)}
'''


def _user(tmp_path, holdout="0.3"):
    (tmp_path / "seen.py").write_text(LAST_SEEN)
    return load_config(small_config(tmp_path, strategy="seen:last_seen", extra=HOLDOUT.format(holdout=holdout)))


def test_trials_and_pruning_never_see_the_holdout_and_the_holdout_starts_after_them(tmp_path):
    cfg = _user(tmp_path)
    objective = Objective(cfg, "AAA")
    assert (objective.total_bars, objective.bars, objective.holdout_start) == (2000, 1400, 1400)
    frame = backtest.synthetic_ohlcv("AAA", seed=1, bars=2000, freq="1h", start="2020-01-01")
    last_in_sample, first_holdout = frame.index[1399].timestamp(), frame.index[1400].timestamp()
    assert objective({"fast": 5, "slow": 30}).value == last_in_sample
    assert objective({"fast": 5, "slow": 30}, upto=700).value < last_in_sample  # a pruner's slice: a prefix
    oos = objective.holdout({"fast": 5, "slow": 30})
    assert oos["first"] == first_holdout and oos["sharpe"] == frame.index[-1].timestamp()
    assert "returns" not in objective({"fast": 5, "slow": 30}).metrics  # per-bar returns are never a metric
    assert len(objective.bar_returns({"fast": 5, "slow": 30})) == 1400


def test_a_holdout_from_a_date_and_a_built_in_strategy(tmp_path):
    cfg = load_config(small_config(tmp_path, extra=HOLDOUT.format(holdout='"2020-03-01"')))
    objective = Objective(cfg, "AAA")
    frame = backtest.synthetic_ohlcv("AAA", seed=1, bars=2000, freq="1h", start="2020-01-01")
    assert objective.holdout_start == frame.index.searchsorted(np.datetime64("2020-03-01"))
    assert len(objective.data) == objective.holdout_start
    params = {"fast": 5, "slow": 30}
    # Out of sample: the whole run, measured from the close before the holdout's first bar
    # (no fees here: entering there costs nothing).
    whole = backtest.run_backtest(objective._all_data, "ma_crossover", params)
    start = objective.holdout_start
    assert objective.holdout(params)["total_return"] == pytest.approx(whole.equity[-1] / whole.equity[start - 1] - 1)
    # In sample: exactly the first part, as if the rest did not exist.
    alone = backtest.evaluate(backtest.PriceData.from_frame(frame.iloc[:start], "AAA"), "ma_crossover", params)
    assert objective(params).metrics == pytest.approx(alone)


@pytest.mark.parametrize("holdout, problem", [
    ("0.995", "fraction in (0, 0.9]"),
    ("1", "holdout"),
])
def test_a_bad_holdout_names_the_field(tmp_path, holdout, problem):
    path = small_config(tmp_path, extra=HOLDOUT.format(holdout=holdout))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "validation.holdout" in str(err.value) and problem in str(err.value)


def test_a_holdout_that_leaves_no_data_is_reported_before_any_worker_starts(tmp_path):
    cfg = load_config(small_config(tmp_path, extra=HOLDOUT.format(holdout='"2030-01-01"')))
    with pytest.raises(ConfigError) as err:
        check_data(cfg)
    assert "validation.holdout" in str(err.value) and "AAA" in str(err.value) and "0 to validate on" in str(err.value)


def test_top_values_tracks_the_best_k_in_either_direction():
    top = validation.TopValues(3, "maximize")
    top.add(1.0)
    top.add(5.0)
    assert top.enters(0.5)  # fewer than k known: anything enters
    for v in (3.0, float("nan"), None):  # what is not a finite number is never counted
        top.add(v)
    assert not top.enters(0.5)
    top.add(4.0)  # 5, 4, 3
    assert not top.enters(2.9) and top.enters(3.0) and top.enters(6.0)
    low = validation.TopValues(2, "minimize")
    for v in (0.3, 0.1, 0.2):
        low.add(v)
    assert low.enters(0.15) and not low.enters(0.25)


def test_neighbours_move_one_parameter_one_step_inside_the_bounds(tmp_path):
    extra = '\n[space.ma_type]\ntype = "categorical"\nchoices = ["sma", "ema", "wma"]\n' \
            '\n[space.stop_loss]\ntype = "float"\nlow = 0.01\nhigh = 0.11\nstep = 0.01\n'
    cfg = load_config(write_config(tmp_path / "n.toml", small_config(tmp_path).read_text() + extra))
    best = {"fast": 2, "slow": 50, "ma_type": "ema", "stop_loss": 0.05}
    found = insight.neighbours(cfg, best)
    assert all(sum(n[k] != best[k] for k in best) == 1 for n in found)  # one parameter at a time
    moved = sorted((k, v) for n in found for k, v in n.items() if v != best[k])
    assert moved == sorted([("fast", 3), ("slow", 49), ("slow", 51), ("ma_type", "sma"), ("ma_type", "wma"),
                            ("stop_loss", 0.04), ("stop_loss", 0.06)])  # fast 1 is below its bound


PEAK = '''
def peak_or_plateau(params, data):
    """A lone peak at fast = 5, slow = 40 (10, its neighbours 0) and a plateau of 8 around fast = 15."""
    fast, slow = params["fast"], params["slow"]
    return {"sharpe": 10.0 if (fast, slow) == (5, 40) else 8.0 if 12 <= fast <= 18 else 0.0, "trades": 50}
'''


def _landscape_trials(cfg):
    import optuna

    from runner.space import distributions

    space = distributions(cfg)
    study = optuna.create_study(direction="maximize")
    for fast, value in ((5, 10.0), (15, 8.0), (3, 0.0), (16, 8.0), (9, 0.0)):
        study.add_trial(optuna.trial.create_trial(params={"fast": fast, "slow": 40}, distributions=space,
                                                  value=value, user_attrs={"sharpe": value, "trades": 50}))
    return study.trials


@pytest.mark.parametrize("rule, chosen", [("value", 0), ("robust", 1)])
def test_robust_selection_prefers_a_plateau_to_a_peak(tmp_path, rule, chosen):
    (tmp_path / "land.py").write_text(PEAK)
    cfg = load_config(small_config(tmp_path, strategy="land:peak_or_plateau",
                                   extra=f'\n[validation]\nselect = "{rule}"\ntop_k = 3\n'))
    # Without a holdout the report needs no database.
    report = insight.build(None, cfg, "AAA", _landscape_trials(cfg))  # type: ignore[arg-type]
    assert report["best"]["trial"] == 0  # the peak has the best value
    assert report["selected"]["rule"] == rule and report["selected"]["trial"] == chosen
    assert report["robustness"]["ratio"] == 0.0  # the peak's neighbours score 0
    if rule == "robust":
        assert report["selected"]["neighbourhood_median"] == 8.0 and report["selected"]["candidates"] == 3
    assert report["deflated_sharpe"] == {"n/a": "no returns (a user backtest gives them under the key 'returns')"}


@pytest.mark.parametrize("mode, trains", [("rolling", [(0, 400), (400, 800), (800, 1200)]),
                                          ("anchored", [(0, 400), (0, 800), (0, 1200)])])
def test_walk_forward_folds_train_on_their_window_and_are_tested_on_the_next(tmp_path, mode, trains):
    """2000 bars, holdout 0.2: 1600 optimized, cut into 4 segments of 400; 3 folds."""
    (tmp_path / "seen.py").write_text(LAST_SEEN)
    extra = f'\n[validation]\nholdout = 0.2\nwalk_forward = {{ folds = 3, mode = "{mode}" }}\n'
    cfg = load_config(small_config(tmp_path, strategy="seen:last_seen", extra=extra))
    assert cfg.study_names() == ["t-AAA", "t-AAA-wf1", "t-AAA-wf2", "t-AAA-wf3"]
    frame = backtest.synthetic_ohlcv("AAA", seed=1, bars=2000, freq="1h", start="2020-01-01")
    main = Objective(cfg, "AAA")
    assert main.fold_windows == [(a, b, b + 400) for a, b in trains]
    for fold, (train, test) in enumerate(trains, 1):
        objective = Objective(cfg, "AAA", fold)
        seen = objective({"fast": 5, "slow": 30}).metrics
        assert (seen["first"], seen["sharpe"]) == (frame.index[train].timestamp(), frame.index[test - 1].timestamp())
        assert objective.holdout_start is None  # a fold's unseen data is its test window
        tested = main.fold_test({"fast": 5, "slow": 30}, fold)
        assert (tested["first"], tested["sharpe"]) == (frame.index[test].timestamp(), frame.index[test + 399].timestamp())


def test_walk_forward_that_leaves_too_few_bars_names_the_field(tmp_path):
    cfg = load_config(small_config(tmp_path, data="[data.synthetic]\nbars = 300\nseed = 1\n",
                                   extra="\n[validation]\nwalk_forward = { folds = 20 }\n"))
    with pytest.raises(ConfigError) as err:
        check_data(cfg)
    assert "validation.walk_forward" in str(err.value) and "AAA" in str(err.value)


def test_a_symbol_named_like_a_fold_is_refused(tmp_path):
    path = small_config(tmp_path, symbols=("AAA", "AAA-wf1"), extra="\n[validation]\nwalk_forward = { folds = 2 }\n")
    with pytest.raises(ConfigError, match="share a name"):
        load_config(path)


def test_the_report_ranks_feasible_trials_first(tmp_path):
    """The best value breaks a constraint: the report's best (and every section) starts
    from the best feasible trial, as the study's best does."""
    import optuna

    from runner.space import distributions

    (tmp_path / "land.py").write_text(PEAK)
    cfg = load_config(small_config(tmp_path, strategy="land:peak_or_plateau"))
    space = distributions(cfg)
    study = optuna.create_study(direction="maximize")
    for fast, value, violation in ((5, 10.0, 0.5), (15, 8.0, -0.1), (16, 7.0, 0.0)):
        study.add_trial(optuna.trial.create_trial(
            params={"fast": fast, "slow": 40}, distributions=space, value=value,
            user_attrs={"sharpe": value}, system_attrs={"constraints:max_drawdown": violation}))
    report = insight.build(None, cfg, "AAA", study.trials)  # type: ignore[arg-type]
    assert report["best"]["trial"] == 1 and report["selected"]["trial"] == 1
