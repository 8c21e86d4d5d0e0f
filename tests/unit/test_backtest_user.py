"""Resolving user backtests named as 'package.module:function'."""

import sys

import pytest

from backtest import resolve_user_backtest, synthetic_ohlcv
from backtest.examples import trend_filtered_hold


@pytest.fixture
def user_module(tmp_path):
    (tmp_path / "my_strategies.py").write_text(
        "def score(params, data):\n    return float(params['x']) * len(data)\n\nNOT_CALLABLE = 3\n"
    )
    yield tmp_path
    sys.modules.pop("my_strategies", None)
    sys.path[:] = [entry for entry in sys.path if entry != str(tmp_path)]


def test_resolves_a_function_beside_the_config(user_module):
    score = resolve_user_backtest("my_strategies:score", search_path=user_module)
    assert score({"x": 2}, [1, 2, 3]) == 6.0


def test_resolves_the_bundled_example():
    assert resolve_user_backtest("backtest.examples:trend_filtered_hold") is trend_filtered_hold


@pytest.mark.parametrize("spec", ["my_strategies", "my_strategies:", ":score", ""])
def test_malformed_specs(spec):
    with pytest.raises(ValueError, match="package.module:function"):
        resolve_user_backtest(spec)


def test_missing_module_names_the_spec():
    with pytest.raises(ImportError, match="'no_such_module_xyz:run'.*cannot import module"):
        resolve_user_backtest("no_such_module_xyz:run")


def test_missing_attribute_names_the_spec(user_module):
    with pytest.raises(ImportError, match="'my_strategies:nope'.*has no attribute 'nope'"):
        resolve_user_backtest("my_strategies:nope", search_path=user_module)


def test_not_callable_names_the_spec(user_module):
    with pytest.raises(ValueError, match="'my_strategies:NOT_CALLABLE' is not callable"):
        resolve_user_backtest("my_strategies:NOT_CALLABLE", search_path=[user_module])


def test_example_returns_finite_metrics():
    frame = synthetic_ohlcv("EX", bars=2_000)
    metrics = trend_filtered_hold({"lookback": 30, "threshold": 0.01}, frame)
    assert set(metrics) == {"total_return", "max_drawdown", "exposure"}
    assert 0 < metrics["exposure"] < 1 and 0 <= metrics["max_drawdown"] < 1
