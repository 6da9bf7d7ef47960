"""Analysis against synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis import coulombic, cycling, eis

HOUR = 3600.0


def test_known_overpotential_and_hysteresis(square_wave):
    t, v, i = square_wave(20)
    hc = cycling.half_cycles(t, v, i)
    assert len(hc) == 40
    assert np.allclose(hc.overpotential, 0.030, atol=0.001)
    assert np.allclose(hc.peak, 0.045, atol=0.003)
    table = cycling.cycles(hc)
    assert list(table.cycle) == list(range(1, 21))
    assert np.allclose(table.hysteresis, 0.060, atol=0.002)
    assert np.allclose(table.q_plate, 1.13e-3 * 3600, rtol=0.01)


def test_growth_per_100h(square_wave):
    t, v, i = square_wave(300)
    v = v * (1 + 0.2 * t / (100 * HOUR))  # +20 % per 100 h on a 30 mV plateau = +6 mV per 100 h
    hc = cycling.half_cycles(t, v, i)
    growth = cycling.growth_per_100h(hc.t_mid, hc.overpotential)
    assert growth == pytest.approx(0.006, rel=0.05)


def test_short_at_known_time(square_wave):
    t, v, i = square_wave(60)
    t_short = 77.0 * HOUR
    shorted = t >= t_short
    v[shorted] = i[shorted] * 1.5  # 1.5 ohm: a square wave of ~1.7 mV
    failure = cycling.detect_failure(t, v, i, r_el_ohm=2.0)
    assert failure.mode == "hard_short"
    assert failure.hours == pytest.approx(77.0, abs=1.0)
    no_rel = cycling.detect_failure(t, v, i)  # by the collapse criterion alone
    assert no_rel.mode == "hard_short" and no_rel.hours == pytest.approx(77.0, abs=1.0)


def test_soft_short_recovers_and_is_flagged(square_wave):
    t, v, i = square_wave(40)
    soft = (t > 30 * HOUR) & (t <= 31 * HOUR)
    v[soft] = i[soft] * 3.0
    failure = cycling.detect_failure(t, v, i)  # a short is a failure (physics §4.1); it recovered: soft
    assert failure.mode == "soft_short" and failure.hours == pytest.approx(30, abs=1)
    assert len(failure.soft_shorts) == 1 and failure.soft_shorts[0] / HOUR == pytest.approx(30, abs=1)


def test_voltage_limit_and_runaway(square_wave):
    t, v, i = square_wave(30)
    v = v * (1 + (t / (30 * HOUR)) ** 4 * 5)
    assert cycling.detect_failure(t, v, i).mode == "overpotential_runaway"
    assert cycling.detect_failure(t, v, i, voltage_limit=0.05).mode == "voltage_limit"
    assert cycling.detect_failure(t, v, i, rate_test=True).mode is None  # a rate test has no runaway


def test_rate_capability_levels(square_wave):
    parts = [square_wave(3, amp_a=a, over_v=0.02 * a / 1e-3, peak_v=0.02 * a / 1e-3)
             for a in (1e-3, 2e-3, 5e-3)]
    offset = 0.0
    ts = []
    for t, _, _ in parts:
        ts.append(t + offset)
        offset = ts[-1][-1]
    t = np.concatenate(ts)
    v = np.concatenate([p[1] for p in parts])
    i = np.concatenate([p[2] for p in parts])
    rc = cycling.rate_capability(cycling.half_cycles(t, v, i), area_m2=1e-4)
    assert np.allclose(rc["current_density"], [10, 20, 50])
    assert np.allclose(rc["overpotential"], [0.02, 0.04, 0.10], rtol=0.05)


def test_ce_per_cycle_and_aurbach(square_wave):
    t, v, i = square_wave(5)
    i = np.where(i > 0, i * 0.95, i)  # strip 95 % of the plated charge
    ce = coulombic.ce_per_cycle(cycling.half_cycles(t, v, i))
    assert np.allclose(ce["ce"], 0.95, atol=1e-3)
    # Adams: Q_T = 5, Q_C = 1, n = 10, CE 0.99 -> Q_S = 0.99 * 15 - 10 = 4.85
    assert coulombic.aurbach_ce(5.0, 1.0, 10, 4.85) == pytest.approx(0.99)
    with pytest.raises(ValueError):
        coulombic.aurbach_ce(0, 1, 10, 1)


def test_eis_fit_recovers_known_circuit(li_in):
    freq = np.logspace(6, -2, 81)
    rng = np.random.default_rng(7)
    z = eis.circuit(freq, **li_in)
    z = z * (1 + rng.normal(0, 0.005, z.size) + 1j * rng.normal(0, 0.005, z.size))
    result = eis.fit(freq, z)
    assert result["r_film"] == pytest.approx(5.0, rel=0.05)
    assert result["r_ct"] == pytest.approx(21.0, rel=0.05)
    assert result["r_el"] == pytest.approx(2.0, rel=0.05)
    assert result.ci95["r_film"] < 1.0
    assert result.rel_residual < 0.02


def test_conductivity_from_fit():
    sigma, err = eis.conductivity(5e-6, 5.0, 1e-4, n_coated=2)
    assert sigma == pytest.approx(2e-2)  # S/m = 2e-4 S/cm, the Li-In value of physics §0
    assert err == pytest.approx(sigma * np.hypot(0.15, 0.02))
