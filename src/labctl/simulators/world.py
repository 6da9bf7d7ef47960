"""The world the simulators share: the contract (`WorldPort`) and a minimal implementation (`SimpleWorld`).

Simulator cores tell the world what their instrument does to it (a stage move, a pump flow, RF power) and
ask it what their instrument would measure (bath temperature, chamber pressure, mass on the QCM crystal,
cell voltage, impedance). Times are seconds on the shared clock; quantities are SI (temperatures in degC).

`SimpleWorld` is deliberately plain (a resistor-like cell, a first-order bath, linear pressure): enough for
driver and simulator tests. `labctl.simulators.physics.PhysicalWorld` implements the same port with the
models of the reference physics and is what dry runs use.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

Vec3 = tuple[float, float, float]


@runtime_checkable
class WorldPort(Protocol):
    # stage (GRBL): linear moves of the sample holder; x/y select a bath, z is height (down is negative)
    def stage_move(self, t0: float, start: Vec3, end: Vec3, speed_m_s: float) -> None: ...
    def stage_stop(self, t: float) -> None: ...

    # pumps (NE-1000): liquid from pump `pump` flows into its bath from t0 at rate until t_end (None: on)
    def pump_flow(self, pump: str, t0: float, rate_m3_s: float, t_end: float | None = None) -> None: ...

    # hotplate (IKA): heater setpoint and state; what the probes read
    def hotplate(self, t: float, setpoint_c: float, heating: bool, stir_rpm: float = 0.0) -> None: ...
    def bath_temperature(self, t: float) -> float: ...
    def plate_temperature(self, t: float) -> float: ...

    # sputter chamber (gauge, MFC, RF, QCM + shutter)
    def gas_flow(self, t: float, gas: str, sccm: float) -> None: ...
    def rf_power(self, t: float, watts: float) -> None: ...
    def shutter(self, t: float, is_open: bool) -> None: ...
    def chamber_pressure(self, t: float) -> float: ...
    def gas_flow_actual(self, t: float) -> float:
        """sccm actually flowing (follows the setpoint with the MFC's lag)."""
        ...
    def reflected_power(self, t: float) -> float: ...
    def qcm_areal_mass(self, t: float) -> float:
        """kg/m^2 deposited on the QCM crystal since the world began."""
        ...

    # cell (potentiostat, EIS)
    def cell_voltage(self, t: np.ndarray, current_a: np.ndarray) -> np.ndarray:
        """Cell voltage at times `t` (increasing, after any earlier call) for the current held since the
        previous sample. Vectorised: a whole buffer of points per call."""
        ...
    def cell_impedance(self, t: float, freq_hz: np.ndarray) -> np.ndarray: ...
    def cell_ocv(self, t: float) -> float: ...


class SimpleWorld:
    """Minimal physics for tests of single instruments (see module docstring)."""

    def __init__(self, *, cell_ohm: float = 10.0, cell_farad: float = 1e-6, ambient_c: float = 22.0,
                 bath_tau_s: float = 60.0, base_pressure_pa: float = 1e-4, pa_per_sccm: float = 0.02,
                 rate_kg_m2_s_per_w: float = 1e-11) -> None:
        self.cell_ohm, self.cell_farad = cell_ohm, cell_farad
        self.ambient_c, self.bath_tau_s = ambient_c, bath_tau_s
        self.base_pressure_pa, self.pa_per_sccm = base_pressure_pa, pa_per_sccm
        self.rate = rate_kg_m2_s_per_w
        self.position: Vec3 = (0.0, 0.0, 0.0)
        self.moves: list[tuple[float, Vec3, Vec3, float]] = []
        self.pumped_m3: dict[str, float] = {}
        self._flows: dict[str, tuple[float, float, float | None]] = {}
        self._bath = (0.0, ambient_c, ambient_c, False)   # t, temperature, setpoint, heating
        self._sccm = 0.0
        self._watts = 0.0
        self._shutter = False
        self._mass = 0.0
        self._t_chamber = 0.0

    def stage_move(self, t0: float, start: Vec3, end: Vec3, speed_m_s: float) -> None:
        self.moves.append((t0, start, end, speed_m_s))
        self.position = end

    def stage_stop(self, t: float) -> None:
        pass

    def pump_flow(self, pump: str, t0: float, rate_m3_s: float, t_end: float | None = None) -> None:
        if pump in self._flows:  # settle the previous flow up to t0
            s, r, e = self._flows[pump]
            stop = t0 if e is None else min(t0, e)
            self.pumped_m3[pump] = self.pumped_m3.get(pump, 0.0) + r * max(0.0, stop - s)
        self._flows[pump] = (t0, rate_m3_s, t_end)

    def hotplate(self, t: float, setpoint_c: float, heating: bool, stir_rpm: float = 0.0) -> None:
        temp = self.bath_temperature(t)
        self._bath = (t, temp, setpoint_c, heating)

    def bath_temperature(self, t: float) -> float:
        t0, temp0, setpoint, heating = self._bath
        target = setpoint if heating else self.ambient_c
        return target + (temp0 - target) * math.exp(-max(0.0, t - t0) / self.bath_tau_s)

    def plate_temperature(self, t: float) -> float:
        _, _, setpoint, heating = self._bath
        return setpoint + 5.0 if heating else self.bath_temperature(t)

    def _advance_chamber(self, t: float) -> None:
        if t > self._t_chamber:
            if self._shutter and self._watts > 0 and self.chamber_pressure(t) > 0.1:
                self._mass += self.rate * self._watts * (t - self._t_chamber)
            self._t_chamber = t

    def gas_flow(self, t: float, gas: str, sccm: float) -> None:
        self._advance_chamber(t)
        self._sccm = sccm

    def gas_flow_actual(self, t: float) -> float:
        return self._sccm

    def rf_power(self, t: float, watts: float) -> None:
        self._advance_chamber(t)
        self._watts = watts

    def shutter(self, t: float, is_open: bool) -> None:
        self._advance_chamber(t)
        self._shutter = is_open

    def chamber_pressure(self, t: float) -> float:
        return self.base_pressure_pa + self.pa_per_sccm * self._sccm

    def reflected_power(self, t: float) -> float:
        p = self.chamber_pressure(t)
        return self._watts * (0.02 if 0.1 <= p <= 5.0 else 0.6)

    def qcm_areal_mass(self, t: float) -> float:
        self._advance_chamber(t)
        return self._mass

    def cell_voltage(self, t: np.ndarray, current_a: np.ndarray) -> np.ndarray:
        return np.asarray(current_a, dtype=float) * self.cell_ohm

    def cell_impedance(self, t: float, freq_hz: np.ndarray) -> np.ndarray:
        w = 2 * np.pi * np.asarray(freq_hz, dtype=float)
        return 1.0 + self.cell_ohm / (1 + 1j * w * self.cell_ohm * self.cell_farad)

    def cell_ocv(self, t: float) -> float:
        return 0.0
