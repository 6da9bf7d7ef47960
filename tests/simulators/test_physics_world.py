"""The world as a dry run drives it: the engine's station → world path, GRBL-style queued moves and stops,
OCV/EIS before cycling, and the issue's "0.1 M InCl3 for 60 s, then 1 mA/cm²" against the bare control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labctl.clock import VirtualClock
from labctl.simulators.dryrun import make_world
from labctl.simulators.physics import BathSpec, PhysicalWorld, StockSpec, WorldConfig, world_for_station
from labctl.simulators.physics.fabrication import immersion_thickness_um
from labctl.station import load_station

STATION = Path(__file__).resolve().parents[2] / "stations" / "simulated.yaml"
X_ALLOY, SURFACE, DEPTH, SPEED = 0.05, -0.040, 0.012, 5e-3
QUIET = {"measurement_noise": False, "process_noise": False}


@pytest.fixture(scope="module")
def station_raw() -> Any:
    return load_station(STATION)


def fill_and_immerse(w: PhysicalWorld, hold_s: float = 60.0) -> float:
    """20 mL of 0.1 M InCl3 from the 0.5 M stock (4 mL) and THF (16 mL) at 5 mL/min, 25 °C; then down 12 mm
    below the surface at 5 mm/s, `hold_s`, and up. Returns a time after the sample is out and dry."""
    rate = 5e-6 / 60
    w.pump_flow("pump.stock", 0.0, rate, 4e-6 / rate)
    w.pump_flow("pump.solvent", 0.0, rate, 16e-6 / rate)
    w.hotplate(0.0, 25.0, True, 200.0)
    t = 300.0
    low = SURFACE - DEPTH
    w.stage_move(t, (0.0, 0.0, 0.0), (X_ALLOY, 0.0, 0.0), 0.01)
    t += 5.0
    w.stage_move(t, (X_ALLOY, 0.0, 0.0), (X_ALLOY, 0.0, low), SPEED)
    t += -low / SPEED + hold_s
    w.stage_move(t, (X_ALLOY, 0.0, low), (X_ALLOY, 0.0, 0.0), SPEED)
    t += -low / SPEED + 300.0
    w.advance(t)
    return t


def half_cycles(w: PhysicalWorld, t0: float, hours: int, *, dt: float = 1.0, per_call: int = 1,
                stop_at_short: bool = True) -> list[np.ndarray]:
    """1 mA/cm², 1 mAh/cm² (stripping first, as the engine does), `per_call` hours per world call; |V| of
    each hour (= half-cycle)."""
    assert w.cell is not None
    i_a = 1e-3 * w.cell.p.area_cm2
    n = round(3600 / dt)
    out: list[np.ndarray] = []
    for h in range(0, hours, per_call):
        k = min(per_call, hours - h)
        t = t0 + h * 3600 + dt * np.arange(1, n * k + 1)
        sign = np.where((h + np.arange(n * k) // n) % 2 == 0, -1.0, 1.0)
        out.extend(np.split(np.abs(w.cell_voltage(t, sign * i_a)), k))
        if stop_at_short and w.cell.shorted:
            break
    return out


def mid_mv(v: np.ndarray) -> float:
    n = v.size
    return float(np.median(v[n // 4: 3 * n // 4]) * 1e3)


def test_engine_make_world_builds_the_physical_world_of_the_station_file(station_raw: Any) -> None:
    w = make_world(load_station(STATION), clock=VirtualClock(), seed=3)
    assert isinstance(w, PhysicalWorld)
    assert w.seed == 3
    assert w.config.baths["alloy"].x == pytest.approx(0.05)
    assert w.config.baths["alloy"].surface_z == pytest.approx(-0.04)
    assert w.config.stocks["pump.stock"].salt == "InCl3"
    assert w.config.stocks["pump.stock"].concentration == pytest.approx(500.0)  # mol/m^3
    # the operator step's call: the cell block plus the station's area (None falls back to the station's)
    cell = w.assemble_cell(kind="symmetric", electrolyte="carbonate", separator="celgard", coated="none",
                           area_m2=None)
    assert cell.p.area_cm2 == pytest.approx(1.13)
    assert cell.p.layer == "bare"
    assert "layer=bare" in repr(cell)


def test_station_world_immersion_gives_the_model_thickness_and_si_record(station_raw: Any) -> None:
    w = world_for_station(station=station_raw, seed=0, **QUIET)
    w.heater.bath0 = 25.0  # bath already at the setpoint (otherwise it is still warming from 22 °C: -1 %)
    fill_and_immerse(w)
    rec = w.sample_record()
    assert rec["layer"] == "li_in"
    # below the surface: 12 mm down and up at 5 mm/s (2.4 s each) plus the 60 s hold
    expected = immersion_thickness_um("InCl3", 0.1, 60.0 + 2 * DEPTH / SPEED)
    assert rec["thickness_um"] == pytest.approx(expected, rel=0.01)
    assert rec["thickness_m"] == pytest.approx(rec["thickness_um"] * 1e-6)
    assert rec["thickness_sd_m"] == pytest.approx(rec["sd_um"] * 1e-6)
    assert rec["sigma_eff_S_m"] == pytest.approx(2e-4 * 100)  # Li-In: 2e-4 S/cm (§1.7)


def test_stage_stop_truncates_the_move_and_drops_queued_ones() -> None:
    """GRBL reports queued moves with future start times and calls stage_stop on a feed hold or reset."""
    cfg = WorldConfig(baths={"alloy": BathSpec(x=X_ALLOY, surface_z=SURFACE, pumps=("pump.stock",),
                                               heated=True)},
                      stocks={"pump.stock": StockSpec("pump.stock", "THF", "InCl3", 100.0)}, **QUIET)
    w = PhysicalWorld(cfg, seed=0)
    rate = 1e-6
    w.pump_flow("pump.stock", 0.0, rate, 20.0)  # 20 mL of 0.1 M
    w.hotplate(0.0, 25.0, True)
    w.heater.bath0 = 25.0
    t0, low = 100.0, SURFACE - DEPTH
    w.stage_move(t0, (X_ALLOY, 0.0, 0.0), (X_ALLOY, 0.0, low), SPEED)  # at the surface at t0 + 8 s
    w.stage_move(t0 + 10.4 + 60.0, (X_ALLOY, 0.0, low), (X_ALLOY, 0.0, 0.0), SPEED)  # queued: never happens
    w.stage_stop(t0 + 10.0)  # hold 2 s after entry: stopped 10 mm below the surface
    t_up = t0 + 200.0  # the operator lifts it later
    w.stage_move(t_up, (X_ALLOY, 0.0, SURFACE - 0.010), (X_ALLOY, 0.0, 0.0), SPEED)
    w.advance(t_up + 20.0)
    t_in = (t_up + 0.010 / SPEED) - (t0 + 8.0)
    assert w.sample_record()["thickness_um"] == pytest.approx(immersion_thickness_um("InCl3", 0.1, t_in),
                                                              rel=1e-3)


def test_ocv_and_eis_before_cycling_keep_the_first_half_cycle_peak() -> None:
    """An OCV or EIS reading means no current then: the first cycling point must not count the EIS gap as
    plating (which would let the nucleation spike decay before the first sample)."""
    peaks = []
    for gap in (False, True):
        w = PhysicalWorld(WorldConfig(measurement_noise=False), seed=2)
        w.assemble_cell(t=0.0)
        t0 = 0.0
        if gap:
            for k in range(360):
                w.cell_ocv(10.0 * (k + 1))
            for k, f in enumerate(np.logspace(5, -1, 61)):
                w.cell_impedance(3600.0 + 2.4 * k, np.array([f]))
            t0 = 3600.0 + 2.4 * 60  # the current goes on at the last EIS point
        peaks.append(half_cycles(w, t0, 1)[0].max())
    assert peaks[1] == pytest.approx(peaks[0], rel=1e-3)


def test_li_in_60_s_then_1_ma_cycles_in_the_section_2_5_window(station_raw: Any) -> None:
    coated = world_for_station(station=station_raw, seed=1)
    t0 = fill_and_immerse(coated)
    coated.assemble_cell(coated="both", t=t0)
    bare = world_for_station(station=station_raw, seed=1)
    bare.assemble_cell(coated="none", t=t0)
    vc, vb = (half_cycles(w, t0, 20, stop_at_short=False) for w in (coated, bare))
    # ~1.4 µm Li-In/LiCl: below the 5 µm row of §2.5 (30 mV) since R_film and M_j0 are the same but thinner
    assert 15.0 < mid_mv(vc[19]) < 32.0
    assert 50.0 < mid_mv(vb[19]) < 90.0  # bare: ≈ 68 mV at cycle 10
    assert vb[0].max() > 3 * vc[0].max()  # the bare first-half-cycle peak (≈ 200 mV) vs a flat coated one
    assert vb[0].max() > 0.13


def test_li_in_60_s_outlives_bare_over_seeds(station_raw: Any) -> None:
    """Hours to short, 20 seeds each, coarse sampling (the short clock integrates exactly between points)."""
    lives = {True: [], False: []}
    for seed in range(20):
        for coated in (True, False):
            w = world_for_station(station=station_raw, seed=seed, measurement_noise=False)
            t0 = fill_and_immerse(w) if coated else 0.0
            w.assemble_cell(coated="both" if coated else "none", t=t0)
            half_cycles(w, t0, 3000, dt=600.0, per_call=50)
            assert w.cell is not None and w.cell.t_short is not None
            lives[coated].append((w.cell.t_short - t0) / 3600)
    med_bare, med_coated = np.median(lives[False]), np.median(lives[True])
    assert 120 < med_bare < 320  # §2.5: 208 h
    assert med_coated > 2 * med_bare  # F_layer ≈ 3 for a 1.4 µm layer (L_opt 5 µm)
