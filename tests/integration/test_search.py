"""Search that wastes nothing: duplicates, pruning, penalties, constraints, samplers, objectives
(real workers on PostgreSQL; the config checks of the search are in tests/unit/test_search.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from optuna.trial import TrialState

from tests.helpers import CONDITIONAL_SPACE, count, search_config, trials_of, tune


def status_of(study: str, *args) -> dict:
    out = json.loads(tune("status", *args, "--json", check=True).stdout)
    return next(s for s in out["studies"] if s["study"] == study)


# ---------------------------------------------------------------- duplicates


SMALL_SPACE = '''
[space.a]
type = "categorical"
choices = [1, 2, 3]

[space.b]
type = "categorical"
choices = ["x", "y"]
'''


def test_two_workers_never_evaluate_a_combination_twice_and_stop_when_the_space_is_used_up(db_url, tmp_path):
    path = search_config(tmp_path, "small_space", "dup", target=10, workers=2, space=SMALL_SPACE,
                         extra="")
    # A duplicate runs no backtest and spends no attempt: a cap of 10 does not end the study
    # before the 6 combinations are evaluated (it would, counting the duplicates).
    path.write_text(path.read_text().replace("target_trials = 10", "target_trials = 10\nmax_attempts = 10"))
    proc = tune("run", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(db_url, "dup-AAA")
    evaluated = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(evaluated) == 6 == len({(t.params["a"], t.params["b"]) for t in evaluated})
    duplicates = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert duplicates and all(t.state == TrialState.FAIL for t in duplicates)
    s = status_of("dup-AAA")
    assert s["state"] == "exhausted" and s["ended_reason"].startswith("space exhausted: all 6")
    assert s["duplicate"] == len(duplicates) and s["failed"] == 0
    assert sum(s["duplicate_sources"].values()) == s["duplicate"]
    assert set(s["duplicate_sources"]) <= {"memory", "database"}
    assert not [t for t in trials if t.state == TrialState.WAITING]
    pointing = [t for t in duplicates if t.user_attrs["duplicate_of"] is not None]
    assert pointing  # (None only while the original's trial had not committed yet)
    for t in pointing:  # each points at the trial that evaluated its combination
        original = trials[t.user_attrs["duplicate_of"]]
        assert original.params == t.params and "duplicate_of" not in original.user_attrs


def test_reaching_the_target_leaves_no_waiting_trial_behind(db_url, tmp_path):
    # 5 of 6 combinations: the sampler repeats itself, each duplicate is followed by a free
    # combination; the one enqueued when the target is reached must not stay WAITING.
    for workers in (1, 2):
        path = search_config(tmp_path, "small_space", f"wt{workers}", target=5, workers=workers, space=SMALL_SPACE)
        tune("run", str(path), check=True)
        trials = trials_of(db_url, f"wt{workers}-AAA")
        assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
        s = status_of(f"wt{workers}-AAA")
        assert s["attempts"] == s["complete"] + s["pruned"] + s["failed"] + s["duplicate"] == len(trials)


def test_duplicates_spend_no_attempt_and_a_sampler_proposing_only_duplicates_ends_the_study(db_url, tmp_path):
    # A float without a step at 1 significant digit: about ten distinct combinations, and a
    # space that cannot be enumerated (no free combination to enqueue after a duplicate).
    space = '[space.x]\ntype = "float"\nlow = 1.0\nhigh = 9.0\n'
    path = search_config(tmp_path, "stepped", "ds", target=40, space=space)
    path.write_text(path.read_text().replace("[study]\n", "[study]\nfloat_precision = 1\nmax_attempts = 40\n"))
    proc = tune("run", str(path), env={"BT_LEDGER": str(tmp_path / "ledger")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = status_of("ds-AAA")
    assert s["state"] == "exhausted" and "200 duplicates in a row" in s["ended_reason"]
    assert s["complete"] < 40 and s["duplicate"] >= 200 and s["attempts"] - s["duplicate"] < 40


STEP_SPACE = '[space.x]\ntype = "float"\nlow = 0.2\nhigh = 1.0\nstep = 0.2\n'


def test_a_float_on_a_step_is_its_exact_grid_value_everywhere(db_url, tmp_path, monkeypatch):
    ledger = tmp_path / "ledger"
    monkeypatch.setenv("BT_LEDGER", str(ledger))
    path = search_config(tmp_path, "stepped", "sv", target=5, space=STEP_SPACE)
    tune("run", str(path), check=True)
    grid = {"0.2", "0.4", "0.6", "0.8", "1.0"}
    assert set(ledger.read_text().split()) <= grid  # what the backtest got
    trials = trials_of(db_url, "sv-AAA")
    assert {repr(t.params["x"]) for t in trials} <= grid  # what Optuna stored
    csv_file = tmp_path / "trials.csv"
    tune("export", "sv-AAA", "--json", "--csv", str(csv_file), check=True)
    column = [row["param_x"] for row in csv.DictReader(io.StringIO(csv_file.read_text()))]
    assert set(column) <= grid, column  # what the export shows
    s = status_of("sv-AAA")
    assert repr(s["best_params"]["x"]) in grid


# ------------------------------------------------------------------- pruning

PRUNERS = {  # settings, target of completed trials
    "median": ("", 15),
    "percentile": ("percentile = 40.0\n", 15),
    "successive_halving": ("reduction_factor = 2\n", 15),
    "hyperband": ("reduction_factor = 2\n", 15),
    # Wilcoxon prunes every trial that is consistently worse than the best one,
    # which on this noiseless landscape is nearly all of them once the best is found.
    "wilcoxon": ("steps = 10\np_threshold = 0.2\n", 4),
}


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_each_pruner_prunes_on_partial_evaluations(db_url, tmp_path, pruner):
    settings, target = PRUNERS[pruner]
    extra = f'\n[pruner]\ntype = "{pruner}"\nn_startup_trials = 2\n{settings}'
    path = search_config(tmp_path, "quadratic", f"pr{pruner[:4]}", target=target, extra=extra)
    path.write_text(path.read_text().replace(f"target_trials = {target}", f"target_trials = {target}\nmax_attempts = 300"))
    proc = tune("run", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = trials_of(db_url, f"pr{pruner[:4]}-AAA")
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, f"the {pruner} pruner pruned nothing"
    assert all(t.user_attrs["prune_reason"].startswith(f"{pruner} pruner at step") for t in pruned)
    assert all(t.intermediate_values for t in pruned)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    steps = 10 if pruner == "wilcoxon" else 4
    assert any(sorted(t.intermediate_values) == list(range(1, steps)) for t in complete)


# ------------------------------------------------------ penalties, constraints


def test_too_few_trades_prunes_or_takes_the_penalty(db_url, tmp_path):
    space = '[space.fast]\ntype = "int"\nlow = 1\nhigh = 30\n'
    path = search_config(tmp_path, "few_trades", "ft", target=8, space=space, extra="")
    path.write_text(path.read_text().replace("[study]\n", "[study]\nmin_trades = 15\nmax_attempts = 100\n"))
    tune("run", str(path), check=True)
    few = [t for t in trials_of(db_url, "ft-AAA") if t.params["fast"] < 15 and "duplicate_of" not in t.user_attrs]
    assert few and all(t.state == TrialState.PRUNED and "fewer than min_trades=15" in t.user_attrs["prune_reason"] for t in few)

    path.write_text(path.read_text().replace('name = "ft"', 'name = "fp"')
                    .replace("[study]\n", "[study]\nmin_trades_penalty = -99.0\n"))
    tune("run", str(path), check=True)
    few = [t for t in trials_of(db_url, "fp-AAA") if t.params["fast"] < 15 and "duplicate_of" not in t.user_attrs]
    assert few and all(t.state == TrialState.COMPLETE and t.value == -99.0 for t in few)
    assert all(t.user_attrs["min_trades_penalty"] == 1.0 for t in few)


CROSSOVER_SPACE = '[space.fast]\ntype = "int"\nlow = 2\nhigh = 40\n\n[space.slow]\ntype = "int"\nlow = 20\nhigh = 80\n'


def test_a_constraint_heavy_search_finds_a_feasible_best_and_tells_optuna_why_the_rest_is_not(db_url, tmp_path):
    # About 1 in 10 combinations is feasible: fast < slow (else invalid), trades = 600/slow
    # >= 15 (slow <= 40), drawdown 0.1 + (slow - fast)/100 <= 0.3.
    extra = "\n[constraints]\nmax_drawdown = 0.3\n"
    path = search_config(tmp_path, "crossover", "ch", target=25, space=CROSSOVER_SPACE, extra=extra)
    path.write_text(path.read_text().replace("[study]\n", "[study]\nmin_trades = 15\nmax_attempts = 150\n"))
    tune("run", str(path), check=True)
    trials = trials_of(db_url, "ch-AAA")
    s = status_of("ch-AAA")
    assert s["best_feasible"] is True and s["best_value"] > 1.0
    invalid = [t for t in trials if "must be below" in t.user_attrs.get("prune_reason", "")]
    assert all(t.state == TrialState.PRUNED and t.constraints == {"valid_params": 1e9} for t in invalid)
    few = [t for t in trials if "fewer than min_trades" in t.user_attrs.get("prune_reason", "")]
    assert few, "no trial with too few trades"
    for t in few:  # pruned, with the metrics it had and how far it is from counting
        assert t.state == TrialState.PRUNED and t.user_attrs["trades"] < 15
        assert t.constraints["study_min_trades"] == pytest.approx(15 - t.user_attrs["trades"])
        assert "max_drawdown" in t.constraints


def test_constraints_are_optuna_constraints_and_the_best_trials_feasibility_is_shown(db_url, tmp_path):
    path = search_config(tmp_path, "quadratic", "cs", target=10, extra="\n[constraints]\nmax_drawdown = 0.12\nmin_trades = 5\n")
    tune("run", str(path), check=True)
    trials = [t for t in trials_of(db_url, "cs-AAA") if t.state == TrialState.COMPLETE]
    for t in trials:
        assert t.constraints["max_drawdown"] == pytest.approx(t.user_attrs["max_drawdown"] - 0.12)
        assert t.constraints["min_trades"] == pytest.approx(5 - t.user_attrs["trades"])
    s = status_of("cs-AAA")
    feasible = [t for t in trials if all(v <= 0 for v in t.constraints.values())]
    assert s["best_feasible"] is bool(feasible)
    if feasible:
        assert s["best_value"] == max(t.value for t in feasible)
    assert set(s["best_constraints"]) == {"max_drawdown", "min_trades"}


# ------------------------------------------------------- samplers, objectives


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "grid"])
def test_samplers_run_and_a_seeded_worker_repeats_itself(db_url, tmp_path, sampler):
    path = search_config(tmp_path, "quadratic", f"s{sampler}", target=6, extra="")
    path.write_text(path.read_text().replace("[sampler]\n", f'[sampler]\ntype = "{sampler}"\n'))
    tune("run", str(path), check=True)
    first = [t.params for t in trials_of(db_url, f"s{sampler}-AAA")]
    assert len(first) >= 6
    path.write_text(path.read_text().replace(f'name = "s{sampler}"', f'name = "r{sampler}"'))
    tune("run", str(path), check=True)
    assert [t.params for t in trials_of(db_url, f"r{sampler}-AAA")] == first


def test_multi_objective_study_has_a_pareto_front_and_a_compromise(db_url, tmp_path):
    path = search_config(tmp_path, "quadratic", "mo", target=12, extra="")
    path.write_text(path.read_text().replace("[study]\n", '[study]\nmetric = ["sharpe", "max_drawdown"]\n'))
    tune("run", str(path), check=True)
    s = status_of("mo-AAA")
    assert s["directions"] == ["maximize", "minimize"] and s["best_value"] is None
    front = s["pareto_front"]
    assert s["front_size"] == len(front) >= 1
    for a in front:  # no member dominates another
        for b in front:
            assert not (a["values"][0] >= b["values"][0] and a["values"][1] <= b["values"][1] and a["values"] != b["values"])
    assert s["compromise_trial"]["number"] in {f["number"] for f in front}
    complete = [t for t in trials_of(db_url, "mo-AAA") if t.state == TrialState.COMPLETE]
    for t in complete:  # every complete trial is on the front or dominated by a member of it
        assert any(f["values"][0] >= t.values[0] and f["values"][1] <= t.values[1] for f in front)


def test_conditional_parameters_exist_only_when_their_condition_holds(db_url, tmp_path):
    path = search_config(tmp_path, "conditional", "cd", target=12, space=CONDITIONAL_SPACE)
    path.write_text(path.read_text().replace("[sampler]\n", "[sampler]\ngroup = true\n"))
    tune("run", str(path), check=True)
    trials = trials_of(db_url, "cd-AAA")
    assert count(trials, TrialState.FAIL) == 0  # the backtest raises if a parameter is wrongly present
    modes = {t.params["mode"] for t in trials}
    assert modes == {"narrow", "wide"}
    for t in trials:
        assert ("width" in t.params) == (t.params["mode"] == "wide")
