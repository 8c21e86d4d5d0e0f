"""Telling a person what happens to a run: the config's ``[notify]`` (a webhook, Slack,
Telegram), or with ``dry_run`` the worker's log and the study's log.

Each event is told once, whichever of the run's workers, on whichever host, notices it:

* an event is a row of ``tune_notifications`` keyed by (study, key), written with
  ``INSERT … ON CONFLICT DO NOTHING`` — a second notice of one event (another worker
  crossing the same progress mark) is a no-op — and only when the study's config wants
  that kind (``tune_studies.notify``), so a reaper in the app records a lost worker
  only for a run that asked;
* any worker of the run sends it: it claims a batch of unsent rows (``FOR UPDATE SKIP
  LOCKED``) for a lease, sends, and marks them sent. A sender that dies mid-send leaves
  its claim to expire (then another sends it: the one case of a second message).

Where each event is noticed:

===================== ==================================================================
new_best              a worker's own trial beats the best it told of: ``tune_notify_best``
                      keeps the study's best seen (an upsert that only improves it); the
                      sweep tells it when it beats the last one told by ``min_improvement``
                      and ``best_every_seconds`` have passed (one UPDATE: one worker wins)
progress              the trial loop, crossing a multiple of ``progress_every`` complete
                      trials (``progress:{n}``)
done                  the worker that ends the study first (``control.set_ended``)
worker_crashed        the crashing worker, on its way out (``crashed:{worker}``)
worker_lost           the reaper that declares it lost (its UPDATE … RETURNING hands each
                      lost worker to one reaper; ``lost:{worker}``)
stalled               the sweep: live workers, running, and no trial finished for
                      ``stalled_minutes`` (``stalled:{time of the last one}``)
database_unreachable  a wait for the database of ``unreachable_seconds``: sent at once, as
                      there is no database to agree through — once per host, through a
                      lock file under ``TUNE_HOME`` — and "reachable again" when it ends
===================== ==================================================================

Off the trial loop: the loop hands events to :class:`Notifier` and goes on; one thread
writes and claims them (short transactions on the worker's connection), another sends
them (HTTP with a timeout and retries, never holding the connection). A dead endpoint
costs a worker nothing but that thread's time, and at its exit one request's timeout
(at most :data:`EXIT_WAIT` seconds); what is left unsent goes back to the run's other
workers (benchmarks/bench_notify.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .control import LIVE_STATUSES
from .errors import ConfigError
from .reports import json_safe
from .storage import Database, connection, tune_home
from .storage.embedded import private_dir
from .storage.urls import mask_url
from .text import first_line, printable, storable

log = logging.getLogger("tune.notify")

SWEEP_SECONDS = 2.0  # how often a worker writes what it noticed and claims what to send
LEASE_SECONDS = 600.0  # a claimed, unsent message is another sender's after this long (or longer: Notifier.lease)
BATCH = 5  # messages claimed at once, and only once the last batch is sent
LEAVING_BATCH = 100  # a leaving worker's study's last events: all it can send within EXIT_WAIT
EXIT_WAIT = 10.0  # at most this long a worker's exit sends (tune run's SIGKILL comes after 15 s)
TEXT_MAX = 3500  # characters (Telegram takes 4096)
RESPONSE_MAX = 65_536  # bytes of an answer read


# ------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    kind: str
    study: str  # the run's name for a message about the run (database unreachable)
    data: dict[str, Any]
    key: str | None = None  # its row's; None: sent directly, never stored
    created_at: datetime | None = None


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_figure(v)}" for k, v in params.items())


def render(message: Message) -> str:
    """The message for a person: one line, safe for any channel (control characters from
    configs, data and backtests escaped; no markup)."""
    d, study = message.data, message.study
    best = f"; best {d.get('metric', 'value')} {_figure(d['best'])}" if d.get("best") is not None else ""
    kind = message.kind
    if kind == "new_best":
        was = f" (was {_figure(d['previous'])})" if d.get("previous") is not None else ""
        text = (f"{study}: new best {d.get('metric', 'value')} {_figure(d.get('value'))}{was} at trial "
                f"{d.get('trial')}: {_params(d.get('params') or {})}")
    elif kind == "progress":
        text = (f"{study}: {d.get('complete')}/{d.get('target')} complete trials"
                f" ({d.get('pruned', 0)} pruned, {d.get('failed', 0)} failed){best}")
    elif kind == "done":
        text = f"{study}: ended: {d.get('reason')}{best}"
    elif kind == "worker_crashed":
        text = f"{study}: worker {d.get('worker')} on {d.get('host')} crashed: {d.get('reason')}"
    elif kind == "worker_lost":
        text = (f"{study}: worker {d.get('worker')} on {d.get('host')} (pid {d.get('pid')}) lost: {d.get('reason')};"
                " its running trial was failed")
    elif kind == "stalled":
        text = (f"{study}: stalled: no trial finished for {_figure(d.get('minutes'))} min, "
                f"with {d.get('workers')} live worker(s)")
    elif kind == "database_unreachable" and d.get("back"):
        text = f"run {study}: the database {d.get('database')} answers {d.get('host')} again after {d.get('waited', 0):.0f} s"
    elif kind == "database_unreachable":
        text = (f"run {study}: the database {d.get('database')} has not answered {d.get('host')} for "
                f"{d.get('waited', 0):.0f} s; its workers wait, keeping their results")
    else:
        text = f"{study}: {kind}"
    if message.created_at is not None and (datetime.now(UTC) - message.created_at).total_seconds() > 120:
        text += f" (at {message.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"  # told late: say when it happened
    return printable(f"tune: {text}", TEXT_MAX)


# ------------------------------------------------------------------- channels


class SendError(Exception):
    """A channel refused a message, or could not be reached; the text holds no secret."""


class MissingSecret(Exception):
    """A channel's secret missing from (or unusable in) the environment: ``field`` names the
    config's field, the message the variable — never its value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass
class Channel:
    name: str  # webhook, slack, telegram
    url: str
    shown: str  # the URL as printed: its host only (a webhook's path and a bot's token are secrets)
    secrets: list[str] = field(default_factory=list)  # scrubbed from any error text
    chat_id: str | int | None = None

    def body(self, message: Message, text: str, run: str, host: str) -> dict[str, Any]:
        if self.name == "slack":
            # Slack reads &, < and > as its markup's: a name holding <!channel> must stay text;
            # and no *bold* or _italics_ from a study's name or a reason.
            return {"text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), "mrkdwn": False}
        if self.name == "telegram":
            return {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}  # no parse_mode: plain
        return {"event": message.kind, "study": message.study, "run": run, "host": host, "text": text,
                "data": message.data, "at": (message.created_at or datetime.now(UTC)).isoformat()}

    def post(self, body: dict[str, Any], timeout: float) -> None:
        import http.client  # here: tune status imports this module (the reaper's), never sends
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.url, data=json.dumps(body, default=str).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "tune-tui"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) only (config)
                answer.read(RESPONSE_MAX)
        except urllib.error.HTTPError as exc:
            raise SendError(f"{self.name} ({self.shown}) answered HTTP {exc.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, a timeout, a reset, no HTTP
            raise SendError(self._scrub(f"{self.name} ({self.shown}) unreachable: {first_line(exc)}")) from None

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")  # ValueError: a bad port


def _secret(env, field: str, variable: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        raise MissingSecret(field, f"the environment variable {variable} is not set")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise MissingSecret(field, f"the environment variable {variable} holds spaces or control characters")
    return value


def channels(settings, environ: os._Environ | dict[str, str] | None = None) -> list[Channel]:
    """The configured channels, with their secrets from the environment; MissingSecret
    names the field whose variable is not set or not usable."""
    env = os.environ if environ is None else environ
    found = []
    for name, channel in settings.channels.items():
        if name == "telegram":
            token = _secret(env, "notify.telegram.token_env", channel.token_env)
            url = f"{channel.api_url.rstrip('/')}/bot{token}/sendMessage"
            found.append(Channel(name, url, _host_of(channel.api_url), [token], channel.chat_id))
            continue
        url = channel.url or _secret(env, f"notify.{name}.url_env", channel.url_env)
        try:
            shown = _host_of(url)  # a URL from the file was checked by the config; one from the environment not
        except ValueError:
            shown = ""
        if not url.startswith(("http://", "https://")) or not shown:
            raise MissingSecret(f"notify.{name}.url_env", f"the environment variable {channel.url_env} holds no http(s) URL")
        found.append(Channel(name, url, shown, _url_secrets(url)))
    return found


def _url_secrets(url: str) -> list[str]:
    """A webhook URL's secret parts: all of it, its path and its query (an error may quote
    either alone)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return [url, *(part for part in (parts.path, parts.query) if len(part) > 1)]


def check_environment(cfg) -> None:
    """For tune run and the app, before any worker starts: a channel whose secret is not
    in the environment is a ConfigError (exit 2), not a worker's silent loss."""
    if cfg.notify is None or cfg.notify.dry_run:  # a dry run sends nothing: it needs no secret
        return
    try:
        channels(cfg.notify)
    except MissingSecret as exc:
        raise ConfigError(cfg.source_path or "config", exc.field, str(exc)) from None


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def describe(settings) -> str:
    """For tune run's first lines: where messages go (hosts only), which events."""
    where = "the logs (dry run)" if settings.dry_run else ", ".join(
        f"{c.name} ({c.shown})" for c in channels(settings))
    return f"notify: {', '.join(settings.events)} → {where}"


def deliver(targets: list[Channel], message: Message, text: str, run: str, host: str, timeout: float,
            retries: int, wait=_sleep) -> list[str]:
    """Send to every channel, each with its retries (1 s, 2 s, 4 s … apart); the errors of
    those that never took it. ``wait(seconds)`` False: no more retries (a worker leaving)."""
    errors = []
    for channel in targets:
        body = channel.body(message, text, run, host)
        for attempt in range(retries + 1):
            try:
                channel.post(body, timeout)
                break
            except SendError as exc:
                if attempt == retries or not wait(min(2.0 ** attempt, 30.0)):
                    errors.append(str(exc))
                    break
    return errors


# ------------------------------------------------------------------- the database's side


# An event, once, if its study's config wants its kind; with the study's best as seen.
_INSERT = """
INSERT INTO tune_notifications (study, key, kind, body)
SELECT :s, :k, :kind, CAST(:body AS jsonb)
       || jsonb_build_object('best', (SELECT seen_value FROM tune_notify_best WHERE study = :s))
FROM tune_studies WHERE name = :s AND :kind = ANY(notify)
ON CONFLICT DO NOTHING
"""


def _json(data: dict[str, Any]) -> str:
    """JSON that jsonb takes (a crash's reason may hold any text): the report's cleaning."""
    return json.dumps(json_safe(data), ensure_ascii=False, default=lambda v: storable(str(v)))


def _insert_args(study: str, key: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"s": study, "k": storable(key), "kind": kind, "body": _json(data)}


def record(conn, study: str, key: str, kind: str, data: dict[str, Any]) -> None:
    """Record one event in the caller's transaction (the reaper's, with its verdict)."""
    conn.execute(sa.text(_INSERT), _insert_args(study, key, kind, data))


_SEEN_BEST = """
INSERT INTO tune_notify_best (study, seen_value, seen_body) VALUES (:s, :v, CAST(:body AS jsonb))
ON CONFLICT (study) DO UPDATE SET seen_value = EXCLUDED.seen_value, seen_body = EXCLUDED.seen_body
WHERE (EXCLUDED.seen_value - tune_notify_best.seen_value) * :sign > 0
"""

# The seen best becomes a message when it beats the last one told by min_improvement and the
# last was told long enough ago; one UPDATE, so one worker of many tells it.
_TELL_BEST = """
WITH told AS (
    UPDATE tune_notify_best b SET told_value = b.seen_value, told_at = now()
    FROM (SELECT told_value AS before FROM tune_notify_best WHERE study = :s) old
    WHERE b.study = :s AND b.told_value IS DISTINCT FROM b.seen_value
      AND (b.told_value IS NULL OR (b.seen_value - b.told_value) * :sign >= :min)
      AND (b.told_at IS NULL OR b.told_at <= now() - make_interval(secs => :every))
    RETURNING b.seen_body, old.before
)
INSERT INTO tune_notifications (study, key, kind, body)
SELECT :s, 'best:' || (seen_body->>'trial'), 'new_best', seen_body || jsonb_build_object('previous', before)
FROM told WHERE EXISTS (SELECT 1 FROM tune_studies WHERE name = :s AND 'new_best' = ANY(notify))
ON CONFLICT DO NOTHING
"""

# Live workers, a running study, and no trial finished (nor a worker started, nor the study
# resumed) for stalled_minutes: keyed by that moment, so one stall is told once.
_STALLED = """
INSERT INTO tune_notifications (study, key, kind, body)
SELECT :s, 'stalled:' || floor(extract(epoch FROM x.last) * 1000)::bigint, 'stalled',
       jsonb_build_object('minutes', round((extract(epoch FROM now() - x.last) / 60)::numeric, 1),
                          'workers', x.alive)
FROM (
    SELECT greatest(max(w.last_trial_at), max(w.started_at), max(st.updated_at)) AS last,
           count(*) FILTER (WHERE w.status = ANY(:live)) AS alive
    FROM tune_workers w JOIN tune_studies st ON st.name = w.study
    WHERE w.study = :s AND st.control = 'running' AND st.ended_code IS NULL AND 'stalled' = ANY(st.notify)
) x
WHERE x.alive > 0 AND x.last < now() - make_interval(secs => :m)
ON CONFLICT DO NOTHING
"""

_CLAIM = """
UPDATE tune_notifications n SET claimed_by = :me, claimed_at = now()
WHERE (n.study, n.key) IN (
    SELECT n2.study, n2.key FROM tune_notifications n2 JOIN tune_studies s ON s.name = n2.study
    WHERE s.run_name = :run AND n2.sent_at IS NULL
      AND (n2.claimed_at IS NULL OR n2.claimed_at < now() - make_interval(secs => :lease))
      AND (NOT CAST(:leaving AS boolean) OR n2.study = :s)
    ORDER BY n2.created_at LIMIT :batch
    FOR UPDATE OF n2 SKIP LOCKED
)
RETURNING n.study, n.key, n.kind, n.body, n.created_at
"""


# ------------------------------------------------------------------- the host's side


def host_claim(run: str, what: str, wait_started: float, cooldown: float = 3600.0) -> bool:
    """Database unreachable, once per host: True for the first process of this host to ask
    about this outage (``what`` = "away") or its end ("back"). A lock file under
    TUNE_HOME/notify holds when this host last told of each."""
    directory = private_dir(tune_home() / "notify")
    path = directory / f"unreachable-{''.join(c if c.isalnum() or c in '._-' else '_' for c in run)[:100]}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            state = json.loads(f.read() or "{}")
        except ValueError:
            state = {}
        away, back, now = float(state.get("away", 0)), float(state.get("back", 0)), time.time()
        if what == "away":
            # A new outage: none told yet, or the last one told has ended and this wait began
            # after it did (not a slower process's view of that same outage), or long ago.
            if away and not (back >= away and wait_started > back) and now - away < cooldown:
                return False
            state["away"] = now
        else:
            if back >= away:
                return False
            state["back"] = now
        f.seek(0)
        f.truncate()
        f.write(json.dumps(state))
        return True


# ------------------------------------------------------------------- a worker's notifier


class Notifier:
    """A worker's side of [notify]: the trial loop hands it events (never waiting), a thread
    writes and claims them, another sends. ``log_line(level, text)``: a line in the worker's
    log and the study's (the app's log pane)."""

    def __init__(self, db: Database, cfg, study: str, worker: str, log_line) -> None:
        self.db, self.study, self.worker = db, study, worker
        self.settings = cfg.notify
        self.run = cfg.study.name
        self.metric = cfg.study.metrics[0]
        self.sign = 1 if cfg.direction == "maximize" else -1
        self.target = cfg.study.target_trials
        self.events = set(self.settings.events)
        self.host = socket.gethostname()
        self.targets: list[Channel] = []
        self.sends = True  # False: this worker writes events but leaves sending to the run's others
        if not self.settings.dry_run:
            try:
                self.targets = channels(self.settings)
            except MissingSecret as exc:
                # tune run and the app check this; a worker started by hand elsewhere may lack it.
                log_line("error", f"{exc.field}: {exc}; the run's other workers send its messages")
                self.sends = False
        # A claim outlives the slowest sending of a batch (every channel's every retry), twice.
        s = self.settings
        per_message = max(1, len(self.targets)) * ((s.retries + 1) * s.timeout_seconds + 2.0 ** s.retries)
        self.lease = max(LEASE_SECONDS, 2 * BATCH * per_message)
        self._lock = threading.Lock()  # the lists below, and the outage's state
        self._writes: list[tuple[str, dict[str, Any]]] = []  # statements the trial loop queued
        self._seen_best: dict[str, Any] | None = None  # the last candidate best (only the last matters)
        self._sent: list[tuple[str, str, str | None]] = []  # (study, key, error) to mark sent
        self._logs: list[tuple[str, str, str]] = []  # (study, level, text) for the study's log
        self._outbox: queue.Queue[Message | None] = queue.Queue()
        self._unsent = 0  # claimed messages not yet through the send thread
        self._sending: tuple[str, str] | None = None  # the message in the send thread's hands
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._stop_sending = threading.Event()
        self._ended = False  # this worker ended the study: its last best is told without waiting
        self._own_best: float | None = None
        self._progress_mark: int | None = None
        self._away_since: float | None = None  # this process's wait that was told of
        self._away_told = False
        self._db_thread = threading.Thread(target=self._sweep_loop, name="notify-db", daemon=True)
        self._send_thread = threading.Thread(target=self._send_loop, name="notify-send", daemon=True)

    def start(self) -> Notifier:
        if "database_unreachable" in self.events:
            connection.configure(on_away=self.away)
        self._db_thread.start()
        self._send_thread.start()
        return self

    # ---------------------------------------------------- from the trial loop: never waits
    # Events wait for the next sweep (SWEEP_SECONDS): waking the thread for each one made it
    # take the worker's one connection from the trial loop ~10 times a second in a dense run
    # (benchmarks/bench_notify.py: 0.91x); a message a second or two later costs nobody.
    def _event(self, key: str, kind: str, data: dict[str, Any]) -> None:
        if kind in self.events:
            with self._lock:
                self._writes.append((_INSERT, _insert_args(self.study, key, kind, data)))

    def trial_told(self, number: int, value: float, params: dict[str, Any]) -> None:
        """A complete, feasible trial of this worker's: a candidate new best."""
        if not self.events & {"new_best", "progress", "done"} or (
                self._own_best is not None and (value - self._own_best) * self.sign <= 0):
            return  # (progress and done messages carry the best too)
        self._own_best = value
        body = {"metric": self.metric, "value": value, "trial": number, "params": params}
        with self._lock:
            self._seen_best = {"s": self.study, "v": value, "sign": self.sign, "body": _json(body)}

    def progress(self, complete: int, kinds: dict[str, int]) -> None:
        every = self.settings.progress_every
        if not every:
            return
        mark = complete // every
        if self._progress_mark is None or mark <= self._progress_mark:
            # The first count only sets the mark: a worker joining at 537 tells of 600, not 500.
            self._progress_mark = mark if self._progress_mark is None else self._progress_mark
            return
        self._progress_mark = mark
        self._event(f"progress:{mark * every}", "progress", {
            "metric": self.metric, "complete": complete, "target": self.target,
            "pruned": kinds.get("pruned", 0), "failed": kinds.get("failed", 0),
        })

    def ended(self, code: str, reason: str) -> None:
        """The study ended (this worker was the first to say so: control.set_ended)."""
        self._ended = True
        self._event(f"done:{time.time_ns()}", "done", {"metric": self.metric, "code": code, "reason": reason})

    def crashed(self, reason: str) -> None:
        self._event(f"crashed:{self.worker}", "worker_crashed",
                    {"worker": self.worker, "host": self.host, "reason": reason})

    # ---------------------------------------------------- from any thread waiting for the database
    def away(self, waited: float) -> None:
        # Called inside connection.retry: whatever happens here must not end the wait.
        try:
            with self._lock:
                if self._away_told or waited < self.settings.unreachable_seconds:
                    return
                self._away_told = True  # one look per wait, whatever comes of it
                started = time.time() - waited
                if not host_claim(self.run, "away", started):
                    log.info("[%s] the database has not answered for %.0f s; another process of this host "
                             "tells of it", self.study, waited)
                    return
                self._away_since = started
            self._outbox.put(Message("database_unreachable", self.run, self._database_data(waited)))
        except Exception as exc:
            log.warning("database unreachable not told: %s", first_line(exc))

    def back(self, waited: float) -> None:
        try:
            with self._lock:
                told, self._away_told = self._away_since is not None, False
                self._away_since = None
                if not (told and host_claim(self.run, "back", 0.0)):
                    return
            self._outbox.put(Message("database_unreachable", self.run, {**self._database_data(waited), "back": True}))
        except Exception as exc:
            log.warning("database back not told: %s", first_line(exc))

    def _database_data(self, waited: float) -> dict[str, Any]:
        return {"host": self.host, "waited": waited, "database": mask_url(self.db.url)}

    # ---------------------------------------------------- the threads
    def _sweep_loop(self) -> None:
        failing = False
        while True:
            closing = self._closing.is_set()
            try:
                self._sweep(leaving=closing)
                failing = False
            except Exception as exc:  # the database away, a statement refused: next sweep
                if not failing:
                    log.warning("[%s] notifications wait: %s", self.study, first_line(exc))
                failing = True
            if closing:
                return
            self._wake.wait(SWEEP_SECONDS)
            self._wake.clear()

    def _sweep(self, leaving: bool) -> None:
        """Write what was queued, mark what was sent, and claim what to send next — each
        statement its own short transaction, so no two workers' sweeps hold locks across
        statements (no deadlock between them, and the shared connection is held briefly).
        ``leaving``: claim every unsent event of this worker's study (its own last ones, and
        those of a worker of the study that left before it), not of the run's others; and tell
        the study's last best at once if this worker ended the study."""
        with self._lock:
            writes, best = list(self._writes), self._seen_best
            sent, logs = list(self._sent), list(self._logs)
        with self.db.engine.connect() as conn:
            if best is not None:  # first: the progress and end messages below carry it
                with conn.begin():
                    conn.execute(sa.text(_SEEN_BEST), best)
            for sql, args in writes:
                with conn.begin():
                    conn.execute(sa.text(sql), args)
            with conn.begin():  # rows only this worker touches: no lock another sweep waits for
                self._record_sent(conn, sent, logs)
            with self._lock:  # written: off the lists (more may have come meanwhile)
                del self._writes[:len(writes)]
                del self._sent[:len(sent)]
                del self._logs[:len(logs)]
                if self._seen_best is best:
                    self._seen_best = None
            if "new_best" in self.events:
                every = 0.0 if leaving and self._ended else self.settings.best_every_seconds
                with conn.begin():
                    conn.execute(sa.text(_TELL_BEST), {"s": self.study, "sign": self.sign,
                                                       "min": self.settings.min_improvement, "every": every})
            if "stalled" in self.events and not leaving:
                with conn.begin():
                    conn.execute(sa.text(_STALLED), {"s": self.study, "live": list(LIVE_STATUSES),
                                                     "m": self.settings.stalled_minutes * 60})
            if not self.sends or (self._unsent and not leaving):
                return  # the last batch is still being sent: claim no more for now
            with conn.begin():
                claimed = list(conn.execute(sa.text(_CLAIM), {
                    "me": self.worker, "run": self.run, "lease": self.lease, "s": self.study,
                    "batch": LEAVING_BATCH if leaving else BATCH, "leaving": leaving}))
        claimed.sort(key=lambda r: (r.created_at, r.key))
        with self._lock:
            self._unsent += len(claimed)
        for study, key, kind, body, created_at in claimed:
            self._outbox.put(Message(kind, study, body, key, created_at))

    def _record_sent(self, conn, sent: list[tuple[str, str, str | None]], logs: list[tuple[str, str, str]]) -> None:
        """Mark what the send thread sent (with the channels' errors) and write its lines to
        the studies' logs, in the caller's transaction."""
        for study, key, error in sent:
            conn.execute(sa.text("UPDATE tune_notifications SET sent_at = now(), error = :e "
                                 "WHERE study = :s AND key = :k AND claimed_by = :me"),
                         {"s": study, "k": key, "e": error, "me": self.worker})
        for study, level, text in logs:
            conn.execute(sa.text("INSERT INTO tune_events (study, worker, level, message) VALUES (:s, :w, :l, :m)"),
                         {"s": study, "w": self.worker, "l": level, "m": storable(text)[:2000]})

    def _send_loop(self) -> None:
        refused_while_leaving = False
        while (message := self._outbox.get()) is not None:
            try:
                if refused_while_leaving or self._stop_sending.is_set():
                    continue  # left unsent: close() gives its claim back, for another worker
                if message.key is not None:
                    self._sending = (message.study, message.key)
                errors = self._send(message)
                # Leaving, and an endpoint does not answer: one timeout is all the exit waits, and
                # the message stays unsent (close() gives its claim back) for a worker with time.
                refused_while_leaving = bool(errors) and self._closing.is_set()
                if message.key is not None and not refused_while_leaving:
                    with self._lock:
                        self._sent.append((message.study, message.key, "; ".join(errors)[:2000] or None))
            except Exception as exc:  # a bug here must not end the thread (nor hold claims forever)
                log.warning("[%s] a notification failed: %s", message.study, first_line(exc))
            finally:
                self._sending = None
                if message.key is not None:
                    with self._lock:
                        self._unsent -= 1

    def _send(self, message: Message) -> list[str]:
        text = render(message)
        if self.settings.dry_run:
            self._note(message, "info", f"notification (dry run): {text}")
            return []
        errors = deliver(self.targets, message, text, self.run, self.host, self.settings.timeout_seconds,
                         self.settings.retries, wait=self._pause)
        if errors:
            self._note(message, "warning", f"notification not delivered: {'; '.join(errors)}")
        else:
            log.info("[%s] notified: %s", message.study, text)
        return errors

    def _pause(self, seconds: float) -> bool:
        # Between retries; a leaving worker retries no more (the message keeps its error).
        return not self._closing.wait(seconds)

    def _note(self, message: Message, level: str, text: str) -> None:
        log.log(logging.getLevelName(level.upper()), "[%s] %s", message.study, text)
        if message.key is not None:  # about a study (not the database, which may be away)
            with self._lock:
                self._logs.append((message.study, level, text))

    def close(self, wait: float = EXIT_WAIT) -> None:
        """At the worker's exit: write what is queued, send what its study still has to tell (for
        at most ``wait`` seconds), and give back the claims of what was not sent."""
        deadline = time.monotonic() + wait
        self._closing.set()
        self._wake.set()
        self._db_thread.join(max(0.0, deadline - time.monotonic()))
        self._outbox.put(None)
        self._send_thread.join(max(0.0, deadline - time.monotonic()))
        self._stop_sending.set()  # whatever is still queued stays unsent
        if self._db_thread.is_alive() or self._away_since is not None:
            return  # the database is slow or away: the claims lapse by themselves
        in_hand = self._sending
        try:
            with self._lock:
                sent = list(self._sent)
                logs = list(self._logs)
                self._sent.clear()
                self._logs.clear()
            with self.db.engine.begin() as conn:
                self._record_sent(conn, sent, logs)
                # The message still in the send thread's hands keeps its claim: it may yet arrive.
                conn.execute(sa.text(
                    "UPDATE tune_notifications SET claimed_by = NULL, claimed_at = NULL "
                    "WHERE claimed_by = :me AND sent_at IS NULL AND NOT (study = :hs AND key = :hk)"),
                    {"me": self.worker, "hs": in_hand[0] if in_hand else "", "hk": in_hand[1] if in_hand else ""})
        except Exception as exc:
            log.warning("[%s] notifications left for another worker: %s", self.study, first_line(exc))


def send_test(cfg, environ=None) -> list[tuple[str, str | None]]:
    """``tune notify``: one test message through each channel; (channel, error or None)."""
    settings = cfg.notify
    message = Message("test", cfg.study.name, {})
    text = printable(f"tune: a test message for run {cfg.study.name} from {socket.gethostname()}", TEXT_MAX)
    results = []
    for channel in channels(settings, environ):
        errors = deliver([channel], message, text, cfg.study.name, socket.gethostname(), settings.timeout_seconds,
                         0)
        results.append((f"{channel.name} ({channel.shown})", errors[0] if errors else None))
    return results
