"""tune dashboard: every study of the database in one optuna-dashboard, read-only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import optuna
import pytest
import sqlalchemy as sa

from runner import control
from runner.config import load_config
from runner.dashboard import AllStudies, ReadOnlyStorage
from tests.helpers import small_config, tune, wait_for


def _studies(db, tmp_path, symbols=("AAA", "BBB"), trials=(4, 2)):
    cfg = load_config(small_config(tmp_path, name="dash", symbols=symbols))
    names = []
    for symbol, n in zip(symbols, trials):
        control.register_study(db, cfg, symbol, reset_control=True)
        name = cfg.study_name(symbol)
        study = optuna.create_study(storage=db.optuna_storage(name), study_name=name, direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
        names.append(name)
    return names


def _tables(db) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())


def test_every_study_reads_through_one_storage_and_nothing_is_written(db, tmp_path):
    aaa, bbb = _studies(db, tmp_path)
    control.set_archived(db, [bbb], True)  # archived studies stay loadable: shown too
    tables = _tables(db)
    storage = AllStudies(db)
    assert {s.study_name: s._study_id for s in storage.get_all_studies()} == {aaa: 0, bbb: 1}
    loaded = optuna.load_study(study_name=bbb, storage=storage)  # any Optuna reader, through it
    assert [t.number for t in loaded.trials] == [0, 1] and loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    expected = optuna.load_study(study_name=bbb, storage=db.optuna_storage(bbb)).best_trial
    assert loaded.best_trial.params == expected.params and loaded.best_value == expected.value
    trial = loaded.trials[1]
    assert trial._trial_id >> 32 == 1  # a trial id names its study
    assert storage.get_trial(trial._trial_id).params == trial.params
    assert storage.get_trial_id_from_study_id_trial_number(1, 1) == trial._trial_id
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("no-such")
    with pytest.raises(KeyError):
        storage.get_trial(7 << 32)
    for write in (lambda: storage.set_study_system_attr(0, "note", "x"), lambda: storage.delete_study(0),
                  lambda: storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "new"),
                  lambda: storage.set_trial_user_attr(trial._trial_id, "k", 1)):
        with pytest.raises(ReadOnlyStorage):
            write()
    assert _tables(db) == tables  # none of Optuna's RDB tables
    assert [r.name for r in control.list_studies(db, None, archived=True)] == [aaa, bbb]  # no study added
    assert len(optuna.load_study(study_name=aaa, storage=db.optuna_storage(aaa)).trials) == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_tune_dashboard_lists_every_study_over_http(db, db_url, tmp_path):
    aaa, bbb = _studies(db, tmp_path)
    port = _free_port()
    env = {**os.environ, "TUNE_STORAGE_URL": db_url}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def listed():
            try:
                return _get(f"http://127.0.0.1:{port}/api/studies")
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                return None

        studies = wait_for(listed, timeout=60, message="the dashboard answering")["study_summaries"]
        assert sorted(s["study_name"] for s in studies) == [aaa, bbb]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/0")
        assert len(detail["trials"]) == 4 and detail["trials"][0]["state"] == "Complete"
        assert detail["best_trials"][0]["values"] == [max(t["values"][0] for t in detail["trials"])]
        create = urllib.request.Request(f"http://127.0.0.1:{port}/api/studies", method="POST",
                                        data=json.dumps({"study_name": "new", "directions": ["maximize"]}).encode(),
                                        headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError):  # refused: the dashboard only looks
            urllib.request.urlopen(create, timeout=5)
        assert [r.name for r in control.list_studies(db, None, archived=True)] == [aaa, bbb]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out and "read-only" in out


def test_a_taken_port_or_a_bad_one_is_a_clear_error(db_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = tune("dashboard", "--port", str(s.getsockname()[1]))
    assert taken.returncode == 2 and "cannot listen on" in taken.stderr and "Traceback" not in taken.stderr
    bad = tune("dashboard", "--port", "70000")
    assert bad.returncode == 2 and "not a port" in bad.stderr
