"""Built-in strategies: vectorised signal functions and their registry.

A signal function returns the *desired* position for every bar (-1 short,
0 flat, 1 long), decided from data up to and including that bar's close and
nothing later. The engine holds it from the next bar on. Warm-up bars, before
an indicator is defined, are flat.

Entry/exit rules ("enter when X, stay in until Y") are stateful, but for one
direction the state at t is simply "the latest entry event is more recent
than the latest exit event", which ``_in_position`` computes from the first
bars of the runs of entry and exit conditions instead of a loop. Long and
short legs are computed independently and added.

The built-in signal functions return compact bool or int8 arrays (one byte a
bar instead of eight), which the engine turns into runs of constant position
without a pass over float64 arrays. Indicators
come from the data's cache (``PriceData.sma`` etc.), so a window that an
optimizer proposes again costs nothing to recompute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .prices import PriceData


class InvalidParams(ValueError):
    """Strategy parameters that are unknown, of the wrong type or inconsistent."""


@dataclass(frozen=True)
class Strategy:
    """A named signal function with its default parameters.

    ``min_bars(params)`` is the number of bars the parameters need for a
    position to be held over at least one bar (warm-up + signal bar + one
    bar to hold it); the engine rejects shorter data with a DataError.

    ``signal_fn`` returns integer levels (bool or int8: -1, 0, 1), as the
    built-in strategies do, or any finite floats (fractional or leveraged
    positions).
    """

    name: str
    signal_fn: Callable[..., np.ndarray]
    defaults: Mapping[str, object]
    min_bars: Callable[[Mapping[str, object]], int]
    doc: str
    # Validates the parameters without data (raises InvalidParams); the signal
    # function calls it too, so a search can skip combinations the strategy
    # would reject (fast >= slow) before running anything.
    check_fn: Callable[..., object] = lambda **params: None

    def check(self, params: Mapping[str, object] | None) -> None:
        """Raise InvalidParams if the strategy would reject ``params`` (unknown names included)."""
        self.check_fn(**self.resolve_params(params))

    def resolve_params(self, params: Mapping[str, object] | None) -> dict[str, object]:
        """Defaults overlaid with ``params``; unknown names raise InvalidParams."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InvalidParams(
                f"unknown parameter(s) for {self.name}: {', '.join(unknown)} "
                f"(known: {', '.join(self.defaults)})"
            )
        return {**self.defaults, **params}


# ------------------------------------------------------------------ param checks


def _positive_int(name: str, value: object) -> int:
    """Accept ints and integral floats (20.0 from a YAML file); reject bools and 20.5."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidParams(f"{name} must be a positive integer, got {value!r}")
    if value != int(value) or value < 1:
        raise InvalidParams(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParams(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _number(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidParams(f"{name} must be a number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ helpers


def _in_position(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    """True from each ``enter`` event until the next ``leave`` event.

    A bar with both events leaves (the exit rule wins). Once such bars count
    as exits only, entry and exit bars never coincide, so the latest event up
    to bar t is of the kind whose latest run of consecutive event bars started
    last: the first bars of those runs, which are few, decide every switch.
    Between switches the state is filled in with one ``np.repeat``.
    """
    bars = enter.size
    enter = enter & ~leave
    if bars == 0:
        return enter
    enter_starts = enter.copy()
    enter_starts[1:] &= ~enter[:-1]
    leave_starts = leave.copy()
    leave_starts[1:] &= ~leave[:-1]
    events = np.flatnonzero(enter_starts | leave_starts)
    entering = enter_starts[events]
    # The state after an event is `entering`; it switches where that differs
    # from the previous event (flat before the first one).
    switches = events[entering != np.concatenate(([False], entering[:-1]))]
    lengths = np.diff(np.concatenate(([0], switches, [bars])))
    return np.repeat(np.arange(lengths.size) % 2 == 1, lengths)


def _net(long: np.ndarray, short: np.ndarray) -> np.ndarray:
    """long - short as int8 (-1, 0, 1) from two bool legs."""
    return np.subtract(long.view(np.int8), short.view(np.int8))


# ------------------------------------------------------------------ MA crossover


def _ma_crossover_check(
    fast: object, slow: object, ma_type: object = "sma", allow_short: object = False
) -> tuple[int, int, str, bool]:
    fast_, slow_ = _positive_int("fast", fast), _positive_int("slow", slow)
    allow_short_ = _flag("allow_short", allow_short)
    if fast_ >= slow_:
        raise InvalidParams(f"fast ({fast_}) must be below slow ({slow_})")
    if ma_type not in ("sma", "ema"):
        raise InvalidParams(f"ma_type must be 'sma' or 'ema', got {ma_type!r}")
    return fast_, slow_, str(ma_type), allow_short_


def ma_crossover(
    data: PriceData, fast: int, slow: int, ma_type: str = "sma", allow_short: bool = False
) -> np.ndarray:
    fast, slow, ma_type, allow_short = _ma_crossover_check(fast, slow, ma_type, allow_short)
    average = data.sma if ma_type == "sma" else data.ema
    fast_ma = average(fast)
    slow_ma = average(slow)
    levels = np.greater(fast_ma, slow_ma)
    if allow_short:
        levels = _net(levels, np.less(fast_ma, slow_ma))
    # An EMA is defined from the first bar but is only a fair "slow" average
    # once `slow` bars went into it; flat until then, like the SMA's NaNs.
    levels[: slow - 1] = 0
    return levels



def _ma_crossover_min_bars(params: Mapping[str, object]) -> int:
    return _positive_int("slow", params["slow"]) + 1


# ------------------------------------------------------------------ RSI reversion


def _rsi_reversion_check(
    period: object = 14, lower: object = 30.0, upper: object = 70.0, exit: object = 50.0,
    allow_short: object = False,
) -> tuple[int, float, float, float, bool]:
    period_ = _positive_int("period", period)
    lower_, upper_, exit_ = _number("lower", lower), _number("upper", upper), _number("exit", exit)
    allow_short_ = _flag("allow_short", allow_short)
    if not 0.0 <= lower_ < exit_ < upper_ <= 100.0:
        raise InvalidParams(f"need 0 <= lower ({lower_}) < exit ({exit_}) < upper ({upper_}) <= 100")
    return period_, lower_, upper_, exit_, allow_short_


def rsi_reversion(
    data: PriceData,
    period: int = 14,
    lower: float = 30.0,
    upper: float = 70.0,
    exit: float = 50.0,
    allow_short: bool = False,
) -> np.ndarray:
    period, lower, upper, exit, allow_short = _rsi_reversion_check(period, lower, upper, exit, allow_short)

    rsi = data.rsi(period)  # NaN compares False: warm-up bars make no events
    levels = _in_position(rsi < lower, rsi > exit)
    if allow_short:
        # Never overlaps the long leg: a long opened below `lower` is closed by
        # any RSI above `exit`, which a short entry (above `upper`) implies.
        levels = _net(levels, _in_position(rsi > upper, rsi < exit))
    return levels



def _rsi_reversion_min_bars(params: Mapping[str, object]) -> int:
    return _positive_int("period", params["period"]) + 2


# ------------------------------------------------------------------ channel breakout


def _channel_breakout_check(
    lookback: object = 20, exit_lookback: object = 10, allow_short: object = False
) -> tuple[int, int, bool]:
    return (_positive_int("lookback", lookback), _positive_int("exit_lookback", exit_lookback),
            _flag("allow_short", allow_short))


def channel_breakout(
    data: PriceData, lookback: int = 20, exit_lookback: int = 10, allow_short: bool = False
) -> np.ndarray:
    lookback, exit_lookback, allow_short = _channel_breakout_check(lookback, exit_lookback, allow_short)

    close = data.close
    warm_up = max(lookback, exit_lookback)  # both channels defined from here on

    def leg(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
        enter[:warm_up] = False
        return _in_position(enter, leave)

    levels = leg(
        close > data.previous_max("high", lookback), close < data.previous_min("low", exit_lookback)
    )
    if allow_short:
        # With exit_lookback > lookback both legs can be open at once; they then
        # net to flat rather than one silently overriding the other.
        levels = _net(
            levels,
            leg(close < data.previous_min("low", lookback), close > data.previous_max("high", exit_lookback)),
        )
    return levels



def _channel_breakout_min_bars(params: Mapping[str, object]) -> int:
    lookback = _positive_int("lookback", params["lookback"])
    exit_lookback = _positive_int("exit_lookback", params["exit_lookback"])
    return max(lookback, exit_lookback) + 2


# ------------------------------------------------------------------ registry

STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy(
            name="ma_crossover",
            signal_fn=ma_crossover,
            defaults={"fast": 20, "slow": 50, "ma_type": "sma", "allow_short": False},
            min_bars=_ma_crossover_min_bars,
            check_fn=_ma_crossover_check,
            doc="Long while the fast moving average is above the slow one "
            "(short while below if allow_short). ma_type: 'sma' or 'ema'; fast < slow.",
        ),
        Strategy(
            name="rsi_reversion",
            signal_fn=rsi_reversion,
            defaults={"period": 14, "lower": 30.0, "upper": 70.0, "exit": 50.0, "allow_short": False},
            min_bars=_rsi_reversion_min_bars,
            check_fn=_rsi_reversion_check,
            doc="Wilder RSI mean reversion: long when RSI < lower until RSI > exit; "
            "short when RSI > upper until RSI < exit (if allow_short). lower < exit < upper.",
        ),
        Strategy(
            name="channel_breakout",
            signal_fn=channel_breakout,
            defaults={"lookback": 20, "exit_lookback": 10, "allow_short": False},
            min_bars=_channel_breakout_min_bars,
            check_fn=_channel_breakout_check,
            doc="Donchian breakout: long when the close breaks above the highest high of the "
            "previous `lookback` bars, out when it breaks below the lowest low of the previous "
            "`exit_lookback` bars; mirrored for shorts if allow_short.",
        ),
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})") from None
