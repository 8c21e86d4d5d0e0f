"""Never backtest one parameter combination twice in a study (seed 002's ``seen_combos``).

Each combination is reduced to a canonical key: categorical and int values as
they are, floats on a step at their step index, other floats at
``study.float_precision`` significant digits (default 6: 0.0123456 and
0.01234561 are one combination). A worker claims the key of every trial before
its backtest with an INSERT on the table's primary key — atomic in PostgreSQL,
so two workers on two hosts can never both evaluate it. A key already claimed
(evaluated, or being evaluated right now) makes the trial a *duplicate*.

What Optuna is told for a duplicate: the trial is FAILED, with user attributes
``duplicate_of`` (the original trial's number) and ``duplicate_source``
(``memory``: this worker had seen it; ``database``: another worker, or an
earlier run, claimed it). Every Optuna sampler ignores failed trials, so the
model sees each combination exactly once, with its real value. Telling the
original's value instead would count that point twice (and toward the target
of completed trials); telling "pruned" would mark the best region as bad,
since that is where TPE proposes repeats.

Duplicates do not count toward ``max_attempts`` (no backtest ran). On a
finite space, each duplicate is followed by the unclaimed combination nearest
to it, enqueued right before the next trial (:meth:`ClaimBook.pick_unclaimed`),
and the study ends by itself when none is left; elsewhere, a sampler that
proposes only duplicates (200 in a row) ends the study too.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .config import CategoricalParam, RunConfig
from .space import GRID_LIMIT, grid_points, grid_size, is_conditional, param_key
from .storage import Database, retry_on_disconnect

MEMORY, DATABASE = "memory", "database"


@dataclass(frozen=True)
class Duplicate:
    original: int | None  # None: claimed by a worker whose trial had not committed yet
    source: str


class ClaimBook:
    """One worker's claims. The database's unique key decides; the worker's memory of the
    combinations it met only says where a duplicate was caught (memory or database)."""

    def __init__(self, db: Database, cfg: RunConfig, study: str, worker_id: str) -> None:
        self.db, self.cfg, self.study, self.worker_id = db, cfg, study, worker_id
        self.seen: set[str] = set()  # keys this worker met (claimed, or found claimed)
        self.space_size = None if is_conditional(cfg) else grid_size(cfg)
        self._combinations: list[dict[str, Any]] | None = None
        self._keys: list[str] = []
        self._names: list[str] = []
        self._points: list[list[Any]] = []
        self._positions: list[tuple[int, ...]] = []
        self._scales: list[tuple[int, bool]] = []

    @retry_on_disconnect
    def claim(self, key: str, trial_number: int, trial_id: int) -> Duplicate | None:
        """Claim the combination (its :func:`~runner.space.param_key`) for this trial and record
        the trial in the worker's row, in one round trip; return the Duplicate if someone had
        the combination first."""
        # The database decides, always: a claim this worker remembers may have been
        # released since (an interrupted or lost trial). Memory only names the source.
        remembered = key in self.seen
        with self.db.engine.begin() as conn:
            row = conn.execute(
                sa.text(
                    """
                    WITH mine AS (
                        INSERT INTO tune_param_claims (study, key, trial_number, worker)
                        VALUES (:s, :k, :n, :w) ON CONFLICT (study, key) DO NOTHING
                        RETURNING trial_number
                    ), me AS (
                        UPDATE tune_workers SET trial_id = :t, heartbeat_at = now() WHERE id = :w
                    )
                    SELECT (SELECT trial_number FROM mine),
                           (SELECT trial_number FROM tune_param_claims WHERE study = :s AND key = :k)
                    """
                ),
                {"s": self.study, "k": key, "n": trial_number, "w": self.worker_id, "t": trial_id},
            ).one()
        mine, existing = row
        self.seen.add(key)
        if mine is not None:
            return None
        return Duplicate(existing, MEMORY if remembered else DATABASE)

    @retry_on_disconnect
    def pick_unclaimed(self, rng: random.Random, near: dict[str, Any] | None = None) -> dict[str, Any] | None | bool:
        """A combination nobody has claimed yet — the nearest to ``near`` (the duplicate
        the sampler proposed), ties broken at random; None when a finite space is used
        up; False when the space is not enumerable (continuous, conditional or huge).

        Why: a sampler is not told about duplicates (see the module docstring), so
        on a small discrete space it keeps proposing the combinations it likes
        best, which are all taken. After each duplicate the worker enqueues one
        unclaimed combination instead, so every duplicate buys a new evaluation —
        next to where the sampler wanted to look (it keeps exploiting).
        """
        if self.space_size is None or self.space_size > GRID_LIMIT:
            return False
        if self._combinations is None:
            points = grid_points(self.cfg)
            names = list(points)
            self._combinations = [dict(zip(names, values)) for values in itertools.product(*points.values())]
            self._keys = [param_key(self.cfg, c) for c in self._combinations]
            self._names, self._points = names, list(points.values())
            self._positions = list(itertools.product(*(range(len(v)) for v in self._points)))
            self._scales = [(max(len(v) - 1, 1), isinstance(self.cfg.space[n], CategoricalParam))
                            for n, v in zip(names, self._points)]
        claimed = self._claimed_keys()
        free = [i for i, key in enumerate(self._keys) if key not in claimed]
        if not free:
            return None
        if near:
            target = self._position(near)
            distance = [self._distance(self._positions[i], target) for i in free]
            closest = min(distance)
            free = [i for i, d in zip(free, distance) if d == closest]
        return self._combinations[rng.choice(free)]

    def _claimed_keys(self) -> set[str]:
        with self.db.engine.connect() as conn:
            return {
                r[0] for r in conn.execute(sa.text("SELECT key FROM tune_param_claims WHERE study = :s"), {"s": self.study})
            }

    def _position(self, params: dict[str, Any]) -> list[int | None]:
        """A combination's index on each parameter's grid (None: not on it)."""
        out: list[int | None] = []
        for name, values in zip(self._names, self._points):
            value = params.get(name)
            key = param_key(self.cfg, {name: value})
            out.append(next((i for i, v in enumerate(values) if param_key(self.cfg, {name: v}) == key), None))
        return out

    def _distance(self, position: tuple[int, ...], target: list[int | None]) -> float:
        """Sum over parameters of the distance in grid steps, each scaled to [0, 1] by the
        parameter's number of values; a categorical counts 0 (same choice) or 1."""
        total = 0.0
        for i, j, (scale, categorical) in zip(position, target, self._scales):
            if j is None:
                total += 1.0
            elif categorical:
                total += i != j
            else:
                total += abs(i - j) / scale
        return total


@retry_on_disconnect
def release(db: Database, study: str, trial_numbers: list[int]) -> None:
    """Free the combinations of trials that were never really evaluated (interrupted, lost worker)."""
    if not trial_numbers:
        return
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM tune_param_claims WHERE study = :s AND trial_number = ANY(:n)"),
            {"s": study, "n": list(trial_numbers)},
        )


@retry_on_disconnect
def reclaim(db: Database, study: str, key: str, trial_number: int) -> None:
    """Claim a combination for a trial recovered after an outage (see runner/spool.py), unless
    another trial has claimed it since."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO tune_param_claims (study, key, trial_number) VALUES (:s, :k, :n)"
                    " ON CONFLICT (study, key) DO NOTHING"),
            {"s": study, "k": key, "n": trial_number},
        )
