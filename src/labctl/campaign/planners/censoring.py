"""Censored lifetimes as a planner's objective: a cell alive at the horizon lived *at least* that long.

No common optimiser takes a right-censored value, and the naive reading (censored = failed then) flattens
every good condition onto the horizon, so the planner cannot tell them apart. Here a censored Weibull
accelerated-failure-time fit over the factors (`survival.weibull_aft`) is the planner's surrogate of life:
log scale quadratic in the factors (each on its unit interval, log axes in log: 1, u, u², the pairwise
products), so it can hold a ridge such as layer thickness ∝ √(B(c)·t), a straight diagonal in log time ×
log concentration. It serves three ways: a censored life is replaced by its median life *given survival
past the censoring time* (never below what was seen, larger where the surface says life is longer); the
surface's best point is tried every batch (`best_points`); and the recommended condition is the one whose
fitted median is longest. With `naive=True` the same fit reads a censored cell as failed (the baseline).
"""

from __future__ import annotations

import itertools

import numpy as np

from labctl.campaign import survival
from labctl.campaign.planners.base import Observation
from labctl.campaign.planners.space import Space


def design(space: Space, u: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Design matrix from unit coordinates `u` (n, continuous factors) and choice indices `idx` (n, discrete
    factors): 1, each continuous factor scaled to [-1, 1], its square, the pairwise products, and one column
    per choice after the first of each discrete factor."""
    n = u.shape[0]
    v = 2.0 * u - 1.0
    d = v.shape[1]
    parts = [np.ones((n, 1)), v, v**2] + [(v[:, i] * v[:, j])[:, None]
                                          for i, j in itertools.combinations(range(d), 2)]
    discrete = [a for a in space.axes if not a.continuous]
    for j, a in enumerate(discrete):
        parts += [(idx[:, j] == k).astype(float)[:, None] for k in range(1, len(a.choices))]
    return np.column_stack(parts)


def coordinates(space: Space, points: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Points as unit coordinates of the continuous factors and choice indices of the discrete ones."""
    cont = [a for a in space.axes if a.continuous]
    disc = [a for a in space.axes if not a.continuous]
    u = np.array([[a.unit_interval(p[a.name]) for a in cont] for p in points], dtype=float)
    idx = np.array([[a.choices.index(str(p[a.name])) for a in disc] for p in points], dtype=int)
    return u.reshape(len(points), len(cont)), idx.reshape(len(points), len(disc))


def point(space: Space, u: np.ndarray, idx: np.ndarray) -> dict[str, str]:
    """The value texts of one point given as unit coordinates and choice indices."""
    out, i, j = {}, 0, 0
    for a in space.axes:
        if a.continuous:
            out[a.name] = a.text(float(a.from_unit(u[i])))
            i += 1
        else:
            out[a.name] = a.choices[int(idx[j])]
            j += 1
    return out


def features(space: Space, points: list[dict[str, str]]) -> np.ndarray:
    """The design matrix of points given as value texts."""
    return design(space, *coordinates(space, points))


def lives(observations: list[Observation]) -> list[Observation]:
    """The observations that say something about life: failed or censored, with hours."""
    return [o for o in observations if o.hours is not None and o.status in ("failed", "censored")]


def fit(space: Space, lives: list[Observation], *, naive: bool = False) -> survival.WeibullAFT:
    """The censored Weibull AFT surrogate of life (`naive`: every censored cell read as failed)."""
    x = features(space, [o.values for o in lives])
    hours = np.array([max(float(o.hours or 0.0), 1e-6) for o in lives])
    failed = np.array([naive or o.status == "failed" for o in lives])
    return survival.weibull_aft(x, hours, failed)


def imputed_hours(space: Space, observations: list[Observation]) -> list[float | None]:
    """Per observation: hours if it failed, the conditional median life past its censoring time if it was
    censored (None without hours)."""
    used = lives(observations)
    if not any(o.status == "censored" for o in used):
        return [o.hours for o in observations]
    model = fit(space, used)
    out: list[float | None] = []
    for o in observations:
        if o.hours is None or o.status != "censored":
            out.append(o.hours)
            continue
        x = features(space, [o.values])
        out.append(float(model.conditional_median(x, np.array([o.hours]))[0]))
    return out


def candidates(space: Space, rng: np.random.Generator, *, per_axis: int = 41, count: int = 4096
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points to search the surrogate over: a full grid of `per_axis` values on up to two continuous axes
    (random points in more dimensions), crossed with every combination of the discrete factors."""
    cont = [a for a in space.axes if a.continuous]
    disc = [a for a in space.axes if not a.continuous]
    if len(cont) <= 2:
        g = np.linspace(0.0, 1.0, per_axis)
        u = np.array(list(itertools.product(g, repeat=len(cont))), dtype=float).reshape(-1, len(cont))
    else:
        u = rng.random((count, len(cont)))
    combo_list = list(itertools.product(*[range(len(a.choices)) for a in disc]))
    combos = np.array(combo_list, dtype=int).reshape(len(combo_list), len(disc))
    return np.repeat(u, len(combos), axis=0), np.tile(combos, (len(u), 1))


def best_points(space: Space, model: survival.WeibullAFT, n: int, rng: np.random.Generator, *,
                avoid: list[dict[str, str]], spacing: float = 0.1, sign: float = 1.0) -> list[dict[str, str]]:
    """The `n` points of longest fitted median life (`sign` -1: shortest), each at least `spacing` (unit
    coordinates, largest axis difference) from the points chosen before it and from `avoid` (pending
    points), so a batch does not pile onto one point."""
    u, idx = candidates(space, rng)
    score = sign * np.log(model.median(design(space, u, idx)))
    taken_u, taken_i = coordinates(space, avoid) if avoid else (np.zeros((0, u.shape[1])),
                                                                 np.zeros((0, idx.shape[1]), int))
    out = []
    for k in np.argsort(-score, kind="stable"):
        if len(out) == n:
            break
        if taken_u.shape[0]:
            near = np.all(idx[k] == taken_i, axis=1) & (
                np.max(np.abs(u[k] - taken_u), axis=1, initial=0.0) < spacing)
            if near.any():
                continue
        out.append(point(space, u[k], idx[k]))
        taken_u, taken_i = np.vstack([taken_u, u[k]]), np.vstack([taken_i, idx[k]])
    return out
