"""Per-half-cycle metrics of galvanostatic cycling traces (reference physics §4.1).

Conventions, stated once:
- a *half-cycle* is a run of points with the same sign of current (|I| above `rest_fraction` of the
  largest |I| of the trace); rests are skipped;
- *plating* is negative current on the working electrode (Li deposited on it), *stripping* positive;
- the *overpotential* of a half-cycle is the median |V| over the middle 50 % of its duration; the *peak* is
  max |V| over the whole half-cycle; the *hysteresis* of a cycle is V_strip,mid − V_plate,mid;
- a *cycle* is one plating and the following stripping half-cycle (numbered from 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.analysis.failure import ShortCriterion, feed, half_cycle_bounds, median

HOUR = 3600.0


@dataclass
class HalfCycles:
    """One row per half-cycle; every attribute is an array of the same length."""

    start: np.ndarray         # index of the first point
    stop: np.ndarray          # index after the last point
    t_start: np.ndarray       # s
    t_end: np.ndarray         # s
    current: np.ndarray       # A (median over the half-cycle)
    sign: np.ndarray          # -1 plating, +1 stripping
    cycle: np.ndarray         # 1-based cycle number
    overpotential: np.ndarray # V, median |V| over the middle 50 %
    peak: np.ndarray          # V, max |V|
    v_mid: np.ndarray         # V, signed median over the middle 50 %
    charge: np.ndarray        # C, integral of |I| dt
    flatness: np.ndarray      # median |V|, first 10 % / overpotential (≈ 1: no nucleation peak)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def t_mid(self) -> np.ndarray:
        return 0.5 * (self.t_start + self.t_end)


def segment(current: np.ndarray, *, rest_fraction: float = 1e-3,
            min_points: int = 3) -> list[tuple[int, int]]:
    """(start, stop) index pairs of constant-sign current runs, rests excluded, vectorised."""
    i = np.asarray(current, dtype=float)
    if i.size == 0:
        return []
    threshold = rest_fraction * float(np.max(np.abs(i)))
    s = np.where(i > threshold, 1, np.where(i < -threshold, -1, 0))
    edges = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [s.size]))
    keep = (s[starts] != 0) & (stops - starts >= min_points)
    return list(zip(starts[keep].tolist(), stops[keep].tolist(), strict=True))


def half_cycles(t: np.ndarray, voltage: np.ndarray, current: np.ndarray,
                half_cycle: np.ndarray | None = None, **kw: float) -> HalfCycles:
    """Split a trace into half-cycles and compute their metrics. With the stored `half_cycle` column the split
    is the engine's own (every stage of a rate test kept, however small its current against the largest);
    without it, runs of one current sign (`segment`)."""
    t = np.asarray(t, dtype=float)
    v = np.asarray(voltage, dtype=float)
    i = np.asarray(current, dtype=float)
    rows = []
    cycle = 0
    if half_cycle is not None:
        least = int(kw.get("min_points", 3))
        bounds = [(a, b) for a, b in half_cycle_bounds(i, half_cycle) if b - a >= least]
    else:
        bounds = segment(i, **kw)
    for a, b in bounds:
        i_median = median(i[a:b])
        sign = 1 if i_median > 0 else -1
        if sign < 0 or cycle == 0:  # a cycle starts with its plating half (or the trace's first half)
            cycle += 1
        n = b - a
        mid = slice(a + n // 4, max(a + n // 4 + 1, a + (3 * n) // 4))
        absv = np.abs(v[a:b])
        over = median(np.abs(v[mid]))
        dt = np.diff(t[a:b], prepend=t[a])
        dt[0] = dt[1] if n > 1 else 0.0  # each point stands for the interval before it
        rows.append((a, b, t[a], t[b - 1], i_median, sign, cycle, over,
                     float(absv.max()), median(v[mid]), float(np.sum(np.abs(i[a:b]) * dt)),
                     float(median(absv[: max(1, n // 10)]) / over) if over > 0 else np.inf))
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(12)]
    arr = [np.asarray(c) for c in cols]
    ints = {0, 1, 5, 6}
    return HalfCycles(*(a.astype(int if k in ints else float) for k, a in enumerate(arr)))


@dataclass
class CycleTable:
    """One row per complete cycle (a plating half-cycle and the stripping one after it)."""

    cycle: np.ndarray
    t_mid: np.ndarray          # s
    plating: np.ndarray        # V, overpotential of the plating half
    stripping: np.ndarray      # V, overpotential of the stripping half
    hysteresis: np.ndarray     # V, V_strip,mid - V_plate,mid
    q_plate: np.ndarray        # C
    q_strip: np.ndarray        # C


def cycles(hc: HalfCycles) -> CycleTable:
    """Pair each plating half-cycle with the stripping half-cycle of the same cycle number."""
    plate = {int(c): k for k, (c, s) in enumerate(zip(hc.cycle, hc.sign, strict=True)) if s < 0}
    strip = {int(c): k for k, (c, s) in enumerate(zip(hc.cycle, hc.sign, strict=True)) if s > 0}
    both = sorted(set(plate) & set(strip))
    p = np.array([plate[c] for c in both], dtype=int)
    s = np.array([strip[c] for c in both], dtype=int)
    if not both:
        empty = np.array([])
        return CycleTable(empty, empty, empty, empty, empty, empty, empty)
    return CycleTable(np.array(both), 0.5 * (hc.t_start[p] + hc.t_end[s]), hc.overpotential[p],
                      hc.overpotential[s], hc.v_mid[s] - hc.v_mid[p], hc.charge[p], hc.charge[s])


def growth_per_100h(t_mid: np.ndarray, overpotential: np.ndarray, *, start_h: float = 100.0,
                    end_h: float = 500.0) -> float | None:
    """Slope of overpotential vs time over [start_h, end_h] in V per 100 h (least squares; None if < 3)."""
    t_h = np.asarray(t_mid) / HOUR
    sel = (t_h >= start_h) & (t_h <= end_h) & np.isfinite(overpotential)
    if sel.sum() < 3:
        return None
    slope = np.polyfit(t_h[sel], np.asarray(overpotential)[sel], 1)[0]
    return float(slope * 100.0)


@dataclass
class Failure:
    """How and when a cell failed (mode None: it did not)."""

    mode: str | None  # "hard_short" | "soft_short" | "voltage_limit" | "overpotential_runaway" | None
    time_s: float | None = None
    half_cycle: int | None = None
    soft_shorts: list[float] = field(default_factory=list)   # times (s) of collapses that recovered
    detail: str = ""

    @property
    def hours(self) -> float | None:
        return None if self.time_s is None else self.time_s / HOUR


def detect_failure(t: np.ndarray, voltage: np.ndarray, current: np.ndarray,
                   half_cycle: np.ndarray | None = None, *, criterion: ShortCriterion | None = None,
                   voltage_limit: float | None = None,
                   r_el_ohm: float | None = None, threshold: float | None = None, window: float | None = None,
                   runaway_factor: float = 2.0, rate_test: bool = False, drop: float = 0.5,
                   hc: HalfCycles | None = None) -> Failure:
    """The first failure of a cycling trace (physics §4.1 "cycle life": first of a short, |V| at the cut-off,
    overpotential > `runaway_factor` × its cycle-10 value).

    The short is the engine's own criterion (`labctl.analysis.failure`), fed the same half-cycles with the
    same parameters (`criterion` to continue a run-level one, else a fresh one from `r_el_ohm`, `threshold`,
    `window`), so run and report agree. A short after which the half-cycle medians recover (data continued,
    `short_detection.stop_after`) is reported as a soft short. Rate tests change current on purpose: no
    runaway criterion there. `hc`: this trace's `half_cycles(t, voltage, current, half_cycle)` when the
    caller has them already (not computed twice)."""
    t, v, i = (np.asarray(x, dtype=float) for x in (t, voltage, current))
    crit = criterion or ShortCriterion(r_el_ohm=r_el_ohm, threshold=threshold, window=window, drop=drop)
    bounds = half_cycle_bounds(i, half_cycle)
    candidates: list[Failure] = []
    ref = crit.history[-20:]
    found = feed(crit, t, v, i, bounds)
    if found is not None:
        at, detail, k = found
        mode, soft = "hard_short", []
        later = [float(np.median(np.abs(v[a:b][(b - a) // 4:max((b - a) // 4 + 1, 3 * (b - a) // 4)])))
                 for a, b in bounds[k + 1:k + 11]]
        prior = crit.history[-21:-1] or ref
        if len(later) >= 3 and prior and np.median(later) > drop * float(np.median(prior)):
            mode, soft = "soft_short", [at]
            detail += "; recovered afterwards (soft short)"
        candidates.append(Failure(mode, at, k, soft, detail))
    if voltage_limit is not None:
        hit = np.flatnonzero(np.abs(v) >= 0.999 * abs(voltage_limit))
        if hit.size:
            k = next(n for n, (a, b) in enumerate(bounds) if a <= hit[0] < b) if bounds else None
            candidates.append(Failure("voltage_limit", float(t[hit[0]]), k, [],
                                      f"|V| reached {abs(v[hit[0]]):.3f} V (limit {abs(voltage_limit):g} V)"))
    if not rate_test:
        hc = half_cycles(t, v, i, half_cycle) if hc is None else hc
        tenth = np.flatnonzero(hc.cycle == 10)
        if tenth.size:
            ref10 = float(hc.overpotential[tenth[0]])
            over = np.flatnonzero((hc.cycle > 10) & (hc.overpotential > runaway_factor * ref10))
            if over.size:
                k = int(over[0])
                detail = (f"{hc.overpotential[k] * 1e3:.1f} mV > {runaway_factor:g} x cycle-10 "
                          f"{ref10 * 1e3:.1f} mV")
                candidates.append(Failure("overpotential_runaway", float(hc.t_start[k]), k, [], detail))
    if not candidates:
        return Failure(None, None, None, [], "no failure detected")
    return min(candidates, key=lambda f: f.time_s if f.time_s is not None else np.inf)


def before(hc: HalfCycles, time_s: float | None) -> HalfCycles:
    """The half-cycles that ended before `time_s` (all of them if None): metrics never use data after a
    failure."""
    if time_s is None:
        return hc
    keep = hc.t_end < time_s
    return HalfCycles(*(getattr(hc, f)[keep] for f in HalfCycles.__dataclass_fields__))


def rate_capability(hc: HalfCycles, area_m2: float) -> dict[str, np.ndarray]:
    """Median overpotential of each stage of a rate test, in the order run (a stage: consecutive half-cycles
    at one current density, A/m^2, within 1 %; a return to an earlier current is a stage of its own)."""
    j = np.abs(hc.current) / area_m2
    stages: list[list[int]] = []
    for k, jk in enumerate(j):
        if stages and np.isclose(jk, j[stages[-1][0]], rtol=1e-2):
            stages[-1].append(k)
        else:
            stages.append([k])
    return {"current_density": np.array([float(np.median(j[s])) for s in stages]),
            "overpotential": np.array([float(np.median(hc.overpotential[s])) for s in stages]),
            "half_cycles": np.array([len(s) for s in stages], dtype=int)}
