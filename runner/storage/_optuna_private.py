"""Optuna's private names that the storage needs, imported here and nowhere else.

Why each is unavoidable (Optuna 5.x; pinned below 6 in pyproject.toml):

* ``JournalOperation`` — the op codes of journal records. ``TuneJournalStorage``
  writes a trial's parameter and attribute records itself (batched into one
  append), and the monitor's replay (replay.py) applies records itself; Optuna
  exposes no public name for them.
* ``FrozenStudy`` — what ``BaseStorage.get_all_studies`` returns. ``tune dashboard``'s
  storage over every study's journal (runner/dashboard.py) makes them under new ids;
  Optuna documents the class (``optuna.study.FrozenStudy`` in its API reference) but
  exports it from ``optuna.study._frozen`` only.

If one moves, every process fails at import, naming it.
"""

from optuna.storages.journal._storage import JournalOperation
from optuna.study._frozen import FrozenStudy

__all__ = ["FrozenStudy", "JournalOperation"]
