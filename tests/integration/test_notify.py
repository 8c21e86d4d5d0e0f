"""[notify] with real workers: each event is told once, by one of the run's workers, to
each channel (a local HTTP endpoint standing in for a webhook, Slack and Telegram);
a dead endpoint never stops a worker; dry_run writes the messages to the logs."""

from __future__ import annotations

import collections
import os
import signal
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner import control
from tests.helpers import (
    USER_BACKTESTS,
    Hook,
    Server,
    fresh_database,
    ledger_config,
    small_config,
    start_worker,
    tune,
    wait_for,
    worker_env,
)

TOKEN = "4242:never-print-me"


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _channels(hook: Hook) -> str:
    return (f'[notify.webhook]\nurl = "{hook.url}/generic"\n'
            f'[notify.slack]\nurl_env = "TUNE_TEST_SLACK"\n'
            f'[notify.telegram]\ntoken_env = "TUNE_TEST_TG"\nchat_id = 5\napi_url = "{hook.url}"\n')


@pytest.fixture
def secrets(hook, monkeypatch):
    monkeypatch.setenv("TUNE_TEST_SLACK", f"{hook.url}/slack/T0/B0/x")
    monkeypatch.setenv("TUNE_TEST_TG", TOKEN)


def _rows(db, study: str) -> list:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT key, kind, body, claimed_by, sent_at, error FROM tune_notifications "
                                    "WHERE study = :s ORDER BY created_at"), {"s": study}).all()


def _by_channel(hook: Hook) -> dict[str, list[dict]]:
    """The posts each channel received: webhook bodies, Slack bodies, Telegram bodies."""
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for path, body in list(hook.posts):
        name = "generic" if path == "/generic" else "slack" if path.startswith("/slack/") else "telegram"
        out[name].append(body)
    return out


def _assert_told_once(db, hook: Hook, study: str) -> list[dict]:
    """Every event of the study was sent, without error, once to each channel; returns the
    webhook's bodies (which carry the event and its data)."""
    rows = wait_for(lambda: (r := _rows(db, study)) and all(x.sent_at for x in r) and r, timeout=60,
                    message="every notification sent")
    assert [r.error for r in rows] == [None] * len(rows)
    got = wait_for(lambda: (c := _by_channel(hook)) and all(len(c[n]) == len(rows) for n in
                                                            ("generic", "slack", "telegram")) and c,
                   timeout=30, message="each channel's posts")
    for name, bodies in got.items():
        texts = [b["text"] for b in bodies]
        assert len(set(texts)) == len(texts) == len(rows), (name, texts)
    path = next(p for p, _ in hook.posts if p.startswith("/bot"))
    assert path == f"/bot{TOKEN}/sendMessage"
    return [b for b in got["generic"] if b["study"] == study]


def _logs_and_events(db, home: Path) -> str:
    with db.engine.connect() as conn:
        events = "\n".join(m for (m,) in conn.execute(sa.text("SELECT message FROM tune_events")))
    logs = "\n".join(p.read_text() for p in (home / "logs").glob("*.log")) if (home / "logs").exists() else ""
    return events + "\n" + logs


def test_two_workers_tell_each_best_progress_mark_and_the_end_once(db, db_url, tmp_path, hook, secrets):
    table = "[notify]\nprogress_every = 10\nbest_every_seconds = 0\n" + _channels(hook)
    config = small_config(tmp_path, name="nb", target=40, workers=2, extra="\n" + table)
    home = Path(tempfile.mkdtemp(prefix="tune-notify-"))
    proc = tune("run", str(config), env={"TUNE_HOME": str(home)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    told = _assert_told_once(db, hook, "nb-AAA")
    kinds = collections.Counter(b["event"] for b in told)
    assert kinds["done"] == 1  # both workers reached the target; the first to say so tells
    assert sorted(b["data"]["complete"] // 10 * 10 for b in told if b["event"] == "progress") == [10, 20, 30]
    # Each best told names the one told before it: one chain, whichever worker told each.
    bests = sorted((b["data"] for b in told if b["event"] == "new_best"), key=lambda b: b["value"])
    assert bests and [b["previous"] for b in bests] == [None] + [b["value"] for b in bests[:-1]]
    with db.engine.connect() as conn:  # the last told is the study's best
        best = conn.execute(sa.text("SELECT max((body->'values'->>0)::float) FROM tune_journal "
                                    "WHERE stream = 'nb-AAA' AND body->>'state' = '1'")).scalar()
    assert best is not None and bests[-1]["value"] == pytest.approx(best)
    done = next(b for b in told if b["event"] == "done")
    # The best as seen when the end was recorded (a best the other worker had in hand may come after).
    assert done["data"]["code"] == "target_reached" and done["data"]["best"] in [b["value"] for b in bests]
    assert f"telegram ({hook.url})" in proc.stdout and "notify: new_best, progress, done" in proc.stdout
    shown = proc.stdout + proc.stderr + _logs_and_events(db, home)
    assert TOKEN not in shown and "T0/B0" not in shown  # the bot's token, the Slack URL's secret path


def _slow_config(tmp_path: Path, name: str, extra: str, target: int = 200, workers: int = 2) -> Path:
    (tmp_path / "userbt.py").write_text(USER_BACKTESTS)
    return small_config(tmp_path, name=name, target=target, workers=workers, strategy="userbt:slow",
                        extra="\n[validation]\nreport_at_end = false\n" + extra)


def test_a_lost_worker_and_a_crashed_one_are_each_told_once(db, db_url, tmp_path, hook, secrets):
    config = _slow_config(tmp_path, "lc", "[notify]\nevents = ['worker_lost', 'worker_crashed']\n" + _channels(hook),
                          workers=3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = [start_worker(config, env, tmp_path / f"w{i}.log") for i in range(3)]
    try:
        live = wait_for(lambda: len(r := control.list_workers(db, ["lc-AAA"], live_only=True)) == 3 and r,
                        timeout=60, message="three live workers")
        by_pid = {w.pid: w for w in live}
        victim = by_pid[workers[0].pid]
        workers[0].kill()  # SIGKILL: no goodbye; a live worker's reaper finds it silent
        wait_for(lambda: any(b.get("event") == "worker_lost" for _, b in hook.posts), timeout=60,
                 message="the lost worker told")
        # A worker whose study's journal vanishes under it fails with a storage error: a crash.
        crasher = by_pid[workers[1].pid]
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM tune_streams WHERE stream = 'lc-AAA'"))
        assert wait_for(lambda: workers[1].poll() is not None or workers[2].poll() is not None, timeout=60,
                        message="a worker to crash") is not None
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(60)
    told = _assert_told_once(db, hook, "lc-AAA")
    lost = [b["data"] for b in told if b["event"] == "worker_lost"]
    assert [d["worker"] for d in lost] == [victim.id] and "no heartbeat" in lost[0]["reason"]
    crashed = [b["data"] for b in told if b["event"] == "worker_crashed"]
    assert crashed and {d["worker"] for d in crashed} <= {crasher.id, by_pid[workers[2].pid].id}
    assert all("storage error" in d["reason"] for d in crashed)


def test_a_stalled_study_is_told_once_per_stall(db, db_url, tmp_path, hook, secrets):
    # Each backtest takes 8 s; a study with no trial finished for 3 s is stalled.
    (tmp_path / "sleepy.py").write_text("import time\ndef sleepy(params, data):\n    time.sleep(8)\n"
                                        "    return {'sharpe': params['fast'] / 10, 'trades': 50}\n")
    config = small_config(tmp_path, name="st", target=2, workers=2, strategy="sleepy:sleepy",
                          extra="\n[validation]\nreport_at_end = false\n[notify]\nstalled_minutes = 0.05\n"
                                "events = ['stalled']\n" + _channels(hook))
    proc = tune("run", str(config), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    told = _assert_told_once(db, hook, "st-AAA")
    assert told and {b["event"] for b in told} == {"stalled"}
    assert all(b["data"]["minutes"] >= 0.05 and b["data"]["workers"] >= 1 for b in told)


def test_a_dead_endpoint_never_stops_a_worker(db, db_url, tmp_path, black_hole):
    table = (f"[notify]\nprogress_every = 5\ntimeout_seconds = 0.5\nretries = 1\n"
             f'[notify.webhook]\nurl = "http://127.0.0.1:{black_hole}/hook"\n')
    config = small_config(tmp_path, name="dead", target=30, workers=2, extra="\n" + table)
    proc = tune("run", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert control.list_studies(db, ["dead-AAA"])[0].ended_code == "target_reached"
    rows = _rows(db, "dead-AAA")
    # None passes for told: refused during the run, each keeps its error; refused as the
    # workers left, each is left unsent, its claim given back for another worker.
    assert rows and all(r.sent_at is None or r.error for r in rows)
    assert all(r.claimed_by is None for r in rows if r.sent_at is None)
    assert all("unreachable" in r.error and "timed out" in r.error for r in rows if r.error)
    with db.engine.connect() as conn:
        warnings = [m for (m,) in conn.execute(sa.text("SELECT message FROM tune_events WHERE level = 'warning'"))]
    assert any("notification not delivered: webhook (http://127.0.0.1:" in m for m in warnings), warnings


def test_dry_run_writes_each_message_to_the_studys_log_instead(db, db_url, tmp_path):
    config = small_config(tmp_path, name="dry", target=20, extra="\n[notify]\ndry_run = true\nprogress_every = 10\n")
    assert tune("run", str(config)).returncode == 0
    rows = wait_for(lambda: (r := _rows(db, "dry-AAA")) and all(x.sent_at for x in r) and r, timeout=30,
                    message="every message written")
    with db.engine.connect() as conn:
        logged = [m for (m,) in conn.execute(sa.text("SELECT message FROM tune_events WHERE study = 'dry-AAA' "
                                                     "AND message LIKE 'notification (dry run): %'"))]
    assert len(logged) == len(rows)
    assert "notification (dry run): tune: dry-AAA: 10/20 complete trials (0 pruned, 0 failed); best sharpe" \
        in "\n".join(logged)
    assert any("ended: target reached (20 complete)" in m for m in logged)


@pytest.mark.fault
def test_an_unreachable_database_is_told_once_per_host_and_so_is_its_return(tmp_path, hook):
    server = Server()
    home = Path(tempfile.mkdtemp(prefix="tune-notify-home-"))
    try:
        url = fresh_database(server.url)
        config = ledger_config(tmp_path, "away", target=400, workers=2)
        config.write_text(config.read_text() + "\n[notify]\nunreachable_seconds = 2\nevents = ['database_unreachable']\n"
                          f'[notify.webhook]\nurl = "{hook.url}/generic"\n')
        env = worker_env(tmp_path, url, home=home, sleep=0.3)
        logs = [tmp_path / f"w{i}.log" for i in range(2)]
        workers = [start_worker(config, env, log) for log in logs]
        try:
            wait_for(lambda: all("started" in log.read_text() for log in logs if log.exists()) and all(
                log.exists() for log in logs), timeout=60, message="both workers started")
            server.stop()
            wait_for(lambda: any("has not answered" in b["text"] for _, b in hook.posts), timeout=60,
                     message="the outage told")
            # Both workers have waited past the threshold: one told, the other saw it told.
            wait_for(lambda: all(any(line in log.read_text() for line in (
                "another process of this host tells", "notified: tune: run away")) for log in logs),
                timeout=60, message="both workers past the threshold")
            server.start()
            wait_for(lambda: any("again" in b["text"] for _, b in hook.posts), timeout=60, message="the return told")
            assert tune("stop", "away-AAA", env={"TUNE_STORAGE_URL": url, "TUNE_HOME": str(home)}).returncode == 0
            for w in workers:
                assert w.wait(60) == 0
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        texts = [b["text"] for _, b in hook.posts]
        assert len([t for t in texts if "has not answered" in t]) == 1, texts
        assert len([t for t in texts if "answers" in t and "again" in t]) == 1, texts
        assert all(b["data"]["database"].startswith("postgresql://") for _, b in hook.posts)
    finally:
        server.remove()
