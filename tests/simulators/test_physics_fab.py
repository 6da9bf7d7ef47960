"""Fabrication side of the world (physics.md §1): baths, stage, immersion, dip coating, sputtering, Li3N."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.simulators.physics import BathSpec, PhysicalWorld, PolymerSolution, StockSpec, WorldConfig
from labctl.simulators.physics import constants as c
from labctl.simulators.physics.fabrication import (
    dip_wet_thickness_m,
    immersion_thickness_um,
    sputter_rate_m_s,
)
from labctl.simulators.physics.station import world_for_station
from labctl.station import load_station

SURFACE = -0.040
STOCKS = {"pump.stock": StockSpec("pump.stock", "THF", "InCl3", 500.0),
          "pump.solvent": StockSpec("pump.solvent")}


def bench(seed: int = 0, *, polymer: PolymerSolution | None = None, **cfg: object) -> PhysicalWorld:
    baths = {
        "alloy": BathSpec(x=0.05, surface_z=SURFACE, pumps=("pump.stock", "pump.solvent"), heated=True),
        "polymer": BathSpec(x=0.15, surface_z=SURFACE, polymer=polymer, volume=20e-6),
    }
    return PhysicalWorld(WorldConfig(baths=baths, stocks=dict(STOCKS), **cfg), seed=seed)  # type: ignore[arg-type]


def fill_alloy(w: PhysicalWorld, conc_molar: float, volume: float = 20e-6) -> float:
    """Stock + solvent into the alloy bath at 5 mL/min each; returns when the pumps stop."""
    v_stock = volume * conc_molar / 0.5
    rate = 5e-6 / 60
    w.pump_flow("pump.stock", 0.0, rate, v_stock / rate)
    w.pump_flow("pump.solvent", 0.0, rate, (volume - v_stock) / rate)
    return max(v_stock, volume - v_stock) / rate


def dip(w: PhysicalWorld, x: float, t0: float, hold: float, v_down: float = 5e-3, v_up: float = 5e-3,
        depth: float = 0.012) -> float:
    """Over the bath at z=0, down to `depth` below the surface, hold, up; returns the time at the top."""
    low = SURFACE - depth
    w.stage_move(t0, (x, 0.0, 0.0), (x, 0.0, low), v_down)
    t1 = t0 + -low / v_down + hold
    w.stage_move(t1, (x, 0.0, low), (x, 0.0, 0.0), v_up)
    return t1 + -low / v_up


@pytest.mark.parametrize(
    ("conc", "row"),
    [(0.01, (0.13, 0.41, 1.5, 2.7)), (0.1, (0.56, 1.5, 4.9, 8.6)), (0.5, (1.35, 3.5, 11, 19))],
)
def test_immersion_thickness_table(conc: float, row: tuple[float, ...]) -> None:
    """The §1.1 table's numbers follow from the Deal–Grove defaults with no induction time (with the default
    t_ind = 5 s the 10 s column is 35-45 % lower, the 60 s column 4-7 %)."""
    for t, expected in zip((10, 60, 600, 1800), row, strict=True):
        assert immersion_thickness_um("InCl3", conc, t, t_ind=0.0) == pytest.approx(expected, rel=0.05)
        assert immersion_thickness_um("InCl3", conc, t) < expected


def test_bath_concentration_volume_and_temperature_from_the_pumps_and_hotplate() -> None:
    w = bench()
    t_done = fill_alloy(w, 0.1)
    w.advance(t_done + 10)
    st = w.bath_state("alloy")
    assert st["volume_m3"] == pytest.approx(20e-6, rel=1e-9)
    assert st["concentration_mol_m3"] == pytest.approx(100.0, rel=1e-9)
    w.hotplate(100.0, 40.0, True)
    tau = w.heater.tau_bath
    assert w.bath_temperature(100.0 + tau) == pytest.approx(40 - 18 * math.exp(-1), abs=1e-6)
    assert w.plate_temperature(100.0 + 600) > w.bath_temperature(100.0 + 600)


def test_immersion_through_stage_and_bath_gives_the_table_thickness_and_consumes_li() -> None:
    w = bench(process_noise=False)
    t = fill_alloy(w, 0.1) + 5
    w.hotplate(t, 25.0, True)
    w.heater.bath0 = 25.0  # bath already at 25 °C
    t_top = dip(w, 0.05, t, hold=60.0 - 2 * 0.012 / 5e-3 + 0.0)
    rec = w.sample_record()
    # time below the surface: 12 mm down and up at 5 mm/s (2.4 s each) plus the hold
    t_in = 60.0
    assert rec["layer"] == "li_in"
    assert rec["thickness_um"] == pytest.approx(immersion_thickness_um("InCl3", 0.1, t_in), rel=0.01)
    assert rec["thickness_um"] == pytest.approx(1.39, rel=0.02)  # table 1.5 at t_ind = 0
    assert rec["li_consumed_um"] == pytest.approx(0.6 * rec["thickness_um"], rel=1e-6)
    assert 0.99 < rec["coverage"] <= 1 and not rec["cracked"]
    assert w.bath_state("alloy")["concentration_mol_m3"] < 100.0  # In consumed
    assert t_top > t


def test_entry_and_exit_solved_exactly_for_a_sideways_pass() -> None:
    """A diagonal move through the bath: immersed time from the analytic entry/exit of x- and z-windows."""
    w = bench(process_noise=False)
    t = fill_alloy(w, 0.5) + 1
    w.hotplate(t, 25.0, True)
    w.heater.bath0 = 25.0
    w.stage_move(t, (0.0, 0.0, -0.05), (0.1, 0.0, -0.05), 1e-3)  # 100 s across, below the surface
    w.advance(t + 200)
    t_in = 2 * 0.015 / 1e-3  # inside |x - 0.05| < 15 mm for 30 s
    assert w.sample_record()["thickness_um"] == pytest.approx(immersion_thickness_um("InCl3", 0.5, t_in),
                                                              rel=1e-6)


def test_dip_speed_doubling_gives_two_to_the_two_thirds() -> None:
    sol = PolymerSolution(viscosity=0.01, surface_tension=0.027, density=890.0, solids_fraction=0.02)
    thick = []
    for u in (1e-3, 2e-3):
        w = bench(seed=9, polymer=sol)
        dip(w, 0.15, 0.0, hold=30.0, v_up=u)
        w.advance(1e4)
        thick.append(w.sample_record()["thickness_um"])
    assert thick[1] / thick[0] == pytest.approx(2 ** (2 / 3), rel=0.02)
    # §1.2 worked example: 0.1 Pa s, 37 mN/m, 950 kg/m³, φ 0.027 at 1 mm/s -> 0.98 µm dry
    assert dip_wet_thickness_m(0.1, 0.037, 950, 1e-3) * 0.027 == pytest.approx(0.98e-6, rel=0.03)


def test_repeated_dips_add_up_with_partial_redissolution() -> None:
    sol = PolymerSolution()
    w = bench(seed=1, polymer=sol, process_noise=False)  # no scatter: the second dip re-dissolves 20 %
    t = dip(w, 0.15, 0.0, hold=10.0, v_up=1e-3)
    w.advance(t + 1)
    one = w.sample_record()["thickness_um"]
    t = dip(w, 0.15, t + 600, hold=10.0, v_up=1e-3)
    w.advance(t + 1)
    two = w.sample_record()["thickness_um"]
    assert two == pytest.approx(1.8 * one, rel=1e-9)
    layer = w.sample_record()["layers"][0]
    assert layer["kind"] == "polymer" and layer["wet_until"] > t


def test_sputter_rate_60_w_and_qcm_mass() -> None:
    assert sputter_rate_m_s(60, 0.5, 20.3e-4, 0.08) * 60e9 == pytest.approx(1.6, abs=0.05)
    w = bench(process_noise=False)
    sccm = 0.5 * w.config.chamber.pumping_speed / c.SCCM_PA_M3_S
    w.gas_flow(0.0, "Ar", sccm)
    assert w.chamber_pressure(60.0) == pytest.approx(0.5, rel=1e-3)
    assert w.gas_flow_actual(60.0) == pytest.approx(sccm)
    w.rf_power(60.0, 60.0)
    assert w.reflected_power(61.0) < 0.05 * 60
    w.shutter(120.0, True)
    w.shutter(120.0 + 600, False)
    m = w.qcm_areal_mass(120.0 + 900)
    rec = w.sample_record()
    assert rec["thickness_um"] * 1e3 == pytest.approx(16.26, rel=0.02)  # 10 min at 1.63 nm/min
    assert m / c.LIF_DENSITY * 1e9 == pytest.approx(1.626 * 16, rel=0.02)  # the crystal sees all 16 min of RF
    w.gas_flow(2000.0, "Ar", 0.0)  # pressure falls out of the plasma window: reflection rises
    assert w.reflected_power(2100.0) > 0.3 * 60


def test_li3n_grows_in_n2_plasma() -> None:
    w = bench(process_noise=False)
    w.gas_flow(0.0, "N2", 2000.0)
    w.rf_power(30.0, 50.0)
    w.shutter(30.0, True)
    w.shutter(630.0, False)
    rec = w.sample_record()
    assert rec["layer"] == "li3n"
    assert 0.3 < rec["thickness_um"] < 1.0  # §1.6: 0.3-1 µm in 10 min at 50-100 W


def test_world_for_station_reads_the_station_file() -> None:
    st = load_station("stations/simulated.yaml")
    w = world_for_station(st, seed=3)
    assert w.config.cell_area == pytest.approx(1.13e-4)
    assert w.config.baths["alloy"].x == pytest.approx(0.05)
    assert w.config.baths["alloy"].surface_z == pytest.approx(-0.04)
    assert w.config.stocks["pump.stock"].salt == "InCl3"
    assert w.config.baths["polymer"].polymer is not None
    assert w.cell_state()["layer"] == "bare"  # no fabrication: the bare-Li control
    w2 = world_for_station(vars(st), seed=3)  # the engine hands over a plain mapping
    assert w2.config.baths == w.config.baths


def test_fresh_world_cell_is_bare_and_voltage_is_vectorised() -> None:
    w = PhysicalWorld(seed=0)
    t = np.arange(1, 3601, 1.0)
    v = w.cell_voltage(t, np.full(t.size, 1.13e-3))
    assert v.shape == t.shape and np.all(v > 0)
    assert w.sample_record()["layer"] == "bare"
