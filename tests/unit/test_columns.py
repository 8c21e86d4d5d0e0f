"""The CLI's tables never cut a number: narrow terminals lose whole columns, pipes get all."""

from __future__ import annotations

import dataclasses

from runner.columns import Column, render
from runner.commands import status_table
from tests.helpers import nasty_status

BIG = dataclasses.replace(nasty_status(study="grid-search-ETHUSDT"), duplicate=146, best_value=1.1541234567,
                          pruned=12345, best_params={"fast": 12, "slow": 240, "ma_type": "ema", "threshold": 0.000123})


def test_a_narrow_terminal_drops_columns_whole_and_keeps_every_number():
    for width in (50, 60, 80, 100):
        text = status_table([BIG], width=width)
        assert "…" not in text and "1.154" in text and "grid-search-ETHUSDT" in text
        assert all(len(line) <= width for line in text.splitlines()), (width, text)
        header, row = text.splitlines()
        assert len(header.split()) == len(row.split())  # a column goes with its header
    narrow, wide = status_table([BIG], width=60), status_table([BIG], width=200)
    assert "/min" not in narrow and "/min" in wide and "146" in wide  # the least telling goes first
    assert status_table([BIG], width=50).splitlines()[0].split() == ["study", "state", "complete", "best"]
    # Narrower than what must stay: nothing is cut, the terminal wraps the line.
    assert "grid-search-ETHUSDT  running    30/100  1.154" in status_table([BIG], width=30)


def test_piped_output_has_every_column():
    text = status_table([BIG])  # width None: stdout is not a terminal
    assert text.splitlines()[0].split() == ["study", "state", "complete", "pruned", "failed", "dup", "running",
                                            "/min", "workers", "eta", "best"]
    assert "146" in text and "12345" in text


def test_the_best_params_wrap_between_parameters_never_inside_one():
    text = status_table([BIG], final=True, width=70)
    assert all(len(line) <= 70 for line in text.splitlines()), text
    pairs = " ".join(text.split())
    for pair in ("fast=12", "slow=240", "ma_type=ema", "threshold=0.000123"):
        assert pair in pairs
    lines = text.splitlines()
    start = lines[0].index("best params")
    assert len(lines) > 2 and all(line[:start].strip() == "" for line in lines[2:])  # hanging indent


def test_alignment():
    text = render([Column("name", right=False), Column("n")], [["a", 1], ["bbb", 100]])
    assert text.splitlines() == ["name    n", "a       1", "bbb   100"]
