"""The current a cell draws when a potential is applied: what the potentiostatic simulators measure.

The world answers galvanostatically (`cell_voltage(t, i)`: the voltage for a current held since the previous
sample) and with its small-signal impedance (`cell_impedance(t, f)`). A core that applies a potential (the
2450 sourcing voltage; the EmStat4's LSV, CV, DPV, SWV, CA) needs the other direction. `Potentiostat` does it
in two steps per batch of samples, both computed from the world, nothing tabulated:

1. a linear estimate from the world's own impedance at that time, reduced to a Randles circuit
   R_s + (R_p || C): R_s = Re Z at 1 MHz, R_s + R_p = Re Z at 1 mHz, C from the frequency where -Im Z peaks.
   The circuit is integrated exactly for a potential held between samples (the double-layer charge is
   carried between calls), so a potential step gives its capacitive spike and a sweep its charging current;
2. the world's DC model is asked for the voltage at the faradaic part of those currents (the part through
   R_p, which also passes that charge through the world's cell, so plating/stripping state moves as in a
   galvanostatic run), and that part is corrected by one secant step through the OCV point, `i_F *= i_F
   (R_s + R_p) / (V_world - OCV)`: the world's non-linear parts (nucleation and concentration overpotentials,
   a short) show in the current, which keeps its sign, while the double-layer (capacitive) part stays the
   circuit's. (A Newton step with the circuit's slope overshoots on a strongly non-linear cell, to a current
   of the wrong sign; the secant through the OCV cannot.)

The world wants strictly increasing times, never the same time twice: samples at or before the last asked
time are moved 1 ns after it (`EPS`), as the 2450 core does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPS = 1e-9  # s
F_HIGH, F_LOW = 1e6, 1e-3  # Hz: where R_s and R_s + R_p are read
F_GRID = np.geomspace(F_LOW, F_HIGH, 91)


@dataclass
class Randles:
    """R_s + (R_p || C), the reduction of the world's impedance at one time."""

    r_s: float
    r_p: float
    c: float

    @classmethod
    def from_impedance(cls, freq: np.ndarray, z: np.ndarray) -> Randles:
        r_s = max(float(z[-1].real), 1e-3)
        r_p = max(float(z[0].real) - r_s, 0.0)
        peak = int(np.argmax(-z.imag))
        c = 1.0 / (2 * math.pi * float(freq[peak]) * r_p) if r_p > 0 and -z[peak].imag > 0 else 0.0
        return cls(r_s, r_p, c)

    @property
    def r_dc(self) -> float:
        return self.r_s + self.r_p


class Potentiostat:
    """Applies potentials to the world's cell and returns the currents it draws (see module docstring)."""

    def __init__(self, world: object) -> None:
        self.world = world
        self.v_c = 0.0  # volts across the double layer (relative to the OCV)
        self.last_t = -math.inf  # the last time the world's cell was asked
        self.randles: Randles | None = None

    def circuit(self, t: float) -> Randles:
        z = np.asarray(self.world.cell_impedance(t, F_GRID), dtype=complex)  # type: ignore[attr-defined]
        self.randles = Randles.from_impedance(F_GRID, z)
        return self.randles

    def times(self, t: np.ndarray) -> np.ndarray:
        """`t` made strictly increasing after the last asked time (1 ns steps where they are not)."""
        t = np.asarray(t, dtype=float)
        if not len(t):
            return t
        out = np.maximum.accumulate(np.maximum(t, self.last_t + EPS))
        for k in range(1, len(out)):  # equal neighbours: rare (a reading at the previous instant)
            if out[k] <= out[k - 1]:
                out[k] = out[k - 1] + EPS
        return out

    def apply(self, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Potentials `e` (V, cell voltage) held until times `t`: (currents in A, cell voltages in V).

        The voltages are the world's at the estimated currents; the currents are corrected toward `e`."""
        t = self.times(t)
        e = np.broadcast_to(np.asarray(e, dtype=float), t.shape)
        if not len(t):
            return np.zeros(0), np.zeros(0)
        ocv = np.array([self.world.cell_ocv(float(x)) for x in t])  # type: ignore[attr-defined]
        rc = self.circuit(float(t[0]))
        u = e - ocv
        i = np.empty(len(t))
        i_f = np.empty(len(t))
        v_c = self.v_c
        prev = self.last_t if math.isfinite(self.last_t) else float(t[0])
        tau = rc.c * rc.r_s * rc.r_p / rc.r_dc if rc.c > 0 else 0.0
        for k in range(len(t)):
            v_inf = u[k] * rc.r_p / rc.r_dc
            dt = max(float(t[k]) - prev, 0.0)
            v_c = v_inf + (v_c - v_inf) * math.exp(-dt / tau) if tau > 0 else v_inf
            i[k] = (u[k] - v_c) / rc.r_s
            i_f[k] = v_c / rc.r_p if rc.r_p > 0 else i[k]
            prev = float(t[k])
        self.v_c = v_c
        v_world = np.asarray(self.world.cell_voltage(t, i_f), dtype=float)  # type: ignore[attr-defined]
        self.last_t = float(t[-1])
        drop = v_world - ocv  # what the world's DC path needs for i_f
        usable = (np.abs(drop) > 1e-12) & (np.sign(drop) == np.sign(i_f))
        scale = np.where(usable, i_f * rc.r_dc / np.where(usable, drop, 1.0), 1.0)
        return i + i_f * (scale - 1.0), v_world
