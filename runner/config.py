"""The run configuration: a TOML file validated by a typed model.

A config describes one *run*: a strategy, a search space, an objective, and the
symbols to optimise. Each symbol gets its own Optuna study, named
``{study.name}-{symbol}``. Every field is documented in the README's config
reference; this module is its source of truth.

Errors are raised as :class:`ConfigError`, whose message names the file, the
field and what is wrong, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import backtest

DEMO_CONFIG = Path(__file__).with_name("demo.toml")


class ConfigError(Exception):
    """A config that cannot be used; ``str()`` is one line: file: field: problem."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")


class _Strict(BaseModel):
    # A misspelled field is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


Scalar = Union[bool, int, float, str]


class _Param(_Strict):
    # Conditional parameter: suggested only when every named parameter has the given value.
    when: dict[str, Scalar] | None = None


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log-scaled int range needs low > 0 and step 1")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "CategoricalParam":
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class StudySettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.]+$", description="studies are named {name}-{symbol}")
    # One metric, or several for a multi-objective study (a Pareto front instead of one best).
    metric: str | list[str] = "sharpe"
    direction: Literal["maximize", "minimize"] | list[Literal["maximize", "minimize"]] | None = None
    target_trials: int = Field(default=200, ge=1, description="completed trials per symbol")
    max_attempts: int | None = Field(default=None, ge=1, description="cap on all trials per symbol")
    workers_per_symbol: int = Field(default=1, ge=1, le=64)
    resume: bool = True
    min_trades: int = Field(default=0, ge=0)
    min_trades_penalty: float | None = None  # set: too few trades completes with this value; unset: pruned
    dedup: bool = True  # never backtest one parameter combination twice in a study
    float_precision: int = Field(default=6, ge=1, le=15)  # significant digits that make floats "equal"
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    grace_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "StudySettings":
        if self.max_attempts is not None and self.max_attempts < self.target_trials:
            raise ValueError(
                f"max_attempts ({self.max_attempts}) is below target_trials ({self.target_trials})"
            )
        if self.grace_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("grace_seconds must be at least twice heartbeat_seconds")
        if isinstance(self.metric, list):
            if len(self.metric) < 2 or len(set(self.metric)) != len(self.metric):
                raise ValueError("a list of metrics needs two or more distinct names")
            if isinstance(self.direction, list) and len(self.direction) != len(self.metric):
                raise ValueError("direction must have one entry per metric")
            if self.min_trades_penalty is not None:
                raise ValueError("min_trades_penalty needs a single metric (multi-objective trials are pruned)")
        elif isinstance(self.direction, list):
            raise ValueError("a list of directions needs a list of metrics")
        return self

    @property
    def metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    @property
    def attempt_cap(self) -> int:
        # Without an explicit cap, allow pruned/failed/duplicate trials up to twice the target.
        return self.max_attempts if self.max_attempts is not None else 3 * self.target_trials


class SyntheticData(_Strict):
    bars: int = Field(default=20_000, ge=100)
    freq: str = "1h"
    seed: int = 0
    start: str = "2020-01-01"


class DataSettings(_Strict):
    symbols: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.^=-]+$")]] = Field(min_length=1)
    path: str | None = Field(default=None, description="file per symbol, e.g. data/{symbol}.csv")
    start: str | None = None
    end: str | None = None
    synthetic: SyntheticData | None = None

    @model_validator(mode="after")
    def _check(self) -> "DataSettings":
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be distinct")
        if self.path is not None and self.synthetic is not None:
            raise ValueError("give either path or [data.synthetic], not both")
        if self.path is not None and "{symbol}" not in self.path and len(self.symbols) > 1:
            raise ValueError("path must contain {symbol} when there are several symbols")
        return self


class StrategySettings(_Strict):
    name: str
    fees_bps: float = Field(default=0.0, ge=0)
    slippage_bps: float = Field(default=0.0, ge=0)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    fixed: dict[str, Any] = Field(default_factory=dict, description="parameters passed as they are")

    @property
    def is_user_backtest(self) -> bool:
        return ":" in self.name


class SamplerSettings(_Strict):
    type: Literal["tpe", "random", "cmaes", "gp", "qmc", "grid"] = "tpe"
    seed: int | None = None
    n_startup_trials: int = Field(default=10, ge=0)
    n_ei_candidates: int = Field(default=24, ge=1)  # TPE
    multivariate: bool = True  # TPE: model parameters jointly
    group: bool = False  # TPE: model conditional parameter groups separately (needs multivariate)
    constant_liar: bool = True  # TPE: treat running trials as bad, so parallel workers spread out
    qmc_type: Literal["sobol", "halton"] = "sobol"  # QMC

    @model_validator(mode="after")
    def _check(self) -> "SamplerSettings":
        if self.group and not self.multivariate:
            raise ValueError("group = true needs multivariate = true")
        return self


class PrunerSettings(_Strict):
    """Stop unpromising trials early, from metrics on growing slices of the period.

    A trial is evaluated on the first 1/steps of the bars, then 2/steps, …, and
    the pruner compares each partial score with other trials' at that step. An
    unpruned trial costs (steps + 1) / 2 full backtests; one pruned at the first
    step costs 1/steps.
    """

    type: Literal["none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon"] = "none"
    steps: int = Field(default=4, ge=2, le=50)
    n_startup_trials: int = Field(default=5, ge=0)  # median, percentile
    n_warmup_steps: int = Field(default=0, ge=0)  # median, percentile, wilcoxon
    interval_steps: int = Field(default=1, ge=1)  # median, percentile
    percentile: float = Field(default=25.0, gt=0, lt=100)  # percentile: keep trials above this
    reduction_factor: int = Field(default=3, ge=2)  # successive_halving, hyperband
    min_resource: int = Field(default=1, ge=1)  # successive_halving, hyperband
    min_early_stopping_rate: int = Field(default=0, ge=0)  # successive_halving
    p_threshold: float = Field(default=0.1, gt=0, lt=1)  # wilcoxon

    @property
    def active(self) -> bool:
        return self.type != "none"


class ConstraintSettings(_Strict):
    """Feasibility limits, given to Optuna as constraints (constrained samplers steer away)."""

    max_drawdown: float | None = Field(default=None, gt=0)
    min_trades: int | None = Field(default=None, ge=1)
    max_volatility: float | None = Field(default=None, gt=0)

    def values(self, metrics: dict[str, float]) -> dict[str, float]:
        """Optuna's convention: a trial is feasible when every value is <= 0."""
        limits = (("max_drawdown", "max_drawdown", self.max_drawdown, 1),
                  ("min_trades", "trades", self.min_trades, -1),
                  ("max_volatility", "volatility", self.max_volatility, 1))
        out = {}
        for name, metric, limit, sign in limits:
            if limit is None:
                continue
            if metric not in metrics:  # a user backtest that does not report it
                raise ValueError(f"constraint {name} needs the backtest to return {metric!r}")
            out[name] = sign * (metrics[metric] - limit)
        return out


class RunConfig(_Strict):
    study: StudySettings
    data: DataSettings
    strategy: StrategySettings
    sampler: SamplerSettings = SamplerSettings()
    pruner: PrunerSettings = PrunerSettings()
    constraints: ConstraintSettings = ConstraintSettings()
    space: dict[str, Param] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "RunConfig":
        for name, p in self.space.items():
            for other, value in (p.when or {}).items():
                if other == name or other not in self.space:
                    raise ValueError(f"space.{name}.when names {other!r}, which is not another parameter of the space")
                q = self.space[other]
                if q.when:
                    raise ValueError(f"space.{name}.when: {other!r} is itself conditional; one level only")
                if isinstance(q, CategoricalParam) and value not in q.choices:
                    raise ValueError(f"space.{name}.when: {value!r} is not one of {other}'s choices")
        if self.pruner.active and len(self.study.metrics) > 1:
            raise ValueError("pruning needs a single metric (Optuna cannot prune multi-objective trials)")
        return self

    # Set by load_config; not part of the file.
    source_path: Path | None = Field(default=None, exclude=True)

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent if self.source_path else Path.cwd()

    @property
    def directions(self) -> list[str]:
        d = self.study.direction
        if isinstance(d, list):
            return list(d)
        if d is not None and len(self.study.metrics) == 1:
            return [d]
        return [backtest.METRIC_DIRECTIONS.get(m, "maximize") for m in self.study.metrics]

    @property
    def direction(self) -> str:
        """Direction of the first (for a single-objective study: the) metric."""
        return self.directions[0]

    def study_name(self, symbol: str) -> str:
        return f"{self.study.name}-{symbol}"

    def study_names(self) -> list[str]:
        return [self.study_name(s) for s in self.data.symbols]


def _field_path(loc: tuple) -> str:
    # pydantic reports union members by tag (e.g. space.fast.int.low): drop the tag.
    parts = [str(p) for p in loc if p not in ("float", "int", "categorical")]
    return ".".join(parts)


def _check_semantics(cfg: RunConfig, path: Path) -> None:
    """Checks that need the backtest library or the file system."""
    if not cfg.strategy.is_user_backtest:
        try:
            strategy = backtest.get_strategy(cfg.strategy.name)
        except KeyError:
            known = ", ".join(sorted(backtest.STRATEGIES))
            raise ConfigError(
                path, "strategy.name", f"unknown strategy {cfg.strategy.name!r} (known: {known}, or package.module:function)"
            ) from None
        accepted = [*strategy.defaults, "stop_loss"]  # stop_loss: the engine's, searchable too
        for section, names in (("space", cfg.space), ("strategy.fixed", cfg.strategy.fixed)):
            for name in names:
                if name not in accepted:
                    raise ConfigError(
                        path, f"{section}.{name}",
                        f"{cfg.strategy.name} has no parameter {name!r} (it takes {', '.join(accepted)})",
                    )
        for metric in cfg.study.metrics:
            if metric not in backtest.METRICS:
                raise ConfigError(
                    path, "study.metric", f"unknown metric {metric!r} (known: {', '.join(backtest.METRICS)})"
                )
    else:
        try:
            backtest.resolve_user_backtest(cfg.strategy.name, search_path=path.parent)
        except (ImportError, ValueError, AttributeError) as exc:
            raise ConfigError(path, "strategy.name", str(exc)) from None
    overlap = set(cfg.space) & set(cfg.strategy.fixed)
    if overlap:
        raise ConfigError(path, f"strategy.fixed.{sorted(overlap)[0]}", "is also in [space]: choose one")
    if cfg.data.path is not None:
        for symbol in cfg.data.symbols:
            file = Path(cfg.data.path.format(symbol=symbol))
            if not file.is_absolute():
                file = path.parent / file
            if not file.exists():
                raise ConfigError(path, "data.path", f"{file} not found (symbol {symbol})")
    for name, param in cfg.space.items():
        if isinstance(param, FloatParam) and not all(map(math.isfinite, (param.low, param.high))):
            raise ConfigError(path, f"space.{name}", "low and high must be finite")
    _check_sampler_available(cfg, path)


GRID_LIMIT = 100_000  # combinations we enumerate (dedup picks a free one among them)
# Optuna's GridSampler rescans every earlier trial after each one (quadratic):
# 800 trials took 41 s in memory (benchmarks/bench_samplers.py). Beyond this, TPE.
GRID_SAMPLER_LIMIT = 5_000


def grid_size(cfg: RunConfig) -> int | None:
    """Number of distinct parameter combinations, or None if a float has no step."""
    size = 1
    for p in cfg.space.values():
        if isinstance(p, CategoricalParam):
            size *= len(p.choices)
        elif isinstance(p, IntParam):
            size *= (p.high - p.low) // p.step + 1
        elif p.step is not None:
            size *= int(round((p.high - p.low) / p.step)) + 1
        else:
            return None
    return size


def _check_sampler_available(cfg: RunConfig, path: Path) -> None:
    if cfg.sampler.type == "grid":
        size = grid_size(cfg)
        if any(p.when for p in cfg.space.values()):
            raise ConfigError(path, "sampler.type", "grid cannot search conditional parameters: use tpe")
        if size is None:
            raise ConfigError(path, "sampler.type", "grid needs a discrete space: give every float a step")
        if size > GRID_SAMPLER_LIMIT:
            raise ConfigError(path, "sampler.type",
                              f"grid of {size:,} points is too large (limit {GRID_SAMPLER_LIMIT:,}): use tpe")
    needs = {"cmaes": ("cmaes", "tune-tui[cmaes]"), "gp": ("torch", "tune-tui[gp]")}
    if cfg.sampler.type in needs:
        module, extra = needs[cfg.sampler.type]
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                path, "sampler.type",
                f"sampler {cfg.sampler.type!r} needs the {module!r} package: pip install '{extra}'",
            ) from None


def load_config(path: str | Path | None) -> RunConfig:
    """Read and validate a config file; ``None`` means the bundled demo."""
    path = Path(path) if path is not None else DEMO_CONFIG
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a directory, not a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (misspelled?)"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and err["type"] not in ("union_tag_invalid",):
            message = f"{message} (got {err['input']!r})"
        raise ConfigError(path, field, message) from None
    cfg = cfg.model_copy(update={"source_path": path.resolve()})
    _check_semantics(cfg, path)
    return cfg
