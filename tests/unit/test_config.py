"""A broken config names the file, the field and the problem; the CLI exits 2 without a traceback."""

from __future__ import annotations

import os

import pytest

from runner.config import DEMO_CONFIG, ConfigError, load_config
from tests.helpers import small_config, tune, write_config


def test_demo_config_is_valid():
    cfg = load_config(None)
    assert cfg.source_path == DEMO_CONFIG.resolve()
    assert cfg.data.symbols == ["AAA", "BBB", "CCC"]
    assert cfg.direction == "maximize"
    assert cfg.study_name("AAA") == "demo-AAA"


def test_direction_defaults_to_the_metrics_natural_one(tmp_path):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace('[study]\n', '[study]\nmetric = "max_drawdown"\n'))
    assert load_config(path).direction == "minimize"


BROKEN = {
    # name: (edit of the small config, expected field, words expected in the problem)
    "misspelled field": (lambda t: t.replace("target_trials", "target_trails"), "study.target_trails", "unknown field"),
    "low above high": (lambda t: t.replace("low = 25", "low = 95"), "space.slow", "low (95) must be below high (80)"),
    "unknown strategy": (lambda t: t.replace('name = "ma_crossover"', 'name = "ma_crosover"'), "strategy.name",
                         "unknown strategy"),
    "unknown metric": (lambda t: t.replace("[study]\n", '[study]\nmetric = "sharp"\n'), "study.metric", "unknown metric"),
    "missing data file": (
        lambda t: t.replace("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "nowhere/{symbol}.csv"\n'),
        "data.path", "not found (symbol AAA)",
    ),
    "parameter the strategy lacks": (
        lambda t: t.replace("[space.slow]", "[space.slw]"), "space.slw", "has no parameter 'slw'"
    ),
    "wrong type": (lambda t: t.replace("target_trials = 20", 'target_trials = "many"'), "study.target_trials", "valid integer"),
    "unknown sampler": (lambda t: t.replace("[sampler]\n", '[sampler]\ntype = "bayes"\n'), "sampler.type", "tpe"),
    "missing section": (lambda t: t.replace("[strategy]\n", "[strategy_]\n"), "strategy", "required"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_names_file_field_and_problem(tmp_path, case):
    edit, field, words = BROKEN[case]
    path = small_config(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field
    assert words in info.value.problem
    assert str(info.value).startswith(str(path))


def test_invalid_toml_and_missing_file(tmp_path):
    bad = write_config(tmp_path / "bad.toml", "[study\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("command", [["run"], ["status"], ["worker", "--symbol", "AAA"]])
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path, command):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace("low = 25", "low = 95"))
    args = [command[0], str(path), *command[1:]]
    proc = tune(*args, env={"TUNE_STORAGE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "space.slow" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


# ------------------------------------------------- every bad input: one ConfigError line naming the field


def _add(section: str, line: str):
    """An edit that adds ``line`` at the top of ``[section]``."""
    return lambda t: t.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


def _sub(old: str, new: str):
    def edit(t: str) -> str:
        assert old in t, old
        return t.replace(old, new, 1)
    return edit


FLOAT_SPACE = '\n[space.stop_loss]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n'

BAD_VALUES = {
    # name: (edit of the small config, field named, words expected in the problem)
    "freq not a frequency": (_add("data.synthetic", 'freq = "fortnightly"'), "data.synthetic.freq", "not a pandas frequency"),
    "freq deprecated alias": (_add("data.synthetic", 'freq = "H"'), "data.synthetic.freq", "not a pandas frequency"),
    "freq zero": (_add("data.synthetic", 'freq = "0h"'), "data.synthetic.freq", "positive"),
    "freq negative": (_add("data.synthetic", 'freq = "-1h"'), "data.synthetic.freq", "positive"),
    "synthetic start unparsable": (_add("data.synthetic", 'start = "2020-13-01"'), "data.synthetic.start", "cannot parse"),
    "synthetic start empty": (_add("data.synthetic", 'start = ""'), "data.synthetic.start", "not a date/time"),
    "synthetic start with a zone": (_add("data.synthetic", 'start = "2020-01-01T00:00+05:00"'),
                                    "data.synthetic.start", "no time zone"),
    "synthetic start out of range": (_add("data.synthetic", 'start = "0001-01-01"'), "data.synthetic.start", "outside"),
    "bars beyond 2262": (_sub("bars = 2000", 'bars = 2000\nfreq = "100D"'), "data.synthetic.bars", "2262"),
    "data start unparsable": (_add("data", 'start = "someday"'), "data.start", "cannot parse"),
    "data end unparsable": (_add("data", 'end = "2020-02-30"'), "data.end", "cannot parse"),
    "data end NaT": (_add("data", 'end = "NaT"'), "data.end", "not a date/time"),
    "start after end": (_add("data", 'start = "2020-03-01"\nend = "2020-02-01"'), "data.start", "after data.end"),
    "synthetic cut with a zone": (_add("data", 'start = "2020-01-05T00:00+05:00"'), "data.start", "without an offset"),
    "synthetic cut at now": (_add("data", 'end = "now"'), "data.end", "cannot cut synthetic bars"),
    "study name too long": (_sub('name = "t"', f'name = "{"n" * 101}"'), "study.name", "at most 100 characters"),
    "symbol too long": (_sub("symbols = ['AAA']", f"symbols = ['{'S' * 65}']"), "data.symbols.0", "at most 64 characters"),
    "symbol like an option": (_sub("symbols = ['AAA']", "symbols = ['-AAA']"), "data.symbols.0", "must not start with '-'"),
    "data.path too long": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", f'path = "{"d/" * 2100}{{symbol}}"\n'),
                           "data.path", "at most 4096 characters"),
    "data.path name too long": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", f'path = "{"f" * 300}{{symbol}}.csv"\n'),
                                "data.path", "longer than 255 bytes"),
    "data.path unknown field": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "{sym}.csv"\n'),
                                "data.path", "only {symbol} may appear"),
    "data.path open brace": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "{symbol.csv"\n'),
                             "data.path", "braces do not match"),
    "data.path control character": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "a\\nb/{symbol}.csv"\n'),
                                    "data.path", "control characters"),
    "data.path a folder": (_sub("[data.synthetic]\nbars = 2000\nseed = 1\n", 'path = "."\n'), "data.path", "is not a file"),
    "target_trials beyond int4": (_sub("target_trials = 20", "target_trials = 2147483648"), "study.target_trials",
                                  "less than or equal to 10000000"),
    "max_attempts beyond int4": (_add("study", "max_attempts = 9223372036854775807"), "study.max_attempts",
                                 "less than or equal to 30000000"),
    "workers_per_symbol huge": (_sub("workers_per_symbol = 1", "workers_per_symbol = 100000"),
                                "study.workers_per_symbol", "less than or equal to 64"),
    "bars too many for memory": (_sub("bars = 2000", "bars = 50000001"), "data.synthetic.bars",
                                 "less than or equal to 10000000"),
    "heartbeat too short": (_sub("heartbeat_seconds = 0.5", "heartbeat_seconds = 0.01"), "study.heartbeat_seconds",
                            "greater than or equal to 0.1"),
    "heartbeat too long": (_sub("heartbeat_seconds = 0.5", "heartbeat_seconds = 301"), "study.heartbeat_seconds",
                           "less than or equal to 300"),
    "heartbeat nan": (_sub("heartbeat_seconds = 0.5", "heartbeat_seconds = nan"), "study.heartbeat_seconds", "finite"),
    "grace inf": (_sub("grace_seconds = 3", "grace_seconds = inf"), "study.grace_seconds", "finite"),
    "grace too long": (_sub("grace_seconds = 3", "grace_seconds = 3601"), "study.grace_seconds", "less than or equal to 3600"),
    "grace below twice heartbeat": (_sub("grace_seconds = 3", "grace_seconds = 0.9"), "study", "at least twice"),
    "fees too high": (_add("strategy", "fees_bps = 10000"), "strategy.fees_bps", "less than 10000"),
    "slippage inf": (_add("strategy", "slippage_bps = inf"), "strategy.slippage_bps", "finite"),
    "stop_loss nan": (_add("strategy", "stop_loss = nan"), "strategy.stop_loss", "finite"),
    "penalty nan": (_add("study", "min_trades_penalty = nan"), "study.min_trades_penalty", "finite"),
    "penalty -inf": (_add("study", "min_trades_penalty = -inf"), "study.min_trades_penalty", "finite"),
    "space low -inf": (lambda t: t + FLOAT_SPACE.replace("low = 0.01", "low = -inf"), "space.stop_loss.low", "finite"),
    "space high nan": (lambda t: t + FLOAT_SPACE.replace("high = 0.1", "high = nan"), "space.stop_loss.high", "finite"),
    "space step inf": (lambda t: t + FLOAT_SPACE + "step = inf\n", "space.stop_loss.step", "finite"),
    "space float beyond 1e300": (lambda t: t + FLOAT_SPACE.replace("high = 0.1", "high = 1.7e308"),
                                 "space.stop_loss.high", "within ±1e+300"),
    "space step too small": (lambda t: t + FLOAT_SPACE + "step = 1e-300\n", "space.stop_loss", "step 1e-300 is too small"),
    "space int beyond 2**53": (_sub("low = 2\n", "low = -9223372036854775808\n"), "space.fast.low",
                               "greater than or equal to -9007199254740992"),
    "categorical choice nan": (lambda t: t + '\n[space.ma_type]\ntype = "categorical"\nchoices = ["sma", nan]\n',
                               "space.ma_type.choices.1", "finite"),
    "fixed value inf": (lambda t: t + "\n[strategy.fixed]\nallow_short = inf\n", "strategy.fixed.allow_short", "finite"),
    "sampler seed negative": (_sub("seed = 3", "seed = -1"), "sampler.seed", "greater than or equal to 0"),
    "sampler seed beyond numpy": (_sub("seed = 3", "seed = 4294967296"), "sampler.seed", "less than or equal to 4294967295"),
    "synthetic seed beyond numpy": (_sub("seed = 1\n", "seed = 9223372036854775807\n"), "data.synthetic.seed",
                                    "less than or equal to 4294967295"),
    "integer beyond 64 bits": (lambda t: t + '\n[space.ma_type]\ntype = "categorical"\nchoices = [1, 18446744073709551616]\n',
                               "space.ma_type.choices.1", "beyond 64 bits"),
    "n_startup_trials huge": (_sub("n_startup_trials = 5", "n_startup_trials = 10000000000"), "sampler.n_startup_trials",
                              "less than or equal to 10000000"),
    "n_ei_candidates huge": (_add("sampler", "n_ei_candidates = 100000000"), "sampler.n_ei_candidates",
                             "less than or equal to 10000"),
    "pruner percentile nan": (lambda t: t + '\n[pruner]\ntype = "percentile"\npercentile = nan\n', "pruner.percentile", "finite"),
    "pruner reduction_factor huge": (lambda t: t + "\n[pruner]\nreduction_factor = 1000000\n", "pruner.reduction_factor",
                                     "less than or equal to 100"),
    "pruner min_early_stopping_rate huge": (lambda t: t + "\n[pruner]\nmin_early_stopping_rate = 1000000\n",
                                            "pruner.min_early_stopping_rate", "less than or equal to 50"),
    "pruner n_warmup_steps huge": (lambda t: t + "\n[pruner]\nn_warmup_steps = 1000000000\n", "pruner.n_warmup_steps",
                                   "less than or equal to 1000"),
    "min_trades huge": (_add("study", "min_trades = 100000000000"), "study.min_trades", "less than or equal to 10000000"),
    "constraint min_trades huge": (lambda t: t + "\n[constraints]\nmin_trades = 100000000000\n", "constraints.min_trades",
                                   "less than or equal to 10000000"),
    "constraint max_drawdown inf": (lambda t: t + "\n[constraints]\nmax_drawdown = inf\n", "constraints.max_drawdown", "finite"),
    "metric name empty": (_add("study", 'metric = ""'), "study.metric", "1 to 100 characters"),
    "NUL in a string": (_add("study", 'metric = "sharpe\\u0000"'), "study.metric", "NUL"),
    "parameter type not a string": (_sub('[space.fast]\ntype = "int"', "[space.fast]\ntype = 5"), "space.fast",
                                    "does not match any of the expected tags"),
    "list where a table goes": (_sub("[sampler]", "[[sampler]]"), "sampler", "valid dictionary"),
    "when not a table": (_sub("[space.slow]\n", '[space.slow]\nwhen = "x"\n'), "space.slow.when", "valid dictionary"),
    "metric of the wrong type": (_add("study", "metric = 5"), "study.metric", "valid string"),
    "direction of the wrong type": (_add("study", "direction = 5"), "study.direction", "maximize"),
    "table nested too deep": (lambda t: t + "\n[strategy.fixed]\nx = " + "[" * 40 + "]" * 40 + "\n",
                              "strategy.fixed.x" + ".0" * 14, "nested more than 16 levels"),
    # types are strict: TOML says what a value is, and a quoted number or a 1 for true is a mistake
    "a boolean for a count": (_sub("target_trials = 20", "target_trials = true"), "study.target_trials", "valid integer"),
    "a quoted count": (_sub("target_trials = 20", 'target_trials = "20"'), "study.target_trials", "valid integer"),
    "a 1 for true": (_add("study", "dedup = 1"), "study.dedup", "valid boolean"),
    "a word for false": (_add("study", 'resume = "no"'), "study.resume", "valid boolean"),
    "a quoted number": (_add("strategy", 'fees_bps = "1"'), "strategy.fees_bps", "valid number"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_value_is_one_line_naming_the_field(tmp_path, case):
    edit, field, words = BAD_VALUES[case]
    path = small_config(tmp_path)
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.field == field, message
    assert words in info.value.problem, message
    assert message.startswith(f"{path}: {field}: ") and len(message.splitlines()) == 1, message


def test_space_at_the_top_level_of_the_wrong_type(tmp_path):
    # (above, space = 3 under [strategy] is a strategy field; at the top of the file it is the space)
    path = small_config(tmp_path)
    path.write_text("space = 3\n" + path.read_text().split("[space.fast]")[0])
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "space" and "valid dictionary" in info.value.problem


def test_toml_dates_are_taken_as_their_text(tmp_path):
    path = small_config(tmp_path)
    path.write_text(_add("data", "start = 2020-01-10\nend = 2020-03-01")(path.read_text()))
    cfg = load_config(path)
    assert (cfg.data.start, cfg.data.end) == ("2020-01-10", "2020-03-01")


def test_a_plain_end_date_includes_its_day(tmp_path):
    path = small_config(tmp_path)
    path.write_text(_add("data", 'start = "2020-02-01 12:00"\nend = "2020-02-01"')(path.read_text()))
    assert load_config(path).data.end == "2020-02-01"


def test_bounds_themselves_are_accepted(tmp_path):
    path = small_config(tmp_path, target=10_000_000)
    text = path.read_text()
    for old, new in (("heartbeat_seconds = 0.5", "heartbeat_seconds = 0.1"), ("grace_seconds = 3", "grace_seconds = 3600"),
                     ("seed = 3", "seed = 4294967295"), ("bars = 2000", 'bars = 10000000\nfreq = "1min"'),
                     ("symbols = ['AAA']", f"symbols = ['{'S' * 64}']"), ('name = "t"', f'name = "{"n" * 100}"')):
        text = text.replace(old, new)
    path.write_text(text + "\n[strategy.fixed]\nallow_short = true\n")
    cfg = load_config(path)
    assert len(cfg.study_names()[0].encode()) <= 200


# ------------------------------------------------- the file itself


def test_unreadable_file(tmp_path, monkeypatch):
    import runner.config.loading as config

    path = small_config(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    if os.geteuid() != 0:  # root reads anything
        path.chmod(0)
        with pytest.raises(ConfigError, match="cannot be read: permission denied"):
            load_config(path)
        path.chmod(0o644)
    monkeypatch.setattr(config, "open", denied, raising=False)  # the same, simulated
    with pytest.raises(ConfigError, match="cannot be read: permission denied") as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(small_config(tmp_path).read_bytes().replace(b'name = "t"', b'name = "t\xe9"'))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        load_config(path)


def test_paths_that_are_not_files(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):  # and does not block on it
        load_config(fifo)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(small_config(tmp_path) / "below-a-file.toml")
    with pytest.raises(ConfigError, match="not a usable path"):
        load_config(tmp_path / "nul\x00.toml")
    with pytest.raises(ConfigError, match="cannot be read: File name too long"):
        load_config(tmp_path / ("x" * 300 + ".toml"))


def test_huge_file_and_huge_values(tmp_path):
    path = small_config(tmp_path)
    big = tmp_path / "big.toml"
    big.write_text(path.read_text() + "# " + "x" * 1_000_001 + "\n")
    with pytest.raises(ConfigError, match="at most 1,000,000"):
        load_config(big)
    path.write_text(_sub("target_trials = 20", "target_trials = " + "9" * 5000)(path.read_text()))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_text('deep = ' + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_error_with_a_huge_or_multiline_value_stays_one_short_line(tmp_path):
    path = small_config(tmp_path)
    text = path.read_text()
    path.write_text(_sub("target_trials = 20", 'target_trials = "many\\nlines\\r\\u2028' + "x" * 100_000 + '"')(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.field == "study.target_trials"
    assert len(message.splitlines()) == 1 and len(message) < len(str(path)) + 300, message
    assert "many\\nlines\\r\\u2028" in message
    path.write_text(_add("study", '"bad\\nkey" = 1')(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: study.bad\\nkey: unknown field (misspelled?)"


def test_enormous_int_ranges_are_fast(tmp_path):
    import time

    from runner.space import GRID_SIZE_CAP, grid_size

    path = small_config(tmp_path)
    text = path.read_text().replace("low = 2\n", "low = -9007199254740992\n").replace("high = 20\n", "high = 9007199254740992\n")
    path.write_text(text.replace("[sampler]\n", '[sampler]\ntype = "grid"\n'))
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"grid of more than 1e\+18 points is too large") as info:
        load_config(path)
    assert info.value.field == "sampler.type"
    path.write_text(text + FLOAT_SPACE + "step = 1e-15\n")
    cfg = load_config(path)
    assert grid_size(cfg) == GRID_SIZE_CAP
    assert time.monotonic() - started < 2


USER_MODULES = {
    "raises": ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "syntax": ("def f(:\n", "SyntaxError"),
    "exits": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "value": ("int('x')\n", "invalid literal for int()"),
}


@pytest.mark.parametrize("case", sorted(USER_MODULES))
def test_a_user_backtest_that_fails_to_import(tmp_path, case):
    source, words = USER_MODULES[case]
    module = f"fz_user_{case}"
    (tmp_path / f"{module}.py").write_text(source)
    path = small_config(tmp_path, strategy=f"{module}:run")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "strategy.name"
    assert words in info.value.problem and len(str(info.value).splitlines()) == 1


def test_any_unexpected_error_is_still_one_config_error_line(tmp_path, monkeypatch):
    import runner.config.loading as config

    def broken(cfg, path):
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(config, "_check_semantics", broken)
    path = small_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot be read: ZeroDivisionError: a bug\\nover two lines"
