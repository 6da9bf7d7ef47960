"""`PhysicalWorld`: one simulated bench world (baths, stage, chamber, sample, cell) implementing `WorldPort`.

Everything is driven by calls with times on the shared clock; fabrication is integrated lazily up to the time
of each call (stage pieces give exact immersion intervals). Randomness comes from independent streams spawned
from the seed, so a given seed gives the same world whatever the order the instruments ask in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.bath import Bath, BathSpec, Heater, PolymerSolution, StockSpec
from labctl.simulators.physics.cell import Cell
from labctl.simulators.physics.cellparams import COATED_SIDES, KINDS, build_params
from labctl.simulators.physics.chamber import Chamber, ChamberSpec
from labctl.simulators.physics.fabrication import deal_grove_um, dip_wet_thickness_m, immersion_b_um2_s
from labctl.simulators.physics.recipes import RecipeError, polymer_solution
from labctl.simulators.physics.sample import Layer, Sample
from labctl.simulators.physics.stage import Piece, Stage, Vec3, inside_interval

STREAMS = ("immersion", "dip", "sputter", "cell", "noise", "eis")
MAX_GROWTH_STEP_S = 30.0


class WorldConfigError(ValueError):
    """A world configuration or cell build that cannot be simulated."""


@dataclass
class WorldConfig:
    """The bench as the world sees it (SI; temperatures degC)."""

    baths: dict[str, BathSpec] = field(default_factory=dict)
    stocks: dict[str, StockSpec] = field(default_factory=dict)  # by pump role
    cell_area: float = 1.13e-4  # m^2
    sample_area: float = 2.0e-4  # m^2 of foil wetted in a bath
    li_thickness: float = 450e-6  # m
    ambient_c: float = 22.0
    cell_temperature_c: float = 25.0
    electrolyte_volume: float = 60e-9  # m^3
    chamber: ChamberSpec = field(default_factory=ChamberSpec)
    measurement_noise: bool = True  # cycler/EIS noise
    process_noise: bool = True  # run-to-run and cell-to-cell scatter


class PhysicalWorld:
    """The coupled physics of reference/physics.md behind the `WorldPort` methods (see module docstring)."""

    def __init__(self, config: WorldConfig | None = None, *, seed: int = 0, clock: Any = None) -> None:
        self.config = cfg = config or WorldConfig()
        self.seed, self.clock = seed, clock
        self._t_seen = 0.0  # latest time any call mentioned (stands in for "now" without a clock)
        self._rng = dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(
            len(STREAMS))), strict=True))
        self.t = 0.0
        self.stage = Stage()
        self.baths = {name: Bath(spec) for name, spec in cfg.baths.items()}
        self._pump_bath = self._map_pumps()
        self.stocks = dict(cfg.stocks)
        self.heater = Heater(cfg.ambient_c)
        rate_factor = self._lognormal("sputter", 1.0, 0.05)
        self.chamber = Chamber(cfg.chamber, rate_factor=rate_factor)
        self.sample = Sample(li_um=cfg.li_thickness * 1e6)
        self._growth: dict[str, dict[str, float]] = {}  # salt key -> G (µm²), immersed s, k_B
        self._lif_cv = 0.04
        self._li3n_noise = self._lognormal("sputter", 1.0, 0.15)
        self.cell: Cell | None = None
        self.events: list[tuple[float, str, dict[str, Any]]] = []

    # -- helpers --------------------------------------------------------------------------------------

    def _lognormal(self, stream: str, median: float, cv: float) -> float:
        if not self.config.process_noise:
            return median
        return float(median * math.exp(self._rng[stream].normal(0, math.sqrt(math.log(1 + cv * cv)))))

    def _map_pumps(self) -> dict[str, str]:
        """Each pump's valve starts at the first bath that lists it (a pump on one bath never switches)."""
        out: dict[str, str] = {}
        for name, spec in self.config.baths.items():
            for pump in spec.pumps:
                out.setdefault(pump, name)
        return out

    def _bath_of_pump(self, pump: str) -> Bath | None:
        name = self._pump_bath.get(pump)
        if name is None and len(self.baths) == 1:
            name = next(iter(self.baths))
        return self.baths.get(name) if name else None

    def select_bath(self, pump: str, bath: str, t: float | None = None) -> None:
        """Turn `pump`'s selector valve to `bath`: what it pumps from now on flows there.

        A pump that feeds several baths (the station's `baths:` entries list it under each) has a valve per
        outlet; the world cannot guess which one is open, so whoever fills a bath says so (in a dry run the
        `prepare_bath` step does, before it dispenses). What flowed before `t` stays where it went; a flow
        still running is split at `t`. Raises `WorldConfigError` if the bath is not plumbed to the pump."""
        if bath not in self.baths:
            raise WorldConfigError(f"no bath {bath!r} on this station (baths: {', '.join(self.baths)})")
        plumbed = [name for name, b in self.baths.items() if pump in b.spec.pumps]
        if plumbed and bath not in plumbed:
            raise WorldConfigError(f"{pump} is not plumbed to bath {bath!r} (it feeds {', '.join(plumbed)})")
        t = self.now() if t is None else t
        self._advance(t)
        old = self._bath_of_pump(pump)
        new = self.baths[bath]
        self._pump_bath[pump] = bath
        if old is None or old is new or pump not in old.flows:
            return
        old.advance(t, self.stocks)
        t0, rate, t_end = old.flows.pop(pump)
        if t_end is None or t_end > t:
            new.advance(t, self.stocks)
            new.flows[pump] = (max(t0, t), rate, t_end)
        self.events.append((t, "valve", {"pump": pump, "bath": bath}))

    def bath_of_pump(self, pump: str) -> str | None:
        """The bath `pump`'s valve is open to (None: a pump plumbed nowhere)."""
        name = self._pump_bath.get(pump)
        return name if name is not None else (next(iter(self.baths)) if len(self.baths) == 1 else None)

    def _seen(self, t: float) -> None:
        self._t_seen = max(self._t_seen, t)

    def now(self) -> float:
        """The clock's time if the world has one, else the latest time any call mentioned."""
        return self.clock.monotonic() if self.clock is not None else self._t_seen

    def _advance(self, t: float) -> None:
        """Integrate baths and immersion processes up to `t`."""
        self._seen(t)
        if t <= self.t:
            return
        for piece in self.stage.pieces(t):
            self._immerse_piece(piece)
        for bath in self.baths.values():
            bath.advance(t, self.stocks)
        self.t = t

    # -- WorldPort: stage -----------------------------------------------------------------------------

    def stage_move(self, t0: float, start: Vec3, end: Vec3, speed_m_s: float) -> None:
        t0 = max(t0, self.t)  # moves may be queued ahead; they are integrated when time gets there
        self.stage.move(t0, tuple(start), tuple(end), speed_m_s)  # type: ignore[arg-type]
        self._seen(t0 + (math.dist(start, end) / speed_m_s if speed_m_s > 0 else 0.0))

    def stage_stop(self, t: float) -> None:
        self.stage.stop(max(t, self.t))

    # -- WorldPort: pumps and hotplate ----------------------------------------------------------------

    def pump_flow(self, pump: str, t0: float, rate_m3_s: float, t_end: float | None = None) -> None:
        self._advance(t0)
        bath = self._bath_of_pump(pump)
        if bath is not None:
            bath.advance(t0, self.stocks)
            bath.flows[pump] = (t0, rate_m3_s, t_end)

    def hotplate(self, t: float, setpoint_c: float, heating: bool, stir_rpm: float = 0.0) -> None:
        self._advance(t)
        self.heater.set(t, setpoint_c, heating, stir_rpm)

    def bath_temperature(self, t: float) -> float:
        return self.heater.bath(t)

    def plate_temperature(self, t: float) -> float:
        return self.heater.plate(t)

    # -- WorldPort: chamber ---------------------------------------------------------------------------

    def gas_flow(self, t: float, gas: str, sccm: float) -> None:
        self._seen(t)
        self.chamber.set_gas(t, gas, sccm)

    def rf_power(self, t: float, watts: float) -> None:
        self._seen(t)
        self.chamber.set_rf(t, watts)

    def shutter(self, t: float, is_open: bool) -> None:
        self._seen(t)
        self.chamber.set_shutter(t, is_open)

    def chamber_pressure(self, t: float) -> float:
        return self.chamber.pressure(t)

    def gas_flow_actual(self, t: float) -> float:
        return self.chamber.flow(t)

    def reflected_power(self, t: float) -> float:
        return self.chamber.reflected(t)

    def qcm_areal_mass(self, t: float) -> float:
        self.chamber.advance(t)
        return self.chamber.qcm_kg_m2

    def substrate_temperature(self, t: float) -> float:
        """degC of the sample holder under RF (§1.5 first-order heating); not part of WorldPort."""
        return self.chamber.substrate(t)

    # -- WorldPort: cell ------------------------------------------------------------------------------

    def cell_voltage(self, t: np.ndarray, current_a: np.ndarray) -> np.ndarray:
        return self._cell().voltage(t, current_a)

    def cell_impedance(self, t: float, freq_hz: np.ndarray) -> np.ndarray:
        return self._cell().impedance(t, freq_hz)

    def cell_ocv(self, t: float) -> float:
        return self._cell().ocv(t)

    def cell_current_at_limit(self, t: np.ndarray, current_a: np.ndarray, v: np.ndarray,
                              v_limit: float) -> np.ndarray:
        """What flows at points (`t`, just asked of `cell_voltage`) where a source in voltage compliance holds
        the cell at `v_limit` instead of the model's `v` (see `Cell.current_at_limit`)."""
        return self._cell().current_at_limit(current_a, v, v_limit)

    def _cell(self) -> Cell:
        if self.cell is None:
            self.assemble_cell()
        assert self.cell is not None
        return self.cell

    # -- beyond the port ------------------------------------------------------------------------------

    def assemble_cell(self, *, area_m2: float | None = None, electrolyte: str = "carbonate",
                      separator: str = "celgard", coated: str = "both", kind: str = "symmetric",
                      t: float | None = None, **_: Any) -> Cell:
        """Build the cell from the sample as fabricated so far (a world with no fabrication: bare Li)."""
        for value, allowed, what in ((electrolyte, c.ELECTROLYTES, "electrolyte"),
                                     (separator, c.SEPARATORS, "separator"),
                                     (coated, COATED_SIDES, "coated"), (kind, KINDS, "kind")):
            if value not in allowed:
                raise WorldConfigError(f"cell {what} {value!r} not simulated (one of {', '.join(allowed)})")
        self._settle_sample()
        area = area_m2 if area_m2 else self.config.cell_area
        if area <= 0:
            raise WorldConfigError(f"cell area must be positive, not {area!r}")
        params = build_params(self.sample, self._rng["cell"], area_cm2=area * 1e4, kind=kind,
                              electrolyte=electrolyte, separator=separator, coated=coated,
                              temp_c=self.config.cell_temperature_c,
                              electrolyte_ul=self.config.electrolyte_volume * 1e9,
                              scatter=self.config.process_noise)
        t0 = self.now() if t is None else t
        self.cell = Cell(params, events=self._rng["cell"], noise=self._rng["noise"], t0=t0,
                         measurement_noise=self.config.measurement_noise)
        self.events.append((t0, "assemble", {"kind": kind, "electrolyte": electrolyte, "separator": separator,
                                             "coated": coated, "layer": params.layer}))
        return self.cell

    def set_stock(self, pump: str, *, salt: str | None, concentration: float = 0.0,
                  solvent: str = "THF") -> None:
        """Say what the syringe on `pump` holds (mol/m^3), e.g. when a station lists several stocks."""
        self.stocks[pump] = StockSpec(pump, solvent, salt, concentration)

    def set_polymer(self, bath: str, solution: PolymerSolution, *, volume: float | None = None) -> None:
        """Fill `bath` with a dip-coating solution."""
        b = self.baths[bath]
        b.spec = BathSpec(**{**b.spec.__dict__, "polymer": solution})
        if volume is not None:
            b.volume = volume

    def polymer_solution(self, polymer: str, solvent: str | None = None, *,
                         drying_temperature_c: float | None = None) -> PolymerSolution:
        """The dip-coating solution a recipe names (see `recipes.polymer_solution`); `WorldConfigError` for a
        polymer or solvent the world does not know."""
        try:
            return polymer_solution(polymer, solvent, drying_temperature_c=drying_temperature_c)
        except RecipeError as exc:
            raise WorldConfigError(str(exc)) from exc

    def set_dip_recipe(self, bath: str, polymer: str, solvent: str | None = None, *,
                       drying_temperature_c: float | None = None) -> PolymerSolution:
        """Fill dip bath `bath` with the solution a `dip_coat` step names (`polymer`, `solvent`; PVDF's phase
        follows its drying temperature): see `recipes.polymer_solution`. Raises `WorldConfigError` for a bath,
        polymer or solvent the world does not know."""
        if bath not in self.baths:
            raise WorldConfigError(f"no bath {bath!r} on this station (baths: {', '.join(self.baths)})")
        sol = self.polymer_solution(polymer, solvent, drying_temperature_c=drying_temperature_c)
        b = self.baths[bath]
        self.set_polymer(bath, sol, volume=None if b.volume > 0 else 0.4 * b.spec.capacity)
        return sol

    def sample_record(self) -> dict[str, Any]:
        """The fabricated overlayer (thickness mean/sd in µm, coverage, σ_eff, kind, crack flag, ...)."""
        self._settle_sample()
        return self.sample.record()

    def load_sample(self, record: dict[str, Any]) -> Sample:
        """Put a sample another world made (its `sample_record()`: layers in µm, σ_eff the effective one) on
        this bench: fabrication and test are separate runs, each with its own world. A dip-coated film has
        dried on its way to the cell (its drying time belongs to the other world's clock)."""
        names = set(Layer.__dataclass_fields__) - {"wet_until"}
        layers = [Layer(**{k: la[k] for k in names if k in la}) for la in record.get("layers") or []]
        self.sample = Sample(li_um=float(record.get("li_um", self.sample.li_um)),
                             li_consumed_um=float(record.get("li_consumed_um", 0.0)), layers=layers)
        self.cell = None
        return self.sample

    def cell_state(self) -> dict[str, Any]:
        return self._cell().state()

    def bath_state(self, name: str) -> dict[str, Any]:
        b = self.baths[name]
        self._advance(max(self.now(), self.t))
        b.advance(self.t, self.stocks)
        return {"volume_m3": b.volume, "salt": b.salt, "concentration_mol_m3": b.concentration,
                "salt_mol": b.salt_mol, "overflowed_m3": b.overflowed_m3}

    def advance(self, t: float) -> None:
        """Integrate fabrication up to `t` (the world also does this on every timed call)."""
        self._advance(t)
        self.chamber.advance(t)

    # -- fabrication ----------------------------------------------------------------------------------

    def _settle_sample(self) -> None:
        self._advance(max(self.now(), self.stage.t))
        self.chamber.advance(max(self.chamber.t, self.t))
        ch = self.chamber
        if ch.lif_m > 0:
            la = self.sample.layer("lif") or self.sample.add_layer(Layer("lif", 0.0, cv=self._lif_cv,
                                                                         source="sputter"))
            la.thickness_um = ch.lif_m * 1e6
        if ch.li3n_um2 > 0:
            la = self.sample.layer("li3n") or self.sample.add_layer(Layer("li3n", 0.0, cv=0.15,
                                                                          source="N2 plasma"))
            la.thickness_um = math.sqrt(ch.li3n_um2) * self._li3n_noise

    def _immerse_piece(self, piece: Piece) -> None:
        for name, bath in self.baths.items():
            spec = bath.spec
            span = inside_interval(piece, x=spec.x, half_width=spec.half_width, surface_z=spec.surface_z)
            if span is None:
                continue
            lo, hi = span
            bath.advance(lo, self.stocks)
            vz = piece.v[2]
            if spec.polymer is not None and vz < 0 and abs(piece.at(lo)[2] - spec.surface_z) < 1e-9:
                self._redissolve(name)
            if bath.salt and bath.volume > 0:
                t = lo
                while t < hi:
                    step = min(MAX_GROWTH_STEP_S, hi - t)
                    self._grow(bath, t, t + step)
                    t += step
            if spec.polymer is not None and vz > 0 and abs(piece.at(hi)[2] - spec.surface_z) < 1e-9:
                self._dip_exit(name, spec.polymer, hi, vz)

    def _grow(self, bath: Bath, a: float, b: float) -> None:
        """Deal–Grove growth (§1.1) over [a, b] at the bath's conditions at the midpoint; salt consumed."""
        bath.advance((a + b) / 2, self.stocks)
        key = c.salt_key(bath.salt or "")
        g = self._growth.get(key)
        if g is None:
            kb = self._lognormal("immersion", c.SALTS[key].k_b, 0.2)
            r = self._rng["immersion"]
            g = self._growth[key] = {"G": 0.0, "t": 0.0, "kb": kb, "cv": float(r.uniform(0.15, 0.25)),
                                     "crack": float(r.uniform(10, 20)), "r": float(r.random()),
                                     "ra": float(r.uniform(0.3, 1.0))}
            self.sample.add_layer(Layer(c.SALTS[key].layer, 0.0, cv=g["cv"], source=f"immersion {bath.salt}"))
        temp = self.heater.bath((a + b) / 2) if bath.spec.heated else self.config.ambient_c
        before = max(0.0, g["t"] - c.IMMERSION_T_IND_S)
        g["t"] += b - a
        dt_eff = max(0.0, g["t"] - c.IMMERSION_T_IND_S) - before
        conc_molar = bath.concentration / 1000.0
        l_old = deal_grove_um(g["G"])
        g["G"] += immersion_b_um2_s(bath.salt or "", conc_molar, temp, k_b=g["kb"]) * dt_eff
        l_new = deal_grove_um(g["G"])
        # salt consumed: ΔL·A/Ω_M mol; the bath may run out (depletion cap of §1.1)
        area_cm2 = self.config.sample_area * 1e4
        need = (l_new - l_old) * 1e-4 * area_cm2 / c.SALTS[key].omega_cm3_mol
        if need > 0:
            got = bath.consume_salt(need)
            if got < need:
                l_new = l_old + (l_new - l_old) * got / need
                g["G"] = l_new**2 + c.IMMERSION_A_UM * l_new
        layer = next(la for la in self.sample.layers if la.kind == c.SALTS[key].layer)
        self.sample.li_consumed_um += c.LI_PER_LAYER * (l_new - layer.thickness_um)
        layer.thickness_um = l_new
        crack = g["crack"]
        layer.cracked = l_new > crack and (l_new - crack) / crack >= g["r"]

    def _dip_exit(self, bath: str, sol: PolymerSolution, t: float, speed: float) -> None:
        """Withdrawal through the surface at `speed`: an LLD/Derjaguin wet film that dries (§1.2)."""
        h_wet = dip_wet_thickness_m(sol.viscosity, sol.surface_tension, sol.density, speed)
        h_dry = sol.solids_fraction * h_wet * self._lognormal("dip", 1.0, 0.07)
        la = next((x for x in self.sample.layers if x.source == f"dip {bath}"), None)
        if la is None:
            la = self.sample.add_layer(Layer(sol.layer, 0.0, cv=0.07, sigma_eff=sol.sigma_eff,
                                             source=f"dip {bath}"))
        la.thickness_um += h_dry * 1e6
        la.wet_until = t + sol.density * h_wet / sol.evaporation
        self.events.append((t, "dip", {"bath": bath, "speed_m_s": speed, "wet_m": h_wet, "dry_m": h_dry}))

    def _redissolve(self, bath: str) -> None:
        la = next((x for x in self.sample.layers if x.source == f"dip {bath}"), None)
        if la is not None and la.thickness_um > 0:
            loss = float(self._rng["dip"].uniform(0.1, 0.3)) if self.config.process_noise else 0.2
            la.thickness_um *= 1 - loss
