"""Text from users is text, never markup: the tune CLI's status table, printable() and the
trials CSV (no database, no app; the app: tests/app/test_text_safety.py)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from runner.commands import status_table
from runner.export import trials_csv
from runner.text import printable
from tests.helpers import ANSI, CONTROL, NASTY, SHORT, assert_literal, nasty_status

# ----------------------------------------------------------------- the tune CLI


@pytest.mark.parametrize("final", [False, True], ids=["status", "final"])
def test_status_table_shows_names_and_params_literally(final):
    text = status_table([nasty_status()], final=final)
    assert_literal(text)
    assert f"s{printable(SHORT)}" in text
    if final:
        assert f"p{printable(NASTY)}=v{printable(NASTY)}" in text


def test_printable_escapes_control_characters_only():
    assert printable("a\x1b[31mb\tc\nd\x07\x9b\x7f[/x]") == "a\\x1b[31mb\\tc\\nd\\x07\\x9b\\x7f[/x]"
    assert printable("ümlaut → ok") == "ümlaut → ok"
    assert printable(3) == "3"


def test_trials_csv_holds_no_control_characters():
    space = {"ma_type": CategoricalDistribution(["sma", f"[/x]{ANSI}e"]), "fast": IntDistribution(2, 20)}
    start = datetime(2026, 1, 1, 12, 0)

    def trial(n, state, value, params, attrs):
        return FrozenTrial(number=n, trial_id=n, state=state, value=value, values=None, datetime_start=start,
                           datetime_complete=start + timedelta(seconds=1), params=params, distributions=space,
                           user_attrs=attrs, system_attrs={}, intermediate_values={})

    trials = [
        trial(0, TrialState.COMPLETE, 1.5, {"ma_type": f"[/x]{ANSI}e", "fast": 3}, {"sharpe": 1.5, f"k{ANSI}": 2}),
        trial(1, TrialState.FAIL, None, {"ma_type": "sma", "fast": 4},
              {"fail_reason": f"ValueError: [bad] {ANSI}red\x1b[0m\tthen\r\nline two\x07\x00 \x1b]8;;http://x\x1b\\link\x1b]8;;\x07"}),
    ]
    text = trials_csv(trials)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 3  # every trial on one line
    for row in rows:
        for cell in row:
            assert not CONTROL.search(cell), repr(cell)
    header = rows[0]
    assert "k" in header and "param_ma_type" in header
    assert rows[1][header.index("param_ma_type")] == "[/x]e"
    assert rows[1][header.index("param_fast")] == "3"
    assert rows[2][header.index("fail_reason")] == "ValueError: [bad] red then  line two link"
    assert not CONTROL.search(text.replace("\r\n", ""))
