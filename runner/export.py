"""``tune export``: a study's best parameters with their metadata, and all its trials.

The summary (YAML or JSON) is what a person stages for deployment or hands to
the next run: the best parameters, every metric of that trial, whether it
satisfies the constraints, trial counts, elapsed time, and the sampler and
pruner that found it. The CSV has one row per trial: state, values,
parameters, metrics and reasons, for a spreadsheet or pandas.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import optuna

from . import control
from .monitor import Monitor, category
from .storage import Database


def run_id(db: Database, row) -> str:
    """One id per run of a study (its control row ``row``): the same database, study and start
    give the same id, from any host; a fresh start of the study, another."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tune:{db.identity}/{row.name}/{row.created_at.isoformat()}"))


def summary(db: Database, study: str, trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """Best parameters and metadata of one study (KeyError if there is no such study);
    ``trials`` are the study's (:func:`load_trials`)."""
    rows = control.list_studies(db, [study])
    snapshot = Monitor(db, [study]).poll()
    if not rows or not snapshot.studies:
        raise KeyError(study)
    row, s = rows[0], snapshot.studies[0].status
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    out: dict[str, Any] = {
        "study": s.study, "symbol": s.symbol, "run": s.run, "run_id": run_id(db, row),
        "objective": [{"metric": m, "direction": d} for m, d in zip(s.metrics, s.directions)],
        "best_trial": s.best_trial,
        "best_value": s.best_value,
        "best_params": s.best_params,
        "best_metrics": s.best_metrics,
    }
    if s.best_on_bound:
        out["best_on_bound"] = s.best_on_bound  # the space probably needs widening there
    if s.best_feasible is not None:
        out["constraints_satisfied"] = s.best_feasible
        out["constraint_values"] = s.best_constraints
    if len(s.metrics) > 1:
        out["pareto_front"] = s.pareto_front
    out["trials"] = {"complete": s.complete, "pruned": s.pruned, "failed": s.failed,
                     "duplicate": s.duplicate, "running": s.running, "total": s.attempts}
    out["elapsed_seconds"] = round((max(ends) - min(starts)).total_seconds(), 1) if starts and ends else None
    if row.seen_bars:  # the bars its trials saw: [first, first unseen] (None: every bar of the data)
        out["data_period"] = {"first": row.seen_bars[0], "first_unseen": row.seen_bars[1]}
    out["state"] = s.state
    from . import importances, reports

    out["report"] = reports.stored(db, [study]).get(study)  # as tune report last stored it (None: never)
    out["importances"] = importances.stored(db, [study]).get(study)  # as a worker last recomputed them
    # Which rule put the best forward: the best value, or with [validation] select = "robust"
    # (and a report computed), the best median over a trial and its neighbours.
    selected = (out["report"] or {}).get("selected")
    out["selection"] = selected or {"rule": "value", "trial": s.best_trial}
    chosen = next((t for t in trials if selected and t.number == selected["trial"]), None)
    if chosen is not None and selected and selected["rule"] == "robust" and chosen.number != s.best_trial \
            and chosen.values:
        out["best_by_value"] = {"trial": s.best_trial, "value": s.best_value, "params": s.best_params}
        out["best_trial"], out["best_value"] = chosen.number, chosen.values[0]
        out["best_params"], out["best_metrics"] = chosen.params, dict(chosen.user_attrs)
    out.update(_search_settings(s.config_path, row))
    out["storage"] = db.masked_url
    out["exported_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return out


def _search_settings(config_path: str | None, row) -> dict[str, Any]:
    """The sampler and pruner, and the bars the study's trials saw, from the study's config
    if this host can read it (and its data, for the bars)."""
    if not config_path:
        return {}
    from .config import load_config  # only here: tune status --json imports this module too

    try:
        cfg = load_config(config_path)
    except Exception:
        return {"config": config_path}
    out: dict[str, Any] = {
        "config": config_path,
        "strategy": cfg.strategy.name,
        "fixed_params": dict(cfg.strategy.fixed),  # with best_params: every parameter the backtest takes
        "sampler": cfg.sampler.model_dump(),
        # A pruner's knobs only when there is one.
        "pruner": cfg.pruner.model_dump() if cfg.pruner.type != "none" else {"type": "none"},
    }
    from .study import Objective

    try:  # as tune stage counts them: the bars of the study's window (no holdout, no other fold)
        out["data_points"] = Objective(cfg, row.symbol, row.fold).bars
    except Exception:  # noqa: BLE001 - the data is not here (another host's path) or changed: left out
        pass
    return out


# ANSI escape sequences: CSI (ESC [ or the one-byte C1 CSI), OSC (ESC ] … BEL or ST),
# and the two-character ESC sequences.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]"
)
_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain_text(value: object) -> str:
    """A CSV cell's text without control characters (see :func:`trials_csv`)."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", _ANSI.sub("", text)))


def _cell(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return plain_text(value)


def trials_csv(trials: list[optuna.trial.FrozenTrial]) -> str:
    """Every trial as CSV: number, state, value(s), times, ``param_*`` columns, then one
    column per user attribute (metrics, fail/prune reasons, duplicates).

    Text in it — parameter names and categorical values, metric names, reasons taken
    from a backtest's exception — is plain text: ANSI escape sequences (colours from an
    exception message) are removed, as they are formatting, not content; tabs and line
    breaks become spaces, so every trial stays on one line; any other control character
    (C0, DEL, C1) is removed. Numbers are written as they are.
    """
    params = sorted({k for t in trials for k in t.params})
    attrs = sorted({k for t in trials for k in t.user_attrs})
    n_values = max((len(t.values) for t in trials if t.values), default=1)
    values = ["value"] if n_values == 1 else [f"value_{i}" for i in range(n_values)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", *values, "datetime_start", "datetime_complete",
                     *(plain_text(f"param_{p}") for p in params), *map(plain_text, attrs)])
    for t in trials:
        row_values = list(t.values) if t.values else [None] * n_values
        writer.writerow([
            t.number, category(t), *row_values,
            t.datetime_start.isoformat() if t.datetime_start else "",
            t.datetime_complete.isoformat() if t.datetime_complete else "",
            *(_cell(t.params.get(p, "")) for p in params), *(_cell(t.user_attrs.get(a, "")) for a in attrs),
        ])
    return buffer.getvalue()


def load_trials(db: Database, study: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=study, storage=db.optuna_storage(study)).get_trials(deepcopy=False)
    except KeyError:
        return []
