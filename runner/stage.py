"""``tune stage``: the chosen parameters of a study, written for deployment.

A staged file is a versioned YAML, ``{study}-{UTC timestamp}.yml``, plus a copy as
``{study}-latest.yml``, in the shape a deployment step reads (seed 004):
``metadata`` (when, which run, which trial, its objective under its own name, drawdown,
return, volatility, constraints, trials, time spent, sampler, pruner, the data's bars and
period), ``parameters`` — the searched ones and the config's fixed ones, all of them —
and what it takes to run the backtest again: the strategy with its costs and the data.
Out-of-sample and luck figures go in when the study has them.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import control, validation
from .export import load_trials, summary
from .storage import Database
from .storage.embedded import new_private_file


def staged(db: Database, row: control.StudyRow, cfg) -> dict[str, Any]:
    """What ``tune stage`` writes for the study of control row ``row`` (ValueError if it has
    no best trial yet). ``cfg``: the study's config."""
    study = row.name
    found = summary(db, study, load_trials(db, study))
    if found["best_trial"] is None:
        raise ValueError(f"{study} has no complete trial to stage yet")
    metrics = found["best_metrics"] or {}
    meta: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # One id per run of the study: the same database, study and start give the same id.
        "run_id": found["run_id"],
        "run_name": row.run_name,
        "study_name": study,
        "symbol": row.symbol,
        "best_trial_number": found["best_trial"],
    }
    if row.fold is not None:
        meta["walk_forward_fold"] = row.fold
    for objective in found["objective"]:  # the objective under its own name, e.g. sharpe: 1.42
        meta[objective["metric"]] = metrics.get(objective["metric"], found["best_value"])
    for name in ("max_drawdown", "total_return", "volatility"):
        if name in metrics:
            meta[name] = metrics[name]
    constraints = found.get("constraint_values") or {}
    meta["constraints_satisfied"] = found.get("constraints_satisfied", True)
    meta["constraint_violations"] = sum(1 for v in constraints.values() if v > 0)
    meta["total_trials"] = found["trials"]["total"]
    meta["complete_trials"] = found["trials"]["complete"]
    meta["elapsed_time_seconds"] = found["elapsed_seconds"]
    meta["sampler"] = cfg.sampler.type
    if cfg.pruner.type != "none":
        meta["pruner"] = cfg.pruner.type
    searched = dict(found["best_params"])
    # The backtest run again from what the file holds: its bars, and the check that the
    # parameters give the value staged (a changed data file or an unseeded backtest would not).
    from .study import Objective

    objective = Objective(cfg, row.symbol, row.fold)
    meta["data_points"] = objective.bars
    seen = objective.seen_bars  # None: every bar of the data
    meta["data_period"] = {"first": seen[0], "first_unseen": seen[1]} if seen else "every bar"
    metric = found["objective"][0]["metric"]
    again = objective(searched).metrics.get(metric)  # it adds the config's fixed parameters
    meta["reproduced"] = again is not None and abs(again - meta[metric]) <= 1e-9 * max(1.0, abs(meta[metric]))
    meta["selection"] = found["selection"]["rule"]

    out: dict[str, Any] = {"metadata": meta}
    out["parameters"] = {**cfg.strategy.fixed, **searched}
    out["searched"] = sorted(searched)
    out["fixed"] = sorted(cfg.strategy.fixed)
    strategy = {"name": cfg.strategy.name, "fees_bps": cfg.strategy.fees_bps,
                "slippage_bps": cfg.strategy.slippage_bps}
    if cfg.strategy.stop_loss is not None:
        strategy["stop_loss"] = cfg.strategy.stop_loss
    out["strategy"] = strategy
    out["data"] = {"symbol": row.symbol, **cfg.data.model_dump(exclude_none=True, exclude={"symbols"})}
    out["config"] = str(cfg.source_path) if cfg.source_path else None

    holdout = validation.results(db, study).get(found["best_trial"])
    if holdout and holdout.get("metrics"):
        out["out_of_sample"] = {k: v for k, v in holdout["metrics"].items() if not isinstance(v, (dict, list))}
    report = found.get("report") or {}
    luck = {name: section["value"] for name, section in (("deflated_sharpe", report.get("deflated_sharpe")),
                                                        ("pbo", report.get("pbo")))
            if isinstance(section, dict) and isinstance(section.get("value"), (int, float))}
    if luck:  # as tune report last computed them
        out["luck"] = luck
    return out


def write(content: dict[str, Any], study: str, directory: Path) -> tuple[Path, Path]:
    """Write ``content`` as ``{study}-{UTC timestamp}.yml`` and ``{study}-latest.yml`` in
    ``directory`` (made owner-only if new; the files are owner-only too). Returns both paths."""
    import yaml

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)  # a file name, whatever the study's
    versioned, latest = directory / f"{safe}-{stamp}.yml", directory / f"{safe}-latest.yml"
    for path in (versioned, latest):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        with new_private_file(tmp) as handle:  # never through a name someone planted
            handle.write(text)
        os.replace(tmp, path)  # a reader of -latest never sees half a file
    return versioned, latest
