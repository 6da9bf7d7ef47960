"""Does a dry run reproduce the literature? Each row of shared/reference/seed-results.md, dry-run through the
engine (in-process, virtual clock, simulated bench, SQLite store) over seeds 1-5, analysed by
`labctl.analysis.report` from the store exactly as `labctl runs report` does, written as a Markdown table of
measured vs target band vs verdict into benchmarks/SCIENCE.md.

Fabrication comes from the shipped recipe (protocols/*.yaml, its steps as shipped); the cell build and the
cycling condition of each row are appended here (the quoted condition, e.g. 2 mA/cm², 2 mAh/cm²).

Usage: python benchmarks/bench_science.py [--seeds 1 2 3 4 5] [--rows 1 2 ...] [--out benchmarks/SCIENCE.md]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STATION = ROOT / "stations" / "simulated.yaml"
PROTOCOLS = ROOT / "protocols"


@dataclass
class DryRun:
    """One finished in-process dry run: the engine's result, its store and the world it ran against."""

    result: Any
    store: Any
    world: Any
    folder: Path

    def report(self) -> dict[str, Any]:
        """`labctl runs report`'s metrics of this run, from the store."""
        from labctl.analysis.report import load_run, metrics

        return metrics(load_run(self.store, self.result.run_id))

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_EMPTY: dict[str, Path] = {}


def _empty_db() -> Path:
    """A migrated empty SQLite store, made once per process and copied per run (migrating costs 0.1 s)."""
    from labctl.store import Store

    if "db" not in _EMPTY:
        folder = Path(tempfile.mkdtemp(prefix="labctl-science-"))
        Store.open(f"sqlite:///{folder / 'empty.db'}").close()
        _EMPTY["db"] = folder / "empty.db"
    return _EMPTY["db"]


def dry_run(
    text: str,
    seed: int,
    *,
    name: str = "science.yaml",
    upto: int | None = None,
    overrides: dict[str, str] | None = None,
    on_step: Callable[[Any, Any, dict[str, Any]], None] | None = None,
    on_start: Callable[[Any, Any, dict[str, Any]], None] | None = None,
    transcript: bool = True,
) -> DryRun:
    """Dry-run protocol `text` on the simulated station as `labctl run --simulate --seed` wires it
    (`labctl.compose.prepare_run`; only its first `upto` steps if given; `overrides` as `-p name=value`).
    `on_start(run, world, data)` is called at each `step.started`, `on_step(run, world, data)` at each
    `step.finished`; `transcript=False` skips the instrument I/O transcript (the science needs the
    measurements; the transcript is 2/3 of a sputter run). The world follows the run through the bench's
    observer, as in `labctl run --simulate` (a `dip_coat` step's solution, a `prepare_bath`'s valves)."""
    import os

    from labctl.compose import plan_check, prepare_run
    from labctl.engine.instruments import build_instruments
    from labctl.store import Store

    folder = Path(tempfile.mkdtemp(prefix="labctl-science-run-"))
    os.environ.setdefault("LABCTL_AUDIT_KEY", str(folder / "audit.key"))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    prepared = prepare_run(path, station=STATION, simulate=True, seed=seed, overrides=overrides)
    if upto is not None:
        prepared.spec.steps = prepared.spec.steps[:upto]

        def check() -> None:  # the whole protocol's plan; estimates for the steps kept
            plan = plan_check(prepared.protocol, prepared.station)
            for step, planned in zip(prepared.spec.steps, plan.steps, strict=False):
                step.estimate_s = planned.duration

        prepared.check = check  # type: ignore[method-assign]
    world = prepared.bench.world
    db = folder / "run.db"
    shutil.copy(_empty_db(), db)
    store = Store.open(f"sqlite:///{db}")
    holder: dict[str, Any] = {}

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind == "step.started" and on_start is not None:
            on_start(holder["run"], world, data)
        if kind == "step.finished" and on_step is not None:
            on_step(holder["run"], world, data)

    try:
        run = holder["run"] = prepared.make_run(
            store, operator="science", progress=progress, handle_signals=False
        )
        if not transcript:  # the science needs the measurements, not the byte transcript
            run.instruments = build_instruments(
                prepared.station, prepared.roles, clock=prepared.clock, recorder=None
            )
        result = run.execute()
    finally:
        prepared.close()
        store.flush()
    return DryRun(result, store, world, folder)


# -- composing the runs ---------------------------------------------------------------------------------

BARE = """labctl: 1
name: bare Li control
sample: {id: BARE, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}
steps:
"""
FAB = {
    "li_in": "li-in-immersion",
    "li_al": "li-al-immersion",
    "li3n": "li3n-nitride",
    "lif": "lif-sputter",
    "peo": "peo-dip-coat",
    "pvdf_b": "pvdf-dip-coat",
    "pvdf_a": "pvdf-alpha-dip-coat",
    "pdms": "pdms-dip-coat",
    "bare": None,
}
NAMES = {
    "li_in": "Li–In",
    "li_al": "Li–Al",
    "li3n": "Li₃N",
    "lif": "LiF",
    "peo": "PEO-UPy",
    "pvdf_b": "β-PVDF",
    "pvdf_a": "α-PVDF",
    "pdms": "PDMS",
    "bare": "bare Li",
}
MAX_POINTS = 60_000  # per cycling step: the sampling interval follows the horizon


def _cell(coated: str, kind: str = "symmetric") -> str:
    return (
        f"  - operator: {{message: Assemble the coin cell., cell: {{kind: {kind}, electrolyte: carbonate, "
        f"separator: celgard, coated: {coated}}}}}\n"
    )


EIS = "  - eis: {frequencies: 200 kHz..0.1 Hz, points_per_decade: 10, amplitude: 10 mV}\n"


def cycling(j: float, q: float, hours: float, *, every: float | None = None) -> str:
    """A symmetric cycling step at j mA/cm², q mAh/cm² for `hours` (sampling so that <= MAX_POINTS)."""
    half_s = 3600.0 * q / j
    cycles = max(1, round(hours * 3600 / (2 * half_s)))
    dt = every or max(1.0, min(half_s / 30, 2 * half_s * cycles / MAX_POINTS))
    return (
        f"  - cycle_symmetric: {{current_density: {j:g} mA/cm^2, capacity: {q:g} mAh/cm^2, cycles: {cycles}, "
        f"sample_every: {dt:.4g} s, voltage_limit: 1 V}}\n"
    )


def rate(stages: list[float], cycles: int = 5) -> str:
    body = "".join(f"        - {{current_density: {j:g} mA/cm^2, cycles: {cycles}}}\n" for j in stages)
    return (
        "  - rate_test:\n      capacity: 1 mAh/cm^2\n      voltage_limit: 1 V\n      sample_every: 2 s\n"
        "      stages:\n" + body
    )


AURBACH = (
    "  - coulombic_efficiency: {method: aurbach, current_density: 0.5 mA/cm^2, capacity: 1 mAh/cm^2,\n"
    "                           formation_capacity: 5 mAh/cm^2, reservoir_capacity: 5 mAh/cm^2,\n"
    "                           cutoff_voltage: 1 V, cycles: 10, sample_every: 10 s}\n"
)


def protocol(coating: str, tail: str, *, eis: bool = True, kind: str = "symmetric") -> str:
    """The shipped recipe of `coating` (its steps as shipped), then the cell build and `tail`."""
    fab = FAB[coating]
    head = (
        BARE if fab is None else (PROTOCOLS / f"{fab}.yaml").read_text(encoding="utf-8").rstrip("\n") + "\n"
    )
    coated = "none" if fab is None else "both"
    return head + _cell(coated, kind) + (EIS if eis else "") + tail


@dataclass(frozen=True)
class Job:
    key: tuple[Any, ...]
    text: str
    seed: int
    overrides: tuple[tuple[str, str], ...] = ()
    hook: tuple[tuple[str, float], ...] = ()  # world edits before the cell is assembled: thickness_um, sigma


def _apply_hook(hook: dict[str, float]) -> Callable[[Any, Any, dict[str, Any]], None]:
    def on_start(run: Any, world: Any, data: dict[str, Any]) -> None:
        if data["kind"] != "operator":
            return
        world.sample_record()  # settle fabrication first
        layer = world.sample.best()
        if layer is None:
            raise SystemExit("a hook needs a fabricated layer")
        if "thickness_um" in hook:
            layer.thickness_um = hook["thickness_um"]
        if "sigma" in hook:
            layer.sigma_eff = hook["sigma"]

    return on_start


def measure(job: Job) -> dict[str, Any]:
    """Run one job and read back what a scientist would: the report's metrics of its steps."""
    hook = dict(job.hook)
    t0 = time.perf_counter()
    run = dry_run(
        job.text,
        job.seed,
        name="-".join(map(str, job.key)) + ".yaml",
        overrides=dict(job.overrides),
        on_start=_apply_hook(hook) if hook else None,
        transcript=False,
    )
    try:
        m = run.report()
        steps = {s.index: s for s in run.result.steps}
    finally:
        run.close()
    out: dict[str, Any] = {
        "state": run.result.state.value,
        "reason": run.result.reason,
        "wall_s": time.perf_counter() - t0,
    }
    layer = m.get("overlayer") or {}
    out["thickness_um"] = (layer.get("thickness_m") or 0.0) * 1e6
    out["cracked"] = bool(layer.get("cracked"))
    out["coverage"] = next(
        (la.get("coverage") for la in layer.get("layers", []) if la.get("kind") == layer.get("layer")), None
    )
    if m.get("conductivity"):
        out["sigma"] = m["conductivity"]["sigma_S_cm"]
    for entry in m["steps"]:
        c = entry.get("cycling")
        if entry["kind"] == "cycle_symmetric" and c is not None:
            p = entry["commanded"]
            horizon = 2 * float(p["capacity"]) / float(p["current_density"]) * int(p["cycles"]) / 3600
            out.update(
                life_h=c["hours_to_failure"],
                failed=c["failure_mode"],
                horizon_h=horizon,
                over10=c["overpotential_cycle10_mV"],
                hyst2=c["hysteresis_cycle2_mV"],
                engine_end=steps[entry["index"]].achieved.get("ended_by"),
            )
        if "rate" in entry:
            out["rate"] = dict(
                zip(entry["rate"]["current_density_mA_cm2"], entry["rate"]["overpotential_mV"], strict=True)
            )
        if "ce" in entry:
            out["ce"] = entry["ce"].get("ce_avg")
        if "eis" in entry and "asr" not in out:
            fit = entry["eis"]["params"]
            out["asr"] = fit["r_el"] + fit["r_film"] + fit["r_ct"]
    return out


def run_all(jobs: list[Job], workers: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    from concurrent.futures import ProcessPoolExecutor

    unique = list({(j.key, j.seed): j for j in jobs}.values())
    if workers <= 1:
        return {(j.key, j.seed): measure(j) for j in unique}
    with ProcessPoolExecutor(workers) as pool:
        return {
            (j.key, j.seed): r for j, r in zip(unique, pool.map(measure, unique, chunksize=1), strict=True)
        }


# -- the rows of seed-results.md ----------------------------------------------------------------------------

LIFE = {  # coating -> (j, Q, horizon h): the quoted condition of its life claim
    "li_in": (2.0, 2.0, 3000.0),
    "li3n": (0.5, 1.0, 2500.0),
    "peo": (5.0, 10.0, 3000.0),
    "pdms": (1.0, 1.0, 3000.0),
    "pvdf_b": (5.0, 5.0, 2000.0),
    "pvdf_a": (5.0, 5.0, 2000.0),
    "li_al": (1.0, 1.0, 3000.0),
    "lif": (1.0, 1.0, 3000.0),
}
GOOD_SCALE = ("li_in", "li_al", "li3n", "lif", "peo", "pvdf_b", "pdms")  # row 14: 1 mA/cm², cycle 10
GOOD_FROM = {"lif": ("lif", 150), "li_al": ("life", "li_al", 1.0, 1.0), "pdms": ("life", "pdms", 1.0, 1.0)}
LIF_NM = (30, 75, 150, 300, 600)
GRID_C = ("0.05 M", "0.1 M", "0.2 M")
GRID_T = ("10 s", "10 min", "30 min")
SIGMAS = (5e-6, 2e-5, 1e-4)
THIN_UM = (0.001, 0.03, 0.3)
RATE = [1.0, 2.0, 5.0, 10.0, 20.0]


def lif_text(nm: int, tail: str, *, eis: bool = True) -> str:
    text = protocol("lif", tail, eis=eis)
    return text.replace(
        "thickness: 150 nm, max_time: 150 min", f"thickness: {nm} nm, max_time: {nm + 60} min"
    )


def jobs_for(seeds: list[int]) -> list[Job]:
    jobs: list[Job] = []
    for seed in seeds:
        for coat, (j, q, h) in LIFE.items():
            if coat == "lif":
                continue
            jobs.append(Job(("life", coat, j, q), protocol(coat, cycling(j, q, h)), seed))
            jobs.append(Job(("life", "bare", j, q), protocol("bare", cycling(j, q, h), eis=False), seed))
        for nm in LIF_NM:
            jobs.append(Job(("lif", nm), lif_text(nm, cycling(1.0, 1.0, 3000.0), eis=nm == 150), seed))
        for coat in ("li_al", "bare"):
            jobs.append(Job(("rate", coat), protocol(coat, rate(RATE)), seed))
        for coat in ("lif", "bare"):
            jobs.append(Job(("rate10", coat), protocol(coat, cycling(10.0, 1.0, 4.0), eis=False), seed))
        for coat in (c for c in GOOD_SCALE if c not in GOOD_FROM):  # the others are cycled at 1/1 already
            jobs.append(Job(("good", coat), protocol(coat, cycling(1.0, 1.0, 40.0, every=60.0)), seed))
        for coat in ("pvdf_b", "pvdf_a"):
            jobs.append(Job(("ce", coat), protocol(coat, AURBACH, eis=False, kind="li_cu"), seed))
        for c in GRID_C:
            for t in GRID_T:
                jobs.append(
                    Job(
                        ("grid", c, t),
                        protocol("li_in", cycling(5.0, 5.0, 1500.0), eis=False),
                        seed,
                        overrides=(("concentration", c), ("immersion_time", t)),
                    )
                )
        for sig in SIGMAS:
            jobs.append(
                Job(
                    ("sigma", sig),
                    protocol("pvdf_b", cycling(1.0, 1.0, 3500.0), eis=False),
                    seed,
                    hook=(("sigma", sig),),
                )
            )
        for um in THIN_UM:
            jobs.append(
                Job(
                    ("thin", um),
                    protocol("li_in", cycling(1.0, 1.0, 1500.0), eis=False),
                    seed,
                    hook=(("thickness_um", um),),
                )
            )
    return jobs


# -- verdicts ---------------------------------------------------------------------------------------------


def _life(r: dict[str, Any]) -> float:
    """Hours to failure; a cell alive at the horizon counts as the horizon (censored, shown as '>')."""
    return float(r["life_h"]) if r.get("life_h") is not None else float(r["horizon_h"])


def _censored(r: dict[str, Any]) -> bool:
    return r.get("life_h") is None


def _median_life(rs: list[dict[str, Any]]) -> tuple[float, str]:
    vals = sorted((_life(r), _censored(r)) for r in rs)
    v, cens = vals[len(vals) // 2]
    return v, (f"> {v:.0f}" if cens else f"{v:.0f}")


def _lives(rs: list[dict[str, Any]]) -> str:
    return ", ".join((f">{_life(r):.0f}" if _censored(r) else f"{_life(r):.0f}") for r in rs)


def _sig(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _median(xs: list[float | None]) -> float | None:
    ok = [x for x in xs if x is not None]
    return float(np.median(ok)) if ok else None


def evaluate(
    res: dict[tuple[Any, ...], dict[str, Any]], seeds: list[int]
) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(quantity rows, ordering rows, extra Markdown) from the measured runs."""
    get = lambda *key: [res[(key, s)] for s in seeds]  # noqa: E731
    rows: list[list[str]] = []
    ords: list[list[str]] = []

    def row(n: str, claim: str, measured: str, band: str, ok: bool) -> None:
        rows.append([n, claim, measured, band, "in band" if ok else "**OUT**"])

    def order(what: str, measured: str, ok: bool) -> None:
        ords.append([what, measured, "true" if ok else "**FALSE**"])

    def sigma_row(n: str, claim: str, rs: list[dict[str, Any]], lo: float, hi: float) -> None:
        vals = [r.get("sigma") for r in rs]
        med = _median(vals)
        row(
            n,
            claim,
            f"median {_sig(med)} S/cm (seeds: {', '.join(_sig(v) for v in vals)})",
            f"{lo:.3g}–{hi:.3g} S/cm",
            med is not None and lo <= med <= hi,
        )

    def life_row(n: str, claim: str, rs: list[dict[str, Any]], lo: float, hi: float) -> None:
        med, text = _median_life(rs)
        row(
            n,
            claim,
            f"median {text} h (seeds: {_lives(rs)} h)",
            f"{lo:.0f}–{hi:.0f} h",
            lo <= med <= hi and not text.startswith(">"),
        )

    sigma_row(
        "1",
        "Li–In σ 2 × 10⁻⁴ S/cm (EIS of the Li–In cell, 2 mA/cm² run)",
        get("life", "li_in", 2.0, 2.0),
        1.5e-4,
        2.7e-4,
    )
    life_row("2", "Li–In 1400 h at 2 mA/cm², 2 mAh/cm²", get("life", "li_in", 2.0, 2.0), 700, 2800)
    sigma_row(
        "3", "Li–Al σ 0.27 × 10⁻⁴ S/cm (EIS of the Li–Al rate cell)", get("rate", "li_al"), 2.0e-5, 3.6e-5
    )
    al, bare = get("rate", "li_al"), get("rate", "bare")
    ok4, parts = True, []
    for a, b in zip(al, bare, strict=True):
        va, vb = a.get("rate", {}).get(20.0), b.get("rate", {}).get(20.0)
        ok4 &= va is not None and (vb is None or va < vb)
        parts.append(f"{_sig(va)} vs {_sig(vb)}")
    row(
        "4",
        "Li–Al rate at 20 mA/cm² (rate test 1→20 mA/cm², 1 mAh/cm²)",
        "Li–Al vs bare, mV: " + "; ".join(parts),
        "Li–Al below bare, every seed",
        ok4,
    )
    # 5: immersion time x concentration
    grid_l = {(c, t): _median([r["thickness_um"] for r in get("grid", c, t)]) for c in GRID_C for t in GRID_T}
    grid_life = {(c, t): _median_life(get("grid", c, t)) for c in GRID_C for t in GRID_T}
    mono = all(grid_l[(c, a)] < grid_l[(c, b)] for c in GRID_C for a, b in itertools.pairwise(GRID_T))
    mono &= all(grid_l[(a, t)] < grid_l[(b, t)] for t in GRID_T for a, b in itertools.pairwise(GRID_C))
    best = max(grid_life, key=lambda k: grid_life[k][0])
    thin, thick = (GRID_C[0], GRID_T[0]), (GRID_C[-1], GRID_T[-1])
    short_t, long_c = ("0.1 M", GRID_T[0]), (GRID_C[-1], GRID_T[-1])
    interior = (
        best not in (thin, thick)
        and grid_life[best][0] > grid_life[short_t][0]
        and grid_life[best][0] > grid_life[long_c][0]
    )
    row(
        "5",
        "Thickness set by immersion time and MClₓ concentration; interior optimum "
        "(Li–In, 5 mA/cm², 5 mAh/cm²)",
        f"L rises with t and c: {'yes' if mono else 'NO'}; longest median life at {best[0]}, {best[1]} "
        f"({grid_life[best][1]} h) vs {short_t[1]}: {grid_life[short_t][1]} h, {long_c[0]} {long_c[1]}: "
        f"{grid_life[long_c][1]} h",
        "monotone L; optimum inside the grid",
        mono and interior,
    )
    life_row("6", "Li₃N (N₂ plasma) 500 h at 0.5 mA/cm², 1 mAh/cm²", get("life", "li3n", 0.5, 1.0), 250, 1000)
    sigma_row("7", "Li₃N σ (porous plasma film)", get("life", "li3n", 0.5, 1.0), 0.5e-4, 5e-4)
    lif_life = {nm: _median_life(get("lif", nm)) for nm in LIF_NM}
    lif_over = {nm: _median([r.get("over10") for r in get("lif", nm)]) for nm in LIF_NM}
    best_nm = max(lif_life, key=lambda k: lif_life[k][0])
    # thinner than ~3 L_cov (75 nm) a LiF film leaves bare Li exposed (coverage < 0.9): its kinetics, not its
    # resistance, set the overpotential there; the article's "further increasing" is about thicker films
    rising = all((lif_over[a] or 0) < (lif_over[b] or 0) for a, b in itertools.pairwise(LIF_NM[1:]))
    row(
        "8",
        "LiF optimum 150 nm; thicker films raise the interfacial resistance (1 mA/cm², 1 mAh/cm²)",
        "median life (h) "
        + ", ".join(f"{nm} nm: {lif_life[nm][1]}" for nm in LIF_NM)
        + "; cycle-10 overpotential (mV) "
        + ", ".join(f"{nm}: {_sig(lif_over[nm])}" for nm in LIF_NM),
        "longest life at 100–200 nm; overpotential rising from 75 nm on",
        100 <= best_nm <= 200 and rising,
    )
    lf, bb = get("rate10", "lif"), get("rate10", "bare")
    ok9 = all(
        a.get("over10") is not None and b.get("over10") is not None and a["over10"] > b["over10"]
        for a, b in zip(lf, bb, strict=True)
    )
    row(
        "9",
        "LiF compromises high-rate plating (10 mA/cm², 1 mAh/cm², cycle 10)",
        "LiF vs bare, mV: "
        + "; ".join(
            f"{_sig(a.get('over10'))} vs {_sig(b.get('over10'))}" for a, b in zip(lf, bb, strict=True)
        ),
        "LiF above bare, every seed",
        ok9,
    )
    sigma_row("10", "PEO-UPy σ 2.37 × 10⁻⁵ S/cm", get("life", "peo", 5.0, 10.0), 1.5e-5, 3.5e-5)
    life_row("11", "PEO-UPy 1000 h at 5 mA/cm², 10 mAh/cm²", get("life", "peo", 5.0, 10.0), 500, 2000)
    b_, a_ = get("life", "pvdf_b", 5.0, 5.0), get("life", "pvdf_a", 5.0, 5.0)
    cb, ca = get("ce", "pvdf_b"), get("ce", "pvdf_a")
    ok12 = all(
        x.get("hyst2") is not None
        and y.get("hyst2") is not None
        and x["hyst2"] < y["hyst2"]
        and _life(x) > _life(y)
        and (cx.get("ce") or 0) > (cy.get("ce") or 1)
        for x, y, cx, cy in zip(b_, a_, cb, ca, strict=True)
    )
    row(
        "12",
        "β-PVDF vs α-PVDF: lower hysteresis (cycle 2), higher CE (Aurbach), longer life "
        "(5 mA/cm², 5 mAh/cm²)",
        "hysteresis mV β/α: "
        + "; ".join(f"{_sig(x.get('hyst2'))}/{_sig(y.get('hyst2'))}" for x, y in zip(b_, a_, strict=True))
        + " — CE % β/α: "
        + "; ".join(
            f"{100 * (x.get('ce') or 0):.2f}/{100 * (y.get('ce') or 0):.2f}"
            for x, y in zip(cb, ca, strict=True)
        )
        + f" — life h β: {_lives(b_)}; α: {_lives(a_)}",
        "β better in all three, every seed",
        ok12,
    )
    life_row("13", "porous PDMS 800 h at 1 mA/cm², 1 mAh/cm²", get("life", "pdms", 1.0, 1.0), 400, 1600)
    good = {c: _median([r.get("over10") for r in get(*GOOD_FROM.get(c, ("good", c)))]) for c in GOOD_SCALE}
    row(
        "14",
        "good cells 10–50 mV (coated, 1 mA/cm², carbonate; cycle-10 median)",
        ", ".join(f"{NAMES[c]} {_sig(v)}" for c, v in good.items()) + " mV",
        "each 10–50 mV",
        all(v is not None and 10 <= v <= 50 for v in good.values()),
    )
    # orderings
    pairs = [(c, j, q) for c, (j, q, _h) in LIFE.items() if c != "lif"]
    ok, worst = True, []
    for c, j, q in pairs:
        for x, y in zip(get("life", c, j, q), get("life", "bare", j, q), strict=True):
            good_pair = _life(x) > _life(y) and not (_censored(x) and _censored(y))
            ok &= good_pair
        worst.append(
            f"{NAMES[c]} {_median_life(get('life', c, j, q))[1]} vs bare "
            f"{_median_life(get('life', 'bare', j, q))[1]} h @ {j:g}/{q:g}"
        )
    for x, y in zip(get("lif", 150), get("life", "bare", 1.0, 1.0), strict=True):
        ok &= _life(x) > _life(y)
    worst.append(
        f"LiF 150 nm {_median_life(get('lif', 150))[1]} vs bare "
        f"{_median_life(get('life', 'bare', 1.0, 1.0))[1]} h @ 1/1"
    )
    order(
        "Every coating at its recipe outlives bare Li at the same j and Q (every seed)", "; ".join(worst), ok
    )
    rho_all, ok2 = [], True
    for s in seeds:
        rs = [res[(GOOD_FROM.get(c, ("good", c)), s)] for c in GOOD_SCALE]
        over = np.array([r.get("over10") or np.nan for r in rs])
        asr = np.array([r.get("asr") or np.nan for r in rs])
        if np.isnan(over).any() or np.isnan(asr).any():
            ok2 = False
            continue
        rho = float(np.corrcoef(np.argsort(np.argsort(over)), np.argsort(np.argsort(asr)))[0, 1])
        rho_all.append(rho)
        ok2 &= rho >= 0.85
    order(
        "At one current, overpotential ordered by film ASR plus kinetics (1 mA/cm², 7 coatings; rank "
        "correlation "
        "of cycle-10 overpotential with the EIS R_el + R_film + R_ct, each seed ≥ 0.85)",
        "Spearman ρ per seed: " + ", ".join(f"{r:.2f}" for r in rho_all),
        ok2,
    )
    ok3, parts3 = True, []
    for s in seeds:
        lives = [_life(res[(("sigma", sig), s)]) for sig in SIGMAS]
        ok3 &= all(a < b for a, b in itertools.pairwise(lives))
        parts3.append("/".join(f"{x:.0f}" for x in lives))
    order(
        "Higher σ lives longer at equal thickness and coverage (the β-PVDF film, ~1.5 µm, with σ set to "
        + ", ".join(f"{x:.0e}" for x in SIGMAS)
        + " S/cm; 1 mA/cm², 1 mAh/cm², where the short, not dead-Li growth, ends the cells)",
        "life h per seed: " + "; ".join(parts3),
        ok3,
    )
    ok4o, parts4 = True, []
    for s in seeds:
        bare1 = res[(("life", "bare", 1.0, 1.0), s)]
        thin = [res[(("thin", um), s)] for um in THIN_UM]
        o0, ob = thin[0].get("over10"), bare1.get("over10")
        ok4o &= o0 is not None and ob is not None and abs(o0 - ob) <= 0.05 * ob
        ok4o &= 0.9 <= _life(thin[0]) / _life(bare1) <= 1.2
        ok4o &= all(_life(a) <= _life(b) for a, b in itertools.pairwise(thin))
        parts4.append(
            f"bare {_sig(ob)} mV/{_life(bare1):.0f} h → "
            + ", ".join(
                f"{um} µm {_sig(r.get('over10'))} mV/{_life(r):.0f} h"
                for um, r in zip(THIN_UM, thin, strict=True)
            )
        )
    order(
        "Coverage scales the benefit continuously: a Li–In film far below its optimum behaves like bare Li "
        "(cycle-10 overpotential within 5 %, life within −10/+20 %), life rising with L (1 mA/cm²)",
        "; ".join(parts4),
        ok4o,
    )
    extra = [
        "### Immersion grid (Li–In; median of seeds; 5 mA/cm², 5 mAh/cm², horizon 1500 h)",
        "",
        "| c \\ t | " + " | ".join(GRID_T) + " |",
        "|---|" + "---|" * len(GRID_T),
    ]
    for c in GRID_C:
        extra.append(
            f"| {c} | "
            + " | ".join(f"{grid_l[(c, t)]:.2f} µm, {grid_life[(c, t)][1]} h" for t in GRID_T)
            + " |"
        )
    extra += [
        "",
        "### Layers the shipped recipes make (dry run, seeds " + ", ".join(map(str, seeds)) + ")",
        "",
        "| recipe | layer | thickness, median (range) | coverage |",
        "|---|---|---|---|",
    ]
    made = {
        "li_in": ("life", "li_in", 2.0, 2.0),
        "li_al": ("rate", "li_al"),
        "li3n": ("life", "li3n", 0.5, 1.0),
        "lif": ("lif", 150),
        "peo": ("life", "peo", 5.0, 10.0),
        "pvdf_b": ("life", "pvdf_b", 5.0, 5.0),
        "pvdf_a": ("life", "pvdf_a", 5.0, 5.0),
        "pdms": ("life", "pdms", 1.0, 1.0),
    }
    for coat, key in made.items():
        th = [r["thickness_um"] for r in get(*key)]
        cov = [r.get("coverage") for r in get(*key)]
        extra.append(
            f"| protocols/{FAB[coat]}.yaml | {NAMES[coat]} | {np.median(th):.3g} µm "
            f"({min(th):.3g}–{max(th):.3g}) | {_sig(_median(cov))} |"
        )
    return rows, ords, extra


def markdown(
    rows: list[list[str]],
    ords: list[list[str]],
    extra: list[str],
    seeds: list[int],
    wall: float,
    runs: int,
    workers: int = 2,
) -> str:
    head = [
        "# Does a dry run reproduce the literature? (seed-results.md)",
        "",
        f"Measured by `benchmarks/bench_science.py` (seeds {', '.join(map(str, seeds))}; {runs} dry runs "
        f"through the engine, the simulated bench and a SQLite store, analysed by `labctl.analysis.report` "
        f"as `labctl runs report` does; {wall:.0f} s wall on {workers} workers). Fabrication is each shipped "
        "recipe as "
        "shipped; the cell build and the quoted cycling condition are appended. Lives are hours to the "
        "report's failure (the run's own short criterion); '>' marks a cell alive at the horizon.",
        "",
        "| # | claim (condition) | measured | target band | verdict |",
        "|---|---|---|---|---|",
    ]
    body = ["| " + " | ".join(r) + " |" for r in rows]
    ordl = ["", "## Orderings (every seed)", "", "| ordering | measured | verdict |", "|---|---|---|"]
    ordl += ["| " + " | ".join(r) + " |" for r in ords]
    return "\n".join(head + body + ordl + [""] + extra) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "SCIENCE.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    jobs = jobs_for(args.seeds)
    res = run_all(jobs, args.workers)
    for key, r in sorted(res.items(), key=lambda kv: -kv[1]["wall_s"])[:12]:
        print(f"{r['wall_s']:6.1f} s  {key}", file=sys.stderr)
    rows, ords, extra = evaluate(res, args.seeds)
    wall = time.perf_counter() - t0
    text = markdown(rows, ords, extra, args.seeds, wall, len(res), args.workers)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    bad = [r for r in rows if r[-1] != "in band"] + [o for o in ords if o[-1] != "true"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
