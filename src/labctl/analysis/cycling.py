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


def segment(current: np.ndarray, *, rest_fraction: float = 0.02,
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


def half_cycles(t: np.ndarray, voltage: np.ndarray, current: np.ndarray, **kw: float) -> HalfCycles:
    """Split a trace into half-cycles and compute their metrics."""
    t = np.asarray(t, dtype=float)
    v = np.asarray(voltage, dtype=float)
    i = np.asarray(current, dtype=float)
    rows = []
    cycle = 0
    for a, b in segment(i, **kw):
        sign = 1 if np.median(i[a:b]) > 0 else -1
        if sign < 0 or cycle == 0:  # a cycle starts with its plating half (or the trace's first half)
            cycle += 1
        n = b - a
        mid = slice(a + n // 4, max(a + n // 4 + 1, a + (3 * n) // 4))
        absv = np.abs(v[a:b])
        over = float(np.median(np.abs(v[mid])))
        dt = np.diff(t[a:b], prepend=t[a])
        dt[0] = dt[1] if n > 1 else 0.0  # each point stands for the interval before it
        rows.append((a, b, t[a], t[b - 1], float(np.median(i[a:b])), sign, cycle, over,
                     float(absv.max()), float(np.median(v[mid])), float(np.sum(np.abs(i[a:b]) * dt)),
                     float(np.median(absv[: max(1, n // 10)]) / over) if over > 0 else np.inf))
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

    mode: str | None            # "hard_short" | "voltage_limit" | "overpotential_runaway" | None
    time_s: float | None = None
    half_cycle: int | None = None
    soft_shorts: list[float] = field(default_factory=list)   # times (s) of recovered collapses
    detail: str = ""

    @property
    def hours(self) -> float | None:
        return None if self.time_s is None else self.time_s / HOUR


def detect_failure(hc: HalfCycles, *, voltage_limit: float | None = None, r_el_ohm: float | None = None,
                   drop: float = 0.5, window: int = 10, flat: float = 1.15,
                   runaway_factor: float = 2.0) -> Failure:
    """First failure by the reference definitions (physics §4.1).

    Hard short: apparent resistance |V|/|I| below the electrolyte resistance `r_el_ohm` (when known), or the
    half-cycle overpotential drops by ≥ `drop` against the median of the previous `window` half-cycles with a
    flattened profile (peak/median < `flat`) and does not recover; a collapse that recovers is a soft short.
    Voltage limit: peak |V| reaches `voltage_limit`. Runaway: overpotential > `runaway_factor` × cycle 10's.
    """
    n = len(hc)
    soft: list[float] = []
    ref10 = None
    tenth = np.flatnonzero(hc.cycle == 10)
    if tenth.size:
        ref10 = float(hc.overpotential[tenth[0]])
    for k in range(n):
        over, t0 = float(hc.overpotential[k]), float(hc.t_start[k])
        if voltage_limit is not None and hc.peak[k] >= 0.999 * voltage_limit:
            return Failure("voltage_limit", t0, k, soft, f"|V| reached {hc.peak[k]:.3f} V")
        r_app = over / abs(hc.current[k]) if hc.current[k] else np.inf
        collapsed = r_el_ohm is not None and r_app < r_el_ohm
        if k >= window and not collapsed:
            base = float(np.median(hc.overpotential[k - window:k]))
            collapsed = over <= (1 - drop) * base and hc.flatness[k] < flat
        if collapsed:
            later = hc.overpotential[k + 1:k + 1 + window]
            base = float(np.median(hc.overpotential[max(0, k - window):k])) if k else over
            if later.size and np.median(later) > (1 - drop) * base:
                soft.append(t0)
                continue
            return Failure("hard_short", t0, k, soft, f"overpotential {over * 1e3:.1f} mV, "
                           f"apparent resistance {r_app:.3g} ohm")
        if ref10 is not None and hc.cycle[k] > 10 and over > runaway_factor * ref10:
            return Failure("overpotential_runaway", t0, k, soft,
                           f"{over * 1e3:.1f} mV > {runaway_factor:g} x cycle-10 {ref10 * 1e3:.1f} mV")
    return Failure(None, None, None, soft, "no failure detected")


def rate_capability(hc: HalfCycles, area_m2: float) -> dict[str, np.ndarray]:
    """Median overpotential per distinct current density (A/m^2), for rate tests."""
    j = np.abs(hc.current) / area_m2
    levels = np.unique(np.round(j, 6))
    over = np.array([np.median(hc.overpotential[np.isclose(j, lv, rtol=1e-3)]) for lv in levels])
    count = np.array([int(np.isclose(j, lv, rtol=1e-3).sum()) for lv in levels])
    return {"current_density": levels, "overpotential": over, "half_cycles": count}
