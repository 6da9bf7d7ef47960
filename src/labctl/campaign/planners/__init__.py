"""Campaign planners (DESIGN.md §13): `make(name, space, objectives, ...)` builds one, `available()` lists
the built-ins (`optuna`, the default; `grid` and `random` baselines) and the `labctl.planners` entry points,
`suggest(planner, n, observations, pending)` asks one and checks its answer.

A plug-in is a `Planner` subclass named by an entry point in the `labctl.planners` group, declaring
`LABCTL_PLUGIN_API = 1`; one that fails to import, declares another API, is not a planner or reuses a
built-in name is reported (`problems()`, `labctl plugins list`) and left out, never fatal. A planner that
raises, or returns something that is not a point of the campaign's space, is a `PlannerError` and nothing is
queued.
"""

from __future__ import annotations

from typing import Any

from labctl.campaign.planners.base import Objective, Observation, Planner, PlannerError
from labctl.campaign.planners.space import Axis, Space, space_of

__all__ = ["Axis", "Objective", "Observation", "Planner", "PlannerError", "Space", "available", "make",
           "make_for", "problems", "space_of", "suggest"]

DEFAULT = "optuna"
GROUP = "labctl.planners"


def _builtins() -> dict[str, type[Planner]]:
    from labctl.campaign.planners.baselines import GridPlanner, RandomPlanner
    from labctl.campaign.planners.optuna_planner import OptunaPlanner

    return {p.name: p for p in (OptunaPlanner, GridPlanner, RandomPlanner)}


def _scan() -> tuple[dict[str, type[Planner]], list[str]]:
    from importlib.metadata import entry_points

    from labctl.plugins import PluginError, load_checked

    found: dict[str, type[Planner]] = {}
    problems: list[str] = []
    builtin = _builtins()
    for ep in entry_points(group=GROUP):
        where = f"planner {ep.name} ({ep.value})"
        try:
            obj = load_checked(ep)
        except PluginError as exc:
            problems.append(f"planner {exc}")
            continue
        if not (isinstance(obj, type) and issubclass(obj, Planner)):
            problems.append(f"{where} is not a labctl.campaign.planners.Planner subclass")
        elif ep.name in builtin:
            problems.append(f"{where} reuses the built-in planner name `{ep.name}`: left out")
        else:
            found[ep.name] = obj
    return found, problems


def available() -> dict[str, type[Planner]]:
    """Planner name -> class: the built-ins, then every plug-in that loaded."""
    return {**_builtins(), **_scan()[0]}


def problems() -> list[str]:
    """Why each broken planner plug-in was left out."""
    return _scan()[1]


def make(name: str, space: Space, objectives: list[Objective], *, seed: int, options: dict[str, Any] | None
         = None, horizon_h: float | None = None, budget: int | None = None) -> Planner:
    """Build planner `name`; `PlannerError` naming the known planners, or saying why it cannot be built."""
    known = available()
    if name not in known:
        extra = problems()
        raise PlannerError(f"unknown planner `{name}` (planners: {', '.join(sorted(known))})"
                           + (f"; broken plug-ins: {'; '.join(extra)}" if extra else ""))
    try:
        return known[name](space, objectives, seed=seed, options=dict(options or {}), horizon_h=horizon_h,
                           budget=budget)
    except PlannerError:
        raise
    except Exception as exc:  # a plug-in's constructor is not ours: its error is reported, not raised raw
        raise PlannerError(f"planner `{name}` could not be built: {type(exc).__name__}: {exc}") from exc


def make_for(model: Any, defaults: dict[str, Any], *, seed: int) -> Planner:
    """The planner a campaign model names (`planner:`), over its factors and objectives."""
    from labctl.units import parse

    spec = model.planner
    objectives = [Objective(o.metric, o.sense) for o in model.objectives]
    horizon = None if model.horizon is None else parse(model.horizon, "duration") / 3600.0
    return make(spec.name, space_of(model, defaults), objectives, seed=seed, options=spec.options,
                horizon_h=horizon, budget=spec.budget)


def suggest(planner: Planner, n: int, observations: list[Observation], pending: list[dict[str, str]]
            ) -> list[dict[str, str]]:
    """`planner.suggest`, with its failure or a malformed answer turned into a `PlannerError` naming it."""
    try:
        points = planner.suggest(n, observations, pending)
    except Exception as exc:
        raise PlannerError(f"planner `{planner.name}` failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(points, list) or len(points) != n:
        got = len(points) if isinstance(points, list) else type(points).__name__
        raise PlannerError(f"planner `{planner.name}` returned {got} point(s) for {n} asked")
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise PlannerError(f"planner `{planner.name}`: point {i + 1} is {type(p).__name__}, "
                               "not a mapping")
        vals = {str(k): str(v) for k, v in p.items()}
        errors = planner.space.check(vals)
        if errors:
            raise PlannerError(f"planner `{planner.name}`: point {i + 1} is not in the campaign's space: "
                               + "; ".join(errors))
        out.append(vals)
    return out
