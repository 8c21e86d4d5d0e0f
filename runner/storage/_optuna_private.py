"""Optuna's private names that the storage needs, used here and nowhere else.

Why each is unavoidable (Optuna 5.x; pinned below 6 in pyproject.toml):

* ``JournalOperation`` — the op codes of journal records. ``TuneJournalStorage``
  writes a trial's parameter and attribute records itself (batched into one
  append), and the monitor's replay (replay.py) applies records itself; Optuna
  exposes no public name for them.
* ``FrozenStudy`` — what ``BaseStorage.get_all_studies`` returns. ``tune dashboard``'s
  storage over every study's journal (runner/dashboard.py) makes them under new ids;
  Optuna documents the class (``optuna.study.FrozenStudy`` in its API reference) but
  exports it from ``optuna.study._frozen`` only.
* ``JournalStorageReplayResult``'s attributes (:func:`replay_state`,
  :func:`restore_replay`) — a worker joining a long study starts from a replay
  checkpoint (checkpoint.py) instead of replaying every record. Optuna's own
  (``BaseJournalSnapshot``) is a pickle of this object: read back from a database
  others can write to, a pickle runs their code. Ours is JSON, so restoring it means
  filling the object's fields as ``JournalStorage.restore_replay_result`` does after
  unpickling.

If one moves, every process fails at import, naming it — or, for the replay's fields,
the checkpoint tests (tests/unit/test_checkpoint.py, tests/integration/test_checkpoint.py) fail.
"""

from __future__ import annotations

import copy

from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial

__all__ = ["FrozenStudy", "JournalOperation", "JournalStorageReplayResult", "replay_state", "restore_replay"]


def replay_state(result: JournalStorageReplayResult) -> tuple[int, list[FrozenStudy], list[tuple[int, FrozenTrial]]]:
    """(records read, studies, every trial with its study's id) of a replay, as it is now and
    stays while the replay goes on (cheap: a finished trial is not copied). Call it between
    trials: while an ``optuna.Trial`` of this process is open, the replay already holds the
    parameters it suggested, whose records may still be queued (journal.py). The replay replaces a trial's object when a record
    changes it, but a live ``optuna.Trial`` writes its parameters, reports and attributes
    into the replay's own object (its ``_cached_frozen_trial``) as well: an open trial is
    copied, dicts and all. A finished one is no longer written to; a study's attributes are
    replaced on its object, so a shallow copy keeps the ones of now."""
    trials = []
    for tid, t in result._trials.items():
        if not t.state.is_finished():
            t = copy.copy(t)
            t._params, t._distributions = dict(t._params), dict(t._distributions)
            t._user_attrs, t._system_attrs = dict(t._user_attrs), dict(t._system_attrs)
            t.intermediate_values = dict(t.intermediate_values)
        trials.append((result._trial_id_to_study_id[tid], t))
    return result.log_number_read, [copy.copy(s) for s in result._studies.values()], trials


def restore_replay(worker_id_prefix: str, records_read: int, studies: list[FrozenStudy],
                   trials: list[tuple[int, FrozenTrial]]) -> JournalStorageReplayResult:
    """The replay, for a JournalStorage whose worker ids start with ``worker_id_prefix``, that
    read ``records_read`` records, with these studies and (study id, trial) pairs in
    trial-id order, as Optuna's replay holds them."""
    result = JournalStorageReplayResult(worker_id_prefix)
    result.log_number_read = records_read
    result._studies = {s._study_id: s for s in studies}
    result._next_study_id = max((s._study_id for s in studies), default=-1) + 1
    result._study_id_to_trial_ids = {s._study_id: [] for s in studies}
    for study_id, trial in trials:
        result._trials[trial._trial_id] = trial
        result._trial_id_to_study_id[trial._trial_id] = study_id
        result._study_id_to_trial_ids[study_id].append(trial._trial_id)
    # As restore_replay_result after unpickling: this process owns no trial yet.
    result._worker_id_to_owned_trial_id = {}
    result._last_created_trial_id_by_this_process = -1
    return result
