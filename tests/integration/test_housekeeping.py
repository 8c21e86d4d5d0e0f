"""tune archive and tune delete: old studies out of the way, or gone for good."""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from runner import control
from runner.config import load_config
from tests.helpers import small_config, tune


def _studies(db, tmp_path, symbols=("AAA", "BBB"), extra=""):
    """A run's studies, registered as tune run does, with three trials each."""
    cfg = load_config(small_config(tmp_path, name="hk", symbols=symbols, extra=extra))
    names = []
    for symbol in symbols:
        for fold in cfg.folds():
            control.register_study(db, cfg, symbol, reset_control=True, fold=fold)
            name = cfg.study_name(symbol, fold)
            study = optuna.create_study(storage=db.optuna_storage(name), study_name=name, direction="maximize")
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
            names.append(name)
    return cfg, names


def _rows(db, table, column, name) -> int:
    with db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :n"), {"n": name}).scalar_one()


def test_an_archived_study_leaves_the_views_stays_loadable_and_comes_back(db, db_url, tmp_path):
    cfg, (aaa, bbb) = _studies(db, tmp_path)
    env = {"TUNE_STORAGE_URL": db_url}
    archived = tune("archive", aaa, env=env, check=True)
    assert f"{aaa}: archived" in archived.stdout
    shown = tune("status", env=env, check=True).stdout
    assert bbb in shown and aaa not in shown
    assert aaa in tune("status", "--archived", env=env, check=True).stdout
    assert aaa in tune("export", aaa, env=env, check=True).stdout  # still loadable
    assert len(optuna.load_study(study_name=aaa, storage=db.optuna_storage(aaa)).trials) == 3
    assert "already archived" in tune("archive", aaa, env=env, check=True).stdout
    assert f"{aaa}: back" in tune("archive", "--undo", aaa, env=env, check=True).stdout
    assert aaa in tune("status", env=env, check=True).stdout
    control.set_archived(db, [aaa], True)
    assert "archived" in next(line for line in tune("status", "--archived", env=env, check=True).stdout.splitlines()
                              if aaa in line)  # marked as such
    control.register_study(db, cfg, "AAA", reset_control=True)  # running it again brings it back
    assert [r.name for r in control.list_studies(db)] == [aaa, bbb]
    control.set_archived(db, [aaa, bbb], True)
    assert "no studies (2 archived: tune status --archived)" in tune("status", env=env, check=True).stdout
    tune("resume", "--all", env=env, check=True)  # every study: the archived ones stay as they are
    assert control.list_studies(db) == []
    tune("resume", aaa, env=env, check=True)  # a resume by name brings it back
    assert [r.name for r in control.list_studies(db)] == [aaa]


def test_the_apps_every_study_never_reaches_the_archived_ones(db, db_url, tmp_path):
    from tui.data import StudyFeed

    _, (aaa, bbb) = _studies(db, tmp_path)
    control.set_archived(db, [aaa], True)
    feed = StudyFeed(db_url, None)
    try:
        assert feed.set_control(None, "paused").ok  # P: every study shown
    finally:
        feed.close()
    assert {r.name: str(r.control) for r in control.list_studies(db, [aaa, bbb])} == {aaa: "running", bbb: "paused"}


def test_names_that_are_not_text_are_no_study(db, db_url):
    import os

    proc = tune("archive", os.fsdecode(b"bad\xff"), env={"TUNE_STORAGE_URL": db_url})
    assert proc.returncode == 2 and "no such study: bad" in proc.stderr and "Traceback" not in proc.stderr


def test_delete_asks_refuses_what_runs_and_then_removes_every_trace(db, db_url, tmp_path):
    _, (aaa, bbb) = _studies(db, tmp_path)
    env = {"TUNE_STORAGE_URL": db_url}
    unconfirmed = tune("delete", aaa, env=env)  # not on a terminal: it needs --yes
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr and "Traceback" not in unconfirmed.stderr
    typo = tune("delete", aaa, "no-such", "--yes", env=env)
    assert typo.returncode == 2 and "no such study: no-such" in typo.stderr
    assert _rows(db, "tune_journal", "stream", aaa) > 0  # nothing deleted by a refused command
    with db.engine.begin() as conn:  # a live worker of AAA
        conn.execute(sa.text("INSERT INTO tune_workers (id, study, host, pid, status, heartbeat_at)"
                             " VALUES ('w1', :s, 'h', 1, 'running', now())"), {"s": aaa})
    busy = tune("delete", aaa, "--yes", env=env)
    assert busy.returncode == 2 and f"tune stop {aaa}" in busy.stderr
    # Still live as the deletion runs (started after the question): checked again under the lock.
    assert db.delete_studies([aaa, bbb], control.live_studies) == [aaa]
    assert _rows(db, "tune_journal", "stream", bbb) > 0  # all or nothing
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE tune_workers SET status = 'exited'"))
    done = tune("delete", aaa, "--yes", env=env, check=True)
    assert f"{aaa}: deleted" in done.stdout
    for table, column in (("tune_journal", "stream"), ("tune_streams", "stream"), ("tune_studies", "name"),
                          ("tune_workers", "study")):
        assert _rows(db, table, column, aaa) == 0, table
    assert _rows(db, "tune_journal", "stream", bbb) > 0  # the other study untouched
    assert [r.name for r in control.list_studies(db)] == [bbb]


def test_a_studys_walk_forward_folds_go_with_it(db, db_url, tmp_path):
    extra = '\n[validation]\nwalk_forward = { folds = 2, mode = "anchored" }\n'
    _, names = _studies(db, tmp_path, symbols=("AAA",), extra=extra)
    main = next(n for n in names if not n.endswith(("wf1", "wf2")))
    out = tune("archive", main, env={"TUNE_STORAGE_URL": db_url}, check=True).stdout
    assert all(f"{n}: archived" in out for n in names) and len(names) == 3
    assert control.list_studies(db) == []


def test_a_heartbeat_reaps_only_once_its_worker_has_read_the_study(db, db_url, tmp_path):
    """A worker's heartbeat that reaped during the worker's first read made a second storage,
    reading every trial with every metric beside the worker's own read (issue 14)."""
    from runner import reaper
    from runner.storage import Database

    _, (aaa, _bbb) = _studies(db, tmp_path)
    with db.engine.begin() as conn:  # a worker silent for an hour
        conn.execute(sa.text("INSERT INTO tune_workers (id, study, host, pid, status, heartbeat_at)"
                             " VALUES ('gone', :s, 'h', 1, 'running', now() - interval '1 hour')"), {"s": aaa})
    fresh = Database(db_url)  # a process that has not read the study yet
    try:
        assert reaper.reap_lost_workers(fresh, aaa, made_only=True) == [] and not fresh.has_storage(aaa)
        assert control.list_workers(db, [aaa])[0].status == "running"  # not even marked lost yet
        fresh.optuna_storage(aaa)  # the worker's own read
        reaper.reap_lost_workers(fresh, aaa, made_only=True)
        assert control.list_workers(db, [aaa])[0].status == "lost"
    finally:
        fresh.dispose()
