"""The monitor: incremental, and right after what happens under it."""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from runner import control
from runner.config import load_config
from runner.monitor import Monitor
from tests.helpers import small_config


def _study(db, tmp_path, name="mon"):
    cfg = load_config(small_config(tmp_path, name=name))
    control.register_study(db, cfg, "AAA", reset_control=True)
    study_name = cfg.study_name("AAA")
    return study_name, optuna.create_study(storage=db.optuna_storage(study_name), study_name=study_name,
                                           direction="maximize")


def test_an_event_committed_out_of_id_order_is_still_shown(db, tmp_path):
    name, _ = _study(db, tmp_path)
    monitor = Monitor(db, [name])
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tune_events (id, study, level, message) VALUES (1010, :s, 'info', 'late id')"),
                     {"s": name})
    assert [e.message for e in monitor.poll().studies[0].events] == ["late id"]
    with db.engine.begin() as conn:  # a lower id that committed after the higher one was read
        conn.execute(sa.text("INSERT INTO tune_events (id, study, level, message) VALUES (1005, :s, 'info', 'early id')"),
                     {"s": name})
    assert [e.message for e in monitor.poll().studies[0].events] == ["late id", "early id"]
    assert len(monitor.poll().studies[0].events) == 2  # and nothing is shown twice


def test_a_study_started_fresh_under_a_running_monitor_is_followed_from_scratch(db, tmp_path):
    name, study = _study(db, tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    monitor = Monitor(db, [name])
    assert monitor.poll().statuses[0].complete == 6
    db.delete_studies([name], control.live_studies)  # what a fresh tune run does
    name, study = _study(db, tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert monitor.poll().statuses[0].complete == 2


def test_a_bounded_poll_reads_history_in_slices_and_ends_with_the_same_counts(db, tmp_path):
    name, study = _study(db, tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=20)
    monitor = Monitor(db, [name])
    first = monitor.poll(max_records=25)
    assert first.catching_up and first.statuses[0].attempts < 20
    polls = 1
    while monitor.poll(max_records=25).catching_up:
        polls += 1
        assert polls < 50
    assert polls > 1
    assert monitor.poll(max_records=25).statuses[0].complete == 20 == Monitor(db, [name]).poll().statuses[0].complete


def test_without_detail_the_counts_and_the_best_are_the_same_from_fewer_records(db, tmp_path):
    """tune status's reading: states, values, parameters and kinds, never the metrics."""
    name, study = _study(db, tmp_path)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("trades", 12)  # a metric: most of a real study's records
        if x < 0.2:
            trial.set_user_attr("fail_reason", "no trades")  # told as pruned, counted as failed
            raise optuna.TrialPruned()
        if x > 0.9:
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=40)
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
        user_attrs={"duplicate_source": "memory", "duplicate_of": 3}))
    full, light = Monitor(db, [name]).poll().statuses[0], Monitor(db, [name], detail=False).poll().statuses[0]
    counts = ("complete", "pruned", "failed", "duplicate", "running", "attempts", "best_value", "best_trial",
              "best_params", "best_on_bound")
    assert [getattr(light, c) for c in counts] == [getattr(full, c) for c in counts]
    assert full.failed and full.pruned and full.duplicate == 1 and full.duplicate_sources == light.duplicate_sources
    assert full.best_params and full.best_metrics.get("trades") == 12
    assert "trades" not in light.best_metrics  # not read
    grown = Monitor(db, [name], detail=False)
    grown.poll()
    study.optimize(objective, n_trials=5)  # it follows on from where it was, skipped records counted
    assert grown.poll().statuses[0].attempts == Monitor(db, [name]).poll().statuses[0].attempts == 46
