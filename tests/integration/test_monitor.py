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
    db.delete_study_records(name)  # what a fresh tune run does
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
