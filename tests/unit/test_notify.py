"""[notify] without a database: the config's checks, the messages, the channels' requests,
secrets kept out of every error, and the per-host claim of "database unreachable"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from runner import notify
from runner.config import ConfigError, load_config
from tests.helpers import ROOT, Hook, small_config, tune


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _config(tmp_path, notify_table: str):
    return load_config(small_config(tmp_path, extra="\n" + notify_table))


BROKEN = {
    "no channel": ("[notify]\nprogress_every = 10\n", "notify", "give a channel"),
    "url and url_env": ('[notify.webhook]\nurl = "https://x.example/h"\nurl_env = "HOOK"\n', "notify.webhook",
                        "not both"),
    "neither": ("[notify.slack]\n", "notify.slack", "give url or url_env"),
    "not http": ('[notify.webhook]\nurl = "file:///etc/passwd"\n', "notify.webhook.url", "http:// or https://"),
    "a space in a url": ('[notify.webhook]\nurl = "https://x.example/a b"\n', "notify.webhook.url", "spaces"),
    "a bad port": ('[notify.slack]\nurl = "https://hooks.example:99999/x"\n', "notify.slack.url", "is not a URL"),
    "bad variable name": ('[notify.telegram]\ntoken_env = "MY TOKEN"\nchat_id = 1\n', "notify.telegram.token_env",
                          "pattern"),
    "unknown event": ('[notify]\ndry_run = true\nevents = ["new_best", "exploded"]\n', "notify.events.1", "new_best"),
    "a token in the file": ('[notify.telegram]\ntoken = "123:abc"\ntoken_env = "T"\nchat_id = 1\n',
                            "notify.telegram.token", "unknown field"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_notify_table_names_its_field(tmp_path, case):
    table, field, words = BROKEN[case]
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, table)
    assert info.value.field == field
    assert words in info.value.problem


def test_a_missing_secret_is_a_config_error_naming_the_variable_and_tune_run_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_TEST_TG", raising=False)
    table = '[notify.telegram]\ntoken_env = "TUNE_TEST_TG"\nchat_id = 7\n'
    cfg = _config(tmp_path, table)
    with pytest.raises(ConfigError) as info:
        notify.check_environment(cfg)
    assert info.value.field == "notify.telegram.token_env" and "TUNE_TEST_TG is not set" in info.value.problem
    for command in (("run",), ()):  # tune run, and the app (tune-tui), before any database
        proc = subprocess.run([sys.executable, "-m", "runner.cli" if command else "tui.cli", *command,
                               str(cfg.source_path)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env={**os.environ, "TUNE_STORAGE_URL": "postgresql://nobody@127.0.0.1:1/none"})
        assert proc.returncode == 2 and "TUNE_TEST_TG is not set" in proc.stderr and "Traceback" not in proc.stderr
    monkeypatch.setenv("TUNE_TEST_TG", "1:secret")
    notify.check_environment(cfg)  # set: fine


def _message(kind: str, **data) -> notify.Message:
    return notify.Message(kind, "demo-AAA", data, key="k")


def test_each_event_reads_as_a_sentence_with_its_figures():
    assert notify.render(_message("new_best", metric="sharpe", value=1.23456, previous=1.1, trial=57,
                                  params={"fast": 10, "slow": 50.5})) == (
        "tune: demo-AAA: new best sharpe 1.235 (was 1.1) at trial 57: fast=10, slow=50.5")
    assert notify.render(_message("progress", metric="sharpe", complete=100, target=200, pruned=3, failed=1,
                                  best=0.5)) == (
        "tune: demo-AAA: 100/200 complete trials (3 pruned, 1 failed); best sharpe 0.5")
    assert notify.render(_message("done", metric="sharpe", reason="target reached (200 complete)", best=None)) == (
        "tune: demo-AAA: ended: target reached (200 complete)")
    assert "lost: no heartbeat for 12 s; its running trial was failed" in notify.render(
        _message("worker_lost", worker="h-1", host="h", pid=4, reason="no heartbeat for 12 s"))
    assert "no trial finished for 31.5 min, with 2 live worker(s)" in notify.render(
        _message("stalled", minutes=31.5, workers=2))
    away = notify.Message("database_unreachable", "demo", {"host": "h", "waited": 61.2,
                                                           "database": "postgresql://u:***@db/x"})
    assert notify.render(away) == ("tune: run demo: the database postgresql://u:***@db/x has not answered h for "
                                   "61 s; its workers wait, keeping their results")


def test_a_message_told_late_says_when_it_happened_and_text_from_users_cannot_act():
    old = notify.Message("worker_crashed", "s", {"worker": "w", "host": "h", "reason": "boom\n\x1b[31mred"},
                         key="k", created_at=datetime.now(UTC) - timedelta(hours=2))
    text = notify.render(old)
    assert "\n" not in text and "\x1b" not in text and "boom\\n\\x1b[31mred" in text
    assert text.endswith(" UTC)") and "(at " in text
    assert "\u202e" not in notify.render(_message("worker_crashed", reason="\u202eevil"))  # no reordering of the text
    assert len(notify.render(_message("worker_crashed", reason="x" * 10_000))) <= notify.TEXT_MAX


def _channels(tmp_path, table: str, env: dict) -> list[notify.Channel]:
    return notify.channels(_config(tmp_path, table).notify, env)


def test_each_channel_gets_its_own_request(tmp_path, hook):
    table = (f'[notify.webhook]\nurl = "{hook.url}/generic"\n[notify.slack]\nurl_env = "SLACK_URL"\n'
             f'[notify.telegram]\ntoken_env = "TG"\nchat_id = "-100"\napi_url = "{hook.url}/tg/"\n')
    targets = _channels(tmp_path, table, {"SLACK_URL": f"{hook.url}/slack", "TG": "77:tok"})
    message = _message("done", reason="<!channel> & more", metric="sharpe")
    text = notify.render(message)
    assert notify.deliver(targets, message, text, "run", "host", timeout=5, retries=0) == []
    got = dict(hook.posts)
    assert got["/generic"]["event"] == "done" and got["/generic"]["data"]["reason"] == "<!channel> & more"
    assert got["/generic"]["study"] == "demo-AAA" and got["/generic"]["run"] == "run"
    assert got["/slack"] == {"text": "tune: demo-AAA: ended: &lt;!channel&gt; &amp; more",  # Slack's markup stays text
                             "mrkdwn": False}
    assert got["/tg/bot77:tok/sendMessage"] == {"chat_id": "-100", "text": text, "disable_web_page_preview": True}
    assert "parse_mode" not in got["/tg/bot77:tok/sendMessage"]


def test_a_refusing_or_absent_endpoint_is_retried_then_reported_without_its_secret(tmp_path, hook):
    hook.status = 500
    waits: list[float] = []
    table = f'[notify.telegram]\ntoken_env = "TG"\nchat_id = 1\napi_url = "{hook.url}"\n'
    targets = _channels(tmp_path, table, {"TG": "99:very-secret"})
    errors = notify.deliver(targets, _message("done"), "x", "run", "host", timeout=5, retries=2,
                            wait=lambda s: waits.append(s) or True)
    assert len(hook.posts) == 3 and waits == [1.0, 2.0]
    hook.posts.clear()
    assert notify.deliver(targets, _message("done"), "x", "run", "host", timeout=5, retries=2,
                          wait=lambda s: False) == errors  # a leaving worker: no more retries
    assert len(hook.posts) == 1
    assert errors == [f"telegram ({hook.url}) answered HTTP 500"]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    table = '[notify.webhook]\nurl_env = "HOOK"\n'
    secret_url = f"http://127.0.0.1:{port}/T000/B000/secretpath"
    errors = notify.deliver(_channels(tmp_path, table, {"HOOK": secret_url}), _message("done"), "x", "r", "h",
                            timeout=2, retries=0)
    assert len(errors) == 1 and "unreachable" in errors[0] and "secretpath" not in errors[0]
    # An error that quotes the URL's path (http.client refuses a space in it) names the host only.
    channel = notify.Channel("slack", "http://127.0.0.1:9/T0/sec ret", "http://127.0.0.1:9",
                             notify._url_secrets("http://127.0.0.1:9/T0/sec ret"))
    with pytest.raises(notify.SendError) as info:
        channel.post({"text": "x"}, timeout=1)
    assert "sec ret" not in str(info.value) and "***" in str(info.value)


def test_a_secret_with_spaces_or_control_characters_is_refused_by_name(tmp_path):
    table = '[notify.slack]\nurl_env = "HOOK"\n'
    for bad in ("https://", "http://[::1/x", "ftp://h/x"):
        with pytest.raises(notify.MissingSecret) as info:
            _channels(tmp_path, table, {"HOOK": bad})
        assert "HOOK holds no http(s) URL" in str(info.value)
    for value in ("http://h/a b", "http://h/a\r\nX-Injected: 1"):
        with pytest.raises(notify.MissingSecret) as info:
            _channels(tmp_path, table, {"HOOK": value})
        assert info.value.field == "notify.slack.url_env" and "HOOK holds spaces" in str(info.value)
        assert value not in str(info.value)


def test_a_dry_run_needs_no_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_TEST_TG", raising=False)
    cfg = _config(tmp_path, '[notify]\ndry_run = true\n[notify.telegram]\ntoken_env = "TUNE_TEST_TG"\nchat_id = 7\n')
    notify.check_environment(cfg)  # nothing is sent: nothing to refuse


def test_the_cli_sends_a_test_message_to_each_channel(tmp_path, hook):
    path = small_config(tmp_path, extra=f'\n[notify.webhook]\nurl = "{hook.url}/h"\n')
    proc = tune("notify", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"webhook ({hook.url}): sent" in proc.stdout
    assert hook.posts and "a test message for run t" in hook.posts[0][1]["text"]
    hook.status = 403
    proc = tune("notify", str(path))
    assert proc.returncode == 1 and "answered HTTP 403" in proc.stdout
    bare = small_config(tmp_path, name="bare")
    proc = tune("notify", str(bare))
    assert proc.returncode == 2 and "no [notify] table" in proc.stderr


def test_database_unreachable_is_claimed_once_per_host_and_outage(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_HOME", str(tmp_path / "home"))
    now = notify.time.time()
    assert notify.host_claim("demo", "away", now - 60)  # the first process of this host to notice
    assert not notify.host_claim("demo", "away", now - 59)  # another, same outage
    assert notify.host_claim("other", "away", now - 59)  # another run's workers tell their own
    assert notify.host_claim("demo", "back", 0)
    assert not notify.host_claim("demo", "back", 0)  # told once
    assert not notify.host_claim("demo", "away", now - 61)  # a slow process's view of the outage that ended
    assert notify.host_claim("demo", "away", notify.time.time() + 1)  # a new outage, begun after the last ended
    stat = (tmp_path / "home" / "notify").stat()
    assert stat.st_mode & 0o077 == 0  # owner-only
    assert all(p.stat().st_mode & 0o077 == 0 for p in (tmp_path / "home" / "notify").iterdir())


def test_event_data_is_json_postgresql_takes():
    text = notify._json({"reason": "bad\x00value \udc80", "value": float("nan"), "params": {"a\x00": (1, 2.5)}})
    text.encode("utf-8")  # no lone surrogate left
    assert "NaN" not in text
    assert json.loads(text) == {"reason": "bad\\x00value \\udc80", "value": None, "params": {"a\\x00": [1, 2.5]}}
