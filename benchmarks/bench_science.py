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


def dry_run(text: str, seed: int, *, name: str = "science.yaml", upto: int | None = None,
            on_step: Callable[[Any, Any, dict[str, Any]], None] | None = None) -> DryRun:
    """Dry-run protocol `text` on the simulated station as `labctl run --simulate --seed` wires it (only its
    first `upto` steps if given). `on_step(run, world, data)` is called at each `step.finished`."""
    import os

    from labctl.clock import VirtualClock
    from labctl.engine import protocol_adapter as pa
    from labctl.engine.instruments import build_instruments, lease_keys, roles_for
    from labctl.engine.run import Run
    from labctl.engine.simulate import close_bench, make_bench, make_world
    from labctl.protocol.loader import parse_protocol
    from labctl.store import Store

    folder = Path(tempfile.mkdtemp(prefix="labctl-science-run-"))
    os.environ.setdefault("LABCTL_AUDIT_KEY", str(folder / "audit.key"))
    loaded = parse_protocol(text, name)
    station_model, info = pa.station_from(STATION)
    spec = pa.run_spec(loaded)
    if upto is not None:
        spec.steps = spec.steps[:upto]
    roles, missing = roles_for([s.kind for s in spec.steps], info)
    if missing:
        raise SystemExit(f"{name}: the simulated station lacks {missing}")
    clock = VirtualClock()
    world = make_world(info, clock=clock, seed=seed)
    bench = make_bench(info, clock=clock, world=world, seed=seed, roles=roles)
    db = folder / "run.db"
    shutil.copy(_empty_db(), db)
    store = Store.open(f"sqlite:///{db}")
    holder: dict[str, Any] = {}

    def progress(kind: str, data: dict[str, Any]) -> None:
        if kind == "step.finished" and on_step is not None:
            on_step(holder["run"], world, data)

    try:
        run = holder["run"] = Run(
            spec, store=store, instruments={}, station=info, clock=clock, seed=seed, operator="science",
            world=world, progress=progress, plan_check=lambda: pa.plan_check(loaded, station_model),
            lease_keys=lease_keys(info, roles), station_text=info.text, handle_signals=False)
        area = pa.sample_area(spec)
        if area:
            run.notes["cell_area"] = area
        run_id = run.create()
        run.instruments = build_instruments(info, roles, clock=clock, recorder=store.io_recorder(run_id))
        result = run.execute()
    finally:
        close_bench(bench)
        store.flush()
    return DryRun(result, store, world, folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "SCIENCE.md")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(args, time.perf_counter() - t0, np.__version__, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
