"""The holdout and the walk-forward folds: data kept from the optimizer.

``[validation] holdout`` reserves it (a fraction of the bars, or the timestamp it
starts at). Trials, pruning and the sampler see only the bars before it
(runner/study.py's Objective). A worker whose trial enters the study's top
``top_k`` evaluates it on the holdout and records the result here, in
``tune_holdout`` — outside the study's journal, where no sampler reads it:
the holdout is reported, never used to select. ``tune report`` fills in any
top trial still missing (an older study, a lost insert).
"""

from __future__ import annotations

import heapq
import json
import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .storage import Database
from .text import storable

if TYPE_CHECKING:  # pandas and the config (which imports it) only where a frame is split:
    import pandas as pd  # the app watching studies never needs them (issue 14: ~60 MB of memory)

    from .config import RunConfig

# Fewest bars on either side of the split: fewer give no meaningful figures.
MIN_BARS = 20


class HoldoutError(ValueError):
    """The holdout or the folds leave too little data (names the symbol); ``field``: the
    config field at fault."""

    def __init__(self, message: str, field: str = "validation.holdout") -> None:
        super().__init__(message)
        self.field = field


def holdout_start(cfg: RunConfig, frame: pd.DataFrame, symbol: str) -> int | None:
    """Index of the first holdout bar of ``frame``; None without a holdout."""
    holdout = cfg.validation.holdout
    if holdout is None:
        return None
    bars = len(frame)
    if isinstance(holdout, float):
        start = bars - int(round(bars * holdout))
        what = f"holdout = {holdout}"
    else:
        from .config import parse_time

        start = int(frame.index.searchsorted(parse_time(holdout)))
        what = f"holdout from {holdout}"
    if start < MIN_BARS or bars - start < MIN_BARS:
        raise HoldoutError(
            f"{symbol}: {what} leaves {start} bars to optimize on and {bars - start} to validate on "
            f"(of {bars}); each side needs at least {MIN_BARS}"
        )
    return start


def fold_windows(cfg: RunConfig, bars: int, symbol: str) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) of each walk-forward fold over the first ``bars``
    bars (the optimized period: before any holdout). The bars are cut into folds + 1
    equal segments (the remainder joins the last); fold i tests on segment i and trains on
    segment i - 1 (rolling) or on every segment before i (anchored)."""
    wf = cfg.validation.walk_forward
    if wf is None:
        return []
    segment = bars // (wf.folds + 1)
    if segment < MIN_BARS:
        raise HoldoutError(f"{symbol}: {wf.folds} folds cut {bars} bars into segments of {segment}; "
                           f"each needs at least {MIN_BARS}", "validation.walk_forward")
    return [(0 if wf.mode == "anchored" else (i - 1) * segment, i * segment, bars if i == wf.folds else (i + 1) * segment)
            for i in range(1, wf.folds + 1)]


def split(cfg: RunConfig, frame: pd.DataFrame, symbol: str) -> tuple[int | None, list[tuple[int, int, int]]]:
    """The holdout's first bar (None without one) and the walk-forward folds' windows over
    the bars before it: what the trials of each of the symbol's studies may see."""
    start = holdout_start(cfg, frame, symbol)
    return start, fold_windows(cfg, len(frame) if start is None else start, symbol)


def window(split: int | None, windows: list[tuple[int, int, int]], total: int,
           fold: int | None) -> tuple[int, int]:
    """The bars [start, end) a study's trials see: those before the holdout (all without
    one), or a walk-forward fold's training window."""
    if fold is not None:
        start, end, _ = windows[fold - 1]
        return start, end
    return 0, total if split is None else split


def seen_bars(index: pd.Index, start: int, end: int) -> list[str | None] | None:
    """What a study's trials see (its :func:`window`), as [its first bar's timestamp, the
    first unseen bar's]: kept with the study (control.pin_seen_bars), so that data that
    changed under it (bars appended move a fractional holdout, and so the folds) cannot
    show its later trials bars that its earlier ones never saw. None when the study
    sees every bar (keeps none unseen)."""
    if (start, end) == (0, len(index)):
        return None
    return [index[start].isoformat(), index[end].isoformat() if end < len(index) else None]


class TopValues:
    """The best ``k`` values told so far, kept as trials settle (runner.worker.StudyTally):
    whether a new value enters the top costs O(log k), whatever the study's size."""

    def __init__(self, k: int, direction: str) -> None:
        self.k = k
        self._sign = 1.0 if direction == "maximize" else -1.0
        self._heap: list[float] = []  # the signed top values; the worst of them first

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        signed = self._sign * value
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, signed)
        elif signed > self._heap[0]:
            heapq.heapreplace(self._heap, signed)

    def enters(self, value: float) -> bool:
        """Whether ``value`` would be among the top ``k`` (ties with the k-th enter)."""
        return len(self._heap) < self.k or self._sign * value >= self._heap[0]


# A holdout evaluation a stopping worker cut short: the report evaluates it again.
INTERRUPTED = "interrupted (worker stopped)"


def finite(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """Metrics as tune_holdout keeps them: NaN and infinities as None (JSON has neither)."""
    return {k: v if v is not None and math.isfinite(v) else None for k, v in metrics.items()}


def record_statement(study: str, trial_number: int, metrics: dict[str, float | None] | None,
                     error: str | None = None) -> tuple[str, dict[str, Any]]:
    """The statement (psycopg2 style) that keeps one trial's holdout result (a repeat of
    the same trial replaces it). The worker sends it with the trial's tell, in the same
    round trip and transaction (TuneJournalStorage.queue_statement)."""
    return (
        "INSERT INTO tune_holdout (study, trial_number, metrics, error) "
        "VALUES (%(s)s, %(n)s, CAST(%(m)s AS jsonb), %(e)s) ON CONFLICT (study, trial_number) "
        "DO UPDATE SET metrics = EXCLUDED.metrics, error = EXCLUDED.error, created_at = now()",
        {"s": study, "n": trial_number, "e": None if error is None else storable(error),
         "m": None if metrics is None else json.dumps({storable(k): v for k, v in finite(metrics).items()})},
    )


def record(db: Database, study: str, trial_number: int, metrics: dict[str, float | None] | None,
           error: str | None = None) -> None:
    """Keep one trial's holdout result now, in a transaction of its own (tune report)."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(*record_statement(study, trial_number, metrics, error))


def results(db: Database, study: str) -> dict[int, dict[str, Any]]:
    """Trial number -> {"metrics": dict | None, "error": str | None} for the study."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT trial_number, metrics, error FROM tune_holdout WHERE study = :s"), {"s": study}
        ).all()
    return {number: {"metrics": metrics, "error": error} for number, metrics, error in rows}


def values_of(db: Database, trials: list[tuple[str, int]], metric: str) -> dict[str, float | None]:
    """Each (study, trial number)'s holdout value of ``metric``, by study, where it was
    evaluated (the symbols view's holdout column: each study's best)."""
    if not trials:
        return {}
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT h.study, h.metrics -> :m FROM tune_holdout h JOIN unnest(:s, :n) AS b(study, n)"
                    " ON h.study = b.study AND h.trial_number = b.n"),
            {"m": metric, "s": [s for s, _ in trials], "n": [n for _, n in trials]},
        ).all()
    return {study: value if isinstance(value, (int, float)) else None for study, value in rows}
