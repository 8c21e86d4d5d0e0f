"""A worker's heartbeat, on a thread of its own (as Optuna's heartbeat thread).

Every ``heartbeat_seconds`` it writes the worker's liveness, status and trial
in hand to ``tune_workers`` and reads back the study's control state and
whether this worker should retire (more workers than wanted, and it the
youngest); every half grace period it fails the trials of lost workers. The
trial loop reads what it learned between trials, so it pays no query for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import reaper
from .control import WorkerRegistration
from .storage import Database
from .text import first_line

log = logging.getLogger("tune.worker")


class Heartbeat(threading.Thread):
    def __init__(self, db: Database, study: str, registration: WorkerRegistration, shared,
                 on_control: Callable[[str | None], None], interval: float, grace: float) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.db, self.study, self.registration, self.shared = db, study, registration, shared
        self.on_control = on_control
        self.interval, self.grace = interval, grace

    def stop(self) -> None:
        self.shared.stop.set()
        self.join(timeout=5)

    def run(self) -> None:
        reap_every = max(1, int(self.grace / self.interval / 2))
        beats = 0
        last_ok = time.monotonic()
        reap_after = last_ok
        while not self.shared.stop.wait(0 if beats == 0 else self.interval):
            beats += 1
            try:
                s = self.shared
                new, s.retire = self.registration.heartbeat(s.status, s.trial_id, s.trials_done)
                now = time.monotonic()
                if now - last_ok > self.grace:
                    # We were cut off ourselves (a database outage): the others' heartbeats
                    # look as old as ours did. Give them a grace period to come back first.
                    reap_after = now + self.grace
                last_ok = now
                self.on_control(new)
                if beats % reap_every == 0 and now >= reap_after:
                    reaper.reap_lost_workers(self.db, self.study)
            except Exception as exc:  # database away: keep trying, the loop keeps working
                log.warning("[%s] heartbeat failed: %s", self.study, first_line(exc))
