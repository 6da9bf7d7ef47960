"""Server-side downsampling: each bucket's extremes kept (with and without tsdownsample), windows, gaps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labctl.web import downsample
from labctl.web.downsample import minmax_indices, reduce_indices, window


def _trace(n: int = 200_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    v = 0.05 * np.sign(np.sin(t / 3600.0)) + 0.002 * rng.standard_normal(n)
    v[int(n * 0.617)] = 0.4  # a spike
    v[int(n * 0.75):int(n * 0.75) + 600] = 0.0  # a short: 10 min at 0 V
    return t, v


@pytest.mark.parametrize("method", ["tsdownsample", "numpy"])
def test_buckets_keep_their_extremes(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    t, v = _trace()
    if method == "numpy":
        idx = minmax_indices(v, 1000)
    else:
        pytest.importorskip("tsdownsample")
        idx = reduce_indices(t, v, 1000)
    assert idx.size <= 1000 and np.all(np.diff(idx) > 0)
    assert v[idx].max() == v.max() == 0.4 and v[idx].min() == v.min()
    assert np.any(v[idx][(t[idx] >= 150_000) & (t[idx] < 150_600)] == 0.0)  # the short shows
    # every one of 500 equal buckets shows its own min and max
    edges = np.linspace(0, v.size, 501).astype(int)
    for a, b in itertools.pairwise(edges):
        inside = v[idx[(idx >= a) & (idx < b)]]
        assert inside.max() == v[a:b].max() and inside.min() == v[a:b].min()


def test_window_cuts_to_the_range_and_sends_small_ranges_whole() -> None:
    t, v = _trace(10_000)
    w = window(t, v, 800, 1000.0, 1500.0)
    assert w.total == 501 and w.x.size == 501 and w.x[0] == 1000.0 and w.x[-1] == 1500.0
    w = window(t, v, 100)
    assert w.total == 10_000 and w.x.size <= 200
    assert window(t, v, 10**9).x.size <= 2 * downsample.MAX_WIDTH


def test_gaps_become_null_and_survive_reduction() -> None:
    t = np.arange(1000, dtype=np.float64)
    v = np.sin(t / 50)
    v[500] = np.nan
    w = window(t, v, 50)
    out = w.as_json()
    assert all(y is None or isinstance(y, float) for y in out["y"])
    assert np.nanmax(w.y) == np.nanmax(v) and np.nanmin(w.y) == np.nanmin(v)
    assert window(np.empty(0), np.empty(0), 100).as_json() == {"x": [], "y": [], "total": 0, "shown": 0}
