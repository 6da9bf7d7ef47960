"""Load a campaign file: safe YAML (the protocol loader's) -> models -> checks that need the protocols.

`load_campaign(path)` returns a `LoadedCampaign` or raises `CampaignFileError` listing every problem with
file:line:col and field: unknown factor names, a factor's unit that is not its parameter's kind, empty
ranges, an unknown `block_by`. Protocol paths are relative to the campaign file. Nothing here talks to an
instrument or the store.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.campaign.models import Campaign, Factor
from labctl.protocol.loader import LoadedProtocol, load_protocol
from labctl.protocol.problems import FileProblemsError, Problem
from labctl.protocol.safeyaml import Document, load, read_text
from labctl.protocol.validation import validate
from labctl.units import KINDS, Q_, UnitError, quantity


class CampaignFileError(FileProblemsError):
    """A campaign file that cannot be used (syntax, schema, factors, design)."""

    kind = "campaign file"


@dataclass
class LoadedCampaign:
    """A checked campaign: the model, its protocols (loaded with their defaults), text and SHA-256."""

    model: Campaign
    text: str
    path: str
    sha256: str
    protocols: dict[str, LoadedProtocol]  # role ("fabrication", "test") -> protocol
    station_path: Path | None
    doc: Document = field(repr=False)
    cycler_path: Path | None = None  # linked campaigns: where the test runs go (a station or a rack)

    @property
    def linked(self) -> bool:
        """A fabrication run and a test run per cell (else one protocol does both)."""
        return "fabrication" in self.protocols and "test" in self.protocols

    def test_station_path(self) -> Path | None:
        """The station the test protocol is planned against: the cycler's first channel, else `station`."""
        if self.linked and self.cycler_path is not None:
            from labctl.campaign.channels import load_rack

            return load_rack(self.cycler_path).first
        return self.station_path

    def protocols_with(self, name: str) -> list[str]:
        """Roles of the protocols that have parameter `name`."""
        return [role for role, p in self.protocols.items() if name in p.parameters]


def load_campaign(path: str | Path) -> LoadedCampaign:
    name = str(path)
    text, problems = read_text(path, name)
    if text is None:
        raise CampaignFileError(problems)
    return parse_campaign(text, name, base=Path(path).parent)


def parse_campaign(text: str, name: str = "<campaign>", base: Path | None = None) -> LoadedCampaign:
    doc = load(text, name)
    if doc.problems:
        raise CampaignFileError(doc.problems)
    if not isinstance(doc.data, dict):
        raise CampaignFileError([Problem(name, *doc.where(()), "", "a campaign file must be a mapping with "
                                         "`labctl: 1`, `name`, `protocols`, `factors` and `design`")])
    model, problems = validate(Campaign, doc.data, doc)
    if model is None:
        raise CampaignFileError(problems)
    base = base or Path(".")
    protocols: dict[str, LoadedProtocol] = {}
    for role, rel in model.protocols.items():
        p = (base / rel) if not Path(rel).is_absolute() else Path(rel)
        try:
            protocols[role] = load_protocol(p)
        except FileProblemsError as exc:  # the protocol's own problems, then where the campaign names it
            problems += exc.problems
            problems.append(doc.problem(("protocols", role), f"the {role} protocol `{rel}` has problems"))
    station_path = None
    if model.station:
        station_path = base / model.station if not Path(model.station).is_absolute() else Path(model.station)
        if not station_path.is_file():
            problems.append(doc.problem(("station",), f"no station file `{model.station}`"))
    cycler_path = None
    if model.cycler:
        cycler_path = base / model.cycler if not Path(model.cycler).is_absolute() else Path(model.cycler)
        if not model.protocols.fabrication:
            problems.append(doc.problem(("cycler",), "`cycler` is where the test runs of a linked campaign "
                                        "go: it needs `protocols.fabrication` and `protocols.test`"))
        elif not cycler_path.is_file():
            problems.append(doc.problem(("cycler",), f"no station or rack file `{model.cycler}`"))
        else:
            from labctl.campaign.channels import problems_of

            found = problems_of(cycler_path)
            if found:
                problems += found
                problems.append(doc.problem(("cycler",), f"the cycler `{model.cycler}` has problems"))
    if not problems and len(protocols) == 2:
        _check_linked(protocols, doc, problems)
    if not problems:
        _check_factors(model, protocols, doc, problems)
    if model.design.block_by is not None and model.design.block_by not in model.factors:
        problems.append(doc.problem(("design", "block_by"), f"`block_by` names `{model.design.block_by}`, "
                                    f"which is not a factor (factors: {', '.join(model.factors)})"))
    if model.planner is not None and not problems:
        _check_planner(model, protocols, doc, problems)
    if model.horizon is not None:
        try:
            horizon_seconds(model)
        except UnitError as exc:
            problems.append(doc.problem(("horizon",), f"horizon {exc}"))
    if problems:
        raise CampaignFileError(problems)
    return LoadedCampaign(model, text, name, hashlib.sha256(text.encode()).hexdigest(), protocols,
                          station_path, doc, cycler_path)


CELL_KINDS = ("ocv", "eis", "cycle_symmetric", "rate_test", "coulombic_efficiency")  # steps that need a cell


def _check_linked(protocols: dict[str, LoadedProtocol], doc: Document, problems: list[Problem]) -> None:
    """A linked campaign's two runs: the fabrication makes the sample, the test assembles it into a cell (an
    operator step that builds the cell, before any step that needs the cell) and tests it. The runs are told
    apart by their protocol's hash, so the two texts must differ."""
    from labctl.steps.operator import Operator, cell_build

    fab, test = protocols["fabrication"], protocols["test"]
    if fab.text == test.text:
        problems.append(doc.problem(("protocols", "test"), "the fabrication and test protocols are the same "
                                    "text: give one protocol as `protocols.test` instead"))
        return
    assembles = None
    for i, s in enumerate(test.steps):
        if isinstance(s, Operator) and cell_build(s) is not None:
            assembles = i
            break
    needs_cell = next((i for i, s in enumerate(test.steps) if s.kind in CELL_KINDS), None)
    if assembles is None or (needs_cell is not None and needs_cell < assembles):
        problems.append(doc.problem(("protocols", "test"), f"the test protocol `{test.path}` must assemble "
                                    "the cell first: an `operator` step with `cell:` (auto-answered in a dry "
                                    "run) before its first measurement"))


def _check_planner(model: Campaign, protocols: dict[str, LoadedProtocol], doc: Document,
                   problems: list[Problem]) -> None:
    """A planner campaign names no design, a known planner that accepts its options (built here once)."""
    from labctl.campaign.planners import PlannerError, make_for

    assert model.planner is not None
    if isinstance(doc.data, dict) and "design" in doc.data:
        problems.append(doc.problem(("design",), "give either `design` or `planner`, not both", key=True))
    if model.planner.batch > model.planner.budget:
        problems.append(doc.problem(("planner", "batch"), f"batch {model.planner.batch} is more than the "
                                    f"budget {model.planner.budget}"))
    try:
        make_for(model, {k: v for p in protocols.values() for k, v in p.parameters.items()}, seed=0)
    except PlannerError as exc:
        where = ("planner", "name") if "unknown planner" in str(exc) else ("planner", "options")
        problems.append(doc.problem(where, str(exc)))


def horizon_seconds(model: Campaign) -> float | None:
    from labctl.units import parse

    return None if model.horizon is None else parse(model.horizon, "duration")


def _kind_of(value: Any) -> str | None:
    """The quantity kind a parameter's default is (`a duration`), None when it is not a quantity."""
    try:
        q = quantity(value)
    except UnitError:
        return None
    if q.unitless:
        return "a number"
    for kind in KINDS.values():
        if kind.unit and q.check(Q_(1, kind.unit).dimensionality):
            return kind.noun
    return f"a quantity in {q.units:~}"


def _same_kind(value: Any, default: Any) -> bool:
    try:
        a, b = quantity(value), quantity(default)
    except UnitError:
        return False
    if a.unitless or b.unitless:
        return a.unitless and b.unitless
    return a.dimensionality == b.dimensionality


def _check_factors(model: Campaign, protocols: dict[str, LoadedProtocol], doc: Document,
                   problems: list[Problem]) -> None:
    for fname, factor in model.factors.items():
        where = ("factors", fname)
        roles = [r for r, p in protocols.items() if fname in p.parameters]
        if not roles:
            known = sorted({k for p in protocols.values() for k in p.parameters}) or ["none"]
            problems.append(doc.problem(where, f"unknown factor `{fname}`: no protocol has that parameter "
                                        f"(parameters: {', '.join(known)})", key=True))
            continue
        default = protocols[roles[0]].parameters[fname]
        _check_values(fname, factor, default, doc, problems)


def _check_values(fname: str, factor: Factor, default: Any, doc: Document, problems: list[Problem]) -> None:
    kind = _kind_of(default)
    before = len(problems)
    if factor.categories is not None:
        if kind not in (None,):
            problems.append(doc.problem(("factors", fname, "categories"),
                                        f"parameter `{fname}` is {kind} (default `{default}`): give `range` "
                                        "or `levels`, not `categories`"))
        if len(set(factor.categories)) != len(factor.categories):
            problems.append(doc.problem(("factors", fname, "categories"), "categories must be distinct"))
        return
    values = factor.range if factor.range is not None else factor.levels
    field_name = "range" if factor.range is not None else "levels"
    assert values is not None
    for i, v in enumerate(values):
        if isinstance(v, bool):
            problems.append(doc.problem(("factors", fname, field_name, i), f"`{v}` is not a value"))
        elif kind is None:
            problems.append(doc.problem(("factors", fname, field_name, i),
                                        f"parameter `{fname}` is text (default `{default}`): "
                                        "use `categories`"))
            return
        elif not _same_kind(v, default):
            problems.append(doc.problem(("factors", fname, field_name, i),
                                        f"`{v}` is not {kind}, the kind of parameter `{fname}` "
                                        f"(default `{default}`)"))
    if len(problems) > before or factor.range is None:
        if factor.levels is not None and len({str(v) for v in factor.levels}) != len(factor.levels):
            problems.append(doc.problem(("factors", fname, "levels"), "levels must be distinct"))
        return
    lo, hi = (quantity(v) for v in factor.range)
    lo_v, hi_v = float(lo.to_base_units().magnitude), float(hi.to_base_units().magnitude)
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)) or hi_v <= lo_v:
        problems.append(doc.problem(("factors", fname, "range"),
                                    f"empty range [{factor.range[0]}, {factor.range[1]}]: the high end "
                                    "must be above the low end"))
