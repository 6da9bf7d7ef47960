"""Baths on the stage: liquid volumes and salt from the pump flows, and the hotplate's first-order lag."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolymerSolution:
    """A dip-coating solution (SI): viscosity Pa s, surface tension N/m, density kg/m^3, solids volume
    fraction, solvent evaporation flux kg m^-2 s^-1, effective conductivity of the swollen film S/cm."""

    viscosity: float = 0.02
    surface_tension: float = 0.027
    density: float = 890.0
    solids_fraction: float = 0.03
    evaporation: float = 3e-4
    sigma_eff: float = 2e-5
    name: str = "polymer"
    layer: str = "polymer"  # the `constants.LAYERS` kind of the dry film


@dataclass(frozen=True)
class StockSpec:
    """What a pump holds: salt (None for neat solvent) at `concentration` mol/m^3, in `solvent`."""

    pump: str
    solvent: str = "THF"
    salt: str | None = None
    concentration: float = 0.0


@dataclass(frozen=True)
class BathSpec:
    """A bath: stage x of its centre and liquid surface height (m), half-width in x, capacity (m^3), the pumps
    that feed it, whether the hotplate heats it, initial contents (m^3 of liquid, mol of salt) and an optional
    polymer solution (then the bath is a dip-coating bath)."""

    x: float
    surface_z: float
    half_width: float = 0.015
    capacity: float = 50e-6
    pumps: tuple[str, ...] = ()
    heated: bool = False
    volume: float = 0.0
    salt: str | None = None
    salt_mol: float = 0.0
    polymer: PolymerSolution | None = None


@dataclass
class Bath:
    spec: BathSpec
    volume: float = 0.0  # m^3 of liquid
    salt: str | None = None
    salt_mol: float = 0.0
    overflowed_m3: float = 0.0
    flows: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)
    t: float = 0.0

    def __post_init__(self) -> None:
        self.volume, self.salt, self.salt_mol = self.spec.volume, self.spec.salt, self.spec.salt_mol

    @property
    def concentration(self) -> float:
        """mol/m^3 of salt in the bath (0 when empty)."""
        return self.salt_mol / self.volume if self.volume > 1e-12 else 0.0

    def advance(self, t: float, stocks: dict[str, StockSpec]) -> None:
        """Integrate every flow up to `t` (piecewise-constant rates, exact)."""
        if t <= self.t:
            return
        for pump, (t0, rate, t_end) in self.flows.items():
            a, b = max(t0, self.t), t if t_end is None else min(t, t_end)
            if b > a and rate != 0:
                self._add(rate * (b - a), stocks.get(pump))
        self.t = t

    def _add(self, dv: float, stock: StockSpec | None) -> None:
        if dv >= 0:
            self.volume += dv
            if stock is not None and stock.salt:
                self.salt = self.salt or stock.salt
                self.salt_mol += dv * stock.concentration
            spill = self.volume - self.spec.capacity
            if spill > 0:  # overflow leaves at the mixed composition
                self.salt_mol -= spill * self.concentration
                self.volume -= spill
                self.overflowed_m3 += spill
        else:  # a withdrawing pump draws the bath's liquid back
            take = min(-dv, self.volume)
            self.salt_mol -= take * self.concentration
            self.volume -= take

    def consume_salt(self, mol: float) -> float:
        """Remove up to `mol` of salt (reaction with the sample); returns what was available."""
        got = min(mol, self.salt_mol)
        self.salt_mol -= got
        return got


class Heater:
    """Hotplate and the heated bath: first-order lags towards their targets (exact exponentials)."""

    def __init__(self, ambient_c: float = 22.0, tau_bath_s: float = 300.0, tau_plate_s: float = 40.0) -> None:
        self.ambient, self.tau_bath, self.tau_plate = ambient_c, tau_bath_s, tau_plate_s
        self.t, self.bath0, self.plate0 = 0.0, ambient_c, ambient_c
        self.setpoint, self.heating, self.stir = ambient_c, False, 0.0

    def set(self, t: float, setpoint_c: float, heating: bool, stir_rpm: float) -> None:
        self.bath0, self.plate0, self.t = self.bath(t), self.plate(t), t
        self.setpoint, self.heating, self.stir = setpoint_c, heating, stir_rpm

    def _lag(self, t: float, v0: float, target: float, tau: float) -> float:
        return target + (v0 - target) * math.exp(-max(0.0, t - self.t) / tau)

    def bath(self, t: float) -> float:
        target = self.setpoint if self.heating else self.ambient
        return self._lag(t, self.bath0, target, self.tau_bath / (1 + self.stir / 300.0))

    def plate(self, t: float) -> float:
        target = self.setpoint + 0.2 * (self.setpoint - self.ambient) if self.heating else self.ambient
        return self._lag(t, self.plate0, target, self.tau_plate)
