"""Synthetic data: deterministic, well-formed, and worth optimizing on."""

import numpy as np
import pandas as pd
import pytest

from backtest import PriceData, evaluate, synthetic_ohlcv, validate_ohlcv


def test_same_arguments_give_identical_frames():
    first = synthetic_ohlcv("BTC", seed=1, bars=3_000)
    pd.testing.assert_frame_equal(first, synthetic_ohlcv("BTC", seed=1, bars=3_000))


def test_seed_and_symbol_change_the_data():
    base = synthetic_ohlcv("BTC", seed=1, bars=500)["close"].to_numpy()
    assert not np.array_equal(base, synthetic_ohlcv("BTC", seed=2, bars=500)["close"].to_numpy())
    assert not np.array_equal(base, synthetic_ohlcv("ETH", seed=1, bars=500)["close"].to_numpy())


def test_layout_and_ohlc_consistency():
    frame = synthetic_ohlcv("SOL", bars=20_000)
    validate_ohlcv(frame, "SOL")
    assert frame.index.name == "timestamp" and frame.index.freqstr in ("h", "60min")
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame[["open", "high", "low", "close", "volume"]] > 0).all().all()


@pytest.mark.parametrize("freq, per_year", [("1h", 8766.0), ("15min", 35064.0), ("1D", 365.25)])
def test_bars_per_year_follows_the_frequency(freq, per_year):
    data = PriceData.from_frame(synthetic_ohlcv("X", bars=1_000, freq=freq), "X")
    assert data.bars_per_year == pytest.approx(per_year)


def test_parameters_matter():
    data = PriceData.from_frame(synthetic_ohlcv("BTC", seed=0, bars=20_000), "BTC")
    sharpes = [
        evaluate(data, "ma_crossover", {"fast": fast, "slow": slow}, fees_bps=1)["sharpe"]
        for fast, slow in ((5, 20), (20, 100), (50, 400), (100, 200))
    ]
    assert max(sharpes) - min(sharpes) > 0.3
