"""Cell model of physics.md §2-3 against the §2.5 table and the §5 sanity checks."""

from __future__ import annotations

import numpy as np
import pytest
from physics_helpers import AREA, QUIET, cycle, overpotential_mv, world

from labctl.simulators.physics import PhysicalWorld, WorldConfig, WorldConfigError
from labctl.simulators.physics import constants as c
from labctl.simulators.world import WorldPort


def test_constants() -> None:
    assert pytest.approx(25.69, abs=0.01) == c.V_T * 1e3
    assert pytest.approx(4.85, abs=0.01) == c.UM_PER_MAH_CM2


def test_physical_world_is_a_world_port() -> None:
    assert isinstance(PhysicalWorld(seed=1), WorldPort)


@pytest.mark.parametrize(
    ("layer", "electrolyte", "expected"),
    [  # §2.5 rows: first-half-cycle peak, cycle 1, cycle 10, 200 h, 500 h, 1000 h (mV), short switched off
        (None, "carbonate", (196, 124, 68, 78, 100, 137)),
        (("li_in", 5.0), "carbonate", (44, 36, 30, 31, 34, 38)),
        (("lif", 0.150), "carbonate", (58, 48, 41, 43, 46, 51)),
        (("polymer", 1.0), "carbonate", (66, 54, 45, 47, 51, 57)),
        (None, "ether", (57, 36, 20, 21, 23, 26)),
        (("li_in", 5.0), "ether", (17, 14, 13, 13, 13, 13)),
    ],
)
def test_trace_matches_section_2_5(layer: tuple[str, float] | None, electrolyte: str,
                                   expected: tuple[float, ...]) -> None:
    w = world(layer=layer, **QUIET)
    w.assemble_cell(area_m2=AREA, electrolyte=electrolyte)
    assert w.cell is not None
    w.cell.p.u_crit = np.inf  # §2.5 growth columns are computed with the short switched off
    w.cell.p.has_soft = False
    t_early, v_early = cycle(w, 20, dt=1.0)
    t, v = cycle(w, 980, dt=30.0, t0=20 * 3600.0)
    got = (
        np.abs(v_early[:600]).max() * 1e3,
        overpotential_mv(t_early, v_early, 0, 3600),
        overpotential_mv(t_early, v_early, 18, 3600),
        overpotential_mv(t, v, 180, 3600, t0=20 * 3600.0),
        overpotential_mv(t, v, 480, 3600, t0=20 * 3600.0),
        overpotential_mv(t, v, 978, 3600, t0=20 * 3600.0),
    )
    # the κ decline of §2.3 (60 µL) is not in the table's numbers: allow it at the late times
    tol = (0.06, 0.06, 0.06, 0.08, 0.10, 0.12)
    for g, e, r in zip(got, expected, tol, strict=True):
        assert g == pytest.approx(e, rel=r, abs=1.0), (got, expected)


def test_same_seed_same_data_other_seed_other_data() -> None:
    runs = []
    for seed in (7, 7, 8):
        w = world(seed=seed, layer=("li_in", 1.5))
        runs.append(cycle(w, 30, dt=10.0)[1])
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_chunking_does_not_change_the_physics() -> None:
    a, b = world(**QUIET), world(**QUIET)
    _, va = cycle(a, 12, dt=5.0, chunk_s=3600.0)
    _, vb = cycle(b, 12, dt=5.0, chunk_s=777 * 5.0)
    assert np.allclose(va, vb, rtol=1e-9, atol=1e-12)


def _short_times(layer: tuple[str, float] | None, seeds: range, j: float, q: float, hours: float,
                 dt: float) -> np.ndarray:
    out = []
    for seed in seeds:
        w = world(seed=seed, layer=layer, measurement_noise=False)
        cycle(w, hours, j, q, dt=dt, chunk_s=20 * 3600, stop_at_short=True)
        ts = w.cell_state()["t_short_s"]
        out.append(np.inf if ts is None else ts / 3600)
    return np.array(out)


def test_bare_carbonate_median_short_about_200_h() -> None:
    t = _short_times(None, range(100), 1.0, 1.0, 1500, dt=600.0)
    assert np.median(t) == pytest.approx(208, rel=0.2)
    assert np.isfinite(t).mean() > 0.95


def test_at_10_ma_10_mah_bare_shorts_before_coated_in_90_percent_of_200_seeds() -> None:
    bare = _short_times(None, range(200), 10.0, 10.0, 60, dt=120.0)
    coated = _short_times(("li_in", 5.0), range(1000, 1200), 10.0, 10.0, 400, dt=120.0)
    assert (bare < coated).mean() >= 0.9
    assert 2.5 <= np.median(bare) <= 9  # "bare shorts in ≈ 5 h (2-3 cycles)"
    # physics.md §5 said "coated in tens of hours"; seed-results.md (which wins) quotes coated cells lasting
    # 1000 h at 5 mA/cm² and 10 mAh/cm²: a good film flattens the j- and Q-dependence of the short clock
    assert np.median(coated) >= 100


def test_hard_short_signature() -> None:
    w = world(seed=3)
    cycle(w, 2000, dt=300.0, chunk_s=50 * 3600, stop_at_short=True)
    st = w.cell_state()
    assert st["shorted"]
    t = st["t_short_s"] + 3600 * np.arange(1, 7) + 1800
    i = np.where(np.arange(6) % 2 == 0, 1.13e-3, -1.13e-3)
    v = w.cell_voltage(t, i)
    apparent = np.abs(v) / 1e-3  # Ω cm² at 1 mA/cm²: j·R_sh with ±20 % noise, mV-level square wave
    assert np.all(np.abs(apparent / st["r_short_ohm_cm2"] - 1) < 0.8)
    assert np.all(np.abs(v) < 0.01)
    assert np.all(np.sign(v) == np.sign(i))
    assert w.cell_ocv(t[-1]) == 0.0


def test_hard_short_resistance_mostly_below_r_el() -> None:
    """R_sh ~ lognormal(1.5 Ω cm², σ_ln 0.5) (§2.4): |V|/j < R_el is the usual signature."""
    below = []
    for seed in range(200):
        w = world(seed=seed)
        st = w.cell_state()
        below.append(st["r_short_ohm_cm2"] < st["r_el_ohm_cm2"])
    assert 0.6 < np.mean(below) < 0.95


def test_sand_regime_gf_40_ma_shorts_within_minutes() -> None:
    w = world(seed=5)
    w.assemble_cell(area_m2=AREA, separator="gf")
    t = np.arange(1, 3601, 1.0)
    v = w.cell_voltage(t, np.full(t.size, 40e-3 * 1.13))
    st = w.cell_state()
    assert st["j_lim_ma_cm2"] == pytest.approx(22.8, rel=0.03)
    assert st["shorted"] and st["t_short_s"] < 15 * 60
    assert np.abs(v[:60]).max() > 0.3  # the Sand transient before the short


def test_eis_low_frequency_intercept_equals_small_current_dc_slope() -> None:
    for layer in (None, ("li_in", 5.0), ("lif", 0.15)):
        w = world(seed=11, layer=layer)
        w.assemble_cell(area_m2=AREA)
        assert w.cell is not None
        w.cell.p.u_crit = np.inf
        # DC: a small current for 30 % of a 1 mAh/cm² half-cycle (nucleation gone, no arcing yet)
        j = 0.05  # mA/cm²
        t = np.arange(1, 6 * 3600 + 1, 1.0)
        v = w.cell_voltage(t, np.full(t.size, j * 1e-3 * 1.13))
        slope = v[-2000:].mean() / (j * 1e-3 * 1.13)
        z_exact = w.cell.impedance(t[-1], np.array([1e-5]), noise=False)[0]
        assert z_exact.real == pytest.approx(slope, rel=0.01)
        assert z_exact.real == pytest.approx(w.cell.r_dc_small(), rel=1e-3)
        z = w.cell_impedance(t[-1], np.logspace(-3, -2, 8))  # the port, noisy
        assert np.mean(z.real) == pytest.approx(slope, rel=0.06)


def test_eis_spectrum_shape() -> None:
    w = world(seed=2, layer=("li_in", 5.0), **QUIET)
    f = np.logspace(6, -2, 81)
    z = w.cell_impedance(0.0, f)
    st = w.cell_state()
    r_el = st["r_el_ohm_cm2"] / 1.13
    z_hf = w.cell_impedance(0.0, np.array([1e9]))[0]
    assert z_hf.real == pytest.approx(r_el, rel=0.05)  # high-frequency intercept (film arc ~10^5 Hz)
    assert np.all(-z.imag[20:] > -1e-3)  # capacitive arcs below the inductive tail
    assert np.all(np.diff(z.real) >= -1e-9)  # real part grows towards low frequency


def test_li_cu_aurbach_protocol_ce() -> None:
    w = world(seed=4, measurement_noise=False)
    w.assemble_cell(area_m2=AREA, kind="li_cu")
    i = 0.5e-3 * 1.13  # 0.5 mA/cm²
    t = 0.0

    def run(sign: int, q: float | None, cutoff: float | None = None) -> tuple[float, np.ndarray]:
        nonlocal t
        dt = 10.0
        if q is not None:
            n = round(q / 0.5 * 3600 / dt)
            tt = t + dt * np.arange(1, n + 1)
            v = w.cell_voltage(tt, np.full(n, sign * i))
            t = float(tt[-1])
            return q, v
        passed, vs = 0.0, []
        while True:
            tt = t + dt * np.arange(1, 61)
            v = w.cell_voltage(tt, np.full(60, sign * i))
            t = float(tt[-1])
            hit = np.flatnonzero(v > cutoff)
            if hit.size:
                vs.append(v[: hit[0] + 1])
                return passed + (hit[0] + 1) * dt * 0.5 / 3600, np.concatenate(vs)
            passed += 60 * dt * 0.5 / 3600
            vs.append(v)

    assert w.cell_ocv(t) == pytest.approx(2.9)  # no Li on the Cu yet
    _, v_plate = run(-1, 5.0)
    assert v_plate.min() < v_plate[len(v_plate) // 2] - 0.01  # nucleation dip
    q_form, _ = run(+1, None, cutoff=1.0)
    assert 0.85 * 5 < q_form < 0.97 * 5  # first-cycle CE ≈ 0.88 (carbonate)
    run(-1, 5.0)  # reservoir Q_T
    for _ in range(10):
        run(+1, 1.0)
        run(-1, 1.0)
    q_s, _ = run(+1, None, cutoff=1.0)
    ce_avg = (10 * 1.0 + q_s) / (10 * 1.0 + 5.0)
    log = w.cell_state()["ce_log"]
    assert ce_avg == pytest.approx(np.mean(log[1:]), abs=0.01)
    assert 0.85 < ce_avg < 0.97


def test_bad_cell_builds_are_clear_errors() -> None:
    w = PhysicalWorld(WorldConfig(), seed=0)
    with pytest.raises(WorldConfigError, match="electrolyte"):
        w.assemble_cell(electrolyte="water")
    with pytest.raises(WorldConfigError, match="coated"):
        w.assemble_cell(coated="three")
