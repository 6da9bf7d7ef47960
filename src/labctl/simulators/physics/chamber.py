"""Sputter/plasma chamber (physics.md §1.5-1.6): pressure from gas flow and pumping speed with a
lag, the MFC's lag, plasma window and reflected power, LiF deposition on the QCM crystal and (shutter open) on
the sample, Li3N growth in an N2 plasma, substrate heating. Inputs are piecewise constant between calls;
integration is exact for the lags and by quadrature over the pressure transient."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.fabrication import li3n_kp_um2_s, sputter_rate_m_s

N2_SPUTTER_FACTOR = 0.05  # LiF sputtered by an N2 plasma, relative to Ar at the same power and pressure [E]


@dataclass(frozen=True)
class ChamberSpec:
    base_pressure: float = 5e-5  # Pa
    pumping_speed: float = 0.07  # m^3/s (throttled): 20 sccm Ar -> 0.48 Pa
    pressure_tau: float = 2.0  # s
    mfc_tau: float = 0.5  # s
    target_area: float = 20.3e-4  # m^2
    distance: float = 0.08  # m
    tooling: float = 1.0  # substrate/crystal thickness ratio
    plasma_window: tuple[float, float] = (0.1, 200.0)  # Pa
    n2_impurity_ppm: float = 0.1
    substrate_c0: float = 22.0


class Chamber:
    def __init__(self, spec: ChamberSpec, *, rate_factor: float = 1.0) -> None:
        self.spec, self.rate_factor = spec, rate_factor
        self.t = 0.0
        self.gas, self.sccm, self.flow0, self.p0 = "Ar", 0.0, 0.0, spec.base_pressure
        self.t_gas = 0.0
        self.watts, self.shutter_open = 0.0, False
        self.qcm_kg_m2 = 0.0
        self.lif_m = 0.0  # on the sample
        self.li3n_um2 = 0.0  # L² of the Li3N film (µm²)
        self.energy_kwh = 0.0
        self.t_sub0, self.t_rf = spec.substrate_c0, 0.0
        self.rf_watts_for_heat = 0.0

    # -- lags -----------------------------------------------------------------------------------------

    def p_ss(self) -> float:
        return self.spec.base_pressure + self.sccm * c.SCCM_PA_M3_S / self.spec.pumping_speed

    def pressure(self, t: float) -> float:
        target = self.p_ss()
        return target + (self.p0 - target) * math.exp(-max(0.0, t - self.t_gas) / self.spec.pressure_tau)

    def flow(self, t: float) -> float:
        return self.sccm + (self.flow0 - self.sccm) * math.exp(-max(0.0, t - self.t_gas) / self.spec.mfc_tau)

    def lit(self, p: float | np.ndarray) -> bool | np.ndarray:
        lo, hi = self.spec.plasma_window
        return (self.watts > 0) & (p >= lo) & (p <= hi)

    def reflected(self, t: float) -> float:
        if self.watts <= 0:
            return 0.0
        p = self.pressure(t)
        lo, hi = self.spec.plasma_window
        d = math.log10(lo / p) if p < lo else (math.log10(p / hi) if p > hi else 0.0)
        return self.watts * (0.02 + 0.78 * (1 - math.exp(-3 * d)))

    def substrate(self, t: float) -> float:
        pd = self.rf_watts_for_heat / (self.spec.target_area * 1e4)
        target = self.spec.substrate_c0 + 8.0 * pd
        return target + (self.t_sub0 - target) * math.exp(-max(0.0, t - self.t_rf) / 900.0)

    # -- events ---------------------------------------------------------------------------------------

    def set_gas(self, t: float, gas: str, sccm: float) -> None:
        self.advance(t)
        self.p0, self.flow0, self.t_gas = self.pressure(t), self.flow(t), t
        self.gas, self.sccm = gas, max(0.0, sccm)

    def set_rf(self, t: float, watts: float) -> None:
        self.advance(t)
        self.t_sub0, self.t_rf = self.substrate(t), t
        self.watts = self.rf_watts_for_heat = max(0.0, watts)

    def set_shutter(self, t: float, is_open: bool) -> None:
        self.advance(t)
        self.shutter_open = is_open

    # -- integration ----------------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Deposit and nitride from `self.t` to `t` with the inputs held since the last event."""
        a, b = self.t, t
        if b <= a:
            return
        self.t = b
        if self.watts <= 0:
            return
        self.energy_kwh += self.watts * (b - a) / 3.6e6
        edge = min(b, max(a, self.t_gas + 8 * self.spec.pressure_tau))
        parts = []
        if edge > a:
            tt = np.linspace(a, edge, 33)
            parts.append((tt, self._pressures(tt)))
        if b > edge:
            p = self.p_ss()
            parts.append((np.array([edge, b]), np.array([p, p])))
        for tt, pp in parts:
            lit = self.lit(pp)
            rate = np.array([sputter_rate_m_s(self.watts, p, self.spec.target_area, self.spec.distance)
                             for p in pp]) * lit * self._erosion()
            dep = float(np.trapezoid(rate, tt)) * self.rate_factor
            if self.gas.upper() == "N2":  # lighter ions on a nitrided (poisoned) target: little LiF [E]
                dep *= N2_SPUTTER_FACTOR
            self.qcm_kg_m2 += dep / self.spec.tooling * c.LIF_DENSITY
            if self.shutter_open:
                self.lif_m += dep
                if self.gas.upper() == "N2":
                    kp = np.array([li3n_kp_um2_s(self.watts, p, self.spec.n2_impurity_ppm, True) for p in pp])
                    self.li3n_um2 += float(np.trapezoid(kp * lit, tt))

    def _pressures(self, tt: np.ndarray) -> np.ndarray:
        target = self.p_ss()
        age = np.maximum(0.0, tt - self.t_gas)
        return target + (self.p0 - target) * np.exp(-age / self.spec.pressure_tau)

    def _erosion(self) -> float:
        return 1 - 0.005 * self.energy_kwh / 10.0
