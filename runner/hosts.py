"""Hosts and their workers: per host, the live workers, what they use and the host's load.

Workers report their resource use in their heartbeat (runner/heartbeat.py writes
``tune_workers.cpu_percent``, ``rss_bytes``, ``host_load``, ``host_cpus``,
``host_mem_percent``), and the monitor passes them on in each study's
``StudyStatus.workers``. :func:`summarise` folds those worker dicts, from any
number of studies, into one row per host, so a person sees an overloaded machine
before it slows every study.

Pure functions on what a poll already returned: no database, no psutil (the host
being summarised is usually not this one), so the app, ``tune status`` and tests
call them freely.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A host is overloaded past these: more runnable processes than CPUs (1-minute
# load average per logical CPU), or nearly all its memory in use.
MAX_LOAD_PER_CPU = 1.0
MAX_MEM_PERCENT = 90.0


@dataclass(frozen=True)
class HostRow:
    host: str
    workers: int  # live workers on it
    studies: tuple[str, ...]  # the studies they serve, sorted
    cpu_percent: float | None  # their CPU % summed (100 = one core); None: none reported it
    rss_bytes: int | None  # their resident memory summed; None: none reported it
    host_load: float | None  # the host's 1-minute load average, from its most recent heartbeat
    host_cpus: int | None  # its logical CPUs
    host_mem_percent: float | None  # its memory in use, %
    overloaded: bool  # load per CPU > MAX_LOAD_PER_CPU or memory in use > MAX_MEM_PERCENT

    @property
    def load_per_cpu(self) -> float | None:
        if self.host_load is None or not self.host_cpus:
            return None
        return self.host_load / self.host_cpus


def is_overloaded(host_load: float | None, host_cpus: int | None, host_mem_percent: float | None) -> bool:
    """Load per CPU above 1.0 or memory in use above 90 %; unknown figures never flag."""
    if host_load is not None and host_cpus and host_load / host_cpus > MAX_LOAD_PER_CPU:
        return True
    return host_mem_percent is not None and host_mem_percent > MAX_MEM_PERCENT


def summarise(workers: Iterable[dict[str, Any]]) -> list[HostRow]:
    """One row per host with a live worker among ``workers`` (``StudyStatus.workers``
    dicts, of any number of studies), sorted by host.

    Dead workers are not counted, and a host with only dead workers has no row.
    The host's load, CPUs and memory come from its most recent heartbeat that
    measured them (each worker on a host reports the same host, at its own time).
    """
    by_host: dict[str, list[dict[str, Any]]] = {}
    for w in workers:
        if w.get("alive"):
            by_host.setdefault(str(w.get("host", "")), []).append(w)
    rows = []
    for host in sorted(by_host):
        live = sorted(by_host[host], key=_heartbeat, reverse=True)  # most recent first
        cpu = [float(w["cpu_percent"]) for w in live if w.get("cpu_percent") is not None]
        rss = [int(w["rss_bytes"]) for w in live if w.get("rss_bytes") is not None]
        load, cpus, mem = (_latest(live, "host_load"), _latest(live, "host_cpus"), _latest(live, "host_mem_percent"))
        rows.append(HostRow(
            host=host, workers=len(live),
            studies=tuple(sorted({str(w["study"]) for w in live if w.get("study") is not None})),
            cpu_percent=sum(cpu) if cpu else None, rss_bytes=sum(rss) if rss else None,
            host_load=load, host_cpus=None if cpus is None else int(cpus), host_mem_percent=mem,
            overloaded=is_overloaded(load, None if cpus is None else int(cpus), mem),
        ))
    return rows


def _latest(live: list[dict[str, Any]], key: str) -> Any:
    """The value of ``key`` in the most recent heartbeat that has one (``live`` is most recent first)."""
    return next((w[key] for w in live if w.get(key) is not None), None)


def _heartbeat(w: dict[str, Any]) -> float:
    """When the worker last beat (an ISO string in ``StudyStatus.workers``), as a
    timestamp to sort on; unknown: the oldest."""
    at = w.get("heartbeat_at")
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return -math.inf
    if not isinstance(at, datetime):
        return -math.inf
    try:
        return at.timestamp()  # a naive one is taken as local time
    except (OverflowError, OSError, ValueError):
        return -math.inf
