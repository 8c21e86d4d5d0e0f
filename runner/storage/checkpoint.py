"""Replay checkpoints: a study's trials as a worker sees them, as compressed JSON, so that a
worker joining a study of 20,000 trials reads one row and the records after it instead of
replaying every record (issue 14, bench_monitor.py: its first trial 3.1 s after its start
instead of 9.9 s, against 2.6 s on an empty study).
Optuna calls such a thing a snapshot (``BaseJournalSnapshot``); ours is named apart from
the trial loop's ``snapshot_reads`` (journal.py), which is something else.

A checkpoint holds the state of Optuna's replay after ``records`` records, in the
worker's view (``TuneJournalStorage(keep=...)``): other processes' trials carry only
the user attributes named in ``keep`` and no worker mark (runner/states.WORKER_ATTR);
parameters, values, states, times, constraints and intermediate values are all there.
A joining worker restores it into a fresh replay and reads the records from
``records`` on, as if it had read them all — with two differences no worker reads:
a trial made from a template (tune refine's copies, a result recovered from the spool)
loses the attributes it was created with unless ``keep`` names them (a full read keeps
them), and a time within the hour a clock turns back is read an hour off by a worker
in another time zone than the writer's (the replay's times are local, without the fold).

JSON, not Optuna's ``BaseJournalSnapshot`` (a pickle): anyone who can write to the
database could make a pickle run code in every worker that reads it. A checkpoint that
does not parse, or that was made for other ``keep`` names or another generation of the
study, is ignored: the worker replays every record, as before.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from datetime import datetime

from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..states import WORKER_ATTR
from ..text import first_line
from ._optuna_private import FrozenStudy, JournalStorageReplayResult, replay_state, restore_replay

FORMAT = 1
EVERY_TRIALS = 1000  # checkpoints are at least this many trials apart (see due)
# A worker whose first read replayed this many records past the checkpoint (or from the
# start, without one) writes one after its first trial.
MIN_RECORDS = 20_000
# Compressed, a checkpoint is about 25 bytes a trial: this is some 1.3 million trials.
# Bigger, it is not written (it is one round trip, and must fit its deadline): workers
# joining later read the records past the last one written.
MAX_BYTES = 32 * 2**20


def due(number: int) -> bool:
    """Whether the worker that takes trial ``number`` writes the study's checkpoint: every
    1,000 trials up to 99,999, then every tenth of the history's order of magnitude (every
    10,000 up to 999,999, ...). A joining worker reads at most about a tenth of the history
    past it, and writing costs the same again only once the study is ten times longer
    (each write costs in proportion to the study)."""
    return number > 0 and number % max(EVERY_TRIALS, 10 ** (len(str(number)) - 2)) == 0


class CheckpointError(ValueError):
    """A stored checkpoint this version cannot use (ignored: the worker replays every record)."""


def _time(value: datetime | None) -> str | None:
    # Aware: a reader in another time zone turns it into its local time, as Optuna's replay does.
    return value.astimezone().isoformat() if value is not None else None


def _local(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone().replace(tzinfo=None) if text is not None else None


Captured = tuple[int, list[FrozenStudy], list[tuple[int, FrozenTrial]]]
capture = replay_state  # a replay's state as it is now, for dump to write out later, on another thread


def dump(state: Captured, keep: Iterable[str]) -> tuple[int, int, bytes] | None:
    """(records, trials, compressed JSON) of a captured state in the worker's view with
    ``keep``; None for a replay that is not one study's (our streams hold one study each)."""
    records, studies, trials = state
    if len(studies) != 1:
        return None
    study = studies[0]
    keep = sorted(set(keep))
    wanted = set(keep)
    # Distributions by their JSON, not by ==: CategoricalDistribution([0, 1]) equals
    # ([False, True]) (1 == True), and the trials of one would be read back with the other's.
    texts: dict[str, int] = {}
    seen: dict[int, int] = {}  # id() of a distribution object -> its index (objects live on in ``state``)
    rows = []
    for study_id, t in trials:
        if study_id != study._study_id:
            return None
        params = {}
        for name, value in t.params.items():
            d = t.distributions[name]
            index = seen.get(id(d))
            if index is None:
                index = seen[id(d)] = texts.setdefault(distribution_to_json(d), len(texts))
            params[name] = [index, value]
        rows.append([
            t._trial_id, t.number, t.state.value, t.values, _time(t.datetime_start), _time(t.datetime_complete),
            params, {k: v for k, v in t.user_attrs.items() if k in wanted},
            {k: v for k, v in t.system_attrs.items() if k != WORKER_ATTR},
            [[step, v] for step, v in t.intermediate_values.items()],
        ])
    body = {
        "format": FORMAT, "keep": keep, "records": records,
        "study": {"id": study._study_id, "name": study.study_name, "directions": [d.value for d in study.directions],
                  "user_attrs": study.user_attrs, "system_attrs": study.system_attrs},
        "distributions": list(texts),
        "trials": rows,
    }
    return records, len(rows), zlib.compress(json.dumps(body).encode(), 1)


def restore(data: bytes, keep: Iterable[str], study_name: str,
            worker_id_prefix: str) -> tuple[JournalStorageReplayResult, int]:
    """A replay, for a JournalStorage whose worker ids start with ``worker_id_prefix``, as a
    checkpoint of ``study_name``'s stream left it, and its number of trials. Raises
    CheckpointError if it cannot be used."""
    try:
        body = json.loads(zlib.decompress(data))
        if body.get("format") != FORMAT:
            raise CheckpointError(f"format {body.get('format')!r}, not {FORMAT}")
        if body["keep"] != sorted(set(keep)):
            raise CheckpointError(f"made for the attributes {body['keep']}")
        s = body["study"]
        if s["name"] != study_name:
            raise CheckpointError(f"made for the study {s['name']!r}")
        study = FrozenStudy(study_name=s["name"], direction=None, user_attrs=s["user_attrs"],
                            system_attrs=s["system_attrs"], study_id=s["id"],
                            directions=[StudyDirection(d) for d in s["directions"]])
        dists = [json_to_distribution(d) for d in body["distributions"]]
        trials = []
        for tid, number, state, values, start, complete, params, user, system, steps in body["trials"]:
            trials.append((study._study_id, FrozenTrial(
                number=number, state=TrialState(state), value=None, values=values,
                datetime_start=_local(start), datetime_complete=_local(complete),
                params={k: v for k, (_, v) in params.items()},
                distributions={k: dists[i] for k, (i, _) in params.items()},
                user_attrs=user, system_attrs=system,
                intermediate_values={int(step): v for step, v in steps}, trial_id=tid,
            )))
        records = int(body["records"])
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with a cache, it is passed over
        raise CheckpointError(f"{type(exc).__name__}: {first_line(exc)}") from None
    if any(t._trial_id != i for i, (_, t) in enumerate(trials)):
        raise CheckpointError("its trial ids are not 0, 1, 2, ...")
    return restore_replay(worker_id_prefix, records, [study], trials), len(trials)
