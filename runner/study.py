"""From a config to an Optuna study and an objective: search space, sampler, data, scoring."""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection

import backtest

from . import data as symbol_data
from . import validation
from .config import CategoricalParam, ConfigError, RunConfig
from .outcomes import MIN_TRADES
from .space import ExactSteps, grid_points, has_float_steps
from .steering import AvoidFailing
from .storage import Database


def seed_key(symbol: str, fold: int | None) -> str:
    """What seeds a study's samplers besides the worker's index: a fold's study searches afresh."""
    return symbol if fold is None else f"{symbol}-wf{fold}"


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
            multivariate=cfg.sampler.multivariate,
            group=cfg.sampler.group,
            constant_liar=cfg.sampler.constant_liar,
        )
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "qmc":
        # Every worker of a study walks the same low-discrepancy sequence from a
        # shared seed; QMCSampler hands out successive points by trial number.
        # scramble: with a seed, a different (still low-discrepancy) sequence per seed.
        return optuna.samplers.QMCSampler(
            qmc_type=cfg.sampler.qmc_type, scramble=cfg.sampler.seed is not None, seed=cfg.sampler.seed,
            warn_independent_sampling=False,
        )
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_points(cfg), seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=cfg.sampler.n_startup_trials)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.sampler.n_startup_trials)
    raise ValueError(f"unknown sampler {kind!r}")


def search_sampler(cfg: RunConfig, symbol: str, worker_index: int,
                   rejects: Callable[[Mapping[str, Any]], bool] | None = None) -> optuna.samplers.BaseSampler:
    """The sampler a worker searches with: the configured one, its float steps exact, and a
    multivariate TPE kept out of combinations the strategy rejects and of regions that
    failed (runner.steering). ``rejects``: the check for a user's backtest benchmark;
    a built-in strategy's own check otherwise."""
    sampler = make_sampler(cfg, symbol, worker_index)
    if cfg.sampler.type == "tpe" and cfg.sampler.multivariate:
        sampler = AvoidFailing(sampler, rejects or strategy_rejects(cfg))
    if has_float_steps(cfg):
        sampler = ExactSteps(sampler, cfg)  # 0.6, never 0.6000000000000001
    return sampler


def strategy_params(cfg: RunConfig, params: Mapping[str, Any]) -> tuple[dict[str, Any], float | None]:
    """A trial's parameters as a built-in strategy takes them (the config's fixed ones
    included), and the stop loss — searched or configured — which is the engine's
    setting, not the strategy's."""
    full = {**cfg.strategy.fixed, **params}
    return full, full.pop("stop_loss", cfg.strategy.stop_loss)


def strategy_rejects(cfg: RunConfig) -> Callable[[Mapping[str, Any]], bool] | None:
    """For a built-in strategy: whether it would reject a trial's parameters (fast >= slow),
    checked without data. None for a user's backtest, which has no such check."""
    if cfg.strategy.is_user_backtest:
        return None
    strategy = backtest.get_strategy(cfg.strategy.name)
    searched = set(cfg.space)

    def rejects(params: Mapping[str, Any]) -> bool:
        if not searched <= set(params):  # a conditional parameter absent: run it and see
            return False
        try:
            strategy.check(strategy_params(cfg, params)[0])
        except backtest.InvalidParams:
            return True
        return False

    return rejects


def open_study(db: Database, cfg: RunConfig, symbol: str, worker_index: int = 0,
               fold: int | None = None) -> optuna.Study:
    """Create the symbol's study (or a walk-forward fold's), or load it if another worker (or
    an earlier run) made it."""
    name = cfg.study_name(symbol, fold)
    sampler = search_sampler(cfg, seed_key(symbol, fold), worker_index)
    study = optuna.create_study(
        storage=db.optuna_storage(name),
        study_name=name,
        directions=[StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE for d in cfg.directions],
        sampler=sampler,
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )
    return study


def check_data(cfg: RunConfig) -> dict[str, list[str | None] | None]:
    """Load every symbol's data once, before any worker starts: bad data is reported
    at once (symbol and row) instead of in each worker's log. Raises ConfigError.
    Returns each study's bars as its trials see them (validation.seen_bars)."""
    try:
        return _check_data(cfg)
    except backtest.DataError as exc:
        raise ConfigError(cfg.source_path or "config", "data", str(exc)) from None
    except validation.HoldoutError as exc:
        raise ConfigError(cfg.source_path or "config", exc.field, str(exc)) from None
    except (MemoryError, OSError, ValueError, TypeError, OverflowError) as exc:
        # Not a data error we know: still one line naming the file, never a traceback.
        raise ConfigError(cfg.source_path or "config", "data", f"{type(exc).__name__}: {exc}") from None


def _check_data(cfg: RunConfig) -> dict[str, list[str | None] | None]:
    strategy = None if cfg.strategy.is_user_backtest else backtest.get_strategy(cfg.strategy.name)
    seen = {}
    for symbol in cfg.data.symbols:
        frame = symbol_data.load(cfg, symbol).frame  # cached for the workers, which start next
        # The warm-up must fit in what the trials see: before the holdout, and in the
        # shortest window a walk-forward fold trains on.
        split, windows = validation.split(cfg, frame, symbol)
        for fold in cfg.folds():
            seen[cfg.study_name(symbol, fold)] = validation.seen_bars(
                frame.index, *validation.window(split, windows, len(frame), fold))
        if split is not None:
            frame = frame.iloc[:split]
        if windows:
            frame = frame.iloc[:min(test - train for train, test, _ in windows)]
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
    return seen


# The optional key under which a user's backtest may return its per-bar returns (a
# sequence of floats): DSR and PBO need them (runner/insight.py). Never a metric.
RETURNS_KEY = "returns"


class TrialPruned(Exception):
    """The trial is valid but should not count as complete (too few trades, a pruner).

    ``metrics``: what the full run measured, kept with the trial (too few trades);
    ``violation``: how far the trial is from counting, told to Optuna as a constraint
    (> 0: infeasible) so that TPE ranks it below every feasible trial."""

    def __init__(self, reason: str, metrics: dict[str, float] | None = None,
                 violation: dict[str, float] | None = None) -> None:
        super().__init__(reason)
        self.metrics = metrics or {}
        self.violation = violation or {}


@dataclass
class Evaluation:
    values: list[float]  # one per objective metric
    metrics: dict[str, float]

    @property
    def value(self) -> float:
        return self.values[0]


class Objective:
    """Scores one parameter set on one symbol's data, loaded once per worker.

    ``upto`` evaluates on the first ``upto`` bars only (a partial evaluation for
    pruning); the no-look-ahead rule makes that the prefix of the full run.
    """

    def __init__(self, cfg: RunConfig, symbol: str, fold: int | None = None) -> None:
        self.cfg = cfg
        self.symbol = symbol
        loaded = symbol_data.load(cfg, symbol)
        self.total_bars = len(loaded.frame)
        # The first holdout bar ([validation] holdout; None without one): trials see the bars
        # before it only. Walk-forward: (train start, test start, test end) per fold of those.
        split, self.fold_windows = validation.split(cfg, loaded.frame, symbol)
        start, end = validation.window(split, self.fold_windows, self.total_bars, fold)
        self.seen_bars = validation.seen_bars(loaded.frame.index, start, end)
        if fold is not None:  # a fold's study trains on its window; its test is tune report's
            split = None
        self.holdout_start = split
        self.bars = end - start
        self.metrics = cfg.study.metrics
        self._user_fn: Callable[..., Any] | None = None
        if cfg.strategy.is_user_backtest:
            self._user_fn = backtest.resolve_user_backtest(cfg.strategy.name, search_path=cfg.base_dir)
            self._all_frame = loaded.frame
            self.frame = loaded.frame if (start, end) == (0, self.total_bars) else loaded.frame.iloc[start:end]
        else:
            # The arrays only: a frame loaded without the cache is freed here.
            self._all_data = loaded.prices(symbol)
            if start == 0:
                self.data = self._all_data if end == self.total_bars else self._all_data.head(end)
            else:  # a rolling fold's window: its own arrays (a copy of that window)
                self.data = backtest.PriceData.from_frame(loaded.frame.iloc[start:end], symbol, validated=True)

    def __call__(self, params: dict[str, Any], upto: int | None = None) -> Evaluation:
        if self._user_fn is not None:
            # A new frame object per call sharing the data: under pandas' copy-on-write, what
            # the function changes in it is copied first, so it never reaches the next trial
            # (nor the host's read-only mapped copy, which would refuse the write).
            frame = self.frame.copy(deep=False) if upto is None else self.frame.iloc[:upto]
            metrics = self._user_metrics(params, frame)[0]
        else:
            s = self.cfg.strategy
            full, stop_loss = strategy_params(self.cfg, params)
            data = self.data if upto is None else self.data.head(upto)
            metrics = backtest.evaluate(
                data, s.name, full, fees_bps=s.fees_bps, slippage_bps=s.slippage_bps, stop_loss=stop_loss
            )
        values = [metrics[m] for m in self.metrics]
        for name, value in zip(self.metrics, values):
            if not math.isfinite(value):
                raise ValueError(f"{name} is {value}")
        if upto is None:
            values = self._apply_min_trades(metrics, values)
        return Evaluation(values=values, metrics=metrics)

    @functools.cached_property
    def bars_per_year(self) -> float:
        """The data's measured bars per year, as the metrics annualise with."""
        if self._user_fn is None:
            return self.data.bars_per_year
        return backtest.PriceData.from_frame(self.frame, self.symbol, validated=True).bars_per_year

    def holdout(self, params: dict[str, Any]) -> dict[str, float]:
        """The metrics of ``params`` on the holdout. A built-in strategy runs over all the
        bars, so that it is warmed up when the holdout opens, and is measured on the
        holdout's bars only; a user's backtest is given the holdout's bars alone."""
        if self.holdout_start is None:
            raise ValueError("this study has no holdout")
        return self._window_metrics(params, self.holdout_start, self.total_bars)

    def fold_test(self, params: dict[str, Any], fold: int) -> dict[str, float]:
        """The metrics of ``params`` on walk-forward fold ``fold``'s test window, which its
        study never saw (measured as the holdout is)."""
        _, start, end = self.fold_windows[fold - 1]
        return self._window_metrics(params, start, end)

    def _window_metrics(self, params: dict[str, Any], start: int, end: int) -> dict[str, float]:
        """Metrics of bars ``start`` to ``end``: a built-in strategy runs from the first bar
        (warmed up when the window opens) and is measured on the window's bars; a user's
        backtest is given the window's bars alone."""
        if self._user_fn is not None:
            return self._user_metrics(params, self._all_frame.iloc[start:end].copy(deep=False))[0]
        s = self.cfg.strategy
        full, stop_loss = strategy_params(self.cfg, params)
        return backtest.evaluate_since(self._all_data.head(end), s.name, full, start, fees_bps=s.fees_bps,
                                       slippage_bps=s.slippage_bps, stop_loss=stop_loss)

    def bar_returns(self, params: dict[str, Any]) -> np.ndarray | None:
        """The per-bar returns of ``params`` in sample (for DSR and PBO): recomputed for a
        built-in strategy; a user's backtest gives them under the optional key "returns",
        else None."""
        if self._user_fn is not None:
            returns = self._user_metrics(params, self.frame.copy(deep=False))[1]
            return None if returns is None else np.asarray(returns, dtype=np.float64).ravel()
        s = self.cfg.strategy
        full, stop_loss = strategy_params(self.cfg, params)
        return backtest.bar_returns(self.data, s.name, full, fees_bps=s.fees_bps, slippage_bps=s.slippage_bps,
                                    stop_loss=stop_loss)

    def all_bar_returns(self, params: dict[str, Any]) -> np.ndarray | None:
        """The per-bar net returns of ``params`` over every bar of the data, in sample and
        holdout alike (for the equity curve, runner/equity.py): one per bar, the first bar's
        0 (it has no earlier close). A built-in strategy runs from the first bar, as
        ``_window_metrics`` does; a user's backtest is given the whole frame and its returns
        under "returns" are taken as they are (one per bar) or, one fewer, as every bar's
        but the first's; None when it gives none."""
        if self._user_fn is None:
            s = self.cfg.strategy
            full, stop_loss = strategy_params(self.cfg, params)
            result = backtest.run_backtest(self._all_data, s.name, full, fees_bps=s.fees_bps,
                                           slippage_bps=s.slippage_bps, stop_loss=stop_loss)
            return np.array(result.returns, dtype=np.float64)
        returns = self._user_metrics(params, self._all_frame.copy(deep=False))[1]
        if returns is None:
            return None
        values = np.asarray(returns, dtype=np.float64).ravel()
        if len(values) == self.total_bars - 1:
            values = np.concatenate(([0.0], values))
        if len(values) != self.total_bars:
            raise ValueError(f"the backtest returned {len(values)} returns under {RETURNS_KEY!r} for "
                             f"{self.total_bars} bars (one per bar, or one per bar but the first)")
        return values

    def all_bar_prices(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every bar's timestamp (datetime64) and close (None if the frame has no close)."""
        if self._user_fn is None:
            return self._all_data.timestamps, self._all_data.close
        frame = self._all_frame
        close = frame["close"].to_numpy(dtype=np.float64) if "close" in frame.columns else None
        return frame.index.to_numpy(dtype="datetime64[ns]"), close

    def _user_metrics(self, params: dict[str, Any], frame) -> tuple[dict[str, float], Any]:
        """A user's backtest's metrics, and its per-bar returns if it gave them."""
        assert self._user_fn is not None
        out = self._user_fn({**self.cfg.strategy.fixed, **params}, frame)
        returns = None
        if isinstance(out, dict):
            if RETURNS_KEY in out:
                out = dict(out)
                returns = out.pop(RETURNS_KEY)
            missing = [m for m in self.metrics if m not in out]
            if missing:
                raise ValueError(f"the backtest returned no {missing[0]!r} (keys: {', '.join(out)})")
            return {k: _as_float(v, k) for k, v in out.items()}, returns
        if len(self.metrics) > 1:
            raise ValueError(f"the backtest returned one number; the study needs {', '.join(self.metrics)}")
        return {self.metrics[0]: _as_float(out, self.metrics[0])}, None

    def _apply_min_trades(self, metrics: dict[str, float], values: list[float]) -> list[float]:
        min_trades = self.cfg.study.min_trades
        if not min_trades or metrics.get("trades", math.inf) >= min_trades:
            return values
        reason = f"{metrics['trades']:.0f} trades, fewer than min_trades={min_trades}"
        if self.cfg.study.min_trades_penalty is None:
            raise TrialPruned(reason, metrics, {MIN_TRADES: float(min_trades - metrics["trades"])})
        metrics["min_trades_penalty"] = 1.0  # recorded with the trial: its value is the penalty
        return [self.cfg.study.min_trades_penalty]


def _as_float(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {key!r} is not a number: {value!r}") from None


def make_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    p = cfg.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps, interval_steps=p.interval_steps
        )
    if p.type == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
            interval_steps=p.interval_steps,
        )
    if p.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor,
            min_early_stopping_rate=p.min_early_stopping_rate,
        )
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, max_resource=p.steps, reduction_factor=p.reduction_factor
        )
    if p.type == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold, n_startup_steps=p.n_warmup_steps)
    return optuna.pruners.NopPruner()
