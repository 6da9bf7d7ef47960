"""The potentiostatic model the 2450 (sourcing voltage) and the EmStat4 (LSV, CV, DPV, SWV, CA) share: the
world's impedance reduced to a Randles circuit, its step response, and the world's DC model showing in the
current (a non-linear cell, and the charge passed to the world)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.simulators.potentiostatic import Potentiostat, Randles
from labctl.simulators.world import SimpleWorld


def test_randles_from_the_worlds_impedance():
    p = Potentiostat(SimpleWorld(cell_ohm=200.0, cell_farad=5e-5))
    rc = p.circuit(0.0)
    assert rc.r_s == pytest.approx(1.0, rel=0.01)  # SimpleWorld: 1 ohm + R || C
    assert rc.r_p == pytest.approx(200.0, rel=0.01)
    assert rc.c == pytest.approx(5e-5, rel=0.15)  # from the -Im Z peak on a 10-per-decade grid
    resistor = Randles.from_impedance(np.array([1e-3, 1e6]), np.array([50 + 0j, 50 + 0j]))
    assert resistor.r_p == 0 and resistor.c == 0 and resistor.r_dc == 50


def test_a_step_charges_the_double_layer_with_the_circuits_time_constant():
    world = SimpleWorld(cell_ohm=100.0, cell_farad=1e-3)
    p = Potentiostat(world)
    p.last_t = 0.0  # the step is applied at t = 0
    rc = p.circuit(0.0)
    tau = rc.c * rc.r_s * rc.r_p / rc.r_dc
    t = np.array([0.5, 1.0, 2.0, 5.0]) * tau
    i, _ = p.apply(t, np.full(4, 1.0))
    v_inf = rc.r_p / rc.r_dc
    expected = (1.0 - v_inf * (1 - np.exp(-t / tau))) / rc.r_s
    np.testing.assert_allclose(i, expected, rtol=0.02)  # the faradaic part's correction is tiny here
    later, _ = p.apply(np.array([100 * tau]), np.array([1.0]))
    assert later[0] == pytest.approx(1.0 / 100.0, rel=1e-6)  # DC: the world's cell_voltage (100 ohm) decides


class Diode(SimpleWorld):
    """A cell whose DC answer is not linear: an exponential (Tafel-like) overpotential."""

    def cell_voltage(self, t, current_a):
        i = np.asarray(current_a, dtype=float)
        return 0.05 * np.arcsinh(i / 1e-4) + 10.0 * i

    def cell_impedance(self, t, freq_hz):
        return np.full(len(np.atleast_1d(freq_hz)), 10.0 + 0j)


def test_the_worlds_non_linear_dc_model_shows_in_the_current():
    p = Potentiostat(Diode())
    i, v = p.apply(np.array([1.0, 2.0, 3.0]), np.full(3, 0.2))
    linear = 0.2 / 10.0
    lo, hi = 0.0, linear  # the true current: bisect the world's own V(i) = 0.2 V
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if Diode().cell_voltage(0, mid) < 0.2 else (lo, mid)
    assert np.all(i < linear)  # the overpotential the linear estimate does not know takes current away
    assert np.all(np.abs(i - lo) < 0.5 * abs(linear - lo))  # one Newton step: at least halfway there
    np.testing.assert_allclose(v, Diode().cell_voltage(0, linear))  # the world asked at the estimate


def test_times_handed_to_the_world_increase_strictly():
    calls = []

    class Recording(SimpleWorld):
        def cell_voltage(self, t, current_a):
            calls.append(np.array(t))
            return super().cell_voltage(t, current_a)

    p = Potentiostat(Recording())
    p.apply(np.array([1.0, 1.0, 2.0]), np.zeros(3))
    p.apply(np.array([2.0]), np.zeros(1))  # the instant of the previous sample
    t = np.concatenate(calls)
    assert np.all(np.diff(t) > 0) and t[-1] - t[-2] == pytest.approx(1e-9)
    assert math.isclose(p.last_t, t[-1])
