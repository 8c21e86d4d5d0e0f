"""Memory reused across trials: an LRU cache of indicator arrays, one per
prepared data set, and per-thread scratch buffers for temporaries.

An optimizer worker evaluates many parameter sets on the same ``PriceData``,
and samplers such as TPE keep proposing values they proposed before (a
moving-average window of 50 comes back again and again once it looks good).
Caching each indicator under its parameters turns those repeats into lookups.

Entries are read-only arrays computed on the *whole* data; a ``PriceData.head``
shares its parent's cache and takes prefixes, which is exact because every
indicator at bar t depends on bars up to t only, bit for bit (see indicators).
The cache holds at most ``max_bytes`` of arrays (the most recently used are
kept); an array larger than the budget is computed and returned uncached.
Pinned entries (the few arrays every parameter set of a strategy needs, such
as the running sum behind every moving average) are kept outside the budget
until ``clear``: they are part of the prepared data, computed on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

# 64 MiB: eight float64 arrays of one million bars, 160 of 50,000 bars.
DEFAULT_CACHE_BYTES = 64 << 20


class IndicatorCache:
    """LRU mapping from a hashable key to a read-only numpy array."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self.by_kind: dict[object, list[int]] = {}  # key[0] -> [hits, misses]
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pinned: dict[Hashable, np.ndarray] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """The budget; lowering it drops the least recently used arrays (0: cache nothing)."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        with self._lock:
            self._max_bytes = int(value)
            self._shrink()

    def _shrink(self) -> None:
        while self._bytes > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes

    def __getstate__(self) -> dict[str, int]:
        # Pickled (e.g. sent to another process) empty: a lock cannot be pickled.
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, int]) -> None:
        IndicatorCache.__init__(self, state["max_bytes"])

    def get(self, key: tuple, compute: Callable[[], np.ndarray], pinned: bool = False) -> np.ndarray:
        """The array stored under ``key`` (a tuple whose first item names the
        kind of indicator), computing (and storing) it on a miss. A ``pinned``
        entry is kept outside the budget until ``clear``."""
        with self._lock:
            found = self._pinned.get(key) if pinned else self._entries.get(key)
            counts = self.by_kind.setdefault(key[0], [0, 0])
            if found is not None:
                if not pinned:
                    self._entries.move_to_end(key)
                self.hits += 1
                counts[0] += 1
                return found
            self.misses += 1
            counts[1] += 1
        value = compute()
        value.setflags(write=False)
        with self._lock:
            if pinned:
                self._pinned.setdefault(key, value)
            elif key not in self._entries and value.nbytes <= self._max_bytes:
                self._entries[key] = value
                self._bytes += value.nbytes
                self._shrink()
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._pinned.clear()
            self._bytes = 0
            self.hits = self.misses = 0
            self.by_kind.clear()

    def info(self) -> dict[str, int]:
        """hits, misses, entries and bytes held within the budget, and bytes
        pinned (for benchmarks and tuning); ``by_kind`` has hits and misses
        per kind of key."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "pinned_bytes": sum(value.nbytes for value in self._pinned.values()),
            }


class _Scratch(threading.local):
    """Per-thread buffers for temporaries, reused from call to call."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}


_SCRATCH = _Scratch()


def scratch_buffer(name: str, size: int) -> np.ndarray:
    """A float64 buffer of ``size`` values for temporary use in this thread.

    A fresh array of a million values costs almost as much in page faults as
    a pass over it (the allocator hands such blocks back to the system when
    they are freed), so per-trial temporaries reuse these buffers instead.
    Each name is one buffer, grown as needed and kept for the thread's life;
    its contents are valid only until the next call with the same name.
    """
    buffer = _SCRATCH.buffers.get(name)
    if buffer is None or buffer.size < size:
        buffer = _SCRATCH.buffers[name] = np.empty(size)
    return buffer[:size]
