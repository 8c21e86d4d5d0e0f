"""The commands start fast because of what they do not import (benchmarks/bench_startup.py
measures the time; this keeps the reason)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "optuna", "pandas", "numpy", "backtest", "textual")


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_parser_imports_nothing_heavy():
    assert not imported_after("import runner.cli; runner.cli.build_parser()") & set(HEAVY)


def test_a_command_without_a_config_imports_neither_pandas_nor_the_strategies():
    found = imported_after("import runner.commands, runner.reports, runner.importances, runner.export")
    assert "sqlalchemy" in found  # the database it needs
    assert not found & {"pandas", "backtest", "textual"}


def test_the_version_is_looked_up_only_when_asked_for():
    code = "import sys, importlib; import runner.cli; runner.cli.build_parser(); print('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    shown = subprocess.run([sys.executable, "-m", "runner.cli", "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.split()[-1][0].isdigit()
