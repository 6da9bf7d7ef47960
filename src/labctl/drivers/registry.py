"""Which driver and which simulator serve each instrument model, by name.

Built-in entries are listed here; third-party packages add their own through the `labctl.drivers`
entry-point group (value: "module:DriverClass"; the class may name its simulator in `SIMULATOR`).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from labctl.errors import ConfigError


@dataclass(frozen=True)
class DriverEntry:
    name: str
    role: str          # the station role family it serves: stage, pump, hotplate, gauge, mfc, rf, qcm, ...
    driver: str        # "module:Class"
    simulator: str     # "module:Class" of its DeviceCore


BUILTIN: dict[str, DriverEntry] = {e.name: e for e in [
    DriverEntry("keithley2450", "potentiostat", "labctl.drivers.keithley2450:Keithley2450",
                "labctl.simulators.keithley2450:Keithley2450Sim"),
    DriverEntry("grbl", "stage", "labctl.drivers.grbl:Grbl", "labctl.simulators.grbl:GrblSim"),
    DriverEntry("ne1000", "pump", "labctl.drivers.ne1000:NE1000", "labctl.simulators.ne1000:NE1000Sim"),
    DriverEntry("ika_rct", "hotplate", "labctl.drivers.ika_rct:IkaRct",
                "labctl.simulators.ika_rct:IkaRctSim"),
    DriverEntry("tpg361", "gauge", "labctl.drivers.tpg361:Tpg361", "labctl.simulators.tpg361:Tpg361Sim"),
    DriverEntry("alicat", "mfc", "labctl.drivers.alicat:Alicat", "labctl.simulators.alicat:AlicatSim"),
    DriverEntry("aebus_rf", "rf", "labctl.drivers.aebus_rf:AeBusRf", "labctl.simulators.aebus_rf:AeBusRfSim"),
    DriverEntry("sqm160", "qcm", "labctl.drivers.sqm160:Sqm160", "labctl.simulators.sqm160:Sqm160Sim"),
    DriverEntry("emstat4", "eis", "labctl.drivers.emstat4:EmStat4", "labctl.simulators.emstat4:EmStat4Sim"),
]}


_problems: list[str] = []


def entries() -> dict[str, DriverEntry]:
    """Built-in entries plus those of installed plug-ins (a copy: callers may change it)."""
    return dict(_entries())


@functools.cache
def _entries() -> dict[str, DriverEntry]:
    """Scanned once per process: an entry-point scan costs ~10 ms and a dry run looks drivers up ~30 times
    (`_entries.cache_clear()` after installing a plug-in in a running process)."""
    from labctl.plugins import PluginError, load_checked

    found = dict(BUILTIN)
    _problems.clear()
    for ep in entry_points(group="labctl.drivers"):
        try:
            cls = load_checked(ep)  # a plugin that fails to import or declares another API is left out
        except PluginError as exc:
            _problems.append(f"driver plug-in {exc}")
            continue
        if ep.name in BUILTIN:
            _problems.append(f"driver plug-in {ep.name!r} reuses a built-in driver's name; ignored")
            continue
        found[ep.name] = DriverEntry(ep.name, getattr(cls, "ROLE", ""), ep.value,
                                     getattr(cls, "SIMULATOR", ""))
    return found


def plugin_problems() -> list[str]:
    """Driver plug-ins left out, and why (`labctl plugins list` shows them)."""
    _entries()
    return list(_problems)


def entry(name: str) -> DriverEntry:
    all_entries = _entries()
    if name not in all_entries:
        raise ConfigError(f"unknown driver {name!r}; known drivers: {', '.join(sorted(all_entries))}")
    return all_entries[name]


def load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def driver_class(name: str) -> Any:
    return load(entry(name).driver)


def simulator_class(name: str) -> Any:
    return load(entry(name).simulator)
