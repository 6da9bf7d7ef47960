"""The one short-circuit criterion (reference physics §4.1), used online by the engine's cycling steps and
offline by the analysis, with the same parameters, so the run and its report agree on when and how a cell
failed.

`ShortCriterion` is the streaming form: fed one half-cycle at a time (t, V, I), in order, it answers the time
of the short and which criterion fired. `find_short` is the offline form: it splits a stored trace into the
same half-cycles (the stored `half_cycle` column, else runs of one current sign) and feeds them to a fresh
`ShortCriterion` built with the same parameters (`r_el_ohm`: the high-frequency real impedance of the last EIS
before the cycling; `threshold`/`window`: the protocol's `short_detection`).

Criteria (the first that fires wins):
- apparent resistance |V|/|I| below R_el over most of a half-cycle's middle (an ionic path alone cannot be
  less resistive than the electrolyte);
- a sudden >= 50 % drop of a half-cycle's median |V| (middle 50 %) against the median of the previous ones
  *at the same current* (up to 20; at least 4), with a flattened profile, the whole half-cycle below the old
  level; the time is where |V| fell and stayed (it may lie in the previous half-cycle);
- the protocol's rule: |V| below `threshold` for `window` seconds without a break, across half-cycles.
A change of current (a rate test's next stage) starts a new history: a lower current is not a collapse.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

LEVEL_TOLERANCE = 0.02  # half-cycles whose |I| differ by more than this start a new history


def median(x: np.ndarray | list[float]) -> float:
    """`np.median` of a 1-D array, bit for bit (the same order statistics from one partition, the same sum of
    the middle two halved, NaN if any value is), without its per-call overhead: a 1000 h cell asks for
    thousands of half-cycle medians online and again in its analysis (issue 19)."""
    a = np.asarray(x, dtype=float)
    n = a.size
    if n == 0:
        return float(np.median(a))  # NaN, with numpy's warning
    h = n // 2
    part = np.partition(a, [h - 1, h, n - 1] if n % 2 == 0 else [h, n - 1])
    if np.isnan(part[-1]):
        return float("nan")
    return float(part[h]) if n % 2 else float((part[h - 1] + part[h]) / 2)


@dataclass
class ShortCriterion:
    """Streaming short detection over half-cycles (see the module docstring)."""

    r_el_ohm: float | None = None
    threshold: float | None = None
    window: float | None = None
    drop: float = 0.5
    min_history: int = 4
    history: list[float] = field(default_factory=list)  # half-cycle medians (middle 50 %) at this current
    _low_since: float | None = field(default=None, repr=False)
    _last: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _level: float | None = field(default=None, repr=False)

    def check(self, t: np.ndarray, v: np.ndarray, i: np.ndarray) -> tuple[float, str] | None:
        """(time of the short, criterion) or None, for the next half-cycle; updates the history."""
        t, v, i = (np.asarray(x, dtype=float) for x in (t, v, i))
        found = self._check_drop(t, v, i)
        held = self._held_low(t, np.abs(v))
        if found is None or (held is not None and held[0] < found[0]):
            return held
        return found

    def _held_low(self, t: np.ndarray, av: np.ndarray) -> tuple[float, str] | None:
        """The start of the first stretch with |V| < threshold lasting `window` (carried between calls)."""
        if not self.threshold or self.window is None or not len(av):
            return None
        below = av < self.threshold
        edges = np.flatnonzero(np.diff(below.astype(np.int8))) + 1
        bounds = np.concatenate(([0], edges, [len(below)]))
        found = None
        for a, b in itertools.pairwise(bounds):
            if not below[a]:
                continue
            since = self._low_since if a == 0 and self._low_since is not None else float(t[a])
            if found is None and float(t[b - 1]) - since >= self.window:
                found = (since, f"|V| below {self.threshold * 1e3:.3g} mV for {self.window:g} s")
        if below[-1]:  # a stretch still open at the end: carried into the next call
            last = int(bounds[-2])
            self._low_since = self._low_since if last == 0 and self._low_since is not None else float(t[last])
        else:
            self._low_since = None
        return found

    def _new_level(self, ai: np.ndarray) -> None:
        level = median(ai) if len(ai) else 0.0
        if self._level is None or abs(level - self._level) > LEVEL_TOLERANCE * max(self._level, 1e-15):
            self.history.clear()
            self._last = None
        self._level = level

    def _check_drop(self, t: np.ndarray, v: np.ndarray, i: np.ndarray) -> tuple[float, str] | None:
        if len(v) < 4:
            return None
        av, ai = np.abs(v), np.abs(i)
        self._new_level(ai)
        n = len(av)
        mid = av[n // 4 : max(n // 4 + 1, 3 * n // 4)]
        median_v = median(mid)
        if self.r_el_ohm:
            with np.errstate(divide="ignore", invalid="ignore"):
                low = (ai > 0) & (av / ai < self.r_el_ohm)
            if np.count_nonzero(low[n // 4 : 3 * n // 4]) > len(mid) // 2:
                return float(t[int(np.argmax(low))]), f"|V|/|I| below R_el = {self.r_el_ohm:.3g} ohm"
        prev = self.history[-20:]
        self.history.append(median_v)
        last, self._last = self._last, (t, av)
        if len(prev) < self.min_history:
            return None
        ref = median(prev)
        if ref <= 0 or median_v >= self.drop * ref:
            return None
        # where |V| fell below the threshold and stayed there (it may have started in the previous half-cycle)
        tt = np.concatenate([last[0], t]) if last is not None else t
        aa = np.concatenate([last[1], av]) if last is not None else av
        below = aa < self.drop * ref
        k = len(below) - int(np.argmin(np.flip(below))) if not below.all() else 0
        if len(aa) - k < len(mid):  # the collapse does not cover this half-cycle's middle
            return None
        if float(np.percentile(aa[k:], 99)) >= ref:  # not flattened: still reaches the old level
            return None
        detail = f"half-cycle median {median_v * 1e3:.3g} mV < {self.drop:.0%} of {ref * 1e3:.3g} mV"
        return float(tt[k]), detail


def half_cycle_bounds(current: np.ndarray, half_cycle: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(start, stop) of each half-cycle as the engine fed them: runs of the stored `half_cycle` index when
    there is one, else runs of one current sign (zero-current points are rests and are skipped)."""
    i = np.asarray(current, dtype=float)
    if i.size == 0:
        return []
    if half_cycle is not None and len(half_cycle) == i.size:
        key = np.asarray(half_cycle)
        edges = np.flatnonzero(key[1:] != key[:-1]) + 1
    else:
        s = np.sign(np.where(np.abs(i) > 1e-12, i, 0.0))
        edges = np.flatnonzero(s[1:] != s[:-1]) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [i.size]))
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if np.any(np.abs(i[a:b]) > 1e-12)]


def feed(criterion: ShortCriterion, t: np.ndarray, v: np.ndarray, i: np.ndarray,
         bounds: list[tuple[int, int]]) -> tuple[float, str, int] | None:
    """Feed the half-cycles `bounds` of a trace to `criterion` in order; (time, criterion, half-cycle index)
    of the first short."""
    for k, (a, b) in enumerate(bounds):
        found = criterion.check(t[a:b], v[a:b], i[a:b])
        if found is not None:
            return found[0], found[1], k
    return None


def find_short(t: np.ndarray, voltage: np.ndarray, current: np.ndarray, half_cycle: np.ndarray | None = None,
               *, r_el_ohm: float | None = None, threshold: float | None = None,
               window: float | None = None) -> tuple[float, str, int] | None:
    """The offline form: (time, criterion, index of the half-cycle) of the first short in a stored trace."""
    det = ShortCriterion(r_el_ohm=r_el_ohm, threshold=threshold, window=window)
    t, v, i = (np.asarray(x, dtype=float) for x in (t, voltage, current))
    return feed(det, t, v, i, half_cycle_bounds(i, half_cycle))
