"""Station files: which instruments the bench has, where they are plugged in, and the bench's geometry.

```yaml
labctl_station: 1
name: reference bench
instruments:
  stage: {driver: grbl, port: /dev/ttyUSB0, limits: {speed: [0 mm/s, 10 mm/s]}}
  pump.stock: {driver: ne1000, port: /dev/ttyUSB1, address: 1}
  potentiostat: {driver: keithley2450, visa: "TCPIP0::192.168.1.20::5025::SOCKET"}
baths: {alloy: {x: 50 mm, surface_z: -40 mm, capacity: 50 mL, pumps: [pump.stock, pump.solvent]}}
stocks:
  incl3: {pump: pump.stock, salt: InCl3, concentration: 0.5 M, solvent: THF, syringe_diameter: 14.43 mm}
cell: {area: 1.13 cm^2}
```
Quantities are strings with units (as in protocol files) and are held in SI (temperatures degC, flow sccm,
stirring rpm). `load_station(path)` raises `StationFileError` (a `ConfigError`) listing every problem with
file:line:column and the field. Driver names are checked against `labctl.drivers.registry.entries()`; a
driver's module is imported only to read the limit names it declares (`LIMITS`), so a misspelled limit is
refused when the station is loaded (by `plan` as by `run`), naming the instrument and the known names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from labctl.errors import ConfigError
from labctl.protocol.fields import STRICT, Chem, Label, Name, Positive, Qty, Resource
from labctl.protocol.problems import FileProblemsError, Problem
from labctl.protocol.safeyaml import Document, load, read_text
from labctl.protocol.validation import validate
from labctl.units import UnitError, parse, to_si

#: role families and the standard limit names (and their kinds) each family uses.
ROLE_FAMILIES = ("stage", "pump", "hotplate", "gauge", "mfc", "rf", "qcm", "potentiostat", "eis", "substrate")
LIMIT_KINDS: dict[str, str] = {
    "x": "length",
    "z": "length",
    "speed": "speed",
    "rate": "volume_flow",
    "volume": "volume",
    "diameter": "length",
    "temperature": "temperature",
    "stir": "rotation",
    "current": "current",
    "voltage_limit": "voltage",
    "pressure": "pressure",
    "flow": "gas_flow",
    "power": "power",
    "ramp_rate": "power_rate",
    "thickness": "length",
    "frequency": "frequency",
    "amplitude": "voltage",
}
_ROLE = re.compile(
    r"^(stage|pump\.[a-z][a-z0-9_]{0,31}|hotplate|gauge|mfc|rf|qcm|potentiostat|eis|substrate)$"
)


class StationFileError(FileProblemsError):
    """A station file that cannot be used."""

    kind = "station file"


class SerialConfig(BaseModel):
    """Line settings that override the driver's defaults (pyserial names)."""

    model_config = STRICT
    baudrate: int | None = Field(None, ge=50, le=4_000_000)
    bytesize: Literal[5, 6, 7, 8] | None = None
    parity: Literal["N", "E", "O", "M", "S"] | None = None
    stopbits: Literal[1, 1.5, 2] | None = None
    xonxoff: bool | None = None
    rtscts: bool | None = None


class _InstrumentFile(BaseModel):
    model_config = STRICT
    driver: Name
    port: Resource | None = None
    visa: Resource | None = None
    address: int | None = Field(None, ge=0, le=99)
    serial: SerialConfig | None = None
    limits: dict[Name, list[str | float | None]] = Field(default_factory=dict)
    note: Label | None = None


class Bath(BaseModel):
    """A bath on the stage: `x` is the stage position above it (m), `surface_z` the height of the liquid
    surface (m, stage coordinates, down negative), `capacity` its volume (m^3), `pumps` the pump roles that
    fill it; optional `depth` (m, surface to floor) and `max_exposure` (s, the sample's cumulative time in
    it, tightening physics.md's immersion limits) are checked by the plan across steps."""

    model_config = STRICT
    x: Qty("length")
    surface_z: Qty("length")
    capacity: Positive("volume")
    pumps: list[str] = Field(default_factory=list)
    heated: bool = False
    depth: Positive("length") | None = None  # liquid depth below `surface_z`: how deep a sample may go
    max_exposure: Positive("duration") | None = None  # longest cumulative time of the sample in it


class Stock(BaseModel):
    """A solution (or neat solvent) loaded in a pump's syringe: concentration in mol/m^3, diameter in m."""

    model_config = STRICT
    pump: str
    solvent: Chem
    salt: Chem | None = None
    concentration: Positive("concentration") | None = None
    syringe_diameter: Positive("length")
    syringe_volume: Positive("volume") | None = None


class Cell(BaseModel):
    model_config = STRICT
    area: Positive("area")


class Travel(BaseModel):
    """Stage height for moves between baths (m) and the speed of those moves (m/s)."""

    model_config = STRICT
    safe_z: Qty("length") = 0.0
    speed: Positive("speed") = 0.01


class Chamber(BaseModel):
    """Sputter/plasma chamber: target, its area (m^2), whether it is bonded, target-substrate distance (m),
    and `idle_pressure` (Pa), where it rests between runs (a chamber kept under vacuum; absent: vented, so
    the plan counts a pump-down from atmosphere)."""

    model_config = STRICT
    target: Chem = "LiF"
    target_area: Positive("area") = 20.3e-4
    bonded: bool = True
    distance: Positive("length") = 0.08
    idle_pressure: Positive("pressure") | None = None


class _StationFile(BaseModel):
    model_config = STRICT
    labctl_station: Literal[1]
    name: Label
    description: str | None = None
    instruments: dict[str, _InstrumentFile]
    baths: dict[Name, Bath] = Field(default_factory=dict)
    stocks: dict[Name, Stock] = Field(default_factory=dict)
    cell: Cell | None = None
    travel: Travel = Field(default_factory=Travel)
    chamber: Chamber | None = None


@dataclass(frozen=True)
class InstrumentSpec:
    """One instrument of the station, resolved: limits are `{name: (low, high)}` in SI."""

    role: str
    driver: str
    port: str | None = None
    visa: str | None = None
    address: int | None = None
    serial: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.role.split(".", 1)[0]

    @property
    def link(self) -> str:
        """The port or VISA resource the instrument is reached on."""
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


@dataclass(frozen=True)
class Station:
    """A loaded station file."""

    name: str
    instruments: dict[str, InstrumentSpec]
    baths: dict[str, Bath]
    stocks: dict[str, Stock]
    cell_area: float | None
    travel: Travel
    chamber: Chamber | None
    source_text: str
    path: str

    def has(self, role: str) -> bool:
        return role in self.instruments

    @property
    def roles(self) -> dict[str, InstrumentSpec]:
        """The instruments by role (the engine's word for them)."""
        return self.instruments

    def bath(self, name: str) -> Bath:
        """The bath `name`; `ConfigError` listing the station's baths if it has none of that name."""
        if name not in self.baths:
            known = ", ".join(sorted(self.baths)) or "none"
            raise ConfigError(f"station {self.name!r} has no bath {name!r} (baths: {known})")
        return self.baths[name]

    def pumps(self) -> list[str]:
        return sorted(r for r in self.instruments if r.split(".", 1)[0] == "pump")

    def stock_for(self, *, salt: str | None, solvent: str | None = None) -> Stock | None:
        """The stock solution of `salt` (case-insensitive); with `salt=None`, the neat `solvent`."""
        for stock in self.stocks.values():
            if salt is not None and stock.salt and stock.salt.lower() == salt.lower():
                return stock
            if salt is None and stock.salt is None and solvent and stock.solvent.lower() == solvent.lower():
                return stock
        return None


def load_station(path: str | Path) -> Station:
    """Load and check a station file; `StationFileError` lists every problem."""
    name = str(path)
    text, problems = read_text(path, name)
    if text is None:
        raise StationFileError(problems)
    return parse_station(text, name)


def _rack_hint(data: dict, name: str) -> str:
    """What to give instead of a rack file (a multi-channel cycler) where one station is wanted."""
    channels = data.get("channels")
    files = [str(Path(name).parent / str(f)) for f in channels.values()] if isinstance(channels, dict) else []
    return ("this is a rack of channel stations, not a station: give one channel's station file"
            + (f" ({', '.join(files)})" if files else "") + "; a linked campaign's `--cycler` takes the rack")


def parse_station(text: str, name: str = "<station>") -> Station:
    doc = load(text, name)
    if doc.problems:
        raise StationFileError(doc.problems)
    if not isinstance(doc.data, dict):
        raise StationFileError(
            [
                Problem(
                    name,
                    *doc.where(()),
                    "",
                    "a station file must be a mapping with `labctl_station: 1`, `name` and `instruments`",
                )
            ]
        )
    if "labctl_rack" in doc.data:
        where = doc.where(("labctl_rack",), key=True)
        raise StationFileError([Problem(name, *where, "labctl_rack", _rack_hint(doc.data, name))])
    raw, problems = validate(_StationFile, doc.data, doc)
    if raw is None:
        raise StationFileError(problems)
    instruments = _instruments(raw, doc, problems)
    _cross_check(raw, doc, problems)
    if problems:
        raise StationFileError(problems)
    return Station(
        name=raw.name,
        instruments=instruments,
        baths=dict(raw.baths),
        stocks=dict(raw.stocks),
        cell_area=raw.cell.area if raw.cell else None,
        travel=raw.travel,
        chamber=raw.chamber,
        source_text=text,
        path=name,
    )


def _known_drivers() -> dict[str, Any]:
    from labctl.drivers.registry import entries

    return entries()


def _limit_names(driver: str) -> frozenset[str] | None:
    """The limit names the driver declares (its `LIMITS`), or None if its module cannot be imported here (the
    run then reports the driver itself as unavailable)."""
    from labctl.drivers.registry import driver_class

    try:
        return frozenset(getattr(driver_class(driver), "LIMITS", {}))
    except Exception:
        return None


def _plugin_role(role: str, known: dict[str, Any]) -> bool:
    """A role of a family that an installed driver plug-in serves (`glovebox`, `glovebox.o2`)."""
    from labctl.drivers.registry import BUILTIN

    families = {e.role for name, e in known.items() if name not in BUILTIN and e.role}
    return re.fullmatch(r"[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31})?", role) is not None and \
        role.split(".", 1)[0] in families


def _instruments(raw: _StationFile, doc: Document, problems: list[Problem]) -> dict[str, InstrumentSpec]:
    known = _known_drivers()
    out: dict[str, InstrumentSpec] = {}
    ports: dict[str, list[tuple[str, int | None]]] = {}
    for role, spec in raw.instruments.items():
        here = ("instruments", role)
        family = role.split(".", 1)[0]
        if not _ROLE.match(role) and not _plugin_role(role, known):
            problems.append(
                doc.problem(
                    here,
                    f"unknown role `{role}`; roles are stage, pump.<name>, "
                    "hotplate, gauge, mfc, rf, qcm, potentiostat, eis, substrate",
                    key=True,
                )
            )
        if spec.driver not in known:
            problems.append(
                doc.problem(
                    (*here, "driver"),
                    f"unknown driver `{spec.driver}`; known drivers: " + ", ".join(sorted(known)),
                )
            )
        elif known[spec.driver].role and known[spec.driver].role != family:
            problems.append(
                doc.problem(
                    (*here, "driver"),
                    f"driver `{spec.driver}` serves the `{known[spec.driver].role}` role, not `{family}`",
                )
            )
        if (spec.port is None) == (spec.visa is None):
            problems.append(
                doc.problem(here, "give exactly one of `port` (serial) or `visa` (VISA resource)")
            )
        if spec.port is not None:
            ports.setdefault(spec.port, []).append((role, spec.address))
        limits: dict[str, tuple[float | None, float | None]] = {}
        names = _limit_names(spec.driver) if spec.driver in known else None
        for lname, pair in spec.limits.items():
            lpath = (*here, "limits", lname)
            if names is not None and lname not in names:  # `run` would refuse it: say so at load, as `plan`
                problems.append(doc.problem(
                    lpath, f"unknown limit `{lname}` for {role} (driver `{spec.driver}`); its limits are: "
                    + (", ".join(sorted(names)) or "none"), key=True))
                continue
            if len(pair) != 2:
                problems.append(doc.problem(lpath, f"limit `{lname}` must be a pair [low, high]"))
                continue
            try:
                kind = LIMIT_KINDS.get(lname)
                low, high = (None if v is None else parse(v, kind) if kind else to_si(v) for v in pair)
            except UnitError as exc:
                problems.append(doc.problem(lpath, f"limit `{lname}` {exc}"))
                continue
            if low is not None and high is not None and low > high:
                problems.append(doc.problem(lpath, f"limit `{lname}`: low {pair[0]} is above high {pair[1]}"))
                continue
            limits[lname] = (low, high)
        serial = spec.serial.model_dump(exclude_none=True) if spec.serial else {}
        out[role] = InstrumentSpec(
            role=role,
            driver=spec.driver,
            port=spec.port,
            visa=spec.visa,
            address=spec.address,
            serial=serial,
            limits=limits,
        )
    for port, users in ports.items():
        if len(users) > 1:
            addresses = [a for _, a in users]
            if None in addresses or len(set(addresses)) != len(addresses):
                for role, _ in users:
                    problems.append(
                        doc.problem(
                            ("instruments", role),
                            f"port `{port}` is shared by "
                            + ", ".join(r for r, _ in users)
                            + "; each needs its own `address`",
                        )
                    )
    return out


def _cross_check(raw: _StationFile, doc: Document, problems: list[Problem]) -> None:
    roles = set(raw.instruments)
    for bname, bath in raw.baths.items():
        for i, pump in enumerate(bath.pumps):
            if pump not in roles:
                problems.append(
                    doc.problem(("baths", bname, "pumps", i), f"no instrument `{pump}` in this station")
                )
    for sname, stock in raw.stocks.items():
        if stock.pump not in roles:
            problems.append(
                doc.problem(("stocks", sname, "pump"), f"no instrument `{stock.pump}` in this station")
            )
        if (stock.salt is None) != (stock.concentration is None):
            problems.append(
                doc.problem(
                    ("stocks", sname),
                    "a stock solution needs both `salt` and `concentration` (a neat solvent has neither)",
                )
            )
