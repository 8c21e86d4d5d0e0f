"""Where a study's trust report (runner/insight.py) is kept: ``tune_reports``.

Apart from the report's computation so that reading it (``tune status --json``,
``tune export``, the app) imports neither the backtests nor pandas.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import sqlalchemy as sa

from .storage import Database
from .text import storable


def store(db: Database, report: dict[str, Any]) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tune_reports (study, trials, body) VALUES (:s, :n, CAST(:b AS jsonb)) "
                "ON CONFLICT (study) DO UPDATE SET trials = EXCLUDED.trials, body = EXCLUDED.body, computed_at = now()"
            ),
            {"s": report["study"], "n": report["trials"]["finished"], "b": json.dumps(json_safe(report))},
        )


def stored(db: Database, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each named study's last stored report (with its time), if it has one."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT study, body, computed_at, trials FROM tune_reports WHERE study = ANY(:n)"), {"n": names}
        ).all()
    return {study: {**body, "computed_at": at.isoformat(timespec="seconds"), "trials_at_compute": n}
            for study, body, at, n in rows}


def json_safe(value: Any) -> Any:
    """The report as jsonb takes it: NaN and infinities as None, strings (a backtest's
    exception, a metric's name) with NUL and lone surrogates escaped (runner.text.storable)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
