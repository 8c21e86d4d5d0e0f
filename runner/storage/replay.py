"""Following a study from its journal records, for readers that fetch records themselves
(the monitor reads the new records of every study in one query).

Unlike Optuna's own replay, which keeps every trial it has seen, a
:class:`JournalReplay` holds only the trials still open (waiting or running): each
trial is handed to the caller whenever a record changes it, and once finished it is
let go — a record for a finished trial changes nothing (Optuna's replay ignores those
too). So a follower's memory does not grow with a study's history (issue 14); whoever
needs a finished trial again reads its few records back (:func:`rebuild_trial`).

The records are Optuna's journal operations, applied as
``optuna.storages.journal.JournalStorageReplayResult`` applies them, for one study per
stream (ours: a trial's id is its number). One check is left out: Optuna drops a
parameter record whose distribution is incompatible with an earlier trial's — a
conflict only a second writer can cause, whose own replay refuses it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from ._optuna_private import JournalOperation as Op

_distributions: dict[str, BaseDistribution] = {}  # a distribution's JSON -> the object: a few per study


def distribution(text: str) -> BaseDistribution:
    found = _distributions.get(text)
    if found is None:
        found = _distributions[text] = json_to_distribution(text)
    return found


def _time(text: str | None) -> datetime | None:
    # As Optuna's replay: local time without a zone.
    return datetime.fromisoformat(text).astimezone().replace(tzinfo=None) if text else None


def new_trial(log: dict[str, Any], number: int) -> FrozenTrial:
    """The trial a CREATE_TRIAL record makes (a template may make it finished already)."""
    dists = {k: distribution(v) for k, v in (log.get("distributions") or {}).items()}
    return FrozenTrial(
        trial_id=number, number=number, state=TrialState(log.get("state", TrialState.RUNNING.value)),
        params={k: dists[k].to_external_repr(p) for k, p in (log.get("params") or {}).items()},
        distributions=dists, user_attrs=dict(log.get("user_attrs") or {}),
        system_attrs=dict(log.get("system_attrs") or {}), value=log.get("value"),
        intermediate_values={int(k): v for k, v in (log.get("intermediate_values") or {}).items()},
        datetime_start=_time(log.get("datetime_start")), datetime_complete=_time(log.get("datetime_complete")),
        values=log.get("values"),
    )


def update(trial: FrozenTrial, log: dict[str, Any]) -> bool:
    """Apply one record to an open trial, in place; False when the record changes nothing."""
    op = log["op_code"]
    if op == Op.SET_TRIAL_PARAM:
        dist = distribution(log["distribution"])
        trial.params = {**trial.params, log["param_name"]: dist.to_external_repr(log["param_value_internal"])}
        trial.distributions = {**trial.distributions, log["param_name"]: dist}
    elif op == Op.SET_TRIAL_STATE_VALUES:
        state = TrialState(log["state"])
        if state == trial.state == TrialState.RUNNING:
            return False  # another process already runs this waiting trial
        if state == TrialState.RUNNING:
            trial.datetime_start = _time(log["datetime_start"])
        if state.is_finished():
            trial.datetime_complete = _time(log["datetime_complete"])
        trial.state = state
        if log["values"] is not None:
            trial.values = log["values"]
    elif op == Op.SET_TRIAL_INTERMEDIATE_VALUE:
        trial.intermediate_values = {**trial.intermediate_values, log["step"]: log["intermediate_value"]}
    elif op == Op.SET_TRIAL_USER_ATTR:
        trial.user_attrs = {**trial.user_attrs, **log["user_attr"]}
    elif op == Op.SET_TRIAL_SYSTEM_ATTR:
        trial.system_attrs = {**trial.system_attrs, **log["system_attr"]}
    else:
        return False
    return True


class JournalReplay:
    """The open trials of one study, followed from its journal records as they arrive."""

    def __init__(self) -> None:
        self.offset = 0  # records applied: where the next read starts (a record's seq)
        self.created = 0  # trials created: the next trial's number
        self.study: str | None = None  # the stream's study (its first CREATE_STUDY)
        self.open: dict[int, FrozenTrial] = {}  # waiting or running trials by number
        self.spans: dict[int, int] = {}  # an open trial's number -> the seq of its CREATE_TRIAL record

    def apply(self, records: list[dict[str, Any] | None]) -> list[tuple[FrozenTrial, int, int]]:
        """Apply records in order, a None being a record the reader skipped (not read, but
        counted). Return each trial the records created or changed, once, in the order
        first touched, as (trial, seq of its creation, seq of the last record applied to it);
        the finished ones are let go."""
        touched: dict[int, tuple[FrozenTrial, int, int]] = {}
        for log in records:
            seq = self.offset
            self.offset += 1
            if log is None:
                continue
            op = log["op_code"]
            if op == Op.CREATE_TRIAL:
                if self.study is None:
                    continue  # no study yet (Optuna's replay ignores it too)
                trial = new_trial(log, self.created)
                self.open[trial.number] = trial
                self.spans[trial.number] = seq
                self.created += 1
            elif op == Op.CREATE_STUDY:
                self.study = self.study or log["study_name"]
                continue
            else:
                trial = self.open.get(log.get("trial_id", -1))  # type: ignore[assignment]
                if trial is None or trial.state.is_finished() or not update(trial, log):
                    continue  # unknown, finished, or a no-op
            touched[trial.number] = (trial, self.spans[trial.number], seq)  # spans go after the loop
        for number, (trial, _, _) in touched.items():
            if trial.state.is_finished():
                del self.open[number], self.spans[number]
        return list(touched.values())


def rebuild_trial(records: list[dict[str, Any]], number: int) -> FrozenTrial | None:
    """Trial ``number`` from its CREATE_TRIAL record followed by the records naming it."""
    if not records or records[0]["op_code"] != Op.CREATE_TRIAL:
        return None
    trial = new_trial(records[0], number)
    for log in records[1:]:
        if log.get("trial_id") == number and not trial.state.is_finished():
            update(trial, log)
    return trial
