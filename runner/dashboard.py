"""``tune dashboard``: every study of the database in one optuna-dashboard.

optuna-dashboard serves one Optuna storage, and its command line only knows
Optuna's own RDB schema. Ours keeps each study in a journal of its own (a stream of
``tune_journal``, runner/storage/journal.py). :class:`AllStudies` is one read-only
Optuna storage over all of them, which ``tune dashboard`` hands to optuna-dashboard:

* study ``i`` is the ``i``-th study the storage has met (ids stay put while it
  runs; a study started since appears at the next listing);
* a trial's id carries its study's: ``i << 32 | its id in its own journal``, so that
  a call by trial id alone (``get_trial``) finds the journal.

Everything that would write — a note, a deleted or created study, a trial told from
the browser — is refused: the dashboard is for looking, runs go through ``tune``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from . import control
from .storage import Database, TuneJournalStorage
from .storage._optuna_private import FrozenStudy

TRIAL_BITS = 32  # a trial id in its own journal stays below 2**32


class ReadOnlyStorage(Exception):
    """A write through ``tune dashboard``'s storage."""


class AllStudies(BaseStorage):
    """Every study of ``db`` (the archived ones too) as one read-only Optuna storage."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._names: list[str] = []  # global study id -> name
        self._ids: dict[str, int] = {}

    # ------------------------------------------------------------ ids
    def _list(self) -> list[str]:
        """The database's studies now, each with its global id (new ones get the next)."""
        names = [r.name for r in control.list_studies(self.db, None, archived=True)]
        with self._lock:
            for name in names:
                if name not in self._ids:
                    self._ids[name] = len(self._names)
                    self._names.append(name)
        return names

    def _local(self, study_id: int) -> tuple[TuneJournalStorage, int]:
        """The journal storage of global study ``study_id`` and the study's id in it."""
        with self._lock:
            if not 0 <= study_id < len(self._names):
                raise KeyError(f"no study with id {study_id}")
            name = self._names[study_id]
        storage = self.db.optuna_storage(name)
        return storage, storage.get_study_id_from_name(name)

    @staticmethod
    def _global_trial(trial: FrozenTrial, study_id: int) -> FrozenTrial:
        shown = copy.copy(trial)  # the replay's own object stays as it is
        shown._trial_id = study_id << TRIAL_BITS | trial._trial_id
        return shown

    # ------------------------------------------------------------ reading
    def get_all_studies(self) -> list[FrozenStudy]:
        studies = []
        for name in self._list():
            study_id = self._ids[name]
            storage, local = self._local(study_id)
            found = next(s for s in storage.get_all_studies() if s._study_id == local)
            studies.append(FrozenStudy(study_name=name, direction=None, directions=found.directions,
                                       user_attrs=found.user_attrs, system_attrs=found.system_attrs,
                                       study_id=study_id))
        return studies

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name not in self._ids:
            self._list()
        if study_name not in self._ids:
            raise KeyError(f"no such study: {study_name}")
        return self._ids[study_name]

    def get_study_name_from_id(self, study_id: int) -> str:
        self._local(study_id)  # KeyError if there is none
        return self._names[study_id]

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        storage, local = self._local(study_id)
        return storage.get_study_directions(local)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        storage, local = self._local(study_id)
        return storage.get_study_user_attrs(local)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        storage, local = self._local(study_id)
        return storage.get_study_system_attrs(local)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        storage, local = self._local(study_id)
        return [self._global_trial(t, study_id) for t in storage.get_all_trials(local, deepcopy=deepcopy, states=states)]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        study_id = trial_id >> TRIAL_BITS
        storage, _ = self._local(study_id)
        return self._global_trial(storage.get_trial(trial_id & ((1 << TRIAL_BITS) - 1)), study_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        storage, local = self._local(study_id)
        return study_id << TRIAL_BITS | storage.get_trial_id_from_study_id_trial_number(local, trial_number)

    # ------------------------------------------------------------ writing: refused
    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise ReadOnlyStorage("tune dashboard is read-only: runs, notes and deletions go through tune")

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._refuse()

    def delete_study(self, study_id: int) -> None:
        self._refuse()

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._refuse()

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._refuse()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._refuse()

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self._refuse()

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self._refuse()

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._refuse()

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._refuse()

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._refuse()


def serve(db: Database, host: str, port: int) -> None:
    """Serve every study of ``db`` with optuna-dashboard until interrupted (ImportError
    when the extra is not installed)."""
    from optuna_dashboard import run_server

    run_server(AllStudies(db), host=host, port=port)
