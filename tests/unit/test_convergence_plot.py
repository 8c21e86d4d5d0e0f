"""The convergence plot's downsampling: what is drawn is bounded by the width, and the
extremes of every column survive it."""

from __future__ import annotations

import numpy as np
import pytest

from tui.widgets.convergence_plot import best_so_far, downsample


def columns_of(x: np.ndarray, columns: int) -> np.ndarray:
    """The column of each x: ``columns`` equal slices of [x[0], x[-1]]."""
    edges = np.linspace(x[0], x[-1], columns + 1)
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, columns - 1)


def test_few_points_are_drawn_as_they_are():
    x, y = np.arange(20.0), np.random.default_rng(0).normal(size=20)
    px, py = downsample(x, y, columns=10)
    assert px is x and py is y
    px, py = downsample(np.arange(100.0), np.arange(100.0), columns=1)  # no room to bucket
    assert len(px) == 100


@pytest.mark.parametrize("n, columns", [(1000, 10), (100_000, 70), (41, 20), (5000, 3)])
def test_at_most_two_points_per_column_keeping_each_columns_min_and_max(n, columns):
    rng = np.random.default_rng(n)
    x = np.sort(rng.uniform(0, 500, n))
    y = rng.normal(size=n)
    px, py = downsample(x, y, columns)
    assert len(px) == len(py) <= 2 * columns
    assert py.max() == y.max() and py.min() == y.min()
    edges = np.linspace(x[0], x[-1], columns + 1)
    bucket = columns_of(x, columns)
    for c in np.unique(bucket):
        in_column = y[bucket == c]
        drawn = set(py[(px >= edges[c]) & (px < edges[c + 1])].tolist())  # drawn at the column's centre
        assert {in_column.min(), in_column.max()} <= drawn, c
    assert px.min() >= x[0] and px.max() <= x[-1]


def test_empty_columns_draw_nothing():
    # trials at the start and the end only: the columns in between stay empty
    x = np.r_[np.linspace(0, 1, 50), np.linspace(99, 100, 50)]
    y = np.arange(100.0)
    px, py = downsample(x, y, columns=10)
    assert len(px) == 4  # two columns, a low and a high each
    assert sorted(py.tolist()) == [0.0, 49.0, 50.0, 99.0]


def test_best_so_far_follows_the_direction():
    x = np.arange(5.0)
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert best_so_far(x, y, maximize=True, columns=10)[1].tolist() == [1.0, 3.0, 3.0, 5.0, 5.0]
    assert best_so_far(x, y, maximize=False, columns=10)[1].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]


def test_best_so_far_has_one_point_per_column_and_ends_at_the_best():
    rng = np.random.default_rng(1)
    x = np.arange(10_000.0)
    y = rng.normal(size=10_000)
    bx, by = best_so_far(x, y, maximize=True, columns=60)
    assert len(bx) <= 60
    assert bx[0] == x[0] and bx[-1] == x[-1]
    assert by[-1] == y.max()
    assert np.all(np.diff(by) >= 0)  # never gets worse
