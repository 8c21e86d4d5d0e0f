"""Every input gives a RunConfig or one ConfigError line: a fuzz of mutated configs.

A valid base config is mutated (values of the wrong type, out-of-range numbers,
nan/inf, odd strings, deleted and unknown keys, tables where scalars go, raw
bytes) and written as TOML; ``load_config`` must return a RunConfig or raise a
ConfigError whose message is one line starting with the file's path, never
another exception. Derandomized, so CI sees the same few hundred examples.
Then the real CLI on a few bad configs: exit 2, one ``error:`` line, no traceback.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.config import ConfigError, RunConfig, load_config
from tests.helpers import ROOT, small_config

BASE = {
    "study": {
        "name": "fz", "metric": "sharpe", "target_trials": 20, "max_attempts": 60, "workers_per_symbol": 1,
        "min_trades": 1, "heartbeat_seconds": 0.5, "grace_seconds": 3.0, "float_precision": 6,
    },
    "data": {
        "symbols": ["AAA", "BBB"], "start": "2020-01-10", "end": "2020-03-01",
        "synthetic": {"bars": 2000, "freq": "1h", "seed": 1, "start": "2020-01-01"},
    },
    "strategy": {"name": "ma_crossover", "fees_bps": 1.0, "slippage_bps": 1.0, "stop_loss": 0.05,
                 "fixed": {"allow_short": False}},
    "sampler": {"type": "tpe", "seed": 3, "n_startup_trials": 5, "n_ei_candidates": 24},
    "pruner": {"type": "median", "steps": 4, "n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1,
               "percentile": 25.0, "reduction_factor": 3, "min_resource": 1, "min_early_stopping_rate": 0,
               "p_threshold": 0.1},
    "constraints": {"max_drawdown": 0.5, "min_trades": 1, "max_volatility": 2.0},
    "space": {
        "fast": {"type": "int", "low": 2, "high": 20, "step": 1},
        "slow": {"type": "int", "low": 25, "high": 80},
        "ma_type": {"type": "categorical", "choices": ["sma", "ema"]},
        "stop_loss": {"type": "float", "low": 0.01, "high": 0.1, "step": 0.01},
    },
}
# Swapped in whole, so the file-based branch (data.path) is fuzzed too.
FILE_DATA = {"symbols": ["AAA"], "path": "data/{symbol}.csv", "start": "2020-01-10"}

ODD_STRINGS = [
    "", " ", "x" * 101, "x" * 300, "y" * 5000, "ünïcödé", "日本", "a\nb", "a\rb", "tab\there", "nul\x00",
    "\x1b[31m", "\u2028", "\x85", "[/x]", "[bold]", "-sym", "--help", "a/b", "../..", "/", ".", "..",
    "{symbol}", "{", "}", "{0}", "{symbol.x}", "{symbol!r}", "{sym}", "~nosuchuser/x", "x" * 300 + "/{symbol}",
    "now", "NaT", "2020-13-01", "2020-01-01T00:00+05:00", "0001-01-01", "9999-12-31", "2262-04-12",
    "1h", "0h", "-1h", "H", "1y", "MS", "bh", "100000D", "ma_crossover", "x:y", "nomodule:fn",
    "sharpe", "max_drawdown", "maximize", "grid", "cmaes", "int", "float", "categorical",
]
ODD_NUMBERS = [
    0, -1, 1, 2, 99, 100, 2**31, 2**32, 2**53 + 1, 2**63, -(2**63), 10**30, 10**400,
    0.0, -0.0, 0.05, 0.5, 1.5, 1e-300, 5e-324, 1e300, 1.7976931348623157e308, -1e308,
    math.nan, math.inf, -math.inf,
]


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


scalars = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(ODD_NUMBERS),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.dates(min_value=dt.date(1, 1, 1)),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
    st.sampled_from([_nested(20), _nested(60), list(range(300))]),  # deep, long
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(ODD_STRINGS) | st.text(max_size=8),
                                                                 inner, max_size=3),
    max_leaves=8,
)
# Near-valid values, so that many mutants pass the type checks and reach the later ones.
PLAUSIBLE = [
    True, False, 0, 1, 3, 7, 99, 100, 200, 5000, 10**7, 10**7 + 1, 3 * 10**7 + 1, 10**8, 2**32 - 1, 2**32, -5,
    0.001, 0.09, 0.1, 0.5, 300.0, 301.0, 3600.0, 3601.0, 9999.0, 10000.0, 1e300, 1e301, 1e-16,
    "15min", "1D", "B", "W-MON", "MS", "2019-12-31", "2020-02", "2020-06-01 12:00", "2020-01-01T00:00Z", "today",
    "sma", "ema", "random", "qmc", "grid", "hyperband", "successive_halving", "wilcoxon", "percentile", "none",
    "minimize", "max_drawdown", "rsi_reversion", "AAA", "x" * 64, "x" * 65, "x" * 100, "data/AAA.csv",
]


# ------------------------------------------------------------------ TOML writer

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_string(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc: dict) -> str:
    """Each top-level key on its own line, tables inline (valid TOML for any nesting)."""
    return "".join(f"{_string(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


# ------------------------------------------------------------------ mutations


def _paths(doc, prefix=()):
    """Every key path in the document (tables, arrays' items and leaves), 8 levels deep at most."""
    if len(prefix) >= 8:
        return
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _parent(doc, path):
    for k in path[:-1]:
        doc = doc[k]
    return doc


@st.composite
def mutated_configs(draw) -> str | bytes:
    doc = copy.deepcopy(BASE)
    # Places are picked uniformly by a seeded generator (Hypothesis's own choices
    # favour the first, here [study]); the values come from Hypothesis.
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    if rnd.random() < 0.3:
        doc["data"] = copy.deepcopy(FILE_DATA)
    for _ in range(rnd.choice([1, 1, 2, 3])):
        paths = list(_paths(doc))
        op = rnd.choice(["replace"] * 5 + ["delete", "add", "table"])
        if not paths:
            break
        path = rnd.choice(paths)
        parent = _parent(doc, path)
        if op == "replace" and rnd.random() < 0.5:
            parent[path[-1]] = rnd.choice(PLAUSIBLE)
        elif op == "replace":
            parent[path[-1]] = copy.deepcopy(draw(values))  # a copy: later mutations must not touch shared ones
        elif op == "delete":
            del parent[path[-1]]
        elif op == "table":
            parent[path[-1]] = {"x": copy.deepcopy(draw(scalars))}
        else:
            tables = [doc] + [t for p in paths if isinstance(t := _parent(doc, (*p, None)), dict)]
            key = draw(st.sampled_from(ODD_STRINGS) | st.text(min_size=1, max_size=10))
            rnd.choice(tables)[key] = copy.deepcopy(draw(values))
    text = toml_document(doc)
    how = rnd.choice(["text"] * 17 + ["bytes", "cut", "deep"])
    if how == "deep":  # deeper than the TOML parser can recurse
        return '"deep" = ' + "[" * 3000 + "]" * 3000 + "\n" + text
    if how == "bytes":  # not UTF-8 somewhere
        at = draw(st.integers(0, len(text)))
        return text[:at].encode() + draw(st.binary(min_size=1, max_size=4).filter(_not_utf8)) + text[at:].encode()
    if how == "cut":  # truncated: rarely valid TOML
        return text[: draw(st.integers(0, len(text)))]
    return text


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "data").mkdir()
    (folder / "data" / "AAA.csv").write_text("timestamp,open,high,low,close\n")
    return folder


def assert_loads_or_one_line_error(path: Path) -> RunConfig | ConfigError:
    try:
        return load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and len(message.splitlines()) == 1, repr(message)
        assert message.startswith(str(path)), repr(message)
        # load_config's last-resort net turns any unexpected exception into "cannot be
        # read: SomeError: …": that is a crash the fuzz must still catch.
        assert not re.match(r"cannot be read: \w+(Error|Exception):", exc.problem), repr(message)
        return exc


def test_the_base_config_is_valid(fuzz_dir):
    path = fuzz_dir / "base.toml"
    path.write_text(toml_document(BASE))
    assert isinstance(load_config(path), RunConfig)
    path.write_text(toml_document({**BASE, "data": FILE_DATA}))
    assert isinstance(load_config(path), RunConfig)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(content=mutated_configs())
def test_mutated_configs_load_or_fail_in_one_line(fuzz_dir, content):
    path = fuzz_dir / "fuzz.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    assert_loads_or_one_line_error(path)  # any other exception, or the last-resort net, fails the test


# ------------------------------------------------------------------ the real CLI

CLI_CASES = {
    # name: (edit of the small config, field named in the error)
    "nan heartbeat": (lambda t: t.replace("heartbeat_seconds = 0.5", "heartbeat_seconds = nan"),
                      "study.heartbeat_seconds"),
    "unparsable freq": (lambda t: t.replace("seed = 1\n", 'seed = 1\nfreq = "fortnightly"\n'), "data.synthetic.freq"),
    "symbol like an option": (lambda t: t.replace("symbols = ['AAA']", "symbols = ['-AAA']"), "data.symbols.0"),
    "wrong top-level type": (lambda t: "sampler = 3\n" + t.replace("[sampler]\nseed = 3\nn_startup_trials = 5\n", ""),
                             "sampler"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_run_rejects_a_bad_config_in_one_line(tmp_path, case):
    edit, field = CLI_CASES[case]
    path = small_config(tmp_path)
    text = path.read_text()
    path.write_text(edit(text))
    assert path.read_text() != text
    # No database is reachable: the config must be rejected before one is opened.
    env = {**os.environ, "TUNE_STORAGE_URL": "postgresql://nobody@127.0.0.1:1/none", "TUNE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: {field}: "), lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
