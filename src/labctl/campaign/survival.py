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
    scale = median / LN2 ** (1.0 / shape)
    return float(np.sum(stats.weibull_min.logpdf(t_f, shape, scale=scale))
                 + np.sum(stats.weibull_min.logsf(t_c, shape, scale=scale)))


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
