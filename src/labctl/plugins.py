"""The plugin contract: the entry-point groups third-party packages use, and the API version they declare.

A plugin is an installed distribution with entry points in these groups (`pyproject.toml`):

    [project.entry-points."labctl.drivers"]   # an instrument: a `Driver` naming its role and simulator
    vaisala_dmt143 = "labctl_glovebox.driver:DMT143"
    [project.entry-points."labctl.steps"]     # a step kind: a `StepKind` subclass (model, roles, plan, run)
    glovebox_check = "labctl_glovebox.step:GloveboxCheckKind"
    [project.entry-points."labctl.planners"]  # a campaign planner: a `labctl.campaign.planners.Planner`

Each module an entry point names declares the plugin API it was written against, `LABCTL_PLUGIN_API = 1`
(module level, or on the class). labctl loads an entry only when that equals `PLUGIN_API`; a missing or other
version, an import that fails, or a class of the wrong kind is *reported* (`labctl plugins list`, `labctl
plan`), never raised: a broken plugin must not stop labctl. What a run used is recorded in its provenance
(`versions()`, kept with the package versions of each run).

This module imports nothing heavy: `labctl plugins list` and the registries use it at start.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

#: the version of this contract; a plugin declaring another one is reported and not loaded
PLUGIN_API = 1
GROUPS: dict[str, str] = {
    "labctl.drivers": "driver",
    "labctl.steps": "step kind",
    "labctl.planners": "campaign planner",
}
RESERVED: dict[str, str] = {}


class PluginError(Exception):
    """An entry point that cannot be used (kept out of the registries and reported, never raised to users)."""


def declared_api(obj: Any, module: str = "") -> Any:
    """The `LABCTL_PLUGIN_API` of a loaded entry point: its own, else that of `module` (the module the entry
    point names), else that of the module defining it (None if none declares one)."""
    own = getattr(obj, "LABCTL_PLUGIN_API", None)
    if own is not None:
        return own
    for name in (module, getattr(obj, "__module__", "") or ""):
        api = getattr(sys.modules.get(name), "LABCTL_PLUGIN_API", None)
        if api is not None:
            return api
    return None


def check_api(obj: Any, where: str, module: str = "") -> None:
    """`PluginError` unless `obj` (loaded from entry point `where`, in `module`) declares this labctl's
    plugin API."""
    api = declared_api(obj, module)
    if api is None:
        raise PluginError(f"{where} declares no LABCTL_PLUGIN_API (this labctl implements plugin API "
                          f"{PLUGIN_API})")
    if api != PLUGIN_API:
        raise PluginError(f"{where} is written for plugin API {api!r}; this labctl implements "
                          f"{PLUGIN_API}: update the plugin (or labctl)")


def load_checked(ep: EntryPoint) -> Any:
    """Load entry point `ep` and check its declared API; any failure is a `PluginError` naming it."""
    where = f"{ep.name} ({ep.value})"
    try:
        obj = ep.load()
    except Exception as exc:  # ImportError, a SyntaxError in the plugin, an error raised at its import
        raise PluginError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
    check_api(obj, where, ep.value.partition(":")[0].strip())
    return obj


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


@dataclass(frozen=True)
class PluginEntry:
    """One entry point in a labctl group, as `labctl plugins list` shows it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str
    provides: str
    loaded: bool
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _provides(group: str, obj: Any) -> str:
    if group == "labctl.drivers":
        sim = getattr(obj, "SIMULATOR", "") or "no simulator"
        return f"driver for role {getattr(obj, 'ROLE', '') or '?'} (simulator {sim})"
    if group == "labctl.steps":
        roles = ", ".join(getattr(obj, "ROLES", ())) or "-"
        return f"step kind {getattr(obj, 'KIND', '') or '?'} (roles {roles})"
    if group == "labctl.planners":
        return f"campaign planner {getattr(obj, 'name', '') or '?'}"
    return GROUPS.get(group, group)


def scan() -> list[PluginEntry]:
    """Every entry point in labctl's groups, loaded and checked here (the registries' own verdicts too:
    a step kind that reuses a built-in name is loaded here but left out there, `registry.plugin_problems`)."""
    out: list[PluginEntry] = []
    for group in GROUPS:
        for ep in entry_points(group=group):
            dist, version = _dist(ep)
            if group in RESERVED:
                out.append(PluginEntry(group, ep.name, ep.value, dist, version, GROUPS[group], False,
                                       RESERVED[group]))
                continue
            try:
                obj = load_checked(ep)
            except PluginError as exc:
                out.append(PluginEntry(group, ep.name, ep.value, dist, version, GROUPS[group], False,
                                       str(exc)))
                continue
            planner = isinstance(obj, type) and callable(getattr(obj, "suggest", None))
            if group == "labctl.planners" and not planner:
                out.append(PluginEntry(group, ep.name, ep.value, dist, version, GROUPS[group], False,
                                       "not a campaign planner (a labctl.campaign.planners.Planner)"))
                continue
            out.append(PluginEntry(group, ep.name, ep.value, dist, version, _provides(group, obj), True))
    return out


def versions() -> dict[str, str]:
    """`{"plugin:<distribution>": version}` of every installed distribution with labctl entry points, for a
    run's provenance. Reads package metadata only (no plugin is imported here)."""
    found: dict[str, str] = {}
    for group in GROUPS:
        for ep in entry_points(group=group):
            dist, version = _dist(ep)
            if dist:
                found[f"plugin:{dist}"] = version
    return dict(sorted(found.items()))
