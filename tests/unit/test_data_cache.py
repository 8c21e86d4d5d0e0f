"""The per-host data cache (runner/data.py): one validated copy per symbol, mapped read-only.

What it must never do: hand out data other than what loading the source gives (a
changed file, a damaged entry), cache bad data, leave files others can read, or stop
a run when it cannot write.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from runner import data
from runner.config import load_config
from runner.study import Objective, check_data
from tests.helpers import small_config


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TUNE_HOME", str(home))
    monkeypatch.delenv(data.ENV_SWITCH, raising=False)
    return home


def file_config(tmp_path: Path, frame: pd.DataFrame):
    frame.to_csv(tmp_path / "AAA.csv")
    return load_config(small_config(tmp_path, data='path = "{symbol}.csv"'))


def another_period(cfg):
    """The same data from another start: another entry."""
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"start": "2020-02-01"})})


def unused_for_a_month(path: Path) -> None:
    month_ago = time.time() - (data.UNUSED_DAYS + 1) * 86400
    os.utime(path, (month_ago, month_ago))


def entries(home: Path) -> list[Path]:
    root = home / "cache" / "data"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def synthetic(seed: int = 1, bars: int = 3000) -> pd.DataFrame:
    return backtest.synthetic_ohlcv("AAA", seed=seed, bars=bars, freq="1h")


def test_a_cached_load_maps_the_same_data_read_only_and_the_backtest_gives_the_same_result(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    first = data.load(cfg, "AAA")  # writes the entry, then maps it
    again = data.load(cfg, "AAA")
    plain = data.load_frame(cfg, "AAA")
    assert first.cached and again.cached and len(entries(home)) == 1
    pd.testing.assert_frame_equal(again.frame, plain)
    prices = again.prices("AAA")
    for name in ("open", "high", "low", "close"):
        column = getattr(prices, name)
        assert not column.flags.writeable and mapped_file(column)  # no copy: the host's pages
    with pytest.raises(ValueError):
        prices.close[0] = 1.0
    expected = backtest.PriceData.from_frame(plain, "AAA")
    np.testing.assert_array_equal(prices.close_returns, expected.close_returns)
    np.testing.assert_array_equal(prices.timestamps, expected.timestamps)
    assert prices.bars_per_year == expected.bars_per_year
    params = {"fast": 5, "slow": 40}
    assert backtest.evaluate(prices, "ma_crossover", params) == backtest.evaluate(expected, "ma_crossover", params)


def test_the_runs_check_writes_the_entry_the_objective_maps(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    check_data(cfg)
    assert len(entries(home)) == 1
    objective = Objective(cfg, "AAA")
    assert objective.bars == 3000
    assert not hasattr(objective, "frame")  # a built-in strategy keeps the arrays only
    assert mapped_file(objective.data.close) == str(entries(home)[0] / "c3.npy")


def mapped_file(values: np.ndarray) -> str | None:
    """The file an array is a read-only mapping of, if it is one."""
    while isinstance(values, np.ndarray):
        if isinstance(values, np.memmap):
            return str(values.filename) if values.mode == "r" else None
        values = values.base
    return None


def test_a_changed_file_is_loaded_again_and_its_old_entry_removed(tmp_path, home):
    cfg = file_config(tmp_path, synthetic(seed=1))
    data.load(cfg, "AAA")
    old = entries(home)
    changed = synthetic(seed=2)
    changed.to_csv(tmp_path / "AAA.csv")
    loaded = data.load(cfg, "AAA")
    np.testing.assert_array_equal(loaded.frame["close"].to_numpy(), data.load_frame(cfg, "AAA")["close"].to_numpy())
    assert not np.array_equal(loaded.frame["close"].to_numpy(), synthetic(seed=1)["close"].to_numpy())
    assert len(entries(home)) == 1 and entries(home) != old


def test_another_period_or_symbol_is_another_entry(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    data.load(cfg, "AAA")
    part = data.load(another_period(cfg), "AAA")
    assert part.frame.index[0] >= pd.Timestamp("2020-02-01") and len(entries(home)) == 2


@pytest.mark.parametrize("damage", ["truncate a column", "remove meta", "garble meta", "meta not a mapping",
                                    "wrong length", "wrong frequency"])
def test_a_damaged_entry_is_never_used_and_is_written_again(tmp_path, home, damage):
    cfg = file_config(tmp_path, synthetic())
    data.load(cfg, "AAA")
    entry = entries(home)[0]
    if damage == "truncate a column":
        with open(entry / "c3.npy", "r+b") as f:
            f.truncate(1000)
    elif damage == "remove meta":
        (entry / "meta.json").unlink()
    elif damage == "garble meta":
        (entry / "meta.json").write_text("{not json")
    elif damage == "meta not a mapping":
        (entry / "meta.json").write_text("[1, 2]")
    elif damage == "wrong frequency":
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, "index_freq": "7min"}))
    else:
        np.save(entry / "c3.npy", np.ones(10))
    loaded = data.load(cfg, "AAA")
    pd.testing.assert_frame_equal(loaded.frame, data.load_frame(cfg, "AAA"))
    assert loaded.cached and data.load(cfg, "AAA").cached  # written again, whole


def test_bad_data_raises_as_before_and_is_not_cached(tmp_path, home):
    frame = synthetic()
    frame.iloc[100, frame.columns.get_loc("close")] = -1.0
    cfg = file_config(tmp_path, frame)
    with pytest.raises(backtest.DataError, match="row 101"):
        data.load(cfg, "AAA")
    assert entries(home) == []


def test_cache_files_are_owner_only(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    data.load(cfg, "AAA")
    root = home / "cache" / "data"
    for folder in (home / "cache", root, entries(home)[0]):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = list(entries(home)[0].iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_turned_off_nothing_is_written(tmp_path, home, monkeypatch):
    monkeypatch.setenv(data.ENV_SWITCH, "0")
    cfg = file_config(tmp_path, synthetic())
    loaded = data.load(cfg, "AAA")
    assert not loaded.cached and not (home / "cache").exists()


def test_a_cache_that_cannot_be_written_costs_only_the_sharing(tmp_path, home, monkeypatch):
    monkeypatch.setattr(data.shutil, "disk_usage", lambda path: _Usage())
    cfg = file_config(tmp_path, synthetic())
    loaded = data.load(cfg, "AAA")
    assert not loaded.cached and entries(home) == []
    pd.testing.assert_frame_equal(loaded.frame, data.load_frame(cfg, "AAA"))
    assert list((home / "cache" / "data").iterdir()) == []  # no temporary folder left either


class _Usage:
    total = used = free = 0


def test_two_writers_of_one_entry_both_read_the_first(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    root = home / "cache" / "data"
    root.mkdir(parents=True, mode=0o700)
    key = data._key(cfg, "AAA")
    frame = data.load_frame(cfg, "AAA")
    assert data._write(root, key, frame)
    assert data._write(root, key, frame)  # the rename loses; the entry is there all the same
    assert [p.name for p in root.iterdir()] == [key]


def test_synthetic_data_comes_from_the_cache_as_generated(tmp_path, home):
    cfg = load_config(small_config(tmp_path))
    cached = data.load(cfg, "AAA")
    assert cached.cached
    plain = data.load_frame(cfg, "AAA")
    pd.testing.assert_frame_equal(cached.frame, plain)
    assert cached.frame.index.name == "timestamp" and cached.frame.index.dtype == plain.index.dtype


def test_price_data_copies_arrays_that_could_still_change():
    frame = synthetic(bars=500)
    close = frame["close"].to_numpy(dtype="float64", copy=True)
    prices = backtest.PriceData(symbol="X", timestamps=frame.index.to_numpy(), open=close, high=close, low=close,
                                close=close, bars_per_year=8766.0)
    close[0] = 123.0
    assert prices.close[0] != 123.0 and not np.shares_memory(prices.close, close)
    with pytest.raises(ValueError, match="close_returns"):
        backtest.PriceData.from_frame(frame, "X", close_returns=np.zeros(3))


def test_entries_unused_for_a_month_are_removed_when_another_is_written(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    data.load(cfg, "AAA")
    old = entries(home)[0]
    unused_for_a_month(old / "meta.json")
    stale_temp = home / "cache" / "data" / ".tmp-dead"
    stale_temp.mkdir()
    unused_for_a_month(stale_temp)
    data.load(another_period(cfg), "AAA")
    assert old not in entries(home) and len(entries(home)) == 1 and not stale_temp.exists()


def test_an_entry_in_use_is_kept(tmp_path, home):
    cfg = file_config(tmp_path, synthetic())
    data.load(cfg, "AAA")
    entry = entries(home)[0]
    unused_for_a_month(entry / "meta.json")
    data.load(cfg, "AAA")  # mapped: used now
    data.load(another_period(cfg), "AAA")
    assert entry in entries(home)


USER_BACKTEST = """
def meddling(params, data):
    seen = float(data["close"].iloc[1])
    data.loc[data.index[1], "close"] = -1.0  # in place
    data["close"] = data["close"] * 2  # a column replaced
    return {"sharpe": seen, "trades": 50}
"""


def test_a_users_backtest_that_changes_its_frame_changes_only_its_own_call(tmp_path, home):
    (tmp_path / "meddle.py").write_text(USER_BACKTEST)
    cfg = load_config(small_config(tmp_path, strategy="meddle:meddling"))
    objective = Objective(cfg, "AAA")
    expected = float(data.load_frame(cfg, "AAA")["close"].iloc[1])
    values = [objective({"fast": 5, "slow": 40}).value for _ in range(3)]
    values.append(objective({"fast": 5, "slow": 40}, upto=500).value)
    assert values == [expected] * 4
