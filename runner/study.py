"""From a config to an Optuna study and an objective: search space, sampler, data, scoring."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

import backtest

from .config import CategoricalParam, FloatParam, IntParam, RunConfig
from .storage import Database


def search_space(cfg: RunConfig) -> dict[str, BaseDistribution]:
    space: dict[str, BaseDistribution] = {}
    for name, p in cfg.space.items():
        if isinstance(p, FloatParam):
            space[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            space[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, CategoricalParam):
            space[name] = CategoricalDistribution(p.choices)
    return space


def worker_seed(cfg: RunConfig, symbol: str, worker_index: int) -> int | None:
    """A distinct, reproducible seed per (symbol, worker): one worker with a fixed
    seed replays the same trials; two workers of a study do not propose the same ones."""
    if cfg.sampler.seed is None:
        return None
    return (cfg.sampler.seed + zlib.crc32(symbol.encode()) + 7919 * worker_index) % (2**31)


def make_sampler(cfg: RunConfig, symbol: str, worker_index: int) -> optuna.samplers.BaseSampler:
    seed = worker_seed(cfg, symbol, worker_index)
    kind = cfg.sampler.type
    if kind == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=cfg.sampler.n_startup_trials,
            n_ei_candidates=cfg.sampler.n_ei_candidates,
        )
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=cfg.sampler.n_startup_trials)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.sampler.n_startup_trials)
    raise ValueError(f"unknown sampler {kind!r}")


def open_study(db: Database, cfg: RunConfig, symbol: str, worker_index: int = 0) -> optuna.Study:
    """Create the symbol's study, or load it if another worker (or an earlier run) made it."""
    name = cfg.study_name(symbol)
    study = optuna.create_study(
        storage=db.optuna_storage(name),
        study_name=name,
        direction=cfg.direction,
        sampler=make_sampler(cfg, symbol, worker_index),
        load_if_exists=True,
    )
    return study


def load_frame(cfg: RunConfig, symbol: str):
    """The symbol's validated OHLCV frame: from its file, or synthetic."""
    if cfg.data.path is not None:
        return backtest.load_ohlcv(
            cfg.data.path, symbol, start=cfg.data.start, end=cfg.data.end, base_dir=cfg.base_dir
        )
    syn = cfg.data.synthetic or _default_synthetic()
    frame = backtest.synthetic_ohlcv(symbol, seed=syn.seed, bars=syn.bars, freq=syn.freq, start=syn.start)
    if cfg.data.start or cfg.data.end:
        frame = frame.loc[cfg.data.start : cfg.data.end]
        backtest.validate_ohlcv(frame, symbol)
    return frame


def check_data(cfg: RunConfig) -> None:
    """Load every symbol's data once, before any worker starts: bad data is reported
    at once (symbol and row) instead of in each worker's log. Raises DataError."""
    strategy = None if cfg.strategy.is_user_backtest else backtest.get_strategy(cfg.strategy.name)
    for symbol in cfg.data.symbols:
        frame = load_frame(cfg, symbol)
        if strategy is not None:
            # The longest warm-up the space allows: every numeric parameter at its upper bound.
            widest = {**cfg.strategy.fixed}
            for name, p in cfg.space.items():
                widest[name] = p.choices[0] if isinstance(p, CategoricalParam) else p.high
            widest.pop("stop_loss", None)  # the engine's setting, not the strategy's
            try:
                needed = strategy.min_bars(strategy.resolve_params(widest))
            except (backtest.InvalidParams, TypeError, ValueError):
                continue
            backtest.validate_ohlcv(frame, symbol, min_bars=needed)


def _default_synthetic():
    from .config import SyntheticData

    return SyntheticData()


class TrialPruned(Exception):
    """The trial is valid but should not count as complete (e.g. too few trades)."""


@dataclass
class Evaluation:
    value: float
    metrics: dict[str, float]


class Objective:
    """Scores one parameter set on one symbol's data, loaded once per worker."""

    def __init__(self, cfg: RunConfig, symbol: str) -> None:
        self.cfg = cfg
        self.symbol = symbol
        self.frame = load_frame(cfg, symbol)
        self.metric = cfg.study.metric
        self._user_fn: Callable[..., Any] | None = None
        if cfg.strategy.is_user_backtest:
            self._user_fn = backtest.resolve_user_backtest(cfg.strategy.name, search_path=cfg.base_dir)
        else:
            self.data = backtest.PriceData.from_frame(self.frame, symbol)

    def __call__(self, params: dict[str, Any]) -> Evaluation:
        full = {**self.cfg.strategy.fixed, **params}
        if self._user_fn is not None:
            out = self._user_fn(full, self.frame)
            if isinstance(out, dict):
                if self.metric not in out:
                    raise ValueError(f"the backtest returned no {self.metric!r} (keys: {', '.join(out)})")
                metrics = {k: _as_float(v, k) for k, v in out.items()}
            else:
                metrics = {self.metric: _as_float(out, self.metric)}
        else:
            s = self.cfg.strategy
            stop_loss = full.pop("stop_loss", s.stop_loss)
            metrics = backtest.evaluate(
                self.data, s.name, full, fees_bps=s.fees_bps, slippage_bps=s.slippage_bps, stop_loss=stop_loss
            )
        value = metrics[self.metric]
        if not math.isfinite(value):
            raise ValueError(f"{self.metric} is {value}")
        min_trades = self.cfg.study.min_trades
        if min_trades and metrics.get("trades", math.inf) < min_trades:
            raise TrialPruned(f"{metrics['trades']:.0f} trades, fewer than min_trades={min_trades}")
        return Evaluation(value=value, metrics=metrics)


def _as_float(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {key!r} is not a number: {value!r}") from None
