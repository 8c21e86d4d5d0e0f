"""Following a study from its journal records, for readers that fetch records themselves
(the monitor reads the new records of every study in one query)."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

from ._optuna_private import JournalStorageReplayResult


class JournalReplay:
    """The trials of one study, rebuilt from its journal records as they arrive."""

    def __init__(self) -> None:
        self._replay = JournalStorageReplayResult("reader-")

    @property
    def offset(self) -> int:
        """How many records have been applied: where the next read starts."""
        return self._replay.log_number_read

    @property
    def trial_count(self) -> int:
        return len(self._replay._trials)

    def apply(self, records: list[dict[str, Any] | None]) -> set[int]:
        """Apply records in order, a None being a record the reader skipped (not read, but
        counted); return the ids of the trials they created or changed."""
        before = self.trial_count
        touched = {r["trial_id"] for r in records if r is not None and "trial_id" in r}
        run: list[dict[str, Any]] = []
        for record in records:
            if record is not None:
                run.append(record)
                continue
            if run:
                self._replay.apply_logs(run)
                run = []
            self._replay.log_number_read += 1
        if run:
            self._replay.apply_logs(run)
        touched.update(range(before, self.trial_count))
        return touched

    def trial(self, trial_id: int) -> FrozenTrial | None:
        return self._replay._trials.get(trial_id)

    def trials(self) -> list[FrozenTrial]:
        return list(self._replay._trials.values())
