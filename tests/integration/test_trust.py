"""Results one can trust, end to end: a study with a holdout, its report, where it shows."""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from runner import validation
from tests.helpers import count, small_config, status_json, trials_of, tune

EXTRA = """
[validation]
holdout = 0.3
top_k = 4
pbo_trials = 6
pbo_blocks = 4
"""


def test_a_study_with_a_holdout_validates_its_top_trials_and_reports_the_luck(db, db_url, tmp_path):
    config = small_config(tmp_path, name="trust", target=25, extra=EXTRA)
    proc = tune("run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = "trust-AAA"
    # The worker validated each trial that entered the top 4 as it was told, and no other.
    recorded = validation.results(db, study)
    assert recorded and all(r["metrics"] is not None and "sharpe" in r["metrics"] for r in recorded.values())
    done = [t for t in trials_of(db_url, study) if t.state == TrialState.COMPLETE]
    values = {t.number: t.value for t in done}
    entered = {t.number for i, t in enumerate(done)
               if sum(earlier.value > t.value for earlier in done[:i]) < 4}  # one worker: in number order
    assert set(recorded) == entered

    # While it ran, the worker recomputed the importances (at 20 complete trials, FIRST).
    live = status_json(str(config))[study]["importances"]
    assert live["trials"] >= 20 and live["method"] == "ped-anova" and {"fast", "slow"} < set(live)
    # The worker that ended the study wrote its report; tune report computes it again.
    at_end = status_json(str(config))[study]["report"]
    assert at_end["best"]["trial"] == max(values, key=values.get) and at_end["trials_at_compute"] >= 25
    proc = tune("report", study, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    best = max(values, key=values.get)
    assert report["best"]["trial"] == best and report["best"]["value"] == values[best]
    top = report["holdout"]["top"]
    assert len(top) == 4 and [r["in_sample"]["sharpe"] for r in top] == sorted(
        (r["in_sample"]["sharpe"] for r in top), reverse=True)
    assert all(r["out_of_sample"]["sharpe"] is not None for r in top)
    assert report["holdout"]["bars_in_sample"] == 1400 and report["holdout"]["bars_holdout"] == 600
    assert -1 <= report["holdout"]["rank_correlation"] <= 1
    assert 0 <= report["deflated_sharpe"]["value"] <= 1
    assert report["deflated_sharpe"]["observations"] == 1399
    assert report["pbo"]["trials"] == 6 and 2 <= report["pbo"]["strategies"] <= 6  # alike returns count once
    assert report["pbo"]["splits"] == 6 and 0 <= report["pbo"]["value"] <= 1
    assert report["robustness"]["neighbours"] >= 2
    assert set(report["importances"]) == {"method", "fast", "slow"}
    # Every top trial now has its holdout result kept.
    assert {r["trial"] for r in top} <= set(validation.results(db, study))

    # Stored: the status and the export carry it without computing.
    assert status_json(str(config))[study]["report"]["pbo"] == report["pbo"]
    summary = json.loads(tune("export", study, "--json", check=True).stdout)
    assert summary["report"]["best"] == report["best"] and summary["importances"] == live

    text = tune("report", study, check=True).stdout
    assert "DSR" in text and "PBO" in text and "Robustness" in text and "oos" in text and "importances" in text
    assert all(str(r["trial"]) in text for r in top)


def test_report_of_a_study_without_a_holdout_says_so(db_url, tmp_path):
    config = small_config(tmp_path, name="plain", target=8)
    assert tune("run", str(config)).returncode == 0
    report = json.loads(tune("report", "plain-AAA", "--json", check=True).stdout)
    assert report["holdout"] == {"n/a": "no holdout configured ([validation] holdout)"}
    assert "value" in report["deflated_sharpe"]


def test_report_of_an_unknown_study_exits_2(db_url):
    proc = tune("report", "nope-AAA")
    assert proc.returncode == 2 and "no such study" in proc.stderr and "Traceback" not in proc.stderr


def test_walk_forward_runs_a_study_per_fold_and_chains_their_tests(db, db_url, tmp_path):
    extra = '\n[validation]\nwalk_forward = { folds = 2, mode = "anchored" }\n'
    config = small_config(tmp_path, name="wf", target=6, extra=extra)
    proc = tune("run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = status_json(str(config))
    assert set(status) == {"wf-AAA", "wf-AAA-wf1", "wf-AAA-wf2"}
    assert all(s["state"] == "done" and s["complete"] >= 6 for s in status.values())
    report = json.loads(tune("report", "wf-AAA", "--json", check=True).stdout)["walk_forward"]
    assert report["mode"] == "anchored" and [f["fold"] for f in report["folds"]] == [1, 2]
    # 2000 bars in 3 segments of 666: fold 1 trains on the first, fold 2 on the first two.
    assert [(f["train_bars"], f["test_bars"]) for f in report["folds"]] == [([0, 666], [666, 1332]),
                                                                          ([0, 1332], [1332, 2000])]
    for f in report["folds"]:
        fold_trials = {t.number: t for t in trials_of(db_url, f["study"]) if t.state == TrialState.COMPLETE}
        best = max(fold_trials.values(), key=lambda t: t.value)
        assert f["trial"] == best.number and f["params"] == best.params  # the fold's own best
    equity = 1.0
    for f in report["folds"]:
        equity *= 1 + f["out_of_sample"]["total_return"]
        assert f["equity_after"] == pytest.approx(equity)
    assert report["oos_total_return"] == pytest.approx(equity - 1)
    assert isinstance(report["efficiency"], float) or "in-sample annual return" in report["efficiency"]["n/a"]
    # A fold's study has its own report (no walk-forward section of its own).
    fold_report = json.loads(tune("report", "wf-AAA-wf1", "--json", check=True).stdout)
    assert fold_report["best"]["trial"] == report["folds"][0]["trial"] and "walk_forward" not in fold_report


def test_a_study_cannot_resume_with_another_split(db_url, tmp_path):
    """Its trials saw the whole period: with a holdout now, they would pass for in sample."""
    config = small_config(tmp_path, name="resplit", target=4)
    assert tune("run", str(config)).returncode == 0
    config.write_text(config.read_text() + "\n[validation]\nholdout = 0.3\n")
    proc = tune("run", str(config))
    assert proc.returncode == 2 and "validation" in proc.stderr and "resume = false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tune("report", "resplit-AAA").returncode == 2  # nor report on it with other windows
    config.write_text(config.read_text().replace("[study]", "[study]\nresume = false"))
    assert tune("run", str(config)).returncode == 0  # started fresh: fine


def test_the_report_evaluates_again_a_holdout_a_stopping_worker_cut_short(db, tmp_path):
    """The worker marks a holdout evaluation that its stop interrupted; the report redoes
    that one and keeps a real failure as it was."""
    import optuna

    from runner import insight
    from runner.config import load_config
    from runner.space import distributions
    from runner.study import Objective

    cfg = load_config(small_config(tmp_path, extra="\n[validation]\nholdout = 0.3\ntop_k = 3\n"))
    space = distributions(cfg)
    study = optuna.create_study(direction="maximize")
    for fast, value in ((5, 3.0), (8, 2.0), (11, 1.0)):
        study.add_trial(optuna.trial.create_trial(params={"fast": fast, "slow": 40}, distributions=space,
                                                  value=value, user_attrs={"sharpe": value}))
    name = cfg.study_name("AAA")
    validation.record(db, name, 0, None, validation.INTERRUPTED)
    validation.record(db, name, 1, None, "ValueError: the backtest's own failure")
    report = insight.build(db, cfg, "AAA", study.trials, Objective(cfg, "AAA"))
    rows = {r["trial"]: r for r in report["holdout"]["top"]}
    assert rows[0]["error"] is None and rows[0]["out_of_sample"]["sharpe"] is not None
    assert rows[1]["error"] == "ValueError: the backtest's own failure" and rows[1]["out_of_sample"] is None
    kept = validation.results(db, name)
    assert kept[0]["error"] is None and kept[0]["metrics"] and kept[1]["error"].startswith("ValueError")


def test_appended_bars_cannot_move_a_studys_holdout_under_it(db, db_url, tmp_path):
    """A fractional holdout moves when bars are appended: resuming would show the later
    trials bars the earlier ones never saw. tune run refuses (exit 2) and says how to keep
    the split; with the holdout given as that timestamp the study resumes."""
    import backtest
    from runner import control

    frame = backtest.synthetic_ohlcv("AAA", seed=1, bars=2000, freq="1h", start="2020-01-01")
    frame.iloc[:1500].to_csv(tmp_path / "AAA.csv")
    config = small_config(tmp_path, name="pin", target=4, extra="\n[validation]\nholdout = 0.3\n")
    config.write_text(config.read_text().replace("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "{symbol}.csv"\n'))
    tune("run", str(config), check=True)
    first_unseen = frame.index[1050].isoformat()  # 30 % of 1500 held out: bars 1050 on

    frame.to_csv(tmp_path / "AAA.csv")  # 500 bars appended: 30 % now starts at bar 1400
    config.write_text(config.read_text().replace("target_trials = 4", "target_trials = 8"))
    before = control.list_studies(db, ["pin-AAA"])[0]
    proc = tune("run", str(config))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "validation" in proc.stderr and "data changed" in proc.stderr
    after = control.list_studies(db, ["pin-AAA"])[0]  # refused: the study is as it was
    assert (after.target_trials, after.ended_code, after.split) == (4, before.ended_code, before.split)
    assert first_unseen in proc.stderr and frame.index[1400].isoformat() in proc.stderr
    assert len(trials_of(db_url, "pin-AAA")) == 4  # no trial ran on the moved split

    # The advice works: the holdout given as that timestamp leaves the trials the same bars.
    config.write_text(config.read_text().replace("holdout = 0.3", f'holdout = "{first_unseen}"'))
    tune("run", str(config), check=True)
    assert count(trials_of(db_url, "pin-AAA"), TrialState.COMPLETE) == 8
    report = json.loads(tune("report", "pin-AAA", "--json", check=True).stdout)
    assert report["holdout"]["bars_in_sample"] == 1050 and report["holdout"]["bars_holdout"] == 950

    # Without a holdout the trials would see every bar: refused too.
    config.write_text(config.read_text().replace(f'holdout = "{first_unseen}"', ""))
    proc = tune("run", str(config))
    assert proc.returncode == 2 and "keeps no bars unseen" in proc.stderr and "Traceback" not in proc.stderr


def test_a_folds_moved_window_is_refused_without_the_holdout_hint(db, tmp_path):
    from runner import control
    from runner.config import ConfigError, load_config

    cfg = load_config(small_config(tmp_path, extra="\n[validation]\nwalk_forward = { folds = 2 }\n"))
    for fold in cfg.folds():
        control.register_study(db, cfg, "AAA", reset_control=True, fold=fold)
    name = cfg.study_name("AAA", 1)
    control.pin_seen_bars(db, cfg, name, ["2020-01-01T00:00:00", "2020-01-10T00:00:00"], 1)
    control.pin_seen_bars(db, cfg, name, ["2020-01-01T00:00:00", "2020-01-10T00:00:00"], 1)  # the same: fine
    with pytest.raises(ConfigError) as err:
        control.pin_seen_bars(db, cfg, name, ["2020-01-01T00:00:00", "2020-01-12T00:00:00"], 1)
    assert "2020-01-10T00:00:00" in str(err.value) and "2020-01-12T00:00:00" in str(err.value)
    assert "holdout =" not in str(err.value) and "resume = false" in str(err.value)
    assert control.list_studies(db, [name])[0].seen_bars == ["2020-01-01T00:00:00", "2020-01-10T00:00:00"]


def test_a_symbols_folds_are_listed_after_it_in_fold_order(db, tmp_path):
    from runner import control
    from runner.config import load_config

    cfg = load_config(small_config(tmp_path, symbols=("BBB", "AAA"),
                                   extra="\n[validation]\nwalk_forward = { folds = 11 }\n"))
    for symbol, fold in reversed(cfg.study_units()):
        control.register_study(db, cfg, symbol, reset_control=True, fold=fold)
    names = [row.name for row in control.list_studies(db)]
    assert names == [f"t-{s}{'' if f is None else f'-wf{f}'}" for s in ("AAA", "BBB") for f in (None, *range(1, 12))]


def test_a_folds_best_is_its_best_feasible_trial_as_the_reports_is(db, tmp_path):
    """The walk-forward section takes each fold's best as the report takes the study's:
    a feasible trial before a better infeasible one."""
    import optuna

    from runner import insight
    from runner.config import load_config
    from runner.space import distributions
    from runner.study import Objective

    cfg = load_config(small_config(tmp_path, extra="\n[validation]\nwalk_forward = { folds = 2 }\n"))
    space = distributions(cfg)
    fold = cfg.study_name("AAA", 1)
    study = optuna.create_study(storage=db.optuna_storage(fold), study_name=fold, direction="maximize")
    for fast, value, violation in ((5, 9.0, 0.5), (8, 4.0, -0.1)):
        study.add_trial(optuna.trial.create_trial(
            params={"fast": fast, "slow": 40}, distributions=space, value=value,
            user_attrs={"sharpe": value, "cagr": 0.1}, system_attrs={"constraints:max_drawdown": violation}))
    wf = insight._walk_forward(db, cfg, "AAA", Objective(cfg, "AAA"), 1.0)
    assert wf["folds"][0]["trial"] == 1 and wf["folds"][0]["params"] == {"fast": 8, "slow": 40}
    assert wf["folds"][1]["n/a"] == "no complete trial yet"
