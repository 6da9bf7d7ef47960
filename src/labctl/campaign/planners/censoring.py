"""Censored lifetimes as a planner's objective: a cell alive at the horizon lived *at least* that long.

No common optimiser takes a right-censored value, and the naive reading (censored = failed then) flattens
every good condition onto the horizon, so the planner cannot tell them apart. Here each censored life is
replaced by its median life *given survival past the censoring time*, from a censored Weibull
accelerated-failure-time fit over the factors (`survival.weibull_aft`: a quadratic surface in the factors,
one shape): never below what was seen, larger where the surface says life is longer.
"""

from __future__ import annotations

import itertools

import numpy as np

from labctl.campaign import survival
from labctl.campaign.planners.base import Observation
from labctl.campaign.planners.space import Space


def features(space: Space, points: list[dict[str, str]]) -> np.ndarray:
    """Design matrix: 1, each continuous factor scaled to [-1, 1], its square, the pairwise products, and
    one column per choice after the first of each discrete factor."""
    rows = []
    for p in points:
        u = [2.0 * a.unit_interval(p[a.name]) - 1.0 for a in space.axes if a.continuous]
        row = [1.0, *u, *(x * x for x in u), *(x * y for x, y in itertools.combinations(u, 2))]
        for a in space.axes:
            if not a.continuous:
                row += [1.0 if str(p[a.name]) == c else 0.0 for c in a.choices[1:]]
        rows.append(row)
    return np.asarray(rows, dtype=float)


def fit(space: Space, lives: list[Observation]) -> survival.WeibullAFT:
    x = features(space, [o.values for o in lives])
    hours = np.array([max(float(o.hours or 0.0), 1e-6) for o in lives])
    return survival.weibull_aft(x, hours, np.array([o.status == "failed" for o in lives]))


def imputed_hours(space: Space, observations: list[Observation]) -> list[float | None]:
    """Per observation: hours if it failed, the conditional median life past its censoring time if it was
    censored (None without hours)."""
    lives = [o for o in observations if o.hours is not None and o.status in ("failed", "censored")]
    if not any(o.status == "censored" for o in lives):
        return [o.hours for o in observations]
    model = fit(space, lives)
    out: list[float | None] = []
    for o in observations:
        if o.hours is None or o.status != "censored":
            out.append(o.hours)
            continue
        x = features(space, [o.values])
        out.append(float(model.conditional_median(x, np.array([o.hours]))[0]))
    return out
