"""Design points from a campaign: full factorial, Sobol or Latin hypercube (`scipy.stats.qmc`), replicates,
a seeded random order, blocks; then every point planned before anything is queued.

A point's values are the `-p name=value` texts of its protocol parameters (`45 s`, `0.1 M`, `InCl3`), so
a point is run exactly as `labctl run -p` would run it. The seed is recorded with the design: drawn here when
the file gives none, so any order can be reproduced.
"""

from __future__ import annotations

import itertools
import secrets
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from labctl.campaign.loader import CampaignFileError, LoadedCampaign
from labctl.campaign.models import Factor
from labctl.units import quantity


@dataclass
class DesignPoint:
    """One cell to make and test: `seq` is its place in the run order, `point` the design point it
    replicates."""

    seq: int
    point: int
    replicate: int
    block: str | None
    values: dict[str, str]
    ok: bool = True
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Design:
    kind: str
    seed: int
    points: list[DesignPoint]

    @property
    def planned_ok(self) -> list[DesignPoint]:
        return [p for p in self.points if p.ok]

    @property
    def failed(self) -> list[DesignPoint]:
        return [p for p in self.points if not p.ok]


def _text(value: float, unit: str) -> str:
    return f"{value:.4g} {unit}".strip()  # the text is what runs: 4 digits are finer than any bench


def _range_values(factor: Factor, default: Any, u: np.ndarray) -> list[str]:
    """Map fractions `u` in [0, 1] onto the range (onto its logarithm for `scale: log`), written in the low
    end's unit (whole numbers for an integer parameter such as `cycles`)."""
    assert factor.range is not None
    lo, hi = quantity(factor.range[0]), quantity(factor.range[1])
    unit = lo.units
    a, b = float(lo.magnitude), float(hi.to(unit).magnitude)
    vals = a * (b / a) ** u if factor.scale == "log" else a + u * (b - a)
    if isinstance(default, int) and not isinstance(default, bool) and lo.unitless:
        return [str(round(float(v))) for v in vals]
    return [_text(float(v), "" if lo.unitless else f"{unit:~}") for v in vals]


def _choices(factor: Factor) -> list[str]:
    raw = factor.levels if factor.levels is not None else factor.categories
    assert raw is not None
    return [str(v) for v in raw]


def _unique_points(c: LoadedCampaign, seed: int) -> list[dict[str, str]]:
    m = c.model
    names = list(m.factors)
    defaults = {n: next(p.parameters[n] for p in c.protocols.values() if n in p.parameters) for n in names}
    if m.design.kind == "full_factorial":
        axes = []
        for n in names:
            f = m.factors[n]
            if f.range is not None:
                axes.append(_range_values(f, defaults[n], np.linspace(0.0, 1.0, f.count or 3)))
            else:
                axes.append(_choices(f))
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]
    from scipy.stats import qmc

    d, n_points = len(names), int(m.design.points or 0)
    sampler = (qmc.Sobol(d, scramble=True, seed=seed) if m.design.kind == "sobol"
               else qmc.LatinHypercube(d, seed=seed))
    with warnings.catch_warnings():  # Sobol prefers powers of two; any n is still a valid (less balanced) set
        warnings.simplefilter("ignore", UserWarning)
        u = sampler.random(n_points)
    cols: list[list[str]] = []
    for j, n in enumerate(names):
        f = m.factors[n]
        if f.range is not None:
            cols.append(_range_values(f, defaults[n], u[:, j]))
        else:
            options = _choices(f)
            idx = np.minimum((u[:, j] * len(options)).astype(int), len(options) - 1)
            cols.append([options[k] for k in idx])
    return [{n: cols[j][i] for j, n in enumerate(names)} for i in range(n_points)]


def make_design(c: LoadedCampaign) -> Design:
    """The points in run order, replicates included; `CampaignFileError` (at `design`) when there are more
    than the cap allows. Nothing is planned here (see `plan_design`)."""
    m = c.model
    seed = m.design.seed if m.design.seed is not None else secrets.randbelow(2**32)
    unique = _unique_points(c, seed)
    total = len(unique) * m.design.replicates
    if total > m.design.max_runs:
        raise CampaignFileError([c.doc.problem(
            ("design", "max_runs"), f"the design has {len(unique)} point(s) x {m.design.replicates} "
            f"replicate(s) = {total} runs, more than its cap `max_runs: {m.design.max_runs}`")])
    cells = [(i, r) for i in range(len(unique)) for r in range(m.design.replicates)]
    rng = np.random.default_rng(seed)
    block_by = m.design.block_by
    if block_by is None:
        order = [cells[k] for k in rng.permutation(len(cells))] if m.design.randomise else cells
        blocks: list[str | None] = [None] * len(order)
    else:  # blocks in a random order, the cells of each in a random order: one bath made once per block
        levels = list(dict.fromkeys(unique[i][block_by] for i, _ in cells))
        if m.design.randomise:
            levels = [levels[k] for k in rng.permutation(len(levels))]
        order, blocks = [], []
        for level in levels:
            members = [cell for cell in cells if unique[cell[0]][block_by] == level]
            if m.design.randomise:
                members = [members[k] for k in rng.permutation(len(members))]
            order += members
            blocks += [level] * len(members)
    points = [DesignPoint(seq=k, point=i, replicate=r, block=b, values=dict(unique[i]))
              for k, ((i, r), b) in enumerate(zip(order, blocks, strict=True))]
    return Design(m.design.kind, seed, points)


def plan_design(c: LoadedCampaign, design: Design) -> Design:
    """Plan every point with each protocol (the protocol loader, then `labctl plan` against the campaign's
    station): a point whose parameters do not load or whose plan has errors is marked, with the reasons,
    and is never queued. Replicates share their point's plan."""
    from labctl.protocol.loader import parse_protocol
    from labctl.protocol.plan import make_plan
    from labctl.protocol.problems import FileProblemsError
    from labctl.station import load_station

    stations = {"fabrication": c.station_path, "test": c.test_station_path()}
    loaded_st = {role: load_station(sp) if sp else None for role, sp in stations.items()}
    done: dict[int, tuple[list[str], list[str], float]] = {}
    for p in design.points:
        if p.point not in done:
            errors: list[str] = []
            warns: list[str] = []
            duration = 0.0
            for role, proto in c.protocols.items():
                params = {k: v for k, v in p.values.items() if k in proto.parameters}
                try:
                    loaded = parse_protocol(proto.text, proto.path, params)
                except FileProblemsError as exc:
                    errors += [f"{role}: {prob}" for prob in exc.problems]
                    continue
                plan = make_plan(loaded, loaded_st[role])
                errors += [f"{role}: {e}" for e in plan.errors]
                warns += [f"{role}: {w}" for w in plan.warnings]
                duration += plan.duration
            done[p.point] = (errors, warns, duration)
        p.errors, p.warnings, p.duration_s = (list(x) if isinstance(x, list) else x for x in done[p.point])
        p.ok = not p.errors
    return design
