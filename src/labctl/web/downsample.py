"""Series cut to a plot's pixel width on the server, keeping their shape.

A 1000 h trace at 1 point/s is 3.6 M points; a plot 1000 px wide shows at most two values per pixel column
(the lowest and the highest), so min/max per bucket loses nothing the eye could see: spikes, a short's
collapse to 0 V and the envelope survive. `tsdownsample`'s MinMax (Rust, SIMD) is used when installed,
otherwise numpy takes each bucket's min and max; the points returned are points of the series (indices), in
time order, never averages. Not MinMaxLTTB: its LTTB pass picks by triangle area and was measured dropping
the global maximum of a cycling trace (0.107 V shown of 0.111 V), which an auditor would read as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_WIDTH = 8000  # px: a wider request is cut to this (4 points per px at most are sent)


@dataclass(frozen=True)
class Window:
    """Points of `x`/`y` inside [t0, t1], reduced to about `2 * width` points; `total` counts the window."""

    x: np.ndarray
    y: np.ndarray
    total: int

    def as_json(self) -> dict[str, object]:
        return {"x": _finite(self.x), "y": _finite(self.y), "total": self.total, "shown": int(self.x.size)}


def _finite(a: np.ndarray) -> list[float | None]:
    """JSON has no NaN: gaps (NaN) become null, which uPlot draws as a break."""
    return [None if not np.isfinite(v) else float(v) for v in a.tolist()]


def minmax_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of each bucket's min and max (numpy only), sorted; `n_out` even, about the points returned."""
    n = y.size
    if n <= n_out:
        return np.arange(n)
    buckets = max(1, n_out // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    # reduceat over the buckets: position of each bucket's min and max (NaN treated as +/-inf, kept out)
    lo = np.where(np.isnan(y), np.inf, y)
    hi = np.where(np.isnan(y), -np.inf, y)
    idx = []
    for a, b in zip(starts, edges[1:], strict=True):
        if b > a:
            idx.append(a + int(np.argmin(lo[a:b])))
            idx.append(a + int(np.argmax(hi[a:b])))
    return np.unique(np.asarray(idx, dtype=np.int64))


def reduce_indices(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the points to draw: tsdownsample's MinMax if installed, else numpy min/max."""
    if y.size <= n_out:
        return np.arange(y.size)
    try:
        from tsdownsample import MinMaxDownsampler
    except ImportError:
        return minmax_indices(y, n_out)
    if np.isnan(y).any() or np.isnan(x).any():  # the Rust kernels want finite values
        return minmax_indices(y, n_out)
    # a flat bucket gives its min and max at one index: sent once
    idx = MinMaxDownsampler().downsample(x, y, n_out=n_out - n_out % 2)
    return np.unique(np.asarray(idx, dtype=np.int64))


def window(x: np.ndarray, y: np.ndarray, width: int, t0: float | None = None,
           t1: float | None = None) -> Window:
    """The points of (x, y) with t0 <= x <= t1 (x ascending, as stored) reduced for a `width`-px plot."""
    width = max(10, min(int(width), MAX_WIDTH))
    lo = 0 if t0 is None else int(np.searchsorted(x, t0, side="left"))
    hi = x.size if t1 is None else int(np.searchsorted(x, t1, side="right"))
    xs, ys = x[lo:hi], y[lo:hi]
    xs, ys = np.ascontiguousarray(xs, dtype=np.float64), np.ascontiguousarray(ys, dtype=np.float64)
    keep = reduce_indices(xs, ys, 2 * width)
    return Window(xs[keep], ys[keep], int(xs.size))
