"""Planners: the registry (built-ins, `labctl.planners` plug-ins, broken ones reported and left out), the
stateless contract (same rows, same suggestions), the baselines, and multi-objective NSGA-II."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from labctl.campaign import planners
from labctl.campaign.planners import Axis, Objective, Observation, Planner, PlannerError, Space, make

SPACE = Space((Axis("immersion_time", 30.0, 120.0, "s"), Axis("concentration", choices=("0.05 M", "0.1 M")),
               Axis("cycles", 2.0, 9.0, "", integer=True)))
LIFE = [Objective("hours_to_failure", "maximise")]


class EchoPlanner(Planner):
    """A plug-in: always the low corner."""

    name = "echo"

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        return [{"immersion_time": "30 s", "concentration": "0.05 M", "cycles": "2"}] * n


def _plugins(monkeypatch: pytest.MonkeyPatch, entries: dict[str, str]) -> None:
    mod = types.ModuleType("fakeplanners")
    mod.LABCTL_PLUGIN_API = 1  # type: ignore[attr-defined]
    mod.EchoPlanner = EchoPlanner  # type: ignore[attr-defined]
    mod.NotAPlanner = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fakeplanners", mod)
    eps = [EntryPoint(name, value, "labctl.planners") for name, value in entries.items()]
    import importlib.metadata

    real = importlib.metadata.entry_points

    def fake(**kw: Any) -> Any:
        return eps if kw.get("group") == "labctl.planners" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def test_plugins_load_and_broken_ones_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, {"echo": "fakeplanners:EchoPlanner", "gone": "nosuchmodule:Planner",
                           "plain": "fakeplanners:NotAPlanner", "optuna": "fakeplanners:EchoPlanner"})
    names = planners.available()
    assert {"optuna", "grid", "random", "echo"} <= set(names) and names["optuna"].__name__ == "OptunaPlanner"
    probs = "\n".join(planners.problems())
    assert "gone (nosuchmodule:Planner) failed to import: ModuleNotFoundError" in probs
    assert "plain (fakeplanners:NotAPlanner) is not a labctl.campaign.planners.Planner subclass" in probs
    assert "reuses the built-in planner name `optuna`" in probs
    p = make("echo", SPACE, LIFE, seed=1)
    assert planners.suggest(p, 2, [], []) == [{"immersion_time": "30 s", "concentration": "0.05 M",
                                               "cycles": "2"}] * 2
    known = r"unknown planner `nope` \(planners: echo, grid, optuna, random\); broken plug-ins: .*gone"
    with pytest.raises(PlannerError, match=known):
        make("nope", SPACE, LIFE, seed=1)


def test_a_planner_is_rebuilt_from_the_rows_each_time() -> None:
    def cell(t: str, c: str, n: str) -> dict[str, str]:
        return {"immersion_time": t, "concentration": c, "cycles": n}

    obs = [Observation(cell("60 s", "0.1 M", "5"), "failed", 120.0),
           Observation(cell("90 s", "0.05 M", "3"), "censored", 500.0),
           Observation(cell("45 s", "0.1 M", "8"), "failed", 80.0)]
    pend = [{"immersion_time": "100 s", "concentration": "0.1 M", "cycles": "4"}]
    for name in ("optuna", "grid", "random"):
        a = planners.suggest(make(name, SPACE, LIFE, seed=7, budget=12), 3, obs, pend)
        b = planners.suggest(make(name, SPACE, LIFE, seed=7, budget=12), 3, obs, pend)
        assert a == b, name  # a resumed campaign suggests what an uninterrupted one would have
        for p in a:
            assert SPACE.check(p) == [] and p["cycles"].isdigit()
    first = planners.suggest(make("optuna", SPACE, LIFE, seed=7), 3, obs, [])
    assert first != planners.suggest(make("optuna", SPACE, LIFE, seed=8), 3, obs, [])


def test_grid_covers_its_points_once_before_repeating() -> None:
    g = make("grid", SPACE, LIFE, seed=3, budget=18)  # 2 categories x 3 x 3
    assert g.describe()["count"] == 3
    pts = planners.suggest(g, 18, [], [])
    assert len({tuple(sorted(p.items())) for p in pts}) == 18
    done = [Observation(p, "failed", 10.0) for p in pts[:10]]
    nxt = planners.suggest(g, 8, done, [])
    assert {tuple(sorted(p.items())) for p in nxt} == {tuple(sorted(p.items())) for p in pts[10:]}
    again = planners.suggest(g, 2, [Observation(p, "failed", 1.0) for p in pts], [])
    assert again == pts[:2]  # past the grid: a second pass, in the same order


def test_options_are_checked() -> None:
    with pytest.raises(PlannerError, match=r"unknown option\(s\) colour \(options: censoring, exploit, sa"):
        make("optuna", SPACE, LIFE, seed=1, options={"colour": "red"})
    with pytest.raises(PlannerError, match="startup must be a whole number >= 1"):
        make("optuna", SPACE, LIFE, seed=1, options={"startup": 0})
    for bad in (1.5, -0.1, True, "half"):
        with pytest.raises(PlannerError, match="exploit must be a number from 0 to 1"):
            make("optuna", SPACE, LIFE, seed=1, options={"exploit": bad})
    with pytest.raises(PlannerError, match="count must be a whole number >= 2"):
        make("grid", SPACE, LIFE, seed=1, options={"count": 1}).points()


def test_multi_objective_uses_nsga2_and_skips_cells_without_the_metric() -> None:
    objs = [*LIFE, Objective("overpotential_cycle10_mV", "minimise")]
    p = make("optuna", SPACE, objs, seed=2)
    assert p.describe()["sampler"] == "nsga2"
    obs = [Observation({"immersion_time": f"{30 + 10 * i} s", "concentration": ("0.05 M", "0.1 M")[i % 2],
                        "cycles": str(2 + i % 7)}, "failed" if i % 3 else "censored", 50.0 + 20 * i,
                       {"overpotential_cycle10_mV": None if i == 4 else 40.0 - i}) for i in range(9)]
    vals = p.objective_values(obs)
    assert vals[4] is None and all(v is not None and len(v) == 2 for i, v in enumerate(vals) if i != 4)
    assert vals[0] is not None and vals[0][0] >= 50.0  # censored: at least what was seen
    pts = planners.suggest(p, 4, obs, [])
    assert len(pts) == 4 and all(SPACE.check(x) == [] for x in pts)
