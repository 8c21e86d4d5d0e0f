"""Optuna's private names that the storage needs, imported here and nowhere else.

Why each is unavoidable (Optuna 5.x; pinned below 6 in pyproject.toml):

* ``JournalOperation`` — the op codes of journal records. ``TuneJournalStorage``
  writes a trial's parameter and attribute records itself (batched into one
  append); Optuna exposes no public constructor for journal records.
* ``JournalStorageReplayResult`` — Optuna's replay of journal records into
  trials. The monitor follows many studies by applying only the records it has
  not seen yet; ``JournalStorage`` would replay the same records but offers no
  way to feed it records read elsewhere (one query for all studies).

A test (tests/unit/test_storage_private.py) fails loudly if either moves.
"""

from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult

__all__ = ["JournalOperation", "JournalStorageReplayResult"]
