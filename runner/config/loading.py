"""Reading a config file: TOML, the model, then the checks that need the file system,
the backtest library or the search space. Every problem becomes one ConfigError."""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.tseries.frequencies import to_offset
from pydantic import ValidationError

import backtest

from ..space import GRID_SAMPLER_LIMIT, GRID_SIZE_CAP, grid_size, is_conditional
from .fields import (
    _TIME_MAX,
    _TIME_MIN,
    COMPONENT_MAX,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    ConfigError,
    _short_repr,
    parse_time,
)
from .model import RunConfig, SyntheticData

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo.toml"


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
    assert cfg.data.path is not None
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


def _check_sampler_available(cfg: RunConfig, path: Path) -> None:
    if cfg.sampler.type == "grid":
        size = grid_size(cfg)
        if is_conditional(cfg):
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
