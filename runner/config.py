"""The run configuration: a TOML file validated by a typed model.

A config describes one *run*: a strategy, a search space, an objective, and the
symbols to optimise. Each symbol gets its own Optuna study, named
``{study.name}-{symbol}``. Every field is documented in the README's config
reference; this module is its source of truth.

Errors are raised as :class:`ConfigError`, whose message names the file, the
field and what is wrong, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import stat
import string
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pandas as pd
from pandas.tseries.frequencies import to_offset
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

import backtest

DEMO_CONFIG = Path(__file__).with_name("demo.toml")

# Bounds (the README's config reference lists them). Each keeps a value inside
# what a later stage can hold: an int4 column, numpy's seed, a file name, memory.
MAX_CONFIG_BYTES = 1_000_000  # a config file larger than this is not read
MAX_DEPTH = 16  # nesting of tables and arrays
MAX_TRIALS = 10_000_000  # target_trials; max_attempts up to 3 x this (the default cap), in int4
MAX_BARS = 10_000_000  # synthetic bars (about 1.5 GB per process at the limit); also min_trades
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_INT_PARAM = 2**53  # int parameters: exact as floats (Optuna's samplers model them as floats)
MAX_FLOAT_PARAM = 1e300  # float parameters' low, high, step: samplers widen the range, which must stay finite
MAX_FLOAT_STEPS = 1e15  # a float's (high - low) / step
MAX_BPS = 10_000  # fees and slippage are below 100 %
NAME_MAX = 100  # study.name; the study {name}-{symbol} stays under 200 bytes
SYMBOL_MAX = 64
PATH_MAX = 4096  # data.path, and each resulting file-name component at most 255 bytes
COMPONENT_MAX = 255
_REPR_MAX = 100  # a value quoted in an error message is cut to this
_LINE_BREAKS = {"Cc", "Zl", "Zp", "Cs"}  # control characters, line/paragraph separators, surrogates


def _one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every control/line-break character escaped, cut to ``limit``."""
    text = str(text)
    cut = limit is not None and len(text) > limit
    if cut:  # escaping only lengthens: cut first, so a huge text costs nothing
        text = text[:limit]
    if any(unicodedata.category(c) in _LINE_BREAKS for c in text):
        text = "".join(
            c.encode("unicode_escape", "backslashreplace").decode("ascii")
            if unicodedata.category(c) in _LINE_BREAKS else c
            for c in text
        )
    if limit is not None and (cut or len(text) > limit):
        text = text[: limit - 1] + "…"
    return text


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails: still one line
        text = f"<{type(value).__name__}>"
    return _one_line(text, _REPR_MAX)


class ConfigError(Exception):
    """A config that cannot be used; ``str()`` is one line: file: field: problem.

    Control characters and line breaks anywhere (a file name, a key, a quoted
    value) are escaped, and a long field or problem is cut, so it stays one line.
    """

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field, self.problem = _one_line(field, 300), _one_line(problem, 5000)
        shown = _one_line(self.path)
        super().__init__(f"{shown}: {self.field}: {self.problem}" if self.field else f"{shown}: {self.problem}")


class _Strict(BaseModel):
    # A misspelled field is an error, never silently ignored; nan and inf are never numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _date_to_text(value: Any) -> Any:
    # TOML has dates (start = 2021-01-01): take them as the same text in quotes.
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return value


# The timestamps the data can have: pandas' nanosecond range.
_TIME_MIN, _TIME_MAX = pd.Timestamp.min, pd.Timestamp.max


def parse_time(text: str) -> pd.Timestamp:
    """``text`` as a timestamp (tz-aware ones in naive UTC, as backtest.data reads them);
    ValueError for anything pandas cannot parse or cannot hold."""
    try:
        moment = pd.Timestamp(text)
    except Exception as exc:
        raise ValueError(f"cannot parse {_short_repr(text)} as a date/time ({type(exc).__name__})") from None
    if moment is pd.NaT or pd.isna(moment):
        raise ValueError(f"{_short_repr(text)} is not a date/time")
    if moment.tz is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    if not _TIME_MIN <= moment <= _TIME_MAX:
        raise ValueError(f"{_short_repr(text)} is outside {_TIME_MIN:%Y-%m-%d} … {_TIME_MAX:%Y-%m-%d}")
    return moment


def _check_time(text: str | None) -> str | None:
    if text is not None:
        parse_time(text)
    return text


TimeText = Annotated[str, BeforeValidator(_date_to_text), Field(max_length=100), AfterValidator(_check_time)]


def _check_freq(text: str) -> str:
    try:
        offset = to_offset(text)
    except Exception:
        raise ValueError(f"{_short_repr(text)} is not a pandas frequency (e.g. 1min, 15min, 1h, 1D, B)") from None
    if offset is None or offset.n <= 0:
        raise ValueError(f"{_short_repr(text)} must be a positive frequency")
    return text


def _check_symbol(symbol: str) -> str:
    if symbol.startswith("-"):
        raise ValueError(f"symbol {symbol!r} must not start with '-' (it would read as a command-line option)")
    return symbol


def _check_path_template(template: str | None) -> str | None:
    if template is None:
        return None
    if any(unicodedata.category(c) == "Cc" for c in template):
        raise ValueError("must not contain control characters")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"braces do not match ({exc}; write {{{{ and }}}} for a literal brace)") from None
    for name, spec, conv in fields:
        if name != "symbol" or spec or conv:
            raise ValueError(f"only {{symbol}} may appear in braces (found {{{_one_line(name, 50)}}})")
    return template


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

    @field_validator("low", "high", "step")
    @classmethod
    def _in_range(cls, value: float | None) -> float | None:
        if value is not None and abs(value) > MAX_FLOAT_PARAM:
            raise ValueError(f"must be within ±{MAX_FLOAT_PARAM:.0e} (got {value})")
        return value

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.step is not None and (self.high - self.low) / self.step > MAX_FLOAT_STEPS:
            # Optuna checks the step with decimal arithmetic, which fails on more.
            raise ValueError(f"step {self.step} is too small: more than {MAX_FLOAT_STEPS:.0e} steps from low to high")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int = Field(ge=-MAX_INT_PARAM, le=MAX_INT_PARAM)
    high: int = Field(ge=-MAX_INT_PARAM, le=MAX_INT_PARAM)
    step: int = Field(default=1, ge=1, le=2 * MAX_INT_PARAM)
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
    name: str = Field(max_length=NAME_MAX, pattern=r"^[A-Za-z0-9_.]+$", description="studies are named {name}-{symbol}")
    # One metric, or several for a multi-objective study (a Pareto front instead of one best).
    metric: str | list[str] = "sharpe"
    direction: Literal["maximize", "minimize"] | list[Literal["maximize", "minimize"]] | None = None
    target_trials: int = Field(default=200, ge=1, le=MAX_TRIALS, description="completed trials per symbol")
    max_attempts: int | None = Field(default=None, ge=1, le=3 * MAX_TRIALS, description="cap on all trials per symbol")
    workers_per_symbol: int = Field(default=1, ge=1, le=64)
    resume: bool = True
    min_trades: int = Field(default=0, ge=0, le=MAX_BARS)
    min_trades_penalty: float | None = None  # set: too few trades completes with this value; unset: pruned
    dedup: bool = True  # never backtest one parameter combination twice in a study
    float_precision: int = Field(default=6, ge=1, le=15)  # significant digits that make floats "equal"
    heartbeat_seconds: float = Field(default=2.0, ge=0.1, le=300)
    grace_seconds: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, metric: str | list[str]) -> str | list[str]:
        metrics = metric if isinstance(metric, list) else [metric]
        for name in metrics:
            if not 1 <= len(name) <= 100:
                raise ValueError(f"a metric name has 1 to 100 characters (got {_short_repr(name)})")
        if len(metrics) > 16:
            raise ValueError(f"at most 16 metrics (got {len(metrics)})")
        return metric

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
    bars: int = Field(default=20_000, ge=100, le=MAX_BARS)
    freq: Annotated[str, Field(max_length=50), AfterValidator(_check_freq)] = "1h"
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    start: TimeText = "2020-01-01"


Symbol = Annotated[str, Field(max_length=SYMBOL_MAX, pattern=r"^[A-Za-z0-9_.^=-]+$"), AfterValidator(_check_symbol)]


class DataSettings(_Strict):
    symbols: list[Symbol] = Field(min_length=1)
    path: Annotated[str, Field(max_length=PATH_MAX), AfterValidator(_check_path_template)] | None = Field(
        default=None, description="file per symbol, e.g. data/{symbol}.csv")
    start: TimeText | None = None
    end: TimeText | None = None
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
    name: str = Field(max_length=200)
    fees_bps: float = Field(default=0.0, ge=0, lt=MAX_BPS)
    slippage_bps: float = Field(default=0.0, ge=0, lt=MAX_BPS)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    fixed: dict[str, Any] = Field(default_factory=dict, description="parameters passed as they are")

    @property
    def is_user_backtest(self) -> bool:
        return ":" in self.name


class SamplerSettings(_Strict):
    type: Literal["tpe", "random", "cmaes", "gp", "qmc", "grid"] = "tpe"
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    n_startup_trials: int = Field(default=10, ge=0, le=MAX_TRIALS)
    n_ei_candidates: int = Field(default=24, ge=1, le=10_000)  # TPE
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
    n_startup_trials: int = Field(default=5, ge=0, le=MAX_TRIALS)  # median, percentile
    n_warmup_steps: int = Field(default=0, ge=0, le=1000)  # median, percentile, wilcoxon
    interval_steps: int = Field(default=1, ge=1, le=1000)  # median, percentile
    percentile: float = Field(default=25.0, gt=0, lt=100)  # percentile: keep trials above this
    reduction_factor: int = Field(default=3, ge=2, le=100)  # successive_halving, hyperband
    min_resource: int = Field(default=1, ge=1, le=1000)  # successive_halving, hyperband
    min_early_stopping_rate: int = Field(default=0, ge=0, le=50)  # successive_halving
    p_threshold: float = Field(default=0.1, gt=0, lt=1)  # wilcoxon

    @property
    def active(self) -> bool:
        return self.type != "none"


class ConstraintSettings(_Strict):
    """Feasibility limits, given to Optuna as constraints (constrained samplers steer away)."""

    max_drawdown: float | None = Field(default=None, gt=0)
    min_trades: int | None = Field(default=None, ge=1, le=MAX_BARS)
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


# pydantic names a union member it tried by a tag in the error location
# (space.fast.int.low, study.metric.str, study.direction.list[literal[...]]).
_UNION_TAG = re.compile(r"^(float|int|str|bool|none|categorical|[a-z-]+\[.*\])$", re.S)
_USER_KEYS = ("space", "when", "fixed")  # tables whose keys are the user's names, never tags


def _field_path(loc: tuple) -> str:
    parts: list[str] = []
    previous = None
    for p in loc:
        if not (isinstance(p, str) and previous not in _USER_KEYS and _UNION_TAG.match(p)):
            parts.append(str(p))
        previous = p
    return ".".join(parts)


def _check_period(cfg: RunConfig, path: Path) -> None:
    """Times that each parse (checked by the model) but do not fit together."""
    data = cfg.data
    if data.start is not None and data.end is not None:
        start, end = parse_time(data.start), parse_time(data.end)
        if re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", data.end):
            end += pd.Timedelta(days=1) - pd.Timedelta(1, "ns")  # a plain end date includes that day
        if start > end:
            raise ConfigError(path, "data.start", f"{data.start!r} is after data.end {data.end!r}")
    if data.path is not None:
        return
    syn = data.synthetic or SyntheticData()
    if pd.Timestamp(syn.start).tz is not None:
        raise ConfigError(path, "data.synthetic.start",
                          f"{syn.start!r}: synthetic bars have no time zone; give a time without an offset")
    try:
        last = pd.Timestamp(syn.start) + (syn.bars - 1) * to_offset(syn.freq)
        if not _TIME_MIN <= last <= _TIME_MAX:
            raise OverflowError
    except Exception:
        raise ConfigError(
            path, "data.synthetic.bars",
            f"{syn.bars:,} bars every {syn.freq} from {syn.start} end after {_TIME_MAX:%Y-%m-%d} "
            "(the last date pandas holds): use fewer bars, a shorter freq or an earlier start",
        ) from None
    # Synthetic bars are cut to [data.start, data.end] by label slicing: the
    # same texts must slice a naive nanosecond index (no offsets, no "now").
    probe = pd.Series([0.0, 0.0], index=pd.DatetimeIndex(["2000-01-01", "2000-01-02"]).as_unit("ns"))
    for field, text in (("data.start", data.start), ("data.end", data.end)):
        if text is None:
            continue
        try:
            probe.loc[text:] if field == "data.start" else probe.loc[:text]
        except Exception:
            raise ConfigError(path, field, f"{text!r} cannot cut synthetic bars: give a date/time without an offset") from None


def _data_files(cfg: RunConfig, path: Path) -> None:
    """Each symbol's data file exists (as backtest.load_ohlcv will look for it)."""
    for symbol in cfg.data.symbols:
        shown = cfg.data.path.format(symbol=symbol)
        for part in Path(shown).parts:
            if len(part.encode("utf-8", "surrogatepass")) > COMPONENT_MAX:
                raise ConfigError(path, "data.path",
                                  f"a file name in {_short_repr(shown)} is longer than {COMPONENT_MAX} bytes")
        try:
            file = Path(shown).expanduser()
            if not file.is_absolute():
                file = path.parent / file
            exists = file.exists()
            is_file = exists and file.is_file()
        except (OSError, RuntimeError, ValueError) as exc:
            raise ConfigError(path, "data.path", f"{shown} cannot be checked (symbol {symbol}): {exc}") from None
        if not exists:
            raise ConfigError(path, "data.path", f"{file} not found (symbol {symbol})")
        if not is_file:
            raise ConfigError(path, "data.path", f"{file} is not a file (symbol {symbol})")


def _check_semantics(cfg: RunConfig, path: Path) -> None:
    """Checks that need the backtest library or the file system."""
    if not cfg.strategy.is_user_backtest:
        try:
            strategy = backtest.get_strategy(cfg.strategy.name)
        except KeyError:
            known = ", ".join(sorted(backtest.STRATEGIES))
            raise ConfigError(
                path, "strategy.name",
                f"unknown strategy {_short_repr(cfg.strategy.name)} (known: {known}, or package.module:function)",
            ) from None
        accepted = [*strategy.defaults, "stop_loss"]  # stop_loss: the engine's, searchable too
        for section, names in (("space", cfg.space), ("strategy.fixed", cfg.strategy.fixed)):
            for name in names:
                if name not in accepted:
                    raise ConfigError(
                        path, f"{section}.{name}",
                        f"{cfg.strategy.name} has no parameter {_short_repr(name)} (it takes {', '.join(accepted)})",
                    )
        for metric in cfg.study.metrics:
            if metric not in backtest.METRICS:
                raise ConfigError(
                    path, "study.metric", f"unknown metric {_short_repr(metric)} (known: {', '.join(backtest.METRICS)})"
                )
    else:
        try:
            backtest.resolve_user_backtest(cfg.strategy.name, search_path=path.parent)
        except (ImportError, ValueError, AttributeError) as exc:
            raise ConfigError(path, "strategy.name", str(exc)) from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the user's module failed to import: SyntaxError, anything, even sys.exit()
            raise ConfigError(
                path, "strategy.name", f"importing {cfg.strategy.name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    overlap = set(cfg.space) & set(cfg.strategy.fixed)
    if overlap:
        raise ConfigError(path, f"strategy.fixed.{sorted(overlap)[0]}", "is also in [space]: choose one")
    _check_period(cfg, path)
    if cfg.data.path is not None:
        _data_files(cfg, path)
    _check_sampler_available(cfg, path)


GRID_LIMIT = 100_000  # combinations we enumerate (dedup picks a free one among them)
# Optuna's GridSampler rescans every earlier trial after each one (quadratic):
# 800 trials took 41 s in memory (benchmarks/bench_samplers.py). Beyond this, TPE.
GRID_SAMPLER_LIMIT = 5_000


GRID_SIZE_CAP = 10**18  # grid_size stops counting here: any such space is far beyond every limit


def grid_size(cfg: RunConfig) -> int | None:
    """Number of distinct parameter combinations (at most GRID_SIZE_CAP), or None
    if a float has no step. Arithmetic only: fast for any range."""
    size = 1
    for p in cfg.space.values():
        if isinstance(p, CategoricalParam):
            n = len(p.choices)
        elif isinstance(p, IntParam):
            n = (p.high - p.low) // p.step + 1
        elif p.step is not None:
            steps = (p.high - p.low) / p.step
            n = int(round(steps)) + 1 if steps < GRID_SIZE_CAP else GRID_SIZE_CAP
        else:
            return None
        size = min(size * n, GRID_SIZE_CAP)
    return size


def _check_sampler_available(cfg: RunConfig, path: Path) -> None:
    if cfg.sampler.type == "grid":
        size = grid_size(cfg)
        if any(p.when for p in cfg.space.values()):
            raise ConfigError(path, "sampler.type", "grid cannot search conditional parameters: use tpe")
        if size is None:
            raise ConfigError(path, "sampler.type", "grid needs a discrete space: give every float a step")
        if size > GRID_SAMPLER_LIMIT:
            shown = f"more than {GRID_SIZE_CAP:.0e}" if size >= GRID_SIZE_CAP else f"{size:,}"
            raise ConfigError(path, "sampler.type",
                              f"grid of {shown} points is too large (limit {GRID_SAMPLER_LIMIT:,}): use tpe")
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
        except Exception as exc:  # installed but broken (a missing shared library, …)
            raise ConfigError(
                path, "sampler.type", f"sampler {cfg.sampler.type!r}: importing {module!r} failed: {exc}"
            ) from None


def _read_text(path: Path) -> str:
    """The file's text; ConfigError for anything that is not a readable UTF-8 file of sane size."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(path, "", "is a directory, not a config file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(path, "", "is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(path, "", f"is {info.st_size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,}")
        with open(path, "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(path, "", "file not found") from None
    except PermissionError:
        raise ConfigError(path, "", "cannot be read: permission denied") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL in the path
        raise ConfigError(path, "", f"not a usable path: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", f"a config file is at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors write


def _check_values(value: Any, path: Path, field: str = "", depth: int = 0) -> None:
    """Checks on every value, whatever its place: no nan/inf, no integer beyond 64 bits,
    no NUL (PostgreSQL text cannot hold one), no absurd nesting."""
    if depth > MAX_DEPTH:
        raise ConfigError(path, field, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str) or "\x00" in key:
                raise ConfigError(path, sub, "a key must be text without NUL characters")
            _check_values(item, path, sub, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, path, f"{field}.{i}", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, field, f"must be a finite number (got {value})")
    elif isinstance(value, int) and not -(2**63) <= value < 2**63:  # TOML's integers are 64-bit
        raise ConfigError(path, field, f"integer beyond 64 bits (got {_short_repr(value)})")
    elif isinstance(value, str) and "\x00" in value:
        raise ConfigError(path, field, "must not contain a NUL character")


def _validation_error(exc: ValidationError, path: Path) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    field = _field_path(err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field (misspelled?)"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif err["type"] == "missing":
        message = "required field is missing"
    elif "input" in err and err["type"] not in ("union_tag_invalid",):
        message = f"{message} (got {_short_repr(err['input'])})"
    return ConfigError(path, field, message)


def _load(path: Path) -> RunConfig:
    text = _read_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "", "not valid TOML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    _check_values(raw, path)
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, path) from None
    cfg = cfg.model_copy(update={"source_path": path.resolve()})
    _check_semantics(cfg, path)
    return cfg


def load_config(path: str | Path | None) -> RunConfig:
    """Read and validate a config file; ``None`` means the bundled demo.

    Returns a valid RunConfig or raises ConfigError (one line: file: field: problem);
    never another exception."""
    path = Path(path) if path is not None else DEMO_CONFIG
    try:
        return _load(path)
    except ConfigError:
        raise
    except Exception as exc:  # a safety net: every known cause is reported above, with its field
        raise ConfigError(path, "", f"cannot be read: {type(exc).__name__}: {exc}") from None
