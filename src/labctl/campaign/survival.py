"""Censored lifetimes: Kaplan–Meier curves and a Weibull fit per condition, on scipy's `CensoredData`.

A cell that failed gives its hours to failure; a cell still alive when its test ended (the horizon) lived *at
least* that long and is right-censored; a cell whose run failed for a hardware reason or was interrupted tells
nothing about its life and is excluded (never counted as a short life). The estimators are scipy's
(`stats.ecdf` for Kaplan–Meier with Greenwood confidence bands, `weibull_min.fit` for the censored maximum
likelihood); the median life's confidence interval is the profile-likelihood interval (likelihood ratio, χ²₁),
which stays sensible with few failures where a Wald interval on a skewed estimate does not.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

LN2 = math.log(2.0)


def censored(hours: Any, failed: Any) -> stats.CensoredData:
    """scipy's censored sample from hours (> 0) and whether each cell failed (False: alive at the end)."""
    t = np.asarray(hours, dtype=float)
    f = np.asarray(failed, dtype=bool)
    if t.shape != f.shape or t.ndim != 1:
        raise ValueError("hours and failed must be 1-D arrays of one length")
    if t.size and (not np.all(np.isfinite(t)) or np.any(t <= 0)):
        raise ValueError("lifetimes must be finite and positive (hours)")
    return stats.CensoredData(uncensored=t[f], right=t[~f])


def kaplan_meier(hours: Any, failed: Any, level: float = 0.95) -> dict[str, np.ndarray]:
    """Survival S(t) at each failure time with its pointwise `level` confidence band (Greenwood; NaN where
    the band is undefined, once S reaches 0)."""
    data = censored(hours, failed)
    if not np.asarray(failed, dtype=bool).any():  # no event: S = 1 up to the longest follow-up
        longest = float(np.max(hours)) if np.size(hours) else 0.0
        one = np.array([1.0])
        return {"time": np.array([longest]), "survival": one, "lower": one, "upper": one}
    sf = stats.ecdf(data).sf
    with warnings.catch_warnings():  # scipy warns where S = 0 makes Greenwood's band undefined (NaN there)
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sf.confidence_interval(level)
    return {"time": sf.quantiles, "survival": sf.probabilities, "lower": ci.low.probabilities,
            "upper": ci.high.probabilities}


def km_median(curve: dict[str, np.ndarray]) -> float | None:
    """First time the Kaplan–Meier survival falls to 0.5 or below (None: not reached)."""
    below = np.flatnonzero(curve["survival"] <= 0.5)
    return float(curve["time"][below[0]]) if below.size else None


@dataclass(frozen=True)
class WeibullFit:
    """Two-parameter Weibull (location 0) fitted with censoring: S(t) = exp(-(t/scale)^shape)."""

    n: int
    failures: int
    shape: float | None
    scale: float | None
    median: float | None
    median_low: float | None
    median_high: float | None
    level: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loglik(t_f: np.ndarray, t_c: np.ndarray, median: float, shape: float) -> float:
    """The censored Weibull log-likelihood, written out (scipy's logpdf/logsf cost ~100 µs a call and the
    profile interval calls this thousands of times); equal to weibull_min.logpdf/logsf sums (tested)."""
    scale = median / LN2 ** (1.0 / shape)
    z_f, z_c = t_f / scale, t_c / scale
    return float(t_f.size * math.log(shape / scale) + (shape - 1.0) * np.sum(np.log(z_f))
                 - np.sum(z_f**shape) - np.sum(z_c**shape))


def _profile(t_f: np.ndarray, t_c: np.ndarray, median: float, k0: float) -> float:
    """The log-likelihood at `median`, maximised over the shape."""
    res = optimize.minimize_scalar(lambda lk: -_loglik(t_f, t_c, median, math.exp(lk)),
                                   bounds=(math.log(k0) - 4.0, math.log(k0) + 4.0), method="bounded")
    return -float(res.fun)


def weibull(hours: Any, failed: Any, level: float = 0.95) -> WeibullFit:
    """Censored maximum-likelihood Weibull, its median life and the profile-likelihood interval of the
    median. Fewer than two failures: no fit (the note says why), as the shape is not identified."""
    t = np.asarray(hours, dtype=float)
    f = np.asarray(failed, dtype=bool)
    data = censored(t, f)
    n, k = int(t.size), int(f.sum())
    if k < 2:
        note = "no failures" if k == 0 else "one failure"
        if t.size:
            note += f": every cell lived at least {float(np.min(t[~f])) if (~f).any() else 0:.4g} h"
        return WeibullFit(n, k, None, None, None, None, None, level, note + " (a fit needs two failures)")
    shape, _, scale = stats.weibull_min.fit(data, floc=0)
    median = float(scale * LN2 ** (1.0 / shape))
    t_f, t_c = t[f], t[~f]
    best = _loglik(t_f, t_c, median, float(shape))
    cut = float(stats.chi2.ppf(level, 1)) / 2.0

    def excess(log_m: float) -> float:
        return best - _profile(t_f, t_c, math.exp(log_m), float(shape)) - cut

    lm = math.log(median)
    bounds: list[float | None] = []
    for direction in (-1.0, 1.0):
        step, found = 0.25, None
        for _ in range(40):
            probe = lm + direction * step
            if excess(probe) > 0:
                found = math.exp(optimize.brentq(excess, min(lm, probe), max(lm, probe), xtol=1e-6))
                break
            step *= 1.6
        bounds.append(found)
    return WeibullFit(n, k, float(shape), float(scale), median, bounds[0], bounds[1], level)


def by_condition(obs: Any, factors: list[str], level: float = 0.95) -> Any:
    """Per condition (a combination of the factor values): counts, the Kaplan–Meier median and the Weibull
    median with its interval. `obs` is a DataFrame with `status` (failed/censored/excluded), `hours` and a
    column per factor."""
    import pandas as pd

    rows = []
    for key, group in obs.groupby(factors, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        used = group[group["status"].isin(["failed", "censored"])]
        hours, failed = used["hours"].to_numpy(float), (used["status"] == "failed").to_numpy()
        fit = weibull(hours, failed, level) if len(used) else None
        rows.append({
            **dict(zip(factors, key, strict=True)),
            "cells": len(group),
            "failed": int(failed.sum()),
            "censored": int((~failed).sum()),
            "excluded": int((group["status"] == "excluded").sum()),
            "km_median_h": km_median(kaplan_meier(hours, failed)) if len(used) else None,
            "weibull_shape": fit.shape if fit else None,
            "weibull_median_h": fit.median if fit else None,
            "median_low_h": fit.median_low if fit else None,
            "median_high_h": fit.median_high if fit else None,
            "note": fit.note if fit else "no usable cell",
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class WeibullAFT:
    """A Weibull accelerated-failure-time fit: log scale = X·beta, one shape for every condition.

    It lets a censored cell borrow strength from its neighbours in factor space: a cell alive at the horizon
    at x lived at least that long, and the fitted surface says how much longer it is likely to live there."""

    beta: np.ndarray
    shape: float
    failures: int
    cov: np.ndarray | None = None  # of beta: the inverse Hessian of the penalised fit (Laplace)

    def scale(self, x: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(np.asarray(x, float) @ self.beta, -50.0, 50.0))

    def log_median_sd(self, x: np.ndarray) -> np.ndarray:
        """Standard error of the log median at `x` from the coefficients' covariance (0 without one)."""
        x = np.asarray(x, float)
        if self.cov is None:
            return np.zeros(x.shape[0])
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, self.cov, x), 0.0))

    def median(self, x: np.ndarray) -> np.ndarray:
        return self.scale(x) * LN2 ** (1.0 / self.shape)

    def conditional_median(self, x: np.ndarray, alive_at: np.ndarray) -> np.ndarray:
        """Median life given survival past `alive_at` (h): S(t)/S(c) = 1/2, so (t/λ)^k = (c/λ)^k + ln 2."""
        lam = self.scale(x)
        c = np.asarray(alive_at, float)
        return lam * ((c / lam) ** self.shape + LN2) ** (1.0 / self.shape)


def weibull_aft(x: Any, hours: Any, failed: Any, *, ridge: float = 0.5, shape_prior: float = 1.5,
                shape_sd: float = 0.3) -> WeibullAFT:
    """Censored maximum a-posteriori Weibull AFT: `x` (n, p) design matrix whose first column is 1; a ridge
    on the other coefficients and a log-normal prior on the shape (`shape_prior`, log-sd `shape_sd`) keep the
    fit defined with few cells or no failure at all (the shape is not identified without failures). A planner
    samples densely where cells live past the horizon, so most failures are far from the censored ones: a
    flat prior then lets the shape run to 20 (an overconfident surface); these defaults halved the regret on
    the synthetic problem of `tests/campaign/test_planner_censoring.py` (0.16 vs 0.28, 10 seeds)."""
    X = np.asarray(x, dtype=float)
    t = np.asarray(hours, dtype=float)
    f = np.asarray(failed, dtype=bool)
    censored(t, f)  # the same checks on the lives
    if X.ndim != 2 or X.shape[0] != t.size:
        raise ValueError("x must be an (n, p) matrix with one row per cell")
    z = np.log(t)
    p = X.shape[1]
    b0 = np.zeros(p)
    b0[0] = float(np.mean(z)) + 0.5
    lk0 = math.log(shape_prior)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta, lk = theta[:p], theta[p]
        k = math.exp(lk)
        s = np.clip(k * (z - X @ beta), -60.0, 60.0)
        es = np.exp(s)
        val = -float(np.sum(f * (lk + s)) - np.sum(es)) + ridge * float(beta[1:] @ beta[1:]) \
            + 0.5 * ((lk - lk0) / shape_sd) ** 2
        ds = f - es  # d loglik / ds per cell
        g_beta = -(-k * (X.T @ ds))
        g_beta[1:] += 2 * ridge * beta[1:]
        g_lk = -(float(np.sum(f)) + float(np.sum(ds * s))) + (lk - lk0) / shape_sd**2
        return val, np.append(g_beta, g_lk)

    res = optimize.minimize(nll, np.append(b0, lk0), jac=True, method="L-BFGS-B",
                            bounds=[(None, None)] * p + [(math.log(0.2), math.log(20.0))])
    # the coefficients' covariance: the inverse Hessian of the penalised fit, by central differences of the
    # analytic gradient (p + 1 parameters: cheap); None if it is not positive definite
    h, hess = 1e-5, np.zeros((p + 1, p + 1))
    for i in range(p + 1):
        step = np.zeros(p + 1)
        step[i] = h
        hess[i] = (nll(res.x + step)[1] - nll(res.x - step)[1]) / (2 * h)
    try:
        cov = np.linalg.inv(0.5 * (hess + hess.T))
        cov = cov[:p, :p] if np.all(np.linalg.eigvalsh(cov) > 0) else None
    except np.linalg.LinAlgError:
        cov = None
    return WeibullAFT(res.x[:p].copy(), float(math.exp(res.x[p])), int(f.sum()), cov)
