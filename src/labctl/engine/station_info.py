"""What the engine needs to know about a station, read from the station model (or a plain dict).

The station file's model belongs to `labctl.station`; this module reads it tolerantly (pydantic model or
mapping) into the few facts executors use: each role's driver and address, the baths on the stage, the stock
solutions on the pumps, the cell area.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labctl.errors import ConfigError


@dataclass
class RoleSpec:
    role: str
    driver: str
    port: str | None = None
    visa: str | None = None
    address: int | None = None
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def link(self) -> str:
        return str(self.port or self.visa or "")

    @property
    def lease_key(self) -> str:
        """The physical instrument: its link resolved to a canonical address (and its network address on
        a shared link), whatever role it plays and however the link is spelt."""
        from labctl.store.lease_keys import lease_key

        return lease_key(self.link, self.address, self.role)

    @property
    def spelt_lease_key(self) -> str:
        """The lease key as labctl before 0004 wrote it (the link as spelt): to recognise old leases."""
        return self.link + (f"#{self.address}" if self.address is not None else "") or self.role


@dataclass
class Bath:
    name: str
    x: float  # stage x of the bath (m)
    surface_z: float = 0.0  # stage z at which the sample touches the liquid (m, down negative)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stock:
    """What a pump holds: a stock solution (salt + concentration) or a pure solvent."""

    role: str
    salt: str | None = None
    solvent: str | None = None
    concentration: float | None = None  # same unit as the protocol's concentrations (SI: mol/m^3)
    diameter: float | None = None  # syringe inside diameter (m)
    rate: float | None = None  # default dispense rate (m^3/s)


@dataclass
class StationInfo:
    name: str
    roles: dict[str, RoleSpec]
    baths: dict[str, Bath] = field(default_factory=dict)
    stocks: dict[str, Stock] = field(default_factory=dict)
    cell_area: float | None = None  # m^2
    travel_speed: float = 0.01  # m/s, stage moves between baths
    solutions: list[Stock] = field(default_factory=list)  # the station's `stocks:` (which pump holds what)
    text: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def bath(self, name: str) -> Bath:
        if name not in self.baths:
            known = ", ".join(sorted(self.baths)) or "none"
            raise ConfigError(f"station {self.name!r} has no bath {name!r} (baths: {known})")
        return self.baths[name]

    def solution(self, *, salt: str | None, solvent: str | None = None) -> Stock | None:
        """The stock of `salt` (case-insensitive), or with `salt=None` the neat `solvent`."""
        for st in self.solutions:
            if salt and st.salt and st.salt.lower() == salt.lower():
                return st
            if (
                salt is None
                and not st.salt
                and (not solvent or str(st.solvent or "").lower() == solvent.lower())
            ):
                return st
        return None

    def pumps(self) -> list[str]:
        return sorted(r for r in self.roles if r.startswith("pump"))


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    return obj


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if hasattr(v, "to_base_units"):
        return float(v.to_base_units().magnitude)
    if hasattr(v, "magnitude"):
        return float(v.magnitude)
    if isinstance(v, str):
        from labctl.engine.units import parse_si

        return parse_si(v)
    return float(v)


def _limits(raw: Any) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for k, v in (_dump(raw) or {}).items():
        v = _dump(v)
        if isinstance(v, dict):
            out[k] = (_num(v.get("low", v.get("min"))), _num(v.get("high", v.get("max"))))
        else:
            lo, hi = list(v)
            out[k] = (_num(lo), _num(hi))
    return out


ROLE_KEYS = {"driver", "port", "visa", "address", "limits"}


def station_info(station: Any, *, text: str = "") -> StationInfo:
    """Read a station model (or mapping) into `StationInfo`."""
    raw = _dump(station) or {}
    roles_raw = _dump(raw.get("roles") or raw.get("instruments") or {})
    roles: dict[str, RoleSpec] = {}
    stocks: dict[str, Stock] = {}
    for role, spec in roles_raw.items():
        spec = _dump(spec) or {}
        if "driver" not in spec:
            raise ConfigError(f"station role {role!r} names no driver")
        addr = spec.get("address")
        roles[role] = RoleSpec(
            role,
            str(spec["driver"]),
            spec.get("port"),
            spec.get("visa"),
            int(addr) if addr is not None else None,
            _limits(spec.get("limits")),
            {k: v for k, v in spec.items() if k not in ROLE_KEYS},
        )
        if role.startswith("pump"):
            stock = _dump(spec.get("stock") or spec.get("solution") or spec.get("contents") or {})
            stock = stock if isinstance(stock, dict) else {"solvent": str(stock)}
            merged = {**{k: v for k, v in spec.items() if k in ("salt", "solvent", "concentration")}, **stock}
            stocks[role] = Stock(
                role,
                merged.get("salt"),
                merged.get("solvent"),
                _num(merged.get("concentration")),
                _num(spec.get("diameter", spec.get("syringe_diameter"))),
                _num(spec.get("rate")),
            )
    baths_raw = _dump(raw.get("baths") or _dump(roles_raw.get("stage") or {}).get("baths") or {})
    baths: dict[str, Bath] = {}
    if isinstance(baths_raw, list):
        baths_raw = {_dump(b)["name"]: b for b in baths_raw}
    for name, b in baths_raw.items():
        b = _dump(b)
        if not isinstance(b, dict):
            b = {"x": b}
        x = _num(b.get("x", b.get("position")))
        if x is None:
            raise ConfigError(f"station bath {name!r} has no x position")
        surface = _num(b.get("surface_z", b.get("surface", b.get("z"))))
        baths[name] = Bath(name, x, surface if surface is not None else 0.0, b)
    solutions = []
    for st in (_dump(raw.get("stocks")) or {}).values():
        st = _dump(st) or {}
        if st.get("pump"):
            solutions.append(
                Stock(
                    str(st["pump"]),
                    st.get("salt"),
                    st.get("solvent"),
                    _num(st.get("concentration")),
                    _num(st.get("syringe_diameter", st.get("diameter"))),
                    _num(st.get("rate")),
                )
            )
    travel_raw = _dump(raw.get("travel")) or {}
    area = _num(raw.get("cell_area") or _dump(raw.get("cell") or {}).get("area"))
    travel = (
        _num(
            raw.get("travel_speed")
            or (travel_raw.get("speed") if isinstance(travel_raw, dict) else None)
            or _dump(roles_raw.get("stage") or {}).get("travel_speed")
        )
        or 0.01
    )
    text = text or str(raw.get("source_text") or "")
    return StationInfo(
        str(raw.get("name") or "station"), roles, baths, stocks, area, travel, solutions, text, raw
    )
