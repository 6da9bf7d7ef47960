"""Synthetic traces and spectra with known answers, shared by the analysis tests."""

from __future__ import annotations

import numpy as np
import pytest

HOUR = 3600.0

LI_IN = {"r_el": 2.0, "r_film": 5.0, "q_film": 1e-6, "a_film": 0.85, "r_ct": 21.0, "q_dl": 2e-5,
         "a_dl": 0.85, "r_d": 0.9, "tau_w": 1.4}  # ohm cm^2 values on a 1 cm^2 cell (physics §3.2)




def make_square_wave(n_cycles: int, *, half_s: float = 3600.0, dt: float = 10.0, amp_a: float = 1.13e-3,
                over_v: float = 0.030, peak_v: float = 0.045, noise: float = 0.0005, seed: int = 1):
    """Plating (I<0, V<0) then stripping halves with a known plateau and a decaying nucleation peak."""
    rng = np.random.default_rng(seed)
    n = int(half_s / dt)
    tt, vv, ii = [], [], []
    for h in range(2 * n_cycles):
        sign = -1 if h % 2 == 0 else 1
        tau = np.arange(n) * dt
        shape = over_v + (peak_v - over_v) * np.exp(-tau / (0.05 * half_s))
        tt.append(h * half_s + tau + dt)
        vv.append(sign * shape + rng.normal(0, noise, n))
        ii.append(np.full(n, sign * amp_a))
    return np.concatenate(tt), np.concatenate(vv), np.concatenate(ii)



@pytest.fixture
def square_wave():
    """A factory of square-wave cycling traces (see make_square_wave)."""
    return make_square_wave


@pytest.fixture
def li_in():
    """Circuit values of a Li–In coated cell on 1 cm² (physics §3.2)."""
    return dict(LI_IN)
