"""Equivalent-circuit fit of impedance spectra and the overlayer's ionic conductivity (physics §3).

Circuit: R_el − (R_film ∥ CPE_film) − (R_ct ∥ CPE_dl) − W_s (impedance.py notation
`R0-p(R1,CPE1)-p(R2,CPE2)-Ws1`). Complex non-linear least squares with modulus weighting (scipy), positive
parameters fitted in log space, 0.5 ≤ α ≤ 1, 95 % confidence intervals from the Jacobian, several starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

NAMES = ("r_el", "r_film", "q_film", "a_film", "r_ct", "q_dl", "a_dl", "r_d", "tau_w")
ALPHA = {"a_film", "a_dl"}


def circuit(freq: np.ndarray, r_el: float, r_film: float, q_film: float, a_film: float, r_ct: float,
            q_dl: float, a_dl: float, r_d: float, tau_w: float) -> np.ndarray:
    """Impedance (ohm) of the reference circuit at `freq` (Hz)."""
    jw = 1j * 2 * np.pi * np.asarray(freq, dtype=float)
    z_film = r_film / (1 + r_film * q_film * jw ** a_film)
    z_ct = r_ct / (1 + r_ct * q_dl * jw ** a_dl)
    s = np.sqrt(jw * tau_w)
    z_w = r_d * np.tanh(s) / s
    return r_el + z_film + z_ct + z_w


@dataclass
class CircuitFit:
    params: dict[str, float]
    ci95: dict[str, float]        # half-width of the 95 % interval, same units
    rel_residual: float           # rms of |Z_fit - Z| / |Z|

    def __getitem__(self, name: str) -> float:
        return self.params[name]


def _pack(p: dict[str, float]) -> np.ndarray:
    return np.array([p[n] if n in ALPHA else np.log(p[n]) for n in NAMES])


def _unpack(x: np.ndarray) -> dict[str, float]:
    return {n: float(v if n in ALPHA else np.exp(v)) for n, v in zip(NAMES, x, strict=True)}


def initial_guesses(freq: np.ndarray, z: np.ndarray) -> list[dict[str, float]]:
    """Starting points read off the spectrum: high-frequency intercept, total width, arc apexes."""
    order = np.argsort(freq)[::-1]
    f, zz = np.asarray(freq)[order], np.asarray(z)[order]
    r_el = max(float(np.min(zz.real)), 1e-3)
    total = max(float(np.max(zz.real)) - r_el, 1e-3)
    apex_f = float(f[np.argmax(-zz.imag)])
    guesses = []
    for split in (0.2, 0.5, 0.8):
        r1, r2 = split * total * 0.9, (1 - split) * total * 0.9
        guesses.append({"r_el": r_el, "r_film": r1, "q_film": 1 / (r1 * 2 * np.pi * max(apex_f * 30, 1.0)),
                        "a_film": 0.85, "r_ct": r2, "q_dl": 1 / (r2 * 2 * np.pi * max(apex_f, 1e-2)),
                        "a_dl": 0.85, "r_d": 0.1 * total, "tau_w": 1.0})
    return guesses


def fit(freq: np.ndarray, z: np.ndarray, guesses: list[dict[str, float]] | None = None) -> CircuitFit:
    """Fit the reference circuit; the best of several starts by weighted residual."""
    freq = np.asarray(freq, dtype=float)
    z = np.asarray(z, dtype=complex)
    weight = 1.0 / np.abs(z)

    def residual(x: np.ndarray) -> np.ndarray:
        d = (circuit(freq, **_unpack(x)) - z) * weight
        return np.concatenate([d.real, d.imag])

    lower = np.array([0.5 if n in ALPHA else -30.0 for n in NAMES])
    upper = np.array([1.0 if n in ALPHA else 30.0 for n in NAMES])
    best = None
    for g in guesses or initial_guesses(freq, z):
        x0 = np.clip(_pack(g), lower + 1e-9, upper - 1e-9)
        res = least_squares(residual, x0, bounds=(lower, upper), x_scale="jac", max_nfev=4000)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    params = _unpack(best.x)
    dof = max(1, best.fun.size - best.x.size)
    s2 = 2 * best.cost / dof
    try:
        cov = np.linalg.pinv(best.jac.T @ best.jac) * s2
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        sd = np.full(best.x.size, np.nan)
    ci = {n: float(1.96 * (sd[k] if n in ALPHA else params[n] * sd[k])) for k, n in enumerate(NAMES)}
    rel = float(np.sqrt(np.mean(np.abs(circuit(freq, **params) - z) ** 2 / np.abs(z) ** 2)))
    return CircuitFit(params, ci, rel)


def conductivity(thickness_m: float, r_film_ohm: float, area_m2: float, *, n_coated: int = 2,
                 thickness_rel_err: float = 0.15, r_rel_err: float = 0.0, area_rel_err: float = 0.02
                 ) -> tuple[float, float]:
    """σ = n_c L / (R_film A) in S/m, and its standard uncertainty (relative errors added in quadrature)."""
    if thickness_m <= 0 or r_film_ohm <= 0 or area_m2 <= 0:
        raise ValueError("thickness, film resistance and area must be positive")
    sigma = n_coated * thickness_m / (r_film_ohm * area_m2)
    rel = float(np.sqrt(thickness_rel_err**2 + r_rel_err**2 + area_rel_err**2))
    return sigma, sigma * rel
