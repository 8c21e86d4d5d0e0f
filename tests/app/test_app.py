"""The app, driven with Textual's Pilot against a real PostgreSQL and real worker processes."""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from datetime import datetime, timedelta

import numpy as np
import optuna
import psutil
import pytest
from optuna.trial import FrozenTrial, TrialState

from runner import control
from runner.config import load_config
from runner.space import distributions as search_space
from tests.helpers import settled, small_config, trials_of, until, user_config, wait_for
from tui import cli as tui_cli
from tui.app import TuneApp
from tui.data import StudyFeed


def status(app: TuneApp, study: str):
    if app.snapshot is None:
        return None
    return next((s for s in app.snapshot.statuses if s.study == study), None)


def complete(app: TuneApp, study: str) -> int:
    s = status(app, study)
    return s.complete if s else 0


def start_app(config, url) -> tuple[TuneApp, list[str]]:
    """What ``tune-tui CONFIG`` does before the screen opens, then the app."""
    url, names, notes = tui_cli.start(argparse.Namespace(config=str(config), storage=url))
    return TuneApp(url, names), notes


def test_live_app_shows_rising_counts_pauses_resumes_leaves_reattaches_and_stops(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="ui", target=2000, symbols=("AAA", "BBB"))
    app, notes = start_app(config, db_url)
    assert notes[-1] == "started 2 worker(s)"
    pids: list[int] = []

    async def first_session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot and len(app.snapshot.studies) == 2, "a row per study")
            table = app.query_one("#studies")
            assert table.row_count == 2
            start = await until(pilot, lambda: complete(app, "ui-AAA"), "a first complete trial")
            await until(pilot, lambda: complete(app, "ui-AAA") > start, "complete count to rise")

            await pilot.press("p")  # the first row, ui-AAA, is selected
            await until(pilot, lambda: status(app, "ui-AAA").state == "paused" and status(app, "ui-AAA").running == 0,
                        "ui-AAA paused with no running trial")
            frozen, other = complete(app, "ui-AAA"), complete(app, "ui-BBB")
            seen = app.snapshots_seen
            await until(pilot, lambda: app.snapshots_seen >= seen + 3 and complete(app, "ui-BBB") > other,
                        "three more readings while ui-BBB moves on")
            assert complete(app, "ui-AAA") == frozen

            await pilot.press("r")
            await until(pilot, lambda: complete(app, "ui-AAA") > frozen, "ui-AAA to move again after r")
            pids.extend(w["pid"] for s in app.snapshot.statuses for w in s.workers if w["alive"])

            await pilot.press("q")
            await pilot.press("enter")  # the default: leave the workers running
            await until(pilot, lambda: not app.is_running, "the app to exit")

    asyncio.run(first_session())
    assert len(pids) == 2
    live = control.list_workers(db, ["ui-AAA", "ui-BBB"], live_only=True)
    assert sorted(w.pid for w in live) == sorted(pids)
    assert all(psutil.pid_exists(p) for p in pids)

    app2, notes = start_app(config, db_url)
    assert notes[-1] == "attached to the running workers"

    async def second_session():
        async with app2.run_test(size=(120, 40)) as pilot:
            before = await until(pilot, lambda: complete(app2, "ui-BBB"), "the studies again")
            await until(pilot, lambda: complete(app2, "ui-BBB") > before, "ui-BBB still moving")
            await pilot.press("S")
            await pilot.press("y")
            await until(pilot, lambda: all(s.workers_alive == 0 and s.running == 0 for s in app2.snapshot.statuses),
                        "every worker gone, no running trial")
            assert {s.state for s in app2.snapshot.statuses} == {"stopped"}
            await pilot.press("q")
            await pilot.press("enter")

    asyncio.run(second_session())
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=15, message="worker processes to exit")
    for study in ("ui-AAA", "ui-BBB"):
        assert not [t for t in trials_of(db_url, study) if t.state == TrialState.RUNNING]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_opening_the_app_leaves_a_paused_study_paused_and_starts_no_worker(db, db_url, tmp_path):
    from runner import supervisor

    config = user_config(tmp_path, "slow", name="keep", target=50)
    cfg = load_config(config)
    supervisor.prepare_studies(db, cfg, new_run=True)
    control.set_control(db, ["keep-AAA"], "paused")
    _, notes = start_app(config, db_url)
    assert notes[-1] == "attached to the running workers"
    assert control.list_studies(db, ["keep-AAA"])[0].control == "paused"
    assert control.list_workers(db, ["keep-AAA"]) == []


def test_plus_and_minus_change_the_worker_count(db, db_url, tmp_path):
    config = user_config(tmp_path, "slow", name="wk", target=2000)
    app, _ = start_app(config, db_url)

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: status(app, "wk-AAA") and status(app, "wk-AAA").workers_alive == 1, "one worker")
            await pilot.press("plus")
            await until(pilot, lambda: status(app, "wk-AAA").workers_alive == 2, "a second worker")
            await pilot.press("minus")
            await until(pilot, lambda: status(app, "wk-AAA").workers_alive == 1, "back to one worker")
            retired = [w for w in status(app, "wk-AAA").workers if w["exit_reason"] and "retired" in w["exit_reason"]]
            assert len(retired) == 1
            await pilot.press("q")
            await pilot.press("s")  # quit and stop

    asyncio.run(session())
    wait_for(lambda: not control.list_workers(db, ["wk-AAA"], live_only=True), timeout=20, message="workers to stop")


def test_n_refines_the_selected_study_after_showing_the_narrowed_space(db, db_url, tmp_path):
    from tests.helpers import tune
    from tui.screens.refine_screen import RefineScreen

    config = small_config(tmp_path, name="rfa", target=30)
    tune("run", str(config), env={"TUNE_STORAGE_URL": db_url}, check=True)
    app, _ = start_app(config, db_url)

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: status(app, "rfa-AAA") and status(app, "rfa-AAA").complete == 30, "the study")
            # A second n while the first is being planned (held until both keys are in): one dialog.
            gate, plan = threading.Event(), app.feed.refine_prepare
            app.feed.refine_prepare = lambda name: gate.wait(30) and plan(name)
            await pilot.press("n")
            await pilot.press("n")
            gate.set()
            await until(pilot, lambda: isinstance(app.screen, RefineScreen), "the narrowed space")
            await until(pilot, lambda: all(w.is_finished for w in app.workers if w.group == "control"),
                        "every plan done")
            assert sum(isinstance(screen, RefineScreen) for screen in app.screen_stack) == 1
            shown = "\n".join(str(label.content) for label in app.screen.query("Label"))
            assert "rfa-AAA -> rfa_r1-AAA" in shown and "narrowed" in shown
            assert not (tmp_path / "rfa_r1.toml").exists()  # nothing written before the yes
            await pilot.press("y")
            # The refined study is followed, its workers started here, and it runs to its target.
            await until(pilot, lambda: status(app, "rfa_r1-AAA") and status(app, "rfa_r1-AAA").complete == 30,
                        "the refined study to run", timeout=90)
            assert status(app, "rfa_r1-AAA").parent == "rfa-AAA"
            assert (tmp_path / "rfa_r1.toml").exists()
            await pilot.press("q")
            await pilot.press("s")

    asyncio.run(session())
    wait_for(lambda: not control.list_workers(db, ["rfa_r1-AAA"], live_only=True), timeout=20, message="workers")


@pytest.mark.skipif(bool(os.environ.get("TUNE_TEST_DATABASE_URL")), reason="stops the embedded server")
def test_a_dead_embedded_server_is_shown_and_brought_back_by_the_app(db, db_url, tmp_path, tune_home):
    from runner.storage import embedded

    seed_studies(db, tmp_path, symbols=("AAA",))
    app = TuneApp(db_url, None)

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None, "a first reading")
            # The test database lives on the embedded server: the app knows TUNE_HOME and
            # starts the server again itself (nothing here starts it).
            assert embedded.stop(tune_home)
            await until(pilot, lambda: app.db_error, "the app to notice", timeout=20)
            assert "database unreachable" in str(app.query_one("#topbar").content)
            seen = app.snapshots_seen
            await until(pilot, lambda: app.snapshots_seen > seen and app.db_error is None, "recovery", timeout=30)
            assert "database unreachable" not in str(app.query_one("#topbar").content)
            await pilot.press("q")
            await pilot.press("enter")

    asyncio.run(session())
    assert embedded._postmaster_info(embedded.data_dir(tune_home)) is not None


# ----------------------------------------------------------------- snapshots


def seed_studies(db, tmp_path, symbols=("AAA", "BBB", "CCC"), trials: int = 60) -> list[str]:
    """Studies with fixed trials, dated long ago: no live worker, no throughput, same picture every run."""
    cfg = load_config(small_config(tmp_path, name="snap", target=100, symbols=symbols))
    space = search_space(cfg)
    names = []
    for i, symbol in enumerate(symbols):
        name = cfg.study_name(symbol)
        names.append(name)
        control.register_study(db, cfg, symbol, reset_control=True)
        study = optuna.create_study(storage=db.optuna_storage(name), study_name=name, direction="maximize")
        rng = np.random.default_rng(i)
        for n in range(trials):
            params = {"fast": int(rng.integers(2, 21)), "slow": int(rng.integers(25, 81))}
            started = datetime(2026, 1, 1, 12, 0) + timedelta(seconds=10 * n)
            state, value, attrs = TrialState.COMPLETE, float(np.round(rng.normal(1 + n / 40, 0.4), 3)), {}
            if n % 9 == 4:
                state, value, attrs = TrialState.PRUNED, None, {"prune_reason": "4 trades, fewer than min_trades=10"}
            elif n % 17 == 8:
                state, value, attrs = TrialState.FAIL, None, {"fail_reason": "ValueError: boom"}
            elif n % 13 == 6:
                source = "memory" if n % 2 else "database"
                state, value, attrs = TrialState.FAIL, None, {"duplicate_of": n - 3, "duplicate_source": source}
            else:
                attrs = {"sharpe": value, "trades": 40 + n, "max_drawdown": 0.2, "total_return": 0.5}
            study.add_trial(FrozenTrial(
                number=n, trial_id=n, state=state, value=value, values=None, datetime_start=started,
                datetime_complete=started + timedelta(seconds=5), params=params, distributions=space,
                user_attrs=attrs, system_attrs={}, intermediate_values={},
            ))
    if len(symbols) > 1:
        control.set_control(db, [names[1]], "paused")
    return names


@pytest.fixture
def fixed_url(monkeypatch):
    # The test database's name changes every run; the picture must not.
    monkeypatch.setattr(StudyFeed, "masked_url", property(lambda self: "postgresql://tune:***@db.example/tune"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen_snapshot(db, db_url, tmp_path, fixed_url, snap_compare, size):
    seed_studies(db, tmp_path)
    app = TuneApp(db_url, None)

    async def ready(pilot):
        await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
        await settled(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


# ----------------------------------------------------------------- insight views


def seed_insight(db, tmp_path) -> list[str]:
    """seed_studies plus what the views read besides the trials: importances (at a fixed time).
    The hosts view's workers are seed_workers'."""
    from runner import importances

    names = seed_studies(db, tmp_path)
    importances.store(db, names[0], 40, {"method": "ped-anova", "slow": 0.7, "fast": 0.3})
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tune_importances SET computed_at = '2026-01-02 03:04:05+00'")
    return names


VIEW_KEYS = ["i", "l", "h", "e", "a", "enter"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("key", VIEW_KEYS)
def test_view_snapshot(db, db_url, tmp_path, fixed_url, snap_compare, size, key):
    from tui.screens.view_screen import ViewScreen

    seed_insight(db, tmp_path)
    app = TuneApp(db_url, None)

    async def ready(pilot):
        await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, ViewScreen) and app.screen.data is not None, "the view's data")
        await settled(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def seed_workers(db, names: list[str]) -> None:
    """Two live workers of host "alpha", as their heartbeats left them; the heartbeat dated
    an hour ahead, so that they stay alive (within the grace period) however slow the test."""
    with db.engine.begin() as conn:
        for i, name in enumerate(names[:2]):
            conn.exec_driver_sql(
                "INSERT INTO tune_workers (id, study, host, pid, status, heartbeat_at, cpu_percent, rss_bytes, host_load,"
                " host_cpus, host_mem_percent) VALUES (%s, %s, 'alpha', %s, 'running', now() + interval '1 hour', %s, %s,"
                " 9.5, 8, 41.0)",
                (f"alpha-{i}", name, 1000 + i, 97.0 + i, (150 + i) * 2**20))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_hosts_view_snapshot(db, db_url, tmp_path, fixed_url, snap_compare, size):
    from tui.screens.view_screen import ViewScreen

    seed_workers(db, seed_studies(db, tmp_path))
    app = TuneApp(db_url, None)

    async def ready(pilot):
        await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, ViewScreen) and app.screen.data, "the hosts")
        await settled(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def test_views_show_their_data_and_their_keys_change_it(db, db_url, tmp_path):
    """Every view's key on fixed data: what each shows, and the keys inside each."""
    from runner.equity import EquityCurve
    from runner.explore import Importances, SymbolsView, TrialDetail
    from runner.outline import Heatmap, Slice
    from tui.screens.view_screen import ViewScreen

    names = seed_insight(db, tmp_path)
    app = TuneApp(db_url, None)

    async def opened(pilot, key, kind):
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, ViewScreen) and isinstance(app.screen.data, kind),
                    f"{key}: a {kind.__name__}")
        return app.screen

    async def back(pilot):
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ViewScreen), "back on the studies")

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
            best = status(app, names[0])

            screen = await opened(pilot, "i", Importances)
            assert screen.data.bars == [("slow", 0.7), ("fast", 0.3)]
            await back(pilot)

            screen = await opened(pilot, "l", list)
            assert [s.param for s in screen.data] == ["fast", "slow"] and all(isinstance(s, Slice) for s in screen.data)
            assert screen.data[0].best_y == best.best_value
            await pilot.press("right")
            assert screen.index == 1
            await back(pilot)

            screen = await opened(pilot, "h", Heatmap)
            assert (screen.data.x_param, screen.data.y_param) == ("slow", "fast")  # the most important first
            await pilot.press("x")
            await until(pilot, lambda: isinstance(screen.data, Heatmap) and screen.data.x_param == "fast", "axes swapped")
            assert screen.data.y_param == "slow"
            await back(pilot)

            screen = await opened(pilot, "e", EquityCurve)
            assert screen.data.trial == best.best_trial and screen.data.equity[0] == 1.0
            await back(pilot)

            screen = await opened(pilot, "a", SymbolsView)
            assert [r.symbol for r in screen.data.rows] == ["AAA", "BBB", "CCC"]
            await pilot.press("o")
            assert screen.sort_column == "out_of_sample"
            await back(pilot)

            screen = await opened(pilot, "enter", TrialDetail)  # on a study: its best trial
            assert screen.data.number == best.best_trial and screen.data.params == best.best_params
            equity = await opened(pilot, "e", EquityCurve)  # from the trial: its curve
            assert equity.data.trial == best.best_trial
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back on the trial")
            await back(pilot)

            await pilot.press("tab")  # to the last trials
            trials = app.query_one("#trials")
            await until(pilot, lambda: trials.has_focus, "the last trials focused")
            await pilot.press("down")
            number = trials.selected_trial
            screen = await opened(pilot, "enter", TrialDetail)
            assert screen.data.number == number

    asyncio.run(session())


def test_the_studies_table_sorts_filters_and_keeps_the_selection(db, db_url, tmp_path):
    names = seed_studies(db, tmp_path)
    app = TuneApp(db_url, None)

    def rows(table) -> list[str]:
        return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
            table = app.query_one("#studies")
            assert rows(table) == names
            await pilot.press("down")  # BBB selected
            assert table.selected_study == names[1]
            bests = {s.study: s.best_value for s in app.snapshot.statuses}
            for _ in range(5):  # none, study, state, progress, rate, best
                await pilot.press("o")
            assert table.sort_column == "best"
            assert rows(table) == sorted(names, key=lambda n: -bests[n])
            assert table.selected_study == names[1]  # the selection follows its study
            seen = app.snapshots_seen
            await until(pilot, lambda: app.snapshots_seen > seen + 1, "two more readings")
            assert rows(table) == sorted(names, key=lambda n: -bests[n]) and table.selected_study == names[1]

            await pilot.press("slash")
            await pilot.press(*"paused", "enter")  # BBB is paused (seed_studies)
            await until(pilot, lambda: rows(table) == [names[1]], "the paused study alone")
            await pilot.press("slash")
            await pilot.press("ctrl+u", *"ccc", "enter")
            await until(pilot, lambda: rows(table) == [names[2]], "CCC alone")
            await pilot.press("slash")
            await pilot.press("ctrl+u", "enter")
            await until(pilot, lambda: table.row_count == 3, "every study again")

    asyncio.run(session())


def test_at_80_columns_the_studies_table_folds_whole_columns_and_cuts_none(db, db_url, tmp_path):
    from rich.cells import cell_len

    cfg = load_config(small_config(tmp_path, name="a_rather_long_run_name", target=100000,
                                   symbols=("BTCUSDT_PERP", "ETHUSDT_PERP")))
    for symbol in cfg.data.symbols:
        control.register_study(db, cfg, symbol, reset_control=True)
    app = TuneApp(db_url, None)

    async def session():
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 2, "two studies")
            await settled(pilot)  # the table widens its columns for new rows on its next idle
            table = app.query_one("#studies")
            shown = [str(c.key.value) for c in table.ordered_columns]
            assert shown[:2] == ["study", "state"] and "best" in shown and len(shown) < 11  # some folded away
            assert "running" not in shown  # the least telling goes first
            total = sum(c.get_render_width(table) for c in table.ordered_columns)
            assert total <= table.size.width
            for column in table.ordered_columns:  # every cell whole
                for row in range(table.row_count):
                    cell = table.get_cell_at((row, table.get_column_index(column.key)))
                    assert cell_len(str(cell)) <= column.content_width
            await pilot.resize_terminal(160, 40)
            await until(pilot, lambda: len(table.ordered_columns) == 11, "every column at 160")

    asyncio.run(session())


def test_an_open_view_follows_what_it_shows(db, db_url, tmp_path):
    """The hosts view as the workers' next heartbeats change their figures; a filter's
    "every study shown" acts on the studies the filter leaves."""
    from tui.screens.view_screen import ViewScreen

    names = seed_studies(db, tmp_path)
    seed_workers(db, names)
    app = TuneApp(db_url, None)

    def cpu() -> float | None:
        data = app.screen.data if isinstance(app.screen, ViewScreen) else None
        return data[0].cpu_percent if data else None

    async def session():
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.studies) == 3, "three studies")
            await pilot.press("w")
            await until(pilot, lambda: cpu() == 97.0 + 98.0, "the hosts")
            with db.engine.begin() as conn:  # the next heartbeat of one
                conn.exec_driver_sql("UPDATE tune_workers SET cpu_percent = 3, heartbeat_at = heartbeat_at + interval '1 s'"
                                     " WHERE id = 'alpha-0'")
            await until(pilot, lambda: cpu() == 3.0 + 98.0, "the new figure in the open view")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ViewScreen), "back on the studies")

            await pilot.press("slash", *"ccc", "enter")
            await until(pilot, lambda: app.query_one("#studies").shown == [names[2]], "CCC alone")
            await pilot.press("P")  # pause every study shown: CCC only
            await until(pilot, lambda: status(app, names[2]).control == "paused", "CCC paused")
            assert status(app, names[0]).control == "running"

    asyncio.run(session())

