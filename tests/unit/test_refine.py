"""tune refine's plan: narrowed ranges on the parent's grid, reduced choices, parameters fixed
by importance, the file it writes, and the trials the refined study starts from."""

from __future__ import annotations

import math
import stat

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from runner import refine
from runner.config import FloatParam, IntParam, load_config
from runner.space import distributions
from tests.helpers import write_config

CONFIG = """
# the parent's own comment
[study]
name = "par"
metric = "sharpe"

[data]
symbols = ["AAA", "BBB"]
{data}

[strategy]
name = "ma_crossover"

[space.fast]
type = "int"
low = 2
high = 400

[space.slow]
type = "int"
low = 20
high = 2000
step = 10

[space.ma_type]
type = "categorical"
choices = ["sma", "ema"]
"""

SYNTHETIC = "[data.synthetic]\nbars = 500\nseed = 1\n"


def parent(tmp_path, data: str = SYNTHETIC, extra: str = ""):
    return load_config(write_config(tmp_path / "par.toml", CONFIG.format(data=data) + extra))


def trial(cfg, number: int, value: float, **params):
    dists = distributions(cfg)
    t = create_trial(state=TrialState.COMPLETE, values=[value], params=params,
                     distributions={k: dists[k] for k in params}, user_attrs={"sharpe": value, "trades": 40})
    t.number = number
    return t


def test_a_number_narrows_to_its_top_values_plus_margins_on_the_parents_grid_and_scale():
    stepped = IntParam(type="int", low=20, high=2000, step=10)
    low, high = refine.narrow(stepped, [400, 500, 600])
    assert (low - 20) % 10 == 0 and (high - 20) % 10 == 0  # on the parent's grid
    margin = max(refine.MARGIN * 200, refine.MIN_MARGIN * 1980)
    assert low <= 400 - margin and high >= 600 + margin and low > 20 and high < 2000
    assert refine.narrow(stepped, [1990, 2000])[1] == 2000  # never past the parent's range
    assert refine.narrow(IntParam(type="int", low=1, high=3), [3]) == (2, 3)  # one point: a step wider
    logged = FloatParam(type="float", low=1e-4, high=1.0, log=True)
    low, high = refine.narrow(logged, [0.01, 0.02])
    assert 1e-4 < low < 0.01 and 0.02 < high < 1.0
    assert math.log(0.01 / low) == pytest.approx(math.log(high / 0.02), rel=0.2)  # symmetric in log space
    stepped_float = FloatParam(type="float", low=0.1, high=0.9, step=0.1)
    low, high = refine.narrow(stepped_float, [0.3, 0.4])
    assert (low, high) == (0.2, 0.5)  # exact grid values as a person writes them


def test_a_plan_reduces_choices_fixes_what_does_not_matter_and_says_why(tmp_path):
    cfg = parent(tmp_path)
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500 + 10 * (i % 5), ma_type="sma") for i in range(40)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1", top_k=10,
                       shares={"fast": 0.7, "slow": 0.28, "ma_type": 0.02})
    assert [t.number for t in plan.top] == list(range(39, 29, -1))  # best first
    actions = {d.param: d.action for d in plan.decisions}
    assert actions == {"fast": "narrowed", "slow": "narrowed", "ma_type": "fixed"}
    assert plan.fixed == {"ma_type": "sma"} and "ma_type" not in plan.space
    assert plan.space["fast"]["low"] <= 130 and plan.space["fast"]["high"] >= 139
    too_few = refine.plan(cfg, "AAA", trials[:10], parent="par-AAA", run_name="par_r1",
                          shares={"fast": 0.7, "slow": 0.28, "ma_type": 0.02})
    assert too_few.fixed == {} and any("too few" in n for n in too_few.notes)
    reduced = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1", fix_below=0)
    assert reduced.space["ma_type"]["choices"] == ["sma"] and reduced.fixed == {}
    with pytest.raises(refine.RefineError, match="no complete trial"):
        refine.plan(cfg, "AAA", [], parent="par-AAA", run_name="par_r1")


@pytest.mark.parametrize("first", [False, True], ids=["condition-first", "conditional-first"])
def test_a_condition_is_never_fixed_and_a_parameter_whose_condition_cannot_hold_is_dropped(tmp_path, first):
    conditional = '[space.stop_loss]\ntype = "float"\nlow = 0.01\nhigh = 0.2\nwhen = {ma_type = "ema"}\n'
    text = CONFIG.format(data=SYNTHETIC)
    if first:  # the conditional parameter written before the one its condition names
        text = text.replace("[space.fast]", conditional + "\n[space.fast]")
    else:
        text += "\n" + conditional
    cfg = load_config(write_config(tmp_path / "par.toml", text))
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, ma_type="sma") for i in range(40)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1",
                       shares={"fast": 0.97, "slow": 0.01, "ma_type": 0.01, "stop_loss": 0.01})
    actions = {d.param: d.action for d in plan.decisions}
    assert actions["ma_type"] == "reduced"  # a condition of stop_loss: reduced, never fixed
    assert actions["stop_loss"] == "dropped" and "stop_loss" not in plan.space
    assert plan.fixed == {"slow": 500}


def test_the_refined_file_is_the_parents_with_each_decision_and_loads(tmp_path):
    (tmp_path / "data").mkdir()
    for symbol in ("AAA", "BBB"):
        (tmp_path / "data" / f"{symbol}.csv").write_text("timestamp,close\n")  # the config checks they exist
    cfg = parent(tmp_path, data='path = "data/{symbol}.csv"')
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, ma_type="sma") for i in range(40)]
    plan = refine.plan(cfg, "BBB", trials, parent="par-BBB", run_name="par_r1",
                       shares={"fast": 0.9, "slow": 0.08, "ma_type": 0.02})
    out = tmp_path / "elsewhere" / "par_r1.toml"
    text = refine.render(cfg, plan, out)
    assert "# the parent's own comment" in text
    for d in plan.decisions:
        assert d.text in text
    refine.write(text, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with pytest.raises(refine.RefineError, match="exists"):
        refine.write(text, out)  # never over a file
    new = load_config(out)
    assert new.study.name == "par_r1" and new.data.symbols == ["BBB"]
    assert new.strategy.fixed == {"ma_type": "sma"} and set(new.space) == {"fast", "slow"}
    assert new.data.path == str(tmp_path / "data/{symbol}.csv")  # the same files from another folder
    assert isinstance(new.space["slow"], IntParam) and new.space["slow"].step == 10


def test_the_refined_study_starts_from_copies_of_the_top_trials_and_reruns_the_others(tmp_path):
    cfg = parent(tmp_path)
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, ma_type="ema" if i == 38 else "sma")
              for i in range(40)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1", top_k=3, fix_below=0)
    plan.fixed = {"ma_type": "sma"}  # as if fixed: trial 38 (ema) would now be evaluated differently
    plan.space.pop("ma_type")
    out = tmp_path / "par_r1.toml"
    refine.write(refine.render(cfg, plan, out), out)
    new = load_config(out)
    study = optuna.create_study(direction="maximize")
    copied, enqueued, claims = refine.start_from_top(study, new, plan)
    assert (copied, enqueued) == (2, 1)
    got = study.get_trials()
    assert [t.state for t in got] == [TrialState.COMPLETE, TrialState.WAITING, TrialState.COMPLETE]
    assert got[0].values == trials[39].values and got[0].user_attrs["copied_from"] == "par-AAA#39"
    assert got[0].params == {"fast": 139, "slow": 500}
    assert got[0].user_attrs == {**trials[39].user_attrs, "copied_from": "par-AAA#39"}
    assert [n for _, n in claims] == [0, 2]


def test_a_fixed_boolean_and_an_inline_fixed_table_make_a_valid_file(tmp_path):
    text = CONFIG.format(data=SYNTHETIC).replace('name = "ma_crossover"', 'name = "ma_crossover"\nfixed = {ma_type = "sma"}')
    text = text.replace('[space.ma_type]\ntype = "categorical"\nchoices = ["sma", "ema"]',
                        '[space.allow_short]\ntype = "categorical"\nchoices = [true, false]')
    cfg = load_config(write_config(tmp_path / "par.toml", text))
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, allow_short=False) for i in range(40)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1",
                       shares={"fast": 0.9, "slow": 0.09, "allow_short": 0.01})
    assert plan.fixed == {"allow_short": False}
    out = tmp_path / "par_r1.toml"
    refine.write(refine.render(cfg, plan, out), out)
    new = load_config(out)
    assert new.strategy.fixed == {"ma_type": "sma", "allow_short": False}


def test_a_step_that_does_not_divide_the_range_never_takes_a_value_past_high():
    from runner.space import grid_points

    p = FloatParam(type="float", low=0.01, high=0.2, step=0.05)
    assert refine.narrow(p, [0.01, 0.16]) == (0.01, 0.16)  # 0.16 is Optuna's last value, not 0.21

    class Space:  # grid_points reads cfg.space only
        space = {"stop_loss": p}

    assert grid_points(Space())["stop_loss"] == [0.01, 0.06, 0.11, 0.16]  # type: ignore[arg-type]


def test_a_refinement_of_a_refinement_carries_one_header_and_a_home_path_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # ~ is this folder
    (tmp_path / "d").mkdir()
    for symbol in ("AAA", "BBB"):
        (tmp_path / "d" / f"{symbol}.csv").write_text("timestamp,close\n")
    cfg = parent(tmp_path, data='path = "~/d/{symbol}.csv"')
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, ma_type="sma") for i in range(5)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1")
    first = tmp_path / "par_r1.toml"
    first.write_text(refine.render(cfg, plan, tmp_path / "other" / "x.toml"))
    assert 'path = "~/d/{symbol}.csv"' in first.read_text()  # ~ is not relative
    again = refine.render(cfg.model_copy(update={"source_path": first}), plan, first)
    assert again.count(refine.HEADER_END) == 1 and again.count("# refined from") == 1


def test_only_trials_the_new_config_evaluates_alike_are_copied(tmp_path):
    cfg = parent(tmp_path)
    trials = [trial(cfg, i, 1.0 + i / 100, fast=100 + i, slow=500, ma_type="sma") for i in range(40)]
    plan = refine.plan(cfg, "AAA", trials, parent="par-AAA", run_name="par_r1", top_k=3, fix_below=0)
    out = tmp_path / "par_r1.toml"
    refine.write(refine.render(cfg, plan, out), out)
    new = load_config(out)
    untrusted = optuna.create_study(direction="maximize")
    assert refine.start_from_top(untrusted, new, plan, trusted=False)[:2] == (0, 3)  # its best did not reproduce
    # A space that lost a searched parameter (ma_type, now neither searched nor fixed): run again.
    lost = new.model_copy(update={"space": {k: v for k, v in new.space.items() if k != "ma_type"}})
    assert refine.start_from_top(optuna.create_study(direction="maximize"), lost, plan)[:2] == (0, 3)
    kept = optuna.create_study(direction="maximize")
    assert refine.start_from_top(kept, new, plan)[:2] == (3, 0)
    assert kept.get_trials()[0].datetime_complete == trials[39].datetime_complete  # its own time, not now


def test_a_step_wider_than_the_range_leaves_it_as_it_is_and_the_last_step_is_optunas():
    from runner.space import float_steps

    assert refine.narrow(IntParam(type="int", low=0, high=3, step=5), [0]) == (0, 3)
    assert refine.narrow(FloatParam(type="float", low=0.0, high=0.03, step=0.05), [0.0]) == (0.0, 0.03)
    # Decimal arithmetic, as Optuna adjusts high: a float's error must not lose the last step.
    assert float_steps(FloatParam(type="float", low=72.299, high=79.15896, step=1e-5)) == 685996
