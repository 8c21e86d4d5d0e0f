"""Text from users is text, never markup, end to end: a backtest whose values and fail
reasons hold markup and ANSI, through tune run, tune status, tune export and the app."""

from __future__ import annotations

import asyncio

from tests.helpers import CONTROL, screen_text, small_config, tune, until, widget_text
from tui.app import TuneApp
from tui.widgets.best_panel import BestPanel
from tui.widgets.event_log import EventLog
from tui.widgets.trials_table import TrialsTable

# ----------------------------------------------------------------- end to end

NASTY_BACKTEST = '''
def nasty(params, data):
    """Completes only with the categorical value "[/x]"; fails with markup and ANSI otherwise."""
    if params["ma_type"] != "[/x]":
        raise ValueError("[/bold] \\x1b[31mred [bad] thing")
    return {"sharpe": params["fast"] / 10, "trades": 50}
'''

CATEGORICAL = '''
[space.ma_type]
type = "categorical"
choices = ["sma", "[/x]"]
'''


def test_run_status_export_and_app_with_markup_in_values_and_reasons(db, db_url, tmp_path):
    (tmp_path / "nastybt.py").write_text(NASTY_BACKTEST)
    config = small_config(tmp_path, name="mk", target=6, strategy="nastybt:nasty", extra=CATEGORICAL)
    proc = tune("run", str(config), env={"COLUMNS": "200"})
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert "Traceback" not in output and "MarkupError" not in output
    assert "ma_type=[/x]" in proc.stdout  # the final table's best params
    assert "\x1b" not in proc.stdout

    status = tune("status", env={"COLUMNS": "200"})
    assert status.returncode == 0, status.stdout + status.stderr
    assert "mk-AAA" in status.stdout

    csv_path = tmp_path / "trials.csv"
    export = tune("export", "mk-AAA", "--csv", str(csv_path))
    assert export.returncode == 0, export.stdout + export.stderr
    text = csv_path.read_text()
    assert "ValueError: [/bold] red [bad] thing" in text and "[/x]" in text
    assert not CONTROL.search(text.replace("\n", ""))

    app = TuneApp(db_url, ["mk-AAA"], poll=True)

    async def session():
        async with app.run_test(size=(200, 50)) as pilot:
            await until(pilot, lambda: app.snapshot and app.snapshot.studies and app.snapshot.studies[0].events,
                        "a first reading with events", timeout=30)
            await pilot.pause()
            best = widget_text(app.query_one(BestPanel))
            assert "[/x]" in best, best
            trials = widget_text(app.query_one(TrialsTable))
            events = widget_text(app.query_one(EventLog))
            shown = "ValueError: [/bold] \\x1b[31mred [bad] thing"
            assert shown in trials or shown in events, trials + events
            assert "\x1b" not in screen_text(app)
            await pilot.press("q")
            await pilot.press("enter")

    asyncio.run(session())
