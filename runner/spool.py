"""Finished results the database has not taken yet, kept on local disk.

A finished backtest is data. Before a worker tells Optuna a trial's result it
writes the result here (``TUNE_HOME/spool``, owner-only), and removes the file
once the database has it. A worker that waits out a database outage keeps the
result in memory as well; one that must exit meanwhile (stopped, killed) leaves
the file behind, and the next ``tune`` process on this host to open the
database — a worker of the study, ``tune run``, ``tune status``, the app —
delivers it (:func:`deliver_all`):

* the trial still RUNNING: its result is told, as the worker would have;
* the trial already holding this result (the tell went through just before the
  worker died): nothing to do;
* otherwise (another process failed it as lost during the outage): the result
  is added as a new COMPLETE / PRUNED / FAIL trial with the same parameters,
  marked ``recovered_from`` (the lost trial's number).

Also kept here: a worker's exit reason that could not be recorded (the
database was away when it exited); it is written to its row and the study's
log on delivery.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from . import control
from .storage import StorageError
from .storage.embedded import new_private_file, private_dir, tune_home
from .text import first_line

log = logging.getLogger(__name__)


def spool_dir() -> Path:
    return private_dir(tune_home() / "spool")


def _write(record: dict[str, Any]) -> Path:
    directory = spool_dir()
    final = directory / f"{record['kind']}-{record['worker']}-{record.get('trial_id', 'x')}-{uuid.uuid4().hex[:6]}.json"
    temp = final.with_suffix(".tmp")
    with new_private_file(temp) as out:
        json.dump(record, out)
    os.replace(temp, final)  # a reader sees a whole file or none
    return final


def keep_result(database: str, study: str, worker: str, trial: FrozenTrial | Any, state: TrialState,
                values: list[float] | None, user_attrs: dict[str, Any], system_attrs: dict[str, Any],
                claim_key: str | None) -> Path | None:
    """Write a finished trial's result before telling it; returns the file (None if the disk
    refused: the result then lives only in the worker's memory, as before)."""
    record = {
        "kind": "result", "database": database, "study": study, "worker": worker, "pid": os.getpid(),
        "trial_id": trial._trial_id, "number": trial.number, "state": state.name,
        "values": values, "params": trial.params,
        "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        "user_attrs": user_attrs, "system_attrs": system_attrs, "claim_key": claim_key,
    }
    try:
        return _write(record)
    except (OSError, TypeError, ValueError) as exc:
        log.warning("could not keep the result of trial %s on disk: %s", trial.number, exc)
        return None


def keep_exit(database: str, study: str, worker: str, reason: str, status: str) -> Path | None:
    try:
        return _write({"kind": "exit", "database": database, "study": study, "worker": worker, "pid": os.getpid(),
                       "reason": reason, "status": status})
    except OSError as exc:
        log.warning("could not keep the exit reason on disk: %s", exc)
        return None


def done(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process of ours (a worker still holding its result)?"""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not one of our workers
    try:
        return b"runner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def waiting(study: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Records left by processes that have exited (of one study, or all)."""
    try:
        files = sorted(spool_dir().glob("*.json"))
    except Exception:
        return []
    out = []
    for path in files:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (study is None or record.get("study") == study) and not _alive(int(record.get("pid", 0))):
            out.append((path, record))
    return out


def deliver_all(db, study: str | None = None) -> int:
    """Hand every waiting record of this database to it; returns how many were delivered.

    A record belongs to the database it was written for (``tune_database.id``): a
    command opening another database leaves it alone. One that cannot be delivered
    (its study deleted, a record the database refuses) is moved to ``spool/undelivered/``
    and reported, never retried by every command.
    """
    delivered = 0
    for path, record in waiting(study):
        if record.get("database", db.identity) != db.identity:
            continue
        try:
            if record["kind"] == "result":
                note = _deliver_result(db, record)
            else:
                note = _deliver_exit(db, record)
        except StorageError:
            raise  # the database is away: the record waits for the next process
        except KeyError:
            note = "its study no longer exists; dropped"
            done(path)
        except Exception as exc:
            note = _set_aside(path, exc)  # moved: nothing left to remove
            log.warning("%s", note)
        else:
            done(path)
        delivered += 1
        try:
            control.add_event(db, record["study"], record.get("worker"), "info", note)
        except Exception:
            pass
    return delivered


def _set_aside(path: Path, exc: Exception) -> str:
    aside = private_dir(spool_dir() / "undelivered") / path.name
    os.replace(path, aside)
    return f"a kept result could not be recorded ({type(exc).__name__}: {first_line(exc)}); set aside in {aside}"


def deliver_file(db, path: Path) -> str:
    """Deliver one record now (a worker's own, after its trial was failed as lost); returns a
    line for the study's log. The file is removed once delivered."""
    record = json.loads(path.read_text())
    note = _deliver_result(db, record)
    done(path)
    return note


def _deliver_result(db, record: dict[str, Any]) -> str:
    storage = db.optuna_storage(record["study"])
    study_id = storage.get_study_id_from_name(record["study"])
    state = TrialState[record["state"]]
    values = record["values"]
    try:
        trial = storage.get_trial(record["trial_id"])
    except KeyError:
        trial = None
    if trial is not None and trial.number == record["number"]:
        if trial.state == TrialState.RUNNING:
            storage.set_trial_attrs(trial._trial_id, record["user_attrs"], record["system_attrs"])
            storage.set_trial_state_values(trial._trial_id, state, values)
            return f"trial {trial.number}: result kept through a database outage, now recorded"
        if trial.state == state and (trial.values or None) == (values or None):
            return f"trial {trial.number}: result already recorded"
    distributions = {k: json_to_distribution(v) for k, v in record["distributions"].items()}
    template = optuna.trial.create_trial(
        state=state, values=values if state == TrialState.COMPLETE else None,
        params=record["params"], distributions=distributions,
        user_attrs={**record["user_attrs"], "recovered_from": record["number"]},
        system_attrs=record["system_attrs"],
    )
    new_id = storage.create_new_trial(study_id, template_trial=template)
    number = storage.get_trial_number_from_id(new_id)
    if record.get("claim_key"):
        from . import dedup  # the config's modules only when a kept result is delivered

        dedup.reclaim(db, record["study"], record["claim_key"], number)
    return (f"trial {record['number']} had been failed as lost during a database outage; "
            f"its finished result is recorded as trial {number}")


def _deliver_exit(db, record: dict[str, Any]) -> str:
    control.record_exit(db, record["worker"], record["reason"], record["status"])
    return f"worker {record['worker']} exited while the database was away: {record['reason']}"
