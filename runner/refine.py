"""``tune refine``: a narrower search around a study's best trials, as a new config and study.

Seed 000's recipe after a broad run: narrow the ranges around what worked, fix what does
not matter, and search again. From a study's top-K distinct complete trials (feasible
first, by the first objective, as the report ranks them):

* a number's range becomes the top trials' spread plus a margin on each side
  (``MARGIN`` of the spread, at least ``MIN_MARGIN`` of the parent's range), inside the
  parent's range, on its grid (an int's or a float's step) and on its scale (a log range
  narrows in log space);
* a categorical keeps the choices that appear among them;
* a parameter with less than ``fix_below`` of the importances (PED-ANOVA, as the report's;
  only past ``MIN_TRIALS_TO_FIX`` complete trials) is fixed at the best's value in
  ``[strategy.fixed]`` — never one a condition names, nor a conditional one;
* a conditional parameter whose condition no choice left can meet is dropped.

Each decision is a comment in the new file, which is the parent's own (its comments
kept) with the run renamed ``{run}_r{n}`` and the one symbol. The new study starts from
the parent's top-K: each top trial the new config would evaluate the same way (its
fixed parameters at the values fixed) is copied with its results, not run again, and
claimed for deduplication; the others are enqueued, to be run under the new config. The
study's row keeps its parent (``tune status``, the app: the lineage).
"""

from __future__ import annotations

import math
import os
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from . import control, importances
from .config import CategoricalParam, FloatParam, IntParam, RunConfig
from .storage import Database
from .storage.embedded import new_private_file

TOP_K = 10
FIX_BELOW = 0.05  # a parameter with less than this share of the importances is fixed
MIN_TRIALS_TO_FIX = 30  # importances from fewer complete trials fix nothing
MARGIN = 0.25  # each side of the top trials' spread, as a share of it …
MIN_MARGIN = 0.05  # … and at least this share of the parent's range
COPIED_FROM = "copied_from"  # user attribute of a copied trial: "{parent study}#{trial number}"


@dataclass(frozen=True)
class Decision:
    param: str
    action: str  # narrowed | kept | reduced | fixed | dropped
    text: str  # what and why, for the file's comments and the confirmation screen


@dataclass
class Plan:
    """What a refinement changes, before anything is written."""

    parent: str  # the parent study
    symbol: str
    run_name: str  # the new run's name: the new study is {run_name}-{symbol}
    top: list[FrozenTrial]  # the parent's top trials, best first
    space: dict[str, dict[str, Any]]  # the new [space]: {param: its table}
    fixed: dict[str, Any]  # parameters fixed by this refinement (added to [strategy.fixed])
    decisions: list[Decision]
    notes: list[str] = field(default_factory=list)  # lines for the file's header

    @property
    def study(self) -> str:
        return f"{self.run_name}-{self.symbol}"


class RefineError(ValueError):
    """Nothing to refine from, or nowhere to write: one line for the user."""


# ---------------------------------------------------------------- the plan


def ranked(cfg: RunConfig, complete: list[FrozenTrial]) -> list[FrozenTrial]:
    """The ``complete`` trials, best first, one per parameter combination (the report's order)."""
    from .insight import ranked as report_ranked  # the report's ranking: one rule for both

    return report_ranked(cfg, complete, 1.0 if cfg.direction == "maximize" else -1.0)


def plan(cfg: RunConfig, symbol: str, trials: list[FrozenTrial], *, parent: str, run_name: str,
         top_k: int = TOP_K, fix_below: float = FIX_BELOW,
         shares: dict[str, float] | None = None) -> Plan:
    """The refinement of ``parent`` (a study of ``cfg``, on ``symbol``) from its ``trials``.
    ``shares``: the parameters' importances (summing to 1), if known; else computed here
    when there are enough complete trials."""
    complete = importances.complete_trials(trials)
    order = ranked(cfg, complete)
    if not order:
        raise RefineError(f"{parent} has no complete trial to refine from")
    top = order[:top_k]
    notes = [f"refined from {parent}: its top {len(top)} distinct complete trial{'s' if len(top) > 1 else ''}"
             + (f" (of {top_k} asked; it has no more)" if len(top) < top_k else "")
             + f", by {cfg.study.metrics[0]} ({cfg.direction})"]
    if len(cfg.study.metrics) > 1:
        notes.append("a multi-objective study: ranked by its first objective only")
    if fix_below > 0 and shares is None and len(complete) >= MIN_TRIALS_TO_FIX:
        found = importances.compute(complete, cfg.directions)
        shares = {k: v for k, v in found.items() if isinstance(v, float)} or None
    if fix_below > 0 and len(complete) < MIN_TRIALS_TO_FIX:
        shares = None
        notes.append(f"no parameter fixed: {len(complete)} complete trials are too few to trust their "
                     f"importances (at least {MIN_TRIALS_TO_FIX})")
    conditions = {other for p in cfg.space.values() for other in (p.when or {})}
    best = top[0].params
    space: dict[str, dict[str, Any]] = {}
    fixed: dict[str, Any] = {}
    decisions: list[Decision] = []
    # Which parameters are fixed: the least important first, never all of them.
    fixable = [n for n, p in cfg.space.items()
               if shares is not None and fix_below > 0 and n not in conditions and not p.when and n in best
               and shares.get(n, 0.0) < fix_below]
    if len(fixable) >= len(cfg.space):
        fixable = sorted(fixable, key=lambda n: shares.get(n, 0.0) if shares else 0.0)[:-1]
    # The conditions' parameters first: whether a condition can still hold depends on them.
    for name, p in sorted(cfg.space.items(), key=lambda item: item[1].when is not None):
        values = [t.params[name] for t in top if name in t.params]
        if name in fixable:
            assert shares is not None
            fixed[name] = best[name]
            decisions.append(Decision(name, "fixed", f"at the best's {_short(best[name])}: "
                                                     f"{shares.get(name, 0.0):.1%} of the importances"))
            continue
        if p.when and not _condition_possible(p.when, space, fixed):
            decisions.append(Decision(name, "dropped", f"its condition {_when_text(p.when)} "
                                                       "can no longer hold"))
            continue
        table: dict[str, Any] = {"type": p.type}
        if not values:
            table.update(_bounds(p))
            decisions.append(Decision(name, "kept", f"no top trial has it (when {_when_text(p.when or {})})"))
        elif isinstance(p, CategoricalParam):
            seen = {repr(v) for v in values}
            table["choices"] = [c for c in p.choices if repr(c) in seen]
            if len(table["choices"]) < len(p.choices):
                dropped = [c for c in p.choices if repr(c) not in seen]
                decisions.append(Decision(name, "reduced", f"choices {table['choices']!r}; "
                                                           f"{dropped!r} in none of the top trials"))
            else:
                decisions.append(Decision(name, "kept", "every choice appears among the top trials"))
        else:
            low, high = narrow(p, values)
            table.update(_bounds(p), low=low, high=high)  # the parent's step and scale, new bounds
            was = f"{p.low}..{p.high}"
            if (low, high) == (p.low, p.high):
                decisions.append(Decision(name, "kept", f"{low}..{high} (the top trials span it)"))
            else:
                decisions.append(Decision(name, "narrowed", f"{low}..{high} (was {was}; top trials "
                                                            f"{_short(min(values))}..{_short(max(values))})"))
            if best.get(name) in (p.low, p.high):  # the search may be cut short there
                decisions[-1] = Decision(name, decisions[-1].action, decisions[-1].text
                                         + f"; the best is on the parent's {'low' if best[name] == p.low else 'high'} "
                                           "bound: widen it by hand?")
        if p.when:
            table["when"] = dict(p.when)
        space[name] = table
    order_of = {name: i for i, name in enumerate(cfg.space)}  # the parent's order, in the file too
    space = dict(sorted(space.items(), key=lambda item: order_of[item[0]]))
    decisions.sort(key=lambda d: order_of[d.param])
    return Plan(parent=parent, symbol=symbol, run_name=run_name, top=top, space=space, fixed=fixed,
                decisions=decisions, notes=notes)


def _bounds(p: FloatParam | IntParam | CategoricalParam) -> dict[str, Any]:
    if isinstance(p, CategoricalParam):
        return {"choices": list(p.choices)}
    out: dict[str, Any] = {"low": p.low, "high": p.high}
    if isinstance(p, IntParam) and p.step != 1 or isinstance(p, FloatParam) and p.step is not None:
        out["step"] = p.step
    if p.log:
        out["log"] = True
    return out


def _short(value: Any) -> str:
    """A value for a comment: floats to 6 significant figures (the file has them in full)."""
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def _when_text(when: dict[str, Any]) -> str:
    return " and ".join(f"{k} = {v!r}" for k, v in when.items()) or "unconditional"


def _condition_possible(when: dict[str, Any], space: dict[str, dict[str, Any]], fixed: dict[str, Any]) -> bool:
    """Whether a condition can still hold: each parameter it names still offers the value."""
    for other, value in when.items():
        if other in fixed:
            if fixed[other] != value:
                return False
        elif other in space:
            table = space[other]
            if "choices" in table and not any(repr(value) == repr(c) for c in table["choices"]):
                return False
            try:
                if "low" in table and not table["low"] <= value <= table["high"]:
                    return False
            except TypeError:  # a condition that names a number by a text: it cannot hold
                return False
    return True


def narrow(p: FloatParam | IntParam, values: list[float]) -> tuple[Any, Any]:
    """The narrowed range of a number: the values' spread plus the margins, inside the parent's
    range, on its grid and scale, rounded outwards to figures a person writes."""
    scale, unscale = (math.log, math.exp) if p.log else (float, float)
    lo, hi = scale(min(values)), scale(max(values))
    margin = max(MARGIN * (hi - lo), MIN_MARGIN * (scale(p.high) - scale(p.low)))
    low, high = max(p.low, unscale(lo - margin)), min(p.high, unscale(hi + margin))
    if isinstance(p, IntParam):
        top = p.low + (p.high - p.low) // p.step * p.step  # the last value on the grid
        if top == p.low:  # a step wider than the range: one value, nothing to narrow
            return p.low, p.high
        ilow = p.low + math.floor((low - p.low) / p.step) * p.step
        ihigh = min(top, p.low + math.ceil((high - p.low) / p.step) * p.step)
        if ilow >= ihigh:  # one point: widen by a step where there is room
            ilow, ihigh = (ilow, ilow + p.step) if ilow + p.step <= top else (ilow - p.step, ilow)
        return int(ilow), int(ihigh)
    if p.step is not None:
        from .space import float_steps, step_value

        count = float_steps(p)  # to Optuna's last value: high may be off the grid
        if count == 0:  # a step wider than the range: one value, nothing to narrow
            return p.low, p.high
        k_low = max(0, math.floor((low - p.low) / p.step + 1e-9))
        k_high = min(count, math.ceil((high - p.low) / p.step - 1e-9))
        if k_low >= k_high:
            k_low, k_high = (k_low, k_low + 1) if k_low + 1 <= count else (k_low - 1, k_low)
        return step_value(p, k_low), step_value(p, k_high)
    width = high - low
    digits = 2 - math.floor(math.log10(width)) if width > 0 else 6
    flow = max(p.low, _round(low, digits, down=True))
    fhigh = min(p.high, _round(high, digits, down=False))
    if p.log and flow <= 0:
        flow = low
    return (flow, fhigh) if flow < fhigh else (low, high)


def _round(x: float, digits: int, *, down: bool) -> float:
    q = Decimal(1).scaleb(-digits)
    d = Decimal(repr(x)).quantize(q, rounding="ROUND_FLOOR" if down else "ROUND_CEILING")
    return float(d)


def next_run_name(db: Database, cfg: RunConfig, symbol: str, taken_files: Path | None = None) -> str:
    """``{run}_r{n}``, the first n whose study is not in the database (and whose default file is
    free): a refinement of ``demo_r1`` is ``demo_r2``."""
    base = re.sub(r"_r\d+$", "", cfg.study.name)
    start = int(m.group(1)) + 1 if (m := re.search(r"_r(\d+)$", cfg.study.name)) else 1
    for n in range(start, start + 10_000):
        name = f"{base}_r{n}"
        if control.list_studies(db, [f"{name}-{symbol}"], archived=True):
            continue
        if taken_files is not None and (taken_files / f"{name}.toml").exists():
            continue
        return name
    raise RefineError(f"no free name for a refinement of {cfg.study.name}")


# ---------------------------------------------------------------- the study and its config


@dataclass
class Prepared:
    """A refinement planned and rendered, not yet written: what the app shows for confirmation."""

    plan: Plan
    out: Path
    text: str


def prepare(db: Database, study: str, *, config: str | None = None, output: str | Path | None = None,
            top_k: int = TOP_K, fix_below: float = FIX_BELOW) -> Prepared:
    """Plan the refinement of ``study`` and render its config (nothing written). The file goes
    to ``output``, else beside the parent's config as ``{new run}.toml`` (the bundled demo's:
    in the current directory)."""
    from .config.loading import DEMO_CONFIG
    from .insight import load_all_trials  # a storage of its own, closed after: an app keeps no copy

    try:
        row, cfg = control.study_config(db, study, config)
    except control.NoStudyConfig as exc:
        raise RefineError(str(exc)) from None
    if row.fold is not None:
        raise RefineError(f"{study} is a walk-forward fold's study: refine its symbol's study, "
                          f"{cfg.study_name(row.symbol)} (the refined run has the same folds)")
    if output is not None:
        out = Path(output)
        try:
            if out.is_dir():
                raise RefineError(f"{out} is a directory; give a file name with -o")
            if out.exists():
                raise RefineError(f"{out} exists; give another -o")
        except OSError as exc:
            raise RefineError(f"cannot write {out}: {exc.strerror or exc}") from None
        if cfg.strategy.is_user_backtest and out.resolve().parent != cfg.base_dir:
            # Its module is looked up beside the config file: elsewhere it would not be found.
            raise RefineError(f"{cfg.strategy.name} is a backtest of yours, found beside {cfg.source_path}: "
                              f"write the refined config in {cfg.base_dir} too")
        run_name = next_run_name(db, cfg, row.symbol)
    else:
        assert cfg.source_path is not None
        where = Path.cwd() if cfg.source_path == DEMO_CONFIG else cfg.source_path.parent
        run_name = next_run_name(db, cfg, row.symbol, taken_files=where)
        out = where / f"{run_name}.toml"
    # The importances are computed afresh (a second at 10,000 trials): those a worker stored
    # may be from before they were ranked in the study's direction.
    p = plan(cfg, row.symbol, load_all_trials(db, study), parent=study, run_name=run_name, top_k=top_k,
             fix_below=fix_below)
    return Prepared(p, out, render(cfg, p, out))


def describe(prepared: Prepared) -> list[str]:
    """The refinement in a few lines, for a person to read before it is made (plain text:
    the caller escapes it where markup is rendered)."""
    p = prepared.plan
    width = max(len(d.param) for d in p.decisions)
    lines = [f"{p.parent} -> {p.study}: {prepared.out}", *p.notes]
    lines += [f"  {d.param:<{width}}  {d.action:<8}  {d.text}" for d in p.decisions]
    return lines


def apply(db: Database, prepared: Prepared) -> tuple[RunConfig, int, int, str | None]:
    """Write the refined config, check it loads, and create its study from the parent's top
    trials: (the new config, trials copied, trials enqueued). A config that would not load,
    or a study that cannot be made, leaves no file behind."""
    from .config import ConfigError, load_config

    write(prepared.text, prepared.out)
    try:
        try:
            new = load_config(prepared.out)
        except ConfigError as exc:  # e.g. a run name too long for its _rN: said, and the file removed
            raise RefineError(f"the refined config would not load, so nothing was written: {exc}") from None
        copied, enqueued, why = seed(db, new, prepared.plan)
    except BaseException:
        prepared.out.unlink(missing_ok=True)
        raise
    return new, copied, enqueued, why


# ---------------------------------------------------------------- the file


HEADER_END = "# Written by tune refine; edit it as any config, then: tune run THIS_FILE"


def render(cfg: RunConfig, p: Plan, out: Path) -> str:
    """The refined config: the parent's file (its comments kept, but those in [space], which is
    written anew, and an earlier refinement's header) with the run renamed, the one symbol,
    the new [space] and the fixed parameters, each decision a comment."""
    import tomlkit
    from tomlkit.items import InlineTable

    assert cfg.source_path is not None
    text = cfg.source_path.read_text(encoding="utf-8")
    if HEADER_END in text:  # a refinement of a refinement: its parent's header is history
        text = text.split(HEADER_END, 1)[1].lstrip("\n")
    doc = tomlkit.parse(text)
    doc["study"]["name"] = p.run_name
    doc["data"]["symbols"] = [p.symbol]
    data = doc["data"]
    path = data.get("path")
    if isinstance(path, str) and not Path(path).expanduser().is_absolute() and out.parent.resolve() != cfg.base_dir:
        data["path"] = str(cfg.base_dir / path)  # the same files, from the new file's place
    strategy = doc["strategy"]
    if p.fixed:
        fixed = strategy.get("fixed")
        if fixed is None or isinstance(fixed, InlineTable):  # a table of its own, where comments fit
            table = tomlkit.table()
            for key, value in (fixed or {}).items():
                table[key] = value
            strategy["fixed"] = table
            fixed = strategy["fixed"]
        why = {d.param: f"{d.action}: {d.text}" for d in p.decisions}
        for name, value in p.fixed.items():
            item = tomlkit.item(value)  # an item, which takes a comment (a plain bool would not)
            item.comment(why[name])
            fixed[name] = item
    space = tomlkit.table(is_super_table=True)
    for d in p.decisions:
        if d.param not in p.space:
            continue
        table = tomlkit.table()
        table.add(tomlkit.comment(f"{d.action}: {d.text}"))
        for key, value in p.space[d.param].items():
            if key == "when":  # inline, as a config writes it
                inline = tomlkit.inline_table()
                inline.update(value)
                value = inline
            table[key] = value
        space[d.param] = table
    doc["space"] = space
    header = [f"# {line}" for line in p.notes]
    header += [f"#   {d.param}: {d.action}: {d.text}" for d in p.decisions]
    header.append(HEADER_END)
    return "\n".join(header) + "\n\n" + tomlkit.dumps(doc)


def write(text: str, out: Path) -> None:
    """Write the refined config, owner-only, never over an existing file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with new_private_file(tmp) as handle:
            handle.write(text)
        try:
            os.link(tmp, out)  # fails if the file exists, even one made a moment ago (a second refine)
        except FileExistsError:
            raise RefineError(f"{out} exists; give another -o") from None
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- the new study


def seed(db: Database, new: RunConfig, p: Plan) -> tuple[int, int, str | None]:
    """Create the refined study, with the parent as its lineage, and start it from the parent's
    top trials (:func:`start_from_top`); their combinations are claimed for deduplication.
    Returns (copied, enqueued, why none was copied — or None).

    The copies are trusted only if the parent's best, run again under the new config, gives
    its value: a config edited since the run (costs, data, holdout) would otherwise carry
    results its own trials could not reach. Else every top trial is run again."""
    from .study import Objective, open_study

    best = p.top[0]
    try:
        again = Objective(new, p.symbol)({k: v for k, v in best.params.items() if k in new.space}).values
        trusted = len(again) == len(best.values) and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(again, best.values))
    except Exception:  # noqa: BLE001 - any failure to reproduce it means: do not trust the copies
        trusted = False
    why = None if trusted else (f"{p.parent}'s best, run again under this config, does not give its value "
                                "(costs, data or validation changed since?): its top trials are run again")
    try:
        control.register_study(db, new, p.symbol, reset_control=True, new_only=True, parent=p.parent)
    except control.StudyExists:
        raise RefineError(f"{p.study} was made meanwhile (another tune refine?); run tune refine again") from None
    try:
        study = open_study(db, new, p.symbol)
        copied, enqueued, claims = start_from_top(study, new, p, trusted=trusted)
        if new.study.dedup:
            from .dedup import reclaim

            for key, number in claims:
                reclaim(db, p.study, key, number)
    except BaseException:
        # Half made: the study goes with its file (apply removes it); no worker runs it yet.
        try:
            db.forget_storage(p.study)
            db.delete_studies([p.study], control.live_studies)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    return copied, enqueued, why


def start_from_top(study: optuna.Study, new: RunConfig, p: Plan,
                   trusted: bool = True) -> tuple[int, int, list[tuple[str, int]]]:
    """Add the parent's top trials to the empty ``study`` of the refined config ``new``: a trial
    the new config would evaluate the same way (exactly the parameters it would suggest, each
    in its range; every other one fixed in ``new`` at the trial's value) is copied with its
    values, metrics, constraints and times, marked ``copied_from``; any other (all of them
    unless ``trusted``) is enqueued, to run under the new config. Returns (copied, enqueued,
    [(dedup key, trial number) of each copy])."""
    from .space import distributions, param_key

    dists = distributions(new)
    fixed = new.strategy.fixed
    copied = enqueued = 0
    claims: list[tuple[str, int]] = []
    queued: set[str] = set()  # combinations enqueued already (two top trials differing in a fixed one)
    for t in p.top:
        params = {k: v for k, v in t.params.items() if k in dists and _contains(dists[k], v)}
        suggested = {name for name, q in new.space.items()
                     if not q.when or all(repr(params.get(k)) == repr(v) for k, v in q.when.items())}
        same = (trusted and set(params) == suggested
                and all(k in fixed and repr(fixed[k]) == repr(v) for k, v in t.params.items() if k not in params))
        number = copied + enqueued  # the study was empty: trials are numbered as added
        if same:
            copy = optuna.trial.create_trial(
                state=TrialState.COMPLETE, values=t.values, params=params,
                distributions={k: dists[k] for k in params},
                user_attrs={**t.user_attrs, COPIED_FROM: f"{p.parent}#{t.number}"},
                intermediate_values=t.intermediate_values, constraints=t.constraints or None,
            )
            # Its own times: a copy is not a trial finished now (the rate, the ETA).
            copy.datetime_start, copy.datetime_complete = t.datetime_start, t.datetime_complete
            study.add_trial(copy)
            claims.append((param_key(new, params), number))
            copied += 1
        elif (key := param_key(new, params)) not in queued:
            queued.add(key)
            study.enqueue_trial(params, user_attrs={COPIED_FROM: f"{p.parent}#{t.number} (run again)"})
            enqueued += 1
    return copied, enqueued, claims


def _contains(d: BaseDistribution, value: Any) -> bool:
    if isinstance(d, CategoricalDistribution):
        return any(repr(value) == repr(c) for c in d.choices)
    low, high = d.low, d.high  # type: ignore[attr-defined]
    return low - 1e-12 * max(1.0, abs(low)) <= value <= high + 1e-12 * max(1.0, abs(high))
