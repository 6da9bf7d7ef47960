"""Coulombic efficiency of Li|Cu cells (reference physics §2.8, Adams et al. 2018)."""

from __future__ import annotations

import numpy as np

from labctl.analysis.cycling import HalfCycles


def ce_per_cycle(hc: HalfCycles) -> dict[str, np.ndarray]:
    """CE_n = Q_strip,n / Q_plate,n for each plating half-cycle followed by a stripping one."""
    cyc, q_plate, q_strip = [], [], []
    for k in range(len(hc) - 1):
        if hc.sign[k] < 0 and hc.sign[k + 1] > 0:
            cyc.append(int(hc.cycle[k]))
            q_plate.append(float(hc.charge[k]))
            q_strip.append(float(hc.charge[k + 1]))
    qp, qs = np.asarray(q_plate), np.asarray(q_strip)
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(qp > 0, qs / qp, np.nan)
    return {"cycle": np.asarray(cyc, dtype=int), "q_plate": qp, "q_strip": qs, "ce": ce}


def aurbach_ce(q_reservoir: float, q_cycle: float, n_cycles: int, q_final_strip: float) -> float:
    """Average CE of the Aurbach/Adams protocol: (n Q_C + Q_S) / (n Q_C + Q_T)."""
    if q_reservoir <= 0 or q_cycle <= 0 or n_cycles < 1:
        raise ValueError("the Aurbach CE needs Q_T > 0, Q_C > 0 and n >= 1")
    return (n_cycles * q_cycle + q_final_strip) / (n_cycles * q_cycle + q_reservoir)


def aurbach_from_half_cycles(hc: HalfCycles, n_cycles: int) -> dict[str, float]:
    """Read Q_T, Q_C and Q_S off a trace of the protocol: [formation plate, strip,] reservoir plate,
    n x (strip Q_C, plate Q_C) ... , final strip. Uses the last 2n+2 half-cycles."""
    need = 2 * n_cycles + 2
    if len(hc) < need:
        raise ValueError(f"an Aurbach trace with n={n_cycles} needs {need} half-cycles, got {len(hc)}")
    q = hc.charge[-need:]
    q_t, q_s = float(q[0]), float(q[-1])
    q_c = float(np.median(q[1:-1]))
    return {"q_reservoir": q_t, "q_cycle": q_c, "n": n_cycles, "q_final_strip": q_s,
            "ce_avg": aurbach_ce(q_t, q_c, n_cycles, q_s)}
