"""The monitor: incremental, and right after what happens under it."""

from __future__ import annotations

from datetime import UTC, datetime

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


def _objective(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.suggest_int("k", 1, 60)
    trial.set_user_attr("trades", int(100 * x))
    trial.report(x / 2, 1)
    if x > 0.9:
        trial.set_user_attr("prune_reason", "too good to be true")
        raise optuna.TrialPruned()
    return x


def _shown(snapshot):
    v = snapshot.studies[0]
    return v.status.to_json() | {"trials_per_minute": None, "eta_seconds": None}, v.series(), v.recent


def test_a_follower_started_from_the_stored_summary_shows_what_one_reading_the_journal_shows(db, tmp_path,
                                                                                           monkeypatch):
    """Issue 14: the summary stands for the history it covers, open trials included."""
    import runner.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "SUMMARY_EVERY", 50)
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=30)
    waiting = study.ask()  # an open trial, finished after the summary
    waiting.suggest_float("x", 0, 1)
    writer = Monitor(db, [name])
    writer.poll()
    stored = db.read_summaries([name])
    assert name in stored and stored[name][1]["offset"] == writer._followers[name].offset
    waiting.set_user_attr("trades", 95)
    study.tell(waiting, 0.95)
    study.optimize(_objective, n_trials=3)
    from_summary = Monitor(db, [name])
    a = from_summary.poll()
    from_journal = Monitor(db, [name])
    monkeypatch.setattr(db, "read_summaries", lambda names: {})  # this one reads the whole journal
    b = from_journal.poll()
    assert from_summary._followers[name].summary_offset > 0  # it started from the summary
    assert _shown(a) == _shown(b)
    assert a.statuses[0].best_value == 0.95 and a.statuses[0].best_metrics["trades"] == 95
    assert a.statuses[0].attempts == 34 and a.statuses[0].running == 0


def test_a_summary_of_a_study_since_started_fresh_is_not_used(db, tmp_path, monkeypatch):
    import runner.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "SUMMARY_EVERY", 10)
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=10)
    Monitor(db, [name]).poll()
    assert db.read_summaries([name])
    db.delete_studies([name], control.live_studies)
    assert not db.read_summaries([name])  # a fresh start takes it along
    name, study = _study(db, tmp_path)
    db.write_summary(name, 10**6, datetime.now(UTC), {"format": 1})  # made for another study row
    assert not db.read_summaries([name])
    study.optimize(_objective, n_trials=2)
    assert Monitor(db, [name]).poll().statuses[0].attempts == 2


def test_a_study_at_rest_is_summarised_to_its_end_so_the_next_look_reads_nothing(db, tmp_path, monkeypatch):
    """Issue 12: tune status on a finished run starts from a summary covering all of it."""
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=5)  # far fewer records than SUMMARY_EVERY
    waiting = study.ask()  # an open trial: the study is not at rest
    waiting.suggest_float("x", 0, 1)
    Monitor(db, [name]).poll()
    assert not db.read_summaries([name])
    study.tell(waiting, 0.5)
    Monitor(db, [name]).poll()
    assert not db.read_summaries([name])  # fewer records than SUMMARY_AT_REST: not worth a write
    import runner.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "SUMMARY_AT_REST", 10)
    first = Monitor(db, [name])
    first.poll()
    stored = db.read_summaries([name])
    assert stored[name][1]["offset"] == first._followers[name].offset > 0
    again = Monitor(db, [name])
    reads: list[dict] = []
    read_journals = db.read_journals
    monkeypatch.setattr(db, "read_journals",
                        lambda offsets, **kw: reads.append(read_journals(offsets, **kw)) or reads[-1])
    assert again.poll().statuses[0].attempts == 6
    assert [sum(map(len, r.values())) for r in reads] == [0]  # it started at the journal's end


def test_a_finished_trial_is_read_back_whole_and_the_follower_keeps_no_finished_trial(db, tmp_path):
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=25)
    monitor = Monitor(db, [name])
    monitor.poll()
    f = monitor._followers[name]
    assert f.replay.open == {} and f.kinds == {}
    for number in (0, 7, 24):  # by its span, and (forgotten) by counting creations
        expected = study.trials[number]
        f.spans.pop(number, None) if number == 7 else None
        got = monitor.trial(name, number)
        assert (got.params, got.values, got.state) == (expected.params, expected.values, expected.state)
        assert got.user_attrs == expected.user_attrs and got.intermediate_values == expected.intermediate_values
    assert monitor.trial(name, 25) is None and monitor.trial(name, -1) is None


def test_the_convergence_series_is_thinned_keeping_its_envelope(db, tmp_path, monkeypatch):
    import runner.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "SERIES_CAP", 40)
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=120)
    view = Monitor(db, [name]).poll().studies[0]
    numbers, values, _ = view.series()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 20 <= len(values) <= 40 < len(complete)
    assert numbers == sorted(numbers) and max(values) == max(t.value for t in complete)
    assert min(values) == min(t.value for t in complete)


def test_the_outline_is_built_from_the_journal_then_kept(db, tmp_path):
    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=30)
    monitor = Monitor(db, [name])
    monitor.poll()
    outline = monitor.outline(name)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {s.param: s.trials for s in outline.slices(None)} == {"x": complete, "k": complete}
    study.optimize(_objective, n_trials=3)
    monitor.poll()
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert monitor.outline(name) is outline and {s.trials for s in outline.slices(None)} == {complete}


def test_the_worker_whose_turn_it_is_brings_the_stored_summary_to_the_journals_end(db, tmp_path, caplog):
    """Issue 14: a study run by workers alone still has a summary for the first look."""
    from runner.monitor import SUMMARY_TRIALS, SummaryKeeper

    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=12)
    keeper = SummaryKeeper(db, name)
    assert not keeper.offer(0) and not keeper.offer(SUMMARY_TRIALS + 1)  # not this worker's turn
    assert not db.read_summaries([name])
    assert keeper.offer(SUMMARY_TRIALS)
    keeper.finish()
    end = Monitor(db, [name])
    end.poll()
    assert db.read_summaries([name])[name][1]["offset"] == end._followers[name].offset
    study.optimize(_objective, n_trials=3)
    assert keeper.offer(2 * SUMMARY_TRIALS)  # its follower goes on from where it was
    keeper.finish()
    stored = db.read_summaries([name])[name][1]
    assert stored["offset"] > end._followers[name].offset
    assert Monitor(db, [name]).poll().statuses[0].attempts == 15
    broken = SummaryKeeper(db, name)
    broken.monitor.poll = lambda **kw: 1 / 0  # a failure is logged, never raised
    assert broken.offer(3 * SUMMARY_TRIALS)
    broken.finish()
    assert "summary was not stored" in caplog.text


def test_the_app_reaps_only_once_history_is_read_and_keeps_no_replay_of_a_study_it_reaped(db, db_url, tmp_path,
                                                                                         monkeypatch):
    """Issue 14: a trial whose end lies in the next slice of history only looks running; a
    reap replays the whole study through Optuna (most of a cold first look's time and memory)."""
    import time

    import tui.data
    from runner import reaper
    from tui.data import StudyFeed

    name, study = _study(db, tmp_path)
    study.optimize(_objective, n_trials=20)
    orphan = study.ask()  # its worker is lost (below): the app fails it, once it has read everything
    orphan.suggest_float("x", 0, 1)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE tune_studies SET grace_seconds = 0.1 WHERE name = :s"), {"s": name})
        conn.execute(sa.text("INSERT INTO tune_workers (id, study, host, pid, status, heartbeat_at, trial_id)"
                             " VALUES ('lost', :s, 'h', 1, 'running', 'epoch', :t)"), {"s": name, "t": orphan._trial_id})
    monkeypatch.setattr(tui.data, "HISTORY_RECORDS_PER_POLL", 5)
    monkeypatch.setattr(tui.data, "REAP_EVERY_POLLS", 1)
    seen = []
    reap = reaper.reap_orphaned
    monkeypatch.setattr(reaper, "reap_orphaned", lambda db, statuses: seen.append(statuses[0].attempts) or reap(db, statuses))
    feed = StudyFeed(db_url, [name])
    try:
        deadline = time.monotonic() + 30
        while study.trials[-1].state != optuna.trial.TrialState.FAIL:
            assert time.monotonic() < deadline, "the orphan was never failed"
            feed.poll()
        assert feed._polls > 10  # it read the history in slices
        assert seen and set(seen) == {21}  # every reap came after the whole history was read
        assert name not in feed.db._storages  # the reap's replay of the study is not kept
    finally:
        feed.close()


def test_an_unbounded_poll_reads_a_long_history_in_pages(db, tmp_path, monkeypatch):
    """tune status on 50 x 20,000 trials: one query for 17 million records outlasted the
    server's answer deadline."""
    import runner.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "READ_PAGE_RECORDS", 12)
    name, study = _study(db, tmp_path)
    other, study2 = _study(db, tmp_path, name="mon2")
    study.optimize(_objective, n_trials=9)
    study2.optimize(_objective, n_trials=2)
    limits = []
    read_journals = db.read_journals
    monkeypatch.setattr(db, "read_journals",
                        lambda offsets, limit=None, **kw: limits.append((len(offsets), limit)) or
                        read_journals(offsets, limit=limit, **kw))
    snapshot = Monitor(db, [name, other]).poll()
    assert not snapshot.catching_up and [s.attempts for s in snapshot.statuses] == [9, 2]
    assert limits[0] == (2, 6) and len(limits) > 3  # 12 records a page, shared by the studies behind
    assert all(limit == 12 // n for n, limit in limits) and limits[-1] == (1, 12)  # the short one was done first
