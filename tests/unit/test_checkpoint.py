"""Replay checkpoints without a database: a replay written out and read back is the same
replay, in the worker's view (tests/integration/test_checkpoint.py: through PostgreSQL)."""

from __future__ import annotations

import json
import zlib

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from runner.states import WORKER_ATTR
from runner.storage import checkpoint

KEEP = ("fail_reason",)
SPACE = {
    "n": IntDistribution(2, 40, step=2), "lr": FloatDistribution(1e-4, 1.0, log=True),
    "x": FloatDistribution(-1.0, 1.0, step=0.25),
    "kind": CategoricalDistribution(["sma", True, None, 1.5, 3]),
    # Equal as Python compares them (1 == True), not the same choices: each keeps its own.
    "flag": CategoricalDistribution([False, True]), "bit": CategoricalDistribution([0, 1]),
}


def _text(data: bytes) -> str:
    return zlib.decompress(data).decode()


def _data(text: str) -> bytes:
    return zlib.compress(text.encode())


def _journal(tmp_path, name: str = "study") -> tuple[JournalStorage, optuna.Study]:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("note", "kept")
    return storage, study


def _fill(study: optuna.Study) -> None:
    """Every state and every kind of field a trial can carry."""
    for i in range(12):
        space = SPACE if i % 3 else {"n": SPACE["n"], "kind": SPACE["kind"]}  # some lack a parameter
        trial = study.ask(fixed_distributions=space)
        trial.set_user_attr("sharpe", 0.1 * i)  # a metric: not in the worker's view
        trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, "host-1")
        trial.storage.set_trial_system_attr(trial._trial_id, "constraints", [0.5 - i / 10])
        trial.storage.set_trial_intermediate_value(trial._trial_id, i, float(i))  # (report: single objective only)
        if i % 4 == 1:
            trial.set_user_attr("fail_reason", "ValueError: bad")
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 4 == 2:
            study.tell(trial, state=TrialState.FAIL)
        elif i != 11:  # the last one runs still
            study.tell(trial, [float(i), -float(i)])
    study.enqueue_trial({"n": 4})  # and one waits


def _view(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial as the worker's view holds another process's: only the kept user attributes, no worker mark."""
    d = dict(trial.__dict__)
    d["_user_attrs"] = {k: v for k, v in trial.user_attrs.items() if k in KEEP}
    d["_system_attrs"] = {k: v for k, v in trial.system_attrs.items() if k != WORKER_ATTR}
    return d


def test_a_replay_written_and_read_back_holds_the_same_trials_in_the_workers_view(tmp_path):
    storage, study = _journal(tmp_path)
    _fill(study)
    original = storage._replay_result
    records, trials, text = checkpoint.dump(checkpoint.capture(original), KEEP)
    assert (records, trials) == (original.log_number_read, 13)
    assert "sharpe" not in _text(text) and WORKER_ATTR not in _text(text)
    restored, count = checkpoint.restore(text, KEEP, "study", "prefix-")
    assert (restored.log_number_read, count) == (records, 13)
    mine = restored.get_all_trials(0, None)
    assert [_view(t) for t in mine] == [_view(t) for t in original.get_all_trials(0, None)]
    assert {t.state for t in mine} == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
                                       TrialState.WAITING}
    assert mine[1].user_attrs == {"fail_reason": "ValueError: bad"} and mine[0].user_attrs == {}
    assert mine[3].params["kind"] in SPACE["kind"].choices and type(mine[3].params["n"]) is int
    # == cannot tell True from 1: the choices and values must be the very same, by repr.
    assert [(repr(t.params), repr(t.distributions)) for t in mine] == [
        (repr(t.params), repr(t.distributions)) for t in original.get_all_trials(0, None)]
    assert {type(t.params["flag"]) for t in mine if "flag" in t.params} == {bool}
    assert {type(t.params["bit"]) for t in mine if "bit" in t.params} == {int}
    [s] = restored.get_all_studies()
    assert (s.study_name, s.directions, s.user_attrs) == ("study", study.directions, {"note": "kept"})


def test_a_restored_replay_goes_on_as_the_original_would(tmp_path):
    """The records after the checkpoint apply to it as to a replay that read them all: the
    running trial finishes, the waiting one is taken, new ones are numbered on."""
    storage, study = _journal(tmp_path)
    _fill(study)
    records, _, text = checkpoint.dump(checkpoint.capture(storage._replay_result), KEEP)
    study.tell(11, [1.0, 2.0])  # the running trial
    study.tell(study.ask(), [3.0, 4.0])  # takes the waiting trial
    study.tell(study.ask(fixed_distributions=SPACE), [5.0, 6.0])
    later = list(JournalFileBackend(str(tmp_path / "journal.log")).read_logs(records))
    restored, _ = checkpoint.restore(text, KEEP, "study", "prefix-")
    restored.apply_logs(later)
    full = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))._replay_result
    before = [_view(t) for t in full.get_all_trials(0, None)[:13]]
    assert [_view(t) for t in restored.get_all_trials(0, None)[:13]] == before
    # Trials made after the checkpoint: replayed in full by both.
    assert [t.__dict__ for t in restored.get_all_trials(0, None)[13:]] == [
        t.__dict__ for t in full.get_all_trials(0, None)[13:]]
    assert [t.state for t in restored.get_all_trials(0, None)[11:]] == [TrialState.COMPLETE] * 3


def _first_trial(b: dict, **change) -> dict:
    row = b["trials"][0]
    fields = ["id", "number", "state", "values", "start", "complete", "params", "user", "system", "steps"]
    return {**b, "trials": [[change.get(f, v) for f, v in zip(fields, row)], *b["trials"][1:]]}


@pytest.mark.parametrize("change, problem", [
    (lambda b: "not json", "JSONDecodeError"),
    (lambda b: "[" * 100_000 + "]" * 100_000, "RecursionError"),
    (lambda b: json.dumps({**b, "format": 99}), "format 99"),
    (lambda b: json.dumps({**b, "keep": ["other"]}), "made for the attributes"),
    (lambda b: json.dumps({**b, "study": {**b["study"], "name": "else"}}), "made for the study"),
    (lambda b: json.dumps({**b, "trials": b["trials"][1:]}), "trial ids"),
    (lambda b: json.dumps({**b, "trials": [[0, 0, 99]]}), "ValueError"),
    (lambda b: json.dumps({**b, "distributions": ["{}"]}), "Error"),
    (lambda b: json.dumps({**b, "records": float("inf")}), "OverflowError"),
    (lambda b: json.dumps(_first_trial(b, start="0001-01-01T00:00:00+14:00")), "OverflowError"),
    (lambda b: json.dumps(_first_trial(b, steps=[[float("inf"), 1.0]])), "OverflowError"),
])
def test_a_checkpoint_that_cannot_be_used_says_why(tmp_path, change, problem):
    """Whatever is wrong, it is a CheckpointError (the worker reads every record), never a crash."""
    storage, study = _journal(tmp_path)
    _fill(study)
    _, _, data = checkpoint.dump(checkpoint.capture(storage._replay_result), KEEP)
    with pytest.raises(checkpoint.CheckpointError, match=problem):
        checkpoint.restore(_data(change(json.loads(_text(data)))), KEEP, "study", "prefix-")
    with pytest.raises(checkpoint.CheckpointError, match="while decompressing"):
        checkpoint.restore(b"\x80\x04\x95 a pickle", KEEP, "study", "prefix-")


def test_an_open_trial_is_captured_as_it_is_at_capture(tmp_path):
    """A live optuna.Trial writes into the replay's own object of its trial: what is captured
    must not change under the thread writing it out."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(storage=storage, study_name="study")
    trial = study.ask()
    trial.suggest_int("a", 1, 9)
    state = checkpoint.capture(storage._replay_result)
    trial.suggest_float("b", 0.0, 1.0)
    trial.report(1.0, step=0)
    trial.set_user_attr("fail_reason", "later")
    [(_, captured)] = state[2]
    assert (list(captured.params), captured.intermediate_values, captured.user_attrs) == (["a"], {}, {})


def test_checkpoints_come_every_1000_trials_then_every_tenth_of_the_history():
    assert [n for n in range(0, 30_001, 500) if checkpoint.due(n)] == list(range(1000, 30_001, 1000))
    assert [n for n in range(99_000, 300_001, 1000) if checkpoint.due(n)] == [99_000, *range(100_000, 300_001, 10_000)]
    assert checkpoint.due(1_000_000) and not checkpoint.due(1_010_000) and checkpoint.due(1_100_000)


def test_only_a_replay_of_one_study_is_written(tmp_path):
    storage, _ = _journal(tmp_path)
    optuna.create_study(storage=storage, study_name="second")
    assert checkpoint.dump(checkpoint.capture(storage._replay_result), KEEP) is None
