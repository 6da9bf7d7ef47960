"""Build a `WorldConfig` from a station: a `labctl.station.Station`, or the plain mapping of one (what the
engine hands over). Baths give positions, surfaces, capacities and pumps; stocks say what each pump holds (the
first stock listed for a pump is loaded; `PhysicalWorld.set_stock` changes it); a bath named like a dip
bath (polymer/dip/coat) without a salt pump holds a default polymer solution (PEO-like, 2 wt% in THF)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from labctl.simulators.physics.bath import BathSpec, PolymerSolution, StockSpec
from labctl.simulators.physics.chamber import ChamberSpec
from labctl.simulators.physics.world import PhysicalWorld, WorldConfig

DEFAULT_POLYMER = PolymerSolution(viscosity=0.01, surface_tension=0.027, density=890.0, solids_fraction=0.02,
                                  evaporation=3e-4, sigma_eff=5e-6, name="PEO-UPy 2 wt% in THF")
DIP_HINTS = ("polymer", "dip", "coat")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _polymer(raw: Any) -> PolymerSolution | None:
    if raw is None:
        return None
    if isinstance(raw, PolymerSolution):
        return raw
    fields = {k: raw[k] for k in PolymerSolution.__dataclass_fields__ if k in raw}
    return PolymerSolution(**fields)


def config_for_station(station: Any, **overrides: Any) -> WorldConfig:
    """`WorldConfig` from a station model or mapping; `overrides` replace any WorldConfig field."""
    stocks: dict[str, StockSpec] = {}
    for st in (_get(station, "stocks") or {}).values():
        pump = _get(st, "pump")
        if pump and pump not in stocks:
            stocks[pump] = StockSpec(pump, str(_get(st, "solvent") or "THF"), _get(st, "salt"),
                                     float(_get(st, "concentration") or 0.0))
    baths: dict[str, BathSpec] = {}
    for name, b in (_get(station, "baths") or {}).items():
        pumps = tuple(_get(b, "pumps") or ())
        salty = any(stocks.get(p) and stocks[p].salt for p in pumps)
        polymer = _polymer(_get(b, "polymer"))
        if polymer is None and not salty and any(h in name.lower() for h in DIP_HINTS):
            polymer = DEFAULT_POLYMER
        capacity = float(_get(b, "capacity") or 50e-6)
        baths[name] = BathSpec(
            x=float(_get(b, "x", 0.0)), surface_z=float(_get(b, "surface_z", 0.0)), capacity=capacity,
            pumps=pumps, heated=bool(_get(b, "heated", False)), polymer=polymer,
            volume=0.4 * capacity if polymer is not None else 0.0,
        )
    if baths and not any(b.heated for b in baths.values()):  # one hotplate: it heats the first bath
        first = next(iter(baths))
        baths[first] = replace(baths[first], heated=True)
    area = _get(station, "cell_area") or _get(_get(station, "cell") or {}, "area")
    chamber = _get(station, "chamber")
    ch = ChamberSpec()
    if chamber is not None:
        ch = replace(ch, target_area=float(_get(chamber, "target_area", ch.target_area)),
                     distance=float(_get(chamber, "distance", ch.distance)))
    kwargs: dict[str, Any] = {"baths": baths, "stocks": stocks, "chamber": ch}
    if area:
        kwargs["cell_area"] = float(area)
    kwargs.update(overrides)
    return WorldConfig(**kwargs)


def world_for_station(station: Any, *, seed: int = 0, clock: Any = None, **overrides: Any) -> PhysicalWorld:
    """The `PhysicalWorld` of a station (see `config_for_station`)."""
    return PhysicalWorld(config_for_station(station, **overrides), seed=seed, clock=clock)
