"""Indicators against straightforward reference implementations."""

import numpy as np
import pandas as pd
import pytest

from backtest.indicators import ema, exponential_filter, previous_max, previous_min, sma, wilder_rsi


@pytest.fixture(scope="module")
def prices():
    rng = np.random.default_rng(7)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 30_000)))


def reference_filter(values, decay, initial):
    out = np.empty(len(values))
    state = initial
    for index, value in enumerate(values):
        state = decay * state + (1 - decay) * value
        out[index] = state
    return out


@pytest.mark.parametrize("decay", [0.0, 1e-6, 0.3, 0.9, 0.999, 0.99999])
def test_exponential_filter_matches_the_recursion(prices, decay):
    values = prices[:10_000]
    np.testing.assert_allclose(
        exponential_filter(values, decay, 50.0), reference_filter(values, decay, 50.0), rtol=1e-11
    )


@pytest.mark.parametrize("span", [2, 10, 200, 3000])
def test_ema_matches_pandas(prices, span):
    expected = pd.Series(prices).ewm(span=span, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(ema(prices, span), expected, rtol=1e-11)


@pytest.mark.parametrize("window", [1, 2, 50, 400])
def test_sma_matches_pandas(prices, window):
    expected = pd.Series(prices).rolling(window).mean().to_numpy()
    np.testing.assert_allclose(sma(prices, window), expected, rtol=1e-11)
    assert np.isnan(sma(prices, window)[: window - 1]).all()


@pytest.mark.parametrize("window", [1, 2, 3, 7, 20, 55, 256])
def test_previous_extremes_exclude_the_current_bar(prices, window):
    series = pd.Series(prices[:3000])
    np.testing.assert_array_equal(
        previous_max(series.to_numpy(), window), series.rolling(window).max().shift(1)
    )
    np.testing.assert_array_equal(
        previous_min(series.to_numpy(), window), series.rolling(window).min().shift(1)
    )


def test_wilder_rsi_matches_the_textbook_loop(prices):
    close, period = prices[:5000], 14
    changes = np.diff(close)
    gains, losses = np.maximum(changes, 0), np.maximum(-changes, 0)
    expected = np.full(close.size, np.nan)
    average_gain, average_loss = gains[:period].mean(), losses[:period].mean()
    expected[period] = 100 - 100 / (1 + average_gain / average_loss)
    for index in range(period, changes.size):
        average_gain = (average_gain * (period - 1) + gains[index]) / period
        average_loss = (average_loss * (period - 1) + losses[index]) / period
        expected[index + 1] = 100 - 100 / (1 + average_gain / average_loss)
    np.testing.assert_allclose(wilder_rsi(close, period), expected, rtol=1e-10)


def test_wilder_rsi_of_flat_prices_is_neutral():
    rsi = wilder_rsi(np.full(20, 10.0), 5)
    assert np.isnan(rsi[:5]).all() and (rsi[5:] == 50).all()


def test_short_inputs_give_undefined_values():
    assert np.isnan(sma(np.ones(3), 5)).all()
    assert np.isnan(wilder_rsi(np.ones(3), 5)).all()
    assert np.isnan(previous_max(np.ones(3), 5)).all()
    assert ema(np.empty(0), 5).size == 0
