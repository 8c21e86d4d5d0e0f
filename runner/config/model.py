"""The run configuration as typed models: what each field may hold (see fields.py for bounds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

import backtest

from .fields import (
    MAX_BARS,
    MAX_BPS,
    MAX_FLOAT_PARAM,
    MAX_FLOAT_STEPS,
    MAX_INT_PARAM,
    MAX_SEED,
    MAX_TRIALS,
    NAME_MAX,
    PATH_MAX,
    SYMBOL_MAX,
    TimeText,
    _check_freq,
    _check_path_template,
    _check_symbol,
    _short_repr,
)


class _Strict(BaseModel):
    # A misspelled field is an error, never silently ignored; nan and inf are never numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


Scalar = bool | int | float | str


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
    def _check(self) -> FloatParam:
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
    def _check(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log-scaled int range needs low > 0 and step 1")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


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
    # A failed backtest (NaN, inf, an exception): "avoid" tells Optuna an infeasible trial so
    # TPE steers away (the trial still shows as failed, with its reason); "ignore" fails it
    # in Optuna too, which every sampler skips.
    on_failure: Literal["avoid", "ignore"] = "avoid"
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
    def _check(self) -> StudySettings:
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
    def _check(self) -> DataSettings:
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
    def _check(self) -> SamplerSettings:
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


class WalkForward(_Strict):
    """Walk-forward analysis: the optimized period (before any holdout) cut into
    ``folds + 1`` equal segments; fold i trains on segment i - 1 ("rolling") or on
    segments 0 .. i - 1 ("anchored") and is tested on segment i, which it never saw.
    Each fold is a study of its own, ``{name}-{symbol}-wf{i}``."""

    folds: int = Field(default=4, ge=2, le=20)
    mode: Literal["rolling", "anchored"] = "rolling"


class ValidationSettings(_Strict):
    """Data the optimizer never sees, and how the best trials are checked against luck.

    ``holdout``: the last part of each symbol's bars — a fraction (0.3: the last 30 %)
    or the first timestamp of the holdout — is reserved: trials, pruning and the sampler
    see only the bars before it. The best ``top_k`` distinct trials are evaluated on it
    as they enter the top (and, by ``tune report``, any still missing), and the report
    sets in-sample beside out-of-sample. It is reported, never used to select.
    """

    holdout: float | TimeText | None = None
    top_k: int = Field(default=10, ge=2, le=200)
    # PBO's memory: C(blocks, blocks/2) splits x trials, a few such matrices (16, 100: ~10 MB each).
    pbo_trials: int = Field(default=16, ge=2, le=100)  # best distinct trials whose per-bar returns PBO compares
    pbo_blocks: int = Field(default=16, ge=2, le=16)  # CSCV blocks (even): C(16, 8) = 12,870 splits
    # Which trial tune report and tune export put forward: the best value, or the best median
    # over a trial and its neighbours among the top_k (a plateau over a peak).
    select: Literal["value", "robust"] = "value"
    walk_forward: WalkForward | None = None
    # The first worker to end the study writes its report (runs the backtest for PBO,
    # robustness and selection); false: only tune report does.
    report_at_end: bool = True
    # A worker recomputes the study's parameter importances as trials arrive, in a thread
    # beside its trial loop, within 2 % of its time (runner/importances.py); false: only
    # the report computes them.
    live_importances: bool = True

    @field_validator("holdout")
    @classmethod
    def _check_holdout(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0.0 < value <= 0.9:
            raise ValueError(f"must be a fraction in (0, 0.9] or a timestamp (got {value})")
        return value

    @field_validator("pbo_blocks")
    @classmethod
    def _check_blocks(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (got {value})")
        return value


def _check_http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("must not contain spaces or control characters (write them %-encoded)")
    return text


HttpURL = Annotated[str, Field(max_length=2000), AfterValidator(_check_http_url)]
EnvName = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
NotifyEvent = Literal["new_best", "progress", "done", "worker_crashed", "worker_lost", "stalled",
                      "database_unreachable"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = NotifyEvent.__args__  # type: ignore[attr-defined]


class _URLChannel(_Strict):
    """A channel that is one URL: given in the file, or — when the URL is itself the secret,
    as a Slack incoming webhook's is — read from the environment variable named."""

    url: HttpURL | None = None
    url_env: EnvName | None = None

    @model_validator(mode="after")
    def _one(self) -> _URLChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give url or url_env (the name of an environment variable holding the URL), not both")
        return self


class WebhookChannel(_URLChannel):
    """A JSON POST of every message to a URL of the user's: {event, study, run, host, text, data}."""


class SlackChannel(_URLChannel):
    """A Slack incoming webhook."""


class TelegramChannel(_Strict):
    """A Telegram bot's message to one chat; the bot's token is read from the environment
    variable named, never from the file (a config is shared, copied and refined)."""

    token_env: EnvName
    chat_id: Annotated[str, Field(min_length=1, max_length=100)] | int
    api_url: HttpURL = "https://api.telegram.org"  # another server speaking the Bot API (tests, a proxy)


class NotifySettings(_Strict):
    """Messages to a phone or a chat when something happens to a run's studies (runner/notify.py).
    Each event is sent once, whichever of the run's workers on whichever host sees it."""

    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    telegram: TelegramChannel | None = None
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1)
    dry_run: bool = False  # write the messages to the worker's log and the study's log instead of sending them
    min_improvement: float = Field(default=0.0, ge=0)  # new best: by at least this much over the last one told
    best_every_seconds: float = Field(default=60.0, ge=0, le=86_400)  # new best: at most one per study per this
    progress_every: int = Field(default=0, ge=0, le=MAX_TRIALS)  # complete trials between progress messages; 0: none
    stalled_minutes: float = Field(default=30.0, gt=0, le=10_080)  # no trial finished for this long: stalled
    unreachable_seconds: float = Field(default=60.0, ge=1, le=86_400)  # a wait this long: database unreachable
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)  # one HTTP request
    retries: int = Field(default=3, ge=0, le=10)  # after a failed request (1 s, 2 s, 4 s … apart)

    @model_validator(mode="after")
    def _check(self) -> NotifySettings:
        if not (self.channels or self.dry_run):
            raise ValueError("give a channel ([notify.webhook], [notify.slack] or [notify.telegram]), "
                             "or dry_run = true")
        if len(set(self.events)) != len(self.events):
            raise ValueError("events: each event once")
        return self

    @property
    def channels(self) -> dict[str, WebhookChannel | SlackChannel | TelegramChannel]:
        found = {"webhook": self.webhook, "slack": self.slack, "telegram": self.telegram}
        return {name: channel for name, channel in found.items() if channel is not None}


class RunConfig(_Strict):
    study: StudySettings
    data: DataSettings
    strategy: StrategySettings
    sampler: SamplerSettings = SamplerSettings()
    pruner: PrunerSettings = PrunerSettings()
    constraints: ConstraintSettings = ConstraintSettings()
    validation: ValidationSettings = ValidationSettings()
    notify: NotifySettings | None = None
    space: dict[str, Param] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        for name, p in self.space.items():
            for other, value in (p.when or {}).items():
                if other == name or other not in self.space:
                    raise ValueError(f"space.{name}.when names {other!r}, which is not another parameter of the space")
                q = self.space[other]
                if q.when:
                    raise ValueError(f"space.{name}.when: {other!r} is itself conditional; one level only")
                if isinstance(q, CategoricalParam) and value not in q.choices:
                    raise ValueError(f"space.{name}.when: {value!r} is not one of {other}'s choices")
        names = self.study_names()
        if len(set(names)) != len(names):  # a symbol named like another's fold ("AAA-wf1")
            raise ValueError("two studies would share a name: rename a symbol or drop walk_forward")
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

    def study_name(self, symbol: str, fold: int | None = None) -> str:
        """``{name}-{symbol}``; a walk-forward fold's: ``{name}-{symbol}-wf{fold}``."""
        return f"{self.study.name}-{symbol}" if fold is None else f"{self.study.name}-{symbol}-wf{fold}"

    def folds(self) -> list[int | None]:
        """None (the symbol's main study), then each walk-forward fold's number."""
        wf = self.validation.walk_forward
        return [None, *(range(1, wf.folds + 1) if wf else ())]

    def study_units(self) -> list[tuple[str, int | None]]:
        """(symbol, fold) of every study the config runs, each symbol's main study first."""
        return [(symbol, fold) for symbol in self.data.symbols for fold in self.folds()]

    def study_names(self) -> list[str]:
        return [self.study_name(symbol, fold) for symbol, fold in self.study_units()]


