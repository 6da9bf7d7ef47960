"""The planner's life surrogate and search space: log axes, the censored Weibull AFT surface finding a known
ridge's optimum, the Sobol start, and the surrogate's share of each batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import qmc

from labctl.campaign import planners
from labctl.campaign.planners import Axis, Objective, Observation, Space, censoring, make

LIFE = [Objective("hours_to_failure", "maximise")]
RIDGE = Space((Axis("immersion_time", 10.0, 10000.0, "s"), Axis("concentration", 0.01, 1.0, "M")))
BEST, HORIZON = 2000.0, 1000.0


def ridge_median(p: dict[str, str]) -> float:
    """A layer-growth-like ridge: life depends mostly on log t + log c (a thickness), a little along it;
    the best at t = 1000 s, c = 0.1 M."""
    lt = math.log10(RIDGE.axis("immersion_time").number(p["immersion_time"]) / 1000.0)
    lc = math.log10(RIDGE.axis("concentration").number(p["concentration"]) / 0.1)
    return BEST * math.exp(-1.2 * (lt + lc) ** 2 - 0.08 * (lt - lc) ** 2)


def ridge_cells(space: Space, n: int, seed: int) -> list[Observation]:
    """n cells (a power of 2) spread over the space (Sobol), Weibull (shape 2) lives censored at the
    horizon."""
    rng = np.random.default_rng(seed)
    u = qmc.Sobol(2, scramble=True, seed=seed).random(n)
    out = []
    for row in u:
        p = {a.name: a.text(float(RIDGE.axis(a.name).from_unit(x))) for a, x in zip(space.axes, row,
                                                                                        strict=True)}
        life = ridge_median(p) / math.log(2) ** 0.5 * (-math.log1p(-rng.random())) ** 0.5
        out.append(Observation(p, "failed", life) if life <= HORIZON else
                   Observation(p, "censored", HORIZON))
    return out


def test_an_axis_spanning_a_decade_is_a_log_axis() -> None:
    t, c = RIDGE.axes
    assert t.logscale and c.logscale
    assert not Axis("x", 0.0, 1.0).logscale  # not positive
    assert not Axis("t", 30.0, 120.0, "s").logscale  # less than a decade
    assert not Axis("n", 2.0, 900.0, integer=True).logscale  # whole numbers: linear unless asked
    assert Axis("n", 2.0, 900.0, integer=True, log=True).logscale
    assert not Axis("t", 15.0, 3600.0, "s", log=False).logscale
    assert t.unit_interval("316.2 s") == pytest.approx(0.5, abs=1e-4)  # the geometric middle
    u = np.array([0.0, 0.25, 0.7, 1.0])
    assert np.allclose(t.to_unit(t.from_unit(u)), u)
    assert float(c.from_unit(0.5)) == pytest.approx(0.1)


def test_grid_and_random_space_a_log_axis_in_log() -> None:
    g = make("grid", Space((RIDGE.axes[0],)), LIFE, seed=1, options={"count": 4})
    assert sorted(RIDGE.axes[0].number(p["immersion_time"]) for p in g.points()) == pytest.approx(
        [10.0, 100.0, 1000.0, 10000.0])
    pts = planners.suggest(make("random", RIDGE, LIFE, seed=1), 200, [], [])
    below = np.mean([RIDGE.axes[0].number(p["immersion_time"]) < 100.0 for p in pts])
    assert 0.2 < below < 0.47  # a third of the log range, not 1 % of the linear one


def test_surrogate_finds_a_ridge_optimum_through_censoring() -> None:
    """32 cells, most good ones alive at the horizon: the censored fit's best point lies on the ridge near
    its top; the same fit on linear axes (a ridge there is a hyperbola, not a quadratic) lands off it."""
    regrets = {}
    for name, space in (("log", RIDGE), ("linear", Space(tuple(Axis(a.name, a.low, a.high, a.unit, log=False)
                                                             for a in RIDGE.axes)))):
        found = []
        for seed in range(5):
            cells = ridge_cells(space, 32, seed)
            assert sum(o.status == "censored" for o in cells) >= 8
            model = censoring.fit(space, cells)
            best = censoring.best_points(space, model, 1, np.random.default_rng(0), avoid=[])[0]
            found.append(1.0 - ridge_median(best) / BEST)
        regrets[name] = np.array(found)
    # the top is shallow along the ridge (half the best three decades away): near it, not always on it
    assert regrets["log"].mean() < 0.12 and np.all(regrets["log"] < 0.3), regrets
    assert regrets["linear"].mean() > 2 * regrets["log"].mean(), regrets


def test_best_points_keep_apart_and_the_fit_knows_its_uncertainty() -> None:
    cells = ridge_cells(RIDGE, 32, 3)
    model = censoring.fit(RIDGE, cells)
    assert model.cov is not None
    x = censoring.features(RIDGE, [o.values for o in cells])
    corner = censoring.features(RIDGE, [{"immersion_time": "10 s", "concentration": "1 M"}])
    sd = model.log_median_sd(x)
    assert np.all(sd > 0) and model.log_median_sd(corner)[0] > np.median(sd)  # no cell there
    pts = censoring.best_points(RIDGE, model, 4, np.random.default_rng(0), avoid=[])
    u, _ = censoring.coordinates(RIDGE, pts)
    for i in range(4):
        for j in range(i):
            assert np.max(np.abs(u[i] - u[j])) >= 0.1 - 1e-3


def test_sobol_start_then_the_surrogate_takes_its_share() -> None:
    p = make("optuna", RIDGE, LIFE, seed=5)
    first = planners.suggest(p, 4, [], [])
    assert planners.suggest(p, 2, [], []) + planners.suggest(p, 2, [], first[:2]) == first  # resumable
    u, _ = censoring.coordinates(RIDGE, first)
    for k in range(2):  # a Sobol prefix of four: two points in each half of every axis
        assert sorted(u[:, k] < 0.5) == [False, False, True, True]
    cells = ridge_cells(RIDGE, 16, 1)
    greedy = make("optuna", RIDGE, LIFE, seed=5, options={"exploit": 1.0})
    model = censoring.fit(RIDGE, cells)
    assert planners.suggest(greedy, 3, cells, []) == censoring.best_points(
        RIDGE, model, 3, np.random.default_rng(0), avoid=[])
    tpe_only = make("optuna", RIDGE, LIFE, seed=5, options={"exploit": 0.0})
    assert planners.suggest(tpe_only, 3, cells, [])[0] not in censoring.best_points(
        RIDGE, model, 3, np.random.default_rng(0), avoid=[])
    rec = make("optuna", RIDGE, LIFE, seed=5).recommend(cells)
    assert rec in [o.values for o in cells] and ridge_median(rec) >= 0.8 * BEST
