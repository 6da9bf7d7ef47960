"""Equivalent-circuit fit of impedance spectra and the overlayer's ionic conductivity (physics §3).

Circuit: L − R_el − (R_film ∥ CPE_film) − (R_ct ∥ CPE_dl) − W_s (impedance.py notation
`L0-R0-p(R1,CPE1)-p(R2,CPE2)-Ws1`): the leads' series inductance is fitted, not left to bias R_el up and
R_film down (seed-results.md, "Known errors"). Complex non-linear least squares with modulus weighting
(scipy), positive parameters fitted in log space, 0.5 ≤ α ≤ 1, 95 % confidence intervals from the Jacobian,
several starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

_SWAP = {"r_film": "r_ct", "r_ct": "r_film", "q_film": "q_dl", "q_dl": "q_film", "a_film": "a_dl",
         "a_dl": "a_film"}
NAMES = ("r_el", "r_film", "q_film", "a_film", "r_ct", "q_dl", "a_dl", "r_d", "tau_w", "l0")
ALPHA = {"a_film", "a_dl"}


def circuit(freq: np.ndarray, r_el: float, r_film: float, q_film: float, a_film: float, r_ct: float,
            q_dl: float, a_dl: float, r_d: float, tau_w: float, l0: float = 0.0) -> np.ndarray:
    """Impedance (ohm) of the reference circuit at `freq` (Hz); `l0` the series inductance (H)."""
    jw = 1j * 2 * np.pi * np.asarray(freq, dtype=float)
    z_film = r_film / (1 + r_film * q_film * jw ** a_film)
    z_ct = r_ct / (1 + r_ct * q_dl * jw ** a_dl)
    s = np.sqrt(jw * tau_w)
    z_w = r_d * np.tanh(s) / s
    return jw * l0 + r_el + z_film + z_ct + z_w


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


def _apex_frequencies(freq: np.ndarray, z: np.ndarray) -> list[float]:
    """Frequencies of the local maxima of −Z'' (arc apexes), highest first."""
    order = np.argsort(freq)[::-1]
    f, y = np.asarray(freq)[order], -np.asarray(z)[order].imag
    peaks = [f[k] for k in range(1, f.size - 1) if y[k] >= y[k - 1] and y[k] >= y[k + 1] and y[k] > 0]
    return [float(p) for p in peaks]


def initial_guesses(freq: np.ndarray, z: np.ndarray) -> list[dict[str, float]]:
    """Starting points: intercepts read off the spectrum, arc apexes found in it, typical frequencies of
    film (10^4–10^6 Hz) and charge-transfer (10–10^3 Hz) arcs (physics §3.2), several R splits."""
    r_el = max(float(np.min(z.real)) * 0.95, 1e-4)
    total = max(float(np.max(z.real)) - r_el, 1e-3)
    apexes = _apex_frequencies(freq, z)
    top = int(np.argmax(freq))
    l0 = max(float(z[top].imag) / (2 * np.pi * float(freq[top])), 1e-9)  # inductive tail at the top, if any
    film_f = sorted({*(a for a in apexes if a > 3e3), 1e5, 1e4}, reverse=True)[:3]
    ct_f = sorted({*(a for a in apexes if 1 < a <= 3e3), 1e3, 1e2}, reverse=True)[:3]
    guesses = []
    for f1 in film_f:
        for f2 in ct_f:
            for split in (0.25, 0.5, 0.75):
                r1, r2 = split * total * 0.9, (1 - split) * total * 0.9
                guesses.append({"r_el": r_el, "r_film": r1, "q_film": 1 / (r1 * (2 * np.pi * f1) ** 0.85),
                                "a_film": 0.85, "r_ct": r2, "q_dl": 1 / (r2 * (2 * np.pi * f2) ** 0.85),
                                "a_dl": 0.85, "r_d": 0.05 * total, "tau_w": 1.0, "l0": l0})
    return guesses


def effective_capacitance(r: float, q: float, alpha: float) -> float:
    """Brug conversion C_eff = Q^(1/α) R^((1−α)/α) (F)."""
    return float(q ** (1 / alpha) * r ** ((1 - alpha) / alpha))


def _film_first(params: dict[str, float]) -> dict[str, float]:
    """Label the arcs by effective capacitance: the film is the one with the smaller C_eff (§3.3)."""
    c_film = effective_capacitance(params["r_film"], params["q_film"], params["a_film"])
    c_dl = effective_capacitance(params["r_ct"], params["q_dl"], params["a_dl"])
    if c_film <= c_dl:
        return params
    swapped = dict(params)
    for a, b in (("r_film", "r_ct"), ("q_film", "q_dl"), ("a_film", "a_dl")):
        swapped[a], swapped[b] = params[b], params[a]
    return swapped


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
        res = least_squares(residual, x0, bounds=(lower, upper), x_scale="jac", max_nfev=150)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    params = _unpack(best.x)
    swapped = _film_first(params) is not params
    params = _film_first(params)
    dof = max(1, best.fun.size - best.x.size)
    s2 = 2 * best.cost / dof
    try:
        cov = np.linalg.pinv(best.jac.T @ best.jac) * s2
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        sd = np.full(best.x.size, np.nan)
    raw = _unpack(best.x)
    ci = {n: float(1.96 * (sd[k] if n in ALPHA else raw[n] * sd[k])) for k, n in enumerate(NAMES)}
    if swapped:
        ci = {name: ci[_SWAP.get(name, name)] for name in NAMES}
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
