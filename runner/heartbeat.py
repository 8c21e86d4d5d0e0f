"""A worker's heartbeat, on a thread of its own (as Optuna's heartbeat thread).

Every ``heartbeat_seconds`` it writes the worker's liveness, status and trial
in hand to ``tune_workers`` and reads back the study's control state and
whether this worker should retire (more workers than wanted, and it the
youngest); every half grace period it fails the trials of lost workers. The
trial loop reads what it learned between trials, so it pays no query for it.

Each beat also carries what the worker uses and what its host bears
(:class:`ResourceMeter`: CPU %, resident memory, load, CPUs, memory in use), in
the same statement, so a person sees an overloaded machine (runner/hosts.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psutil

from . import reaper
from .control import Resources, WorkerRegistration
from .storage import Database
from .text import first_line

log = logging.getLogger("tune.worker")


class ResourceMeter:
    """This process's and its host's resource use, measured cheaply at each beat
    (a few reads of /proc on Linux, no sampling interval: the CPU % covers the
    time since the previous call; the first beat has none).

    :meth:`measure` never raises: a measurement that fails gives None (and one
    log line), and the heartbeat goes on without it.
    """

    def __init__(self) -> None:
        self._process: psutil.Process | None = None
        self._cpus: int | None = None
        self._warned = False
        self._primed = False
        try:
            self._process = psutil.Process()
            self._cpus = psutil.cpu_count(logical=True)
        except Exception as exc:
            self._warn(exc)

    def measure(self) -> Resources | None:
        if self._process is None:
            return None
        try:
            # Over the time since the last call; the first call only starts the count (it says
            # 0.0 whatever the process did): not a measurement, so None.
            first, self._primed = not self._primed, True
            cpu: float | None = self._process.cpu_percent(interval=None)
            cpu = None if first else cpu
            rss = self._process.memory_info().rss
            mem = psutil.virtual_memory().percent
        except Exception as exc:
            self._warn(exc)
            return None
        try:
            load: float | None = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = None
        return Resources(cpu_percent=cpu, rss_bytes=int(rss), host_load=load, host_cpus=self._cpus,
                         host_mem_percent=float(mem))

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("resource use not measured: %s", first_line(exc))


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
        meter = ResourceMeter()
        while not self.shared.stop.wait(0 if beats == 0 else self.interval):
            beats += 1
            try:
                s = self.shared
                new, s.retire = self.registration.heartbeat(s.status, s.trial_id, s.trials_done, meter.measure())
                now = time.monotonic()
                if now - last_ok > self.grace:
                    # We were cut off ourselves (a database outage): the others' heartbeats
                    # look as old as ours did. Give them a grace period to come back first.
                    reap_after = now + self.grace
                last_ok = now
                self.on_control(new)
                if beats % reap_every == 0 and now >= reap_after:
                    reaper.reap_lost_workers(self.db, self.study, made_only=True)
            except Exception as exc:  # database away: keep trying, the loop keeps working
                log.warning("[%s] heartbeat failed: %s", self.study, first_line(exc))
