"""What the slices and heatmap views draw, kept up to date one trial at a time.

An :class:`Outline` takes each complete trial once (the monitor adds it as the trial
finishes, runner/monitor.py) and keeps, whatever the number of trials:

- per parameter, the lowest and highest value of the objective in each of
  ``columns`` slots of the parameter's range (its own values when it has few): the
  outline of a slice plot, at most two points a slot;
- per pair of parameters, the best value in each cell of a fine grid (48 slots a side,
  or the parameter's own values when it has few), which a heatmap of up to 12 bins
  a side merges into its cells.

So drawing a slice or a heatmap costs the same at a hundred trials or a hundred
thousand. A numeric parameter is kept value by value while it has few distinct
values; past that, in equal slots of the range its values span (in log for a log
scale), so the views keep their detail where the sampler went, however narrow a
corner of the space that is. A trial that does not fit — a value outside that range,
a distribution of another kind (a refined space) — makes the outline
:attr:`Outline.stale`, and its owner rebuilds it from the trials once.

The first objective is the one drawn (the one a single-objective study has; for
several, the first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from .status import format_value

SLICE_COLUMNS = 240  # a slice keeps at most two points per slot, as many slots as the widest plot has columns
HEATMAP_BINS = 12  # the most bins a side the heatmap view draws
HEATMAP_FINE = 48  # slots a side of the grid a heatmap's bins merge (48: 4, 6, 8, 12 bins divide it evenly)


def label(value: Any) -> str:
    return format_value(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Slice:
    """The objective against one parameter. Categoricals: ``xs`` are indices into ``choices``."""

    param: str
    categorical: bool
    log: bool
    choices: list[str]
    xs: list[float]
    ys: list[float]
    best_x: float | None
    best_y: float | None
    trials: int  # complete trials behind the points (before thinning)


@dataclass(frozen=True)
class Heatmap:
    """The best value of each cell over two parameters; cells without a trial are None."""

    x_param: str
    y_param: str
    x_labels: list[str]
    y_labels: list[str]
    cells: list[list[float | None]]  # rows: y bins (first = lowest), columns: x bins
    best: tuple[int, int] | None  # (column, row) of the best trial's cell
    maximize: bool
    trials: int
    order: list[str] = field(default_factory=list)  # every parameter, the most important first


EXACT_LIMIT = HEATMAP_FINE  # a numeric parameter with more distinct values seen than this is slotted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _ParamSlice:
    """One parameter's outline: per slot, the (y, x) of the lowest and the highest (the
    slice), and the slots seen (the heatmap's axis).

    A numeric parameter is kept value by value while it has at most EXACT_LIMIT
    distinct values; past that, in equal slots of ``span``, the range of the values
    seen when the outline was built (in log for a log scale). A value past the limit,
    or outside the span, makes the outline stale: its owner rebuilds it over the new
    range (a new extreme grows rarer as trials accumulate)."""

    __slots__ = ("dist", "span", "log", "count", "raw", "low", "high", "keys", "vmin", "vmax")

    def __init__(self, dist: BaseDistribution, values: list[Any] | None = None) -> None:
        self.dist = dist
        self.log = isinstance(dist, (IntDistribution, FloatDistribution)) and dist.log
        self.span: tuple[float, float] | None = None
        numbers = [v for v in values or () if _is_number(v)]
        if not isinstance(dist, CategoricalDistribution) and len(set(numbers)) > EXACT_LIMIT:
            lo, hi = min(numbers), max(numbers)
            self.log = self.log and lo > 0
            self.span = (math.log(lo), math.log(hi)) if self.log else (float(lo), float(hi))
        self.count = 0
        self.raw: list[tuple[Any, float]] | None = []  # every point while few (None once past the limit)
        self.low: dict[Any, tuple[float, Any]] = {}  # slot -> (lowest y, its x)
        self.high: dict[Any, tuple[float, Any]] = {}
        self.keys: set[Any] = set()  # heatmap slots seen
        self.vmin: Any = None  # the lowest and highest value seen (numeric parameters)
        self.vmax: Any = None

    def fits(self, value: Any) -> bool:
        """Whether ``value`` can be kept without a rebuild."""
        if isinstance(self.dist, CategoricalDistribution):
            return label(value) in map(label, self.dist.choices)
        if not _is_number(value):
            return False
        if self.span is None:
            return value in self.keys or len(self.keys) < EXACT_LIMIT
        t = math.log(value) if self.log and value > 0 else float(value)
        return self.span[0] <= t <= self.span[1]

    def slot(self, value: Any, slots: int) -> Any:
        """The key ``value`` is kept under among ``slots``: a categorical's label, a value
        itself while few, else the centre of its slot of the span (onto an integer's grid)."""
        if isinstance(self.dist, CategoricalDistribution):
            return label(value)
        if self.span is None:
            return value
        lo, hi = self.span
        if hi <= lo:
            return value
        t = math.log(value) if self.log and value > 0 else float(value)
        index = min(max(int((t - lo) / (hi - lo) * slots), 0), slots - 1)
        centre = lo + (index + 0.5) * (hi - lo) / slots
        centre = math.exp(centre) if self.log else centre
        if isinstance(self.dist, IntDistribution):
            step = self.dist.step or 1
            return int(self.dist.low + round((centre - self.dist.low) / step) * step)
        return centre


class Outline:
    """The slices and the heatmap of one study's complete trials, kept as they arrive."""

    def __init__(self, maximize: bool, columns: int = SLICE_COLUMNS, fine: int = HEATMAP_FINE) -> None:
        self.maximize = maximize
        self.columns = columns
        self.fine = fine
        self.params: dict[str, _ParamSlice] = {}  # in the order first seen
        # (a, b) with a first seen before b -> {(slot of a, slot of b): (best value, trial number)}
        self.pairs: dict[tuple[str, str], dict[tuple[Any, Any], tuple[float, int]]] = {}
        self.pair_counts: dict[tuple[str, str], int] = {}
        # A trial it cannot keep as it is came (another distribution, a value past the
        # limit or the span): it takes no more, and its owner rebuilds it from the trials.
        self.stale = False

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial], maximize: bool, columns: int = SLICE_COLUMNS) -> Outline:
        """An outline of ``trials`` (complete ones with values; the others are skipped), each
        parameter in its latest distribution."""
        trials = [t for t in trials if t.values]
        latest: dict[str, BaseDistribution] = {}
        values: dict[str, list[Any]] = {}
        for t in trials:
            latest.update(t.distributions)
            for name, value in t.params.items():
                values.setdefault(name, []).append(value)
        outline = cls(maximize, columns)
        for name in latest:
            outline.params[name] = _ParamSlice(latest[name], values.get(name))
        for t in trials:
            outline.add(t, check=False)
        return outline

    def add(self, trial: FrozenTrial, check: bool = True) -> None:
        """Count a complete trial in (its first objective). ``check``: a trial that does not
        fit (see :attr:`stale`) makes the outline stale; without (a rebuild), what does not
        fit is left out."""
        if not trial.values or self.stale:
            return
        y = float(trial.values[0])
        if not math.isfinite(y):
            return
        better = (lambda a, b: a > b) if self.maximize else (lambda a, b: a < b)
        slots: dict[str, Any] = {}
        for name, x in trial.params.items():
            dist = trial.distributions[name]
            p = self.params.get(name)
            if p is None:
                p = self.params[name] = _ParamSlice(dist)
            if not p.fits(x) or (check and dist != p.dist):
                if check:
                    self.stale = True
                    return
                continue  # a rebuild leaves out a choice no longer in the space, a value of another kind
            p.count += 1
            if p.raw is not None:
                p.raw.append((x, y))
                if len(p.raw) > 2 * self.columns:
                    p.raw = None
            key = p.slot(x, self.columns)
            if (low := p.low.get(key)) is None or y < low[0]:
                p.low[key] = (y, x)
            if (high := p.high.get(key)) is None or y > high[0]:
                p.high[key] = (y, x)
            if not isinstance(p.dist, CategoricalDistribution):
                p.vmin = x if p.vmin is None or x < p.vmin else p.vmin
                p.vmax = x if p.vmax is None or x > p.vmax else p.vmax
            slots[name] = cell = p.slot(x, self.fine)
            p.keys.add(cell)
        names = [n for n in self.params if n in slots]  # first-seen order: one key per pair
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                cells = self.pairs.setdefault((a, b), {})
                self.pair_counts[(a, b)] = self.pair_counts.get((a, b), 0) + 1
                key = (slots[a], slots[b])
                old = cells.get(key)
                if old is None or better(y, old[0]):
                    cells[key] = (y, trial.number)

    # ------------------------------------------------------------ slices
    def slices(self, best: FrozenTrial | None) -> list[Slice]:
        """One slice per parameter; ``best``: the trial to mark."""
        out = []
        for name, p in self.params.items():
            if not p.count:
                continue
            categorical = isinstance(p.dist, CategoricalDistribution)
            choices = [label(c) for c in p.dist.choices] if isinstance(p.dist, CategoricalDistribution) else []
            if p.raw is not None:
                points = p.raw
            else:  # the lowest and the highest of each slot, once each
                points = sorted({(x, y) for y, x in [*p.low.values(), *p.high.values()]}, key=lambda xy: (str(xy[0]), xy[1]))
            if categorical:
                index = {c: i for i, c in enumerate(choices)}
                xs = [float(index[label(x)]) for x, _ in points]
            else:
                xs = [float(x) for x, _ in points]
            ys = [y for _, y in points]
            best_x = best_y = None
            if best is not None and best.values and name in best.params:
                v = best.params[name]
                if not categorical:
                    best_x, best_y = float(v), float(best.values[0])
                elif label(v) in choices:
                    best_x, best_y = float(choices.index(label(v))), float(best.values[0])
            log = isinstance(p.dist, (FloatDistribution, IntDistribution)) and p.dist.log
            out.append(Slice(name, categorical, log, choices, xs, ys, best_x, best_y, p.count))
        return out

    # ------------------------------------------------------------ heatmap
    def order(self, ranked: list[str] | None) -> list[str]:
        """Every parameter, those of ``ranked`` (the most important first) first."""
        known = [n for n in ranked or () if n in self.params]
        return known + [n for n in self.params if n not in known]

    def heatmap(self, x: str | None = None, y: str | None = None, bins: int = HEATMAP_BINS,
                ranked: list[str] | None = None, best: FrozenTrial | None = None) -> Heatmap | None:
        """The best value per cell over ``x`` and ``y`` (by default the first two of
        :meth:`order`), ``bins`` at most a side; ``best``: the trial whose cell is marked.
        None without two parameters and a trial that has both."""
        order = self.order(ranked)
        x = x if x in self.params else next(iter(order), None)
        y = y if y in self.params and y != x else next((p for p in order if p != x), None)
        if x is None or y is None:
            return None
        transposed = (x, y) not in self.pairs
        pair = (y, x) if transposed else (x, y)
        fine = self.pairs.get(pair)
        if not fine:
            return None
        x_index, x_labels = self._bins(self.params[x], bins)
        y_index, y_labels = self._bins(self.params[y], bins)
        better = (lambda a, b: a > b) if self.maximize else (lambda a, b: a < b)
        cells: list[list[float | None]] = [[None] * len(x_labels) for _ in y_labels]
        for (ka, kb), (value, _) in fine.items():
            kx, ky = (kb, ka) if transposed else (ka, kb)
            cx, cy = x_index(kx), y_index(ky)
            if cx < 0 or cy < 0:
                continue  # a choice no longer in the space
            old = cells[cy][cx]
            if old is None or better(value, old):
                cells[cy][cx] = value
        marked = None
        if best is not None and x in best.params and y in best.params:
            px, py = self.params[x], self.params[y]
            cx = x_index(px.slot(best.params[x], self.fine)) if px.fits(best.params[x]) else -1
            cy = y_index(py.slot(best.params[y], self.fine)) if py.fits(best.params[y]) else -1
            marked = (cx, cy) if cx >= 0 and cy >= 0 else None
        return Heatmap(x, y, x_labels, y_labels, cells, marked, self.maximize, self.pair_counts[pair], order)

    @staticmethod
    def _bins(p: _ParamSlice, bins: int) -> tuple[Any, list[str]]:
        """A function from a parameter's fine slot to its bin (-1: none), and the bins' labels:
        a categorical's choices; the values themselves when there are few, else equal bins
        over the values seen (equal in log for a log scale)."""
        dist = p.dist
        if isinstance(dist, CategoricalDistribution):
            choices = [label(c) for c in dist.choices]
            where = {c: i for i, c in enumerate(choices)}
            return (lambda k: where.get(k, -1)), choices
        if p.span is None and len(p.keys) <= bins:  # few values: each its own
            distinct = sorted(p.keys)
            at = {v: i for i, v in enumerate(distinct)}
            return (lambda k: at.get(k, -1)), [label(v) for v in distinct]
        lo_v, hi_v = p.vmin, p.vmax
        log = getattr(dist, "log", False) and lo_v > 0
        lo, hi = (math.log(lo_v), math.log(hi_v)) if log else (float(lo_v), float(hi_v))
        edges = np.linspace(lo, hi, bins + 1)

        def index(k: Any) -> int:
            t = math.log(k) if log else float(k)
            return min(max(int(np.searchsorted(edges, t, side="right")) - 1, 0), bins - 1)

        lows = np.exp(edges[:-1]) if log else edges[:-1]
        if isinstance(dist, IntDistribution):  # a bin of integers is named by the first it can hold
            return index, [str(math.ceil(v - 1e-9)) for v in lows]
        return index, [label(float(v)) for v in lows]
