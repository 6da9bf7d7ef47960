"""Real-time timing on ptys: the engine and the real drivers on the wall clock against the simulators' ptys.

The bench is stations/simulated.yaml with the roles an immersion needs (stage, the two pumps) served by
`SimulatedBench(..., clock=RealClock()).start("pty")`; runs go through `engine.run.Run` into a SQLite store in
a temp dir, as `labctl run --simulate --realtime` does. The hotplate (optional for these steps) is left out:
the IKA's 7E1 framing fails on a Linux pty once pyserial re-applies termios (it does on every `timeout`
assignment, i.e. every read: tcsetattr -> EINVAL), so it cannot be served on a pty.

1. Immersion timing: a dip_coat step of N dips (2 mm deep, 10 mm/s in and out, dwell 0.8 s: 1.0 s commanded
   per dip, from in-position at depth to out of the bath); achieved (the stage's confirmations, as recorded in
   the store) minus commanded: p50/p95/p99/max (goal p99 <= 20 ms). Same-run baselines: `RealClock.sleep`
   overshoot, the round trip of one `?` to the GRBL simulator's pty (a plain pyserial client), and the same
   engine with the driver polling at 5 Hz from an L/v prediction (the driver before the fast polls).
2. Abort-to-all-safe: runs aborted at three moments (bath preparation while the pumps dispense, travel of the
   stage between baths, an immersion hold), alternately through the store (`labctl abort RUN`, from a second
   store connection) and in process (`Control.request`, the Ctrl-C / SIGTERM path). Latency = the abort post
   to the last `instrument.safe` event (store event times); also to `control.received` (acted on). During an
   immersion the sample must first be lifted ~42 mm at 10 mm/s: that travel (the stage's own prediction) is
   printed and subtracted. Baseline: one safe-state round over the same instruments with no run.

Usage: python benchmarks/bench_realtime.py [--dips 50] [--aborts 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import serial

from labctl import compose as pa
from labctl.clock import RealClock
from labctl.drivers.grbl import Grbl
from labctl.engine.control import Control
from labctl.engine.instruments import build_instruments, lease_keys, roles_for
from labctl.engine.run import Run
from labctl.engine.safety import make_safe
from labctl.simulators.bench import SimulatedBench
from labctl.simulators.dryrun import WorldObserver, make_world
from labctl.store import Store

ROOT = Path(__file__).resolve().parents[1]
STATION = ROOT / "stations" / "simulated.yaml"
ROLES = ["pump.solvent", "pump.stock", "stage"]  # the IKA (7E1) cannot be served on a Linux pty: see below
HEAD = "labctl: 1\nname: {name}\nsample: {{id: RT-{n}, substrate: Li foil 450 um, area: 1.13 cm^2}}\nsteps:\n"
DIPS = HEAD + """\
  - dip_coat: {{bath: polymer, polymer: PEO-UPy, solvent: THF, depth: 2 mm, dip_speed: 10 mm/s, dwell: 0.8 s,
               withdrawal_speed: 10 mm/s, drying_time: 0 s, cycles: {cycles}}}
"""
BATH = HEAD + """\
  - prepare_bath: {{bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 2 mL,
                   rate: 8 mL/min}}
"""
IMMERSE = HEAD + """\
  - immerse: {{bath: {bath}, depth: 2 mm, speed: 10 mm/s, time: 5 s}}
"""


class Bench:
    """The pty bench, a store in `folder`, and runs of protocol texts on them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = RealClock()
        model, self.info = pa.station_from(STATION)
        self.world = make_world(model, clock=self.clock, seed=1)
        self.sim = SimulatedBench(model, clock=self.clock, world=self.world, seed=1).start("pty", roles=ROLES)
        self.pty_info = self.sim.simulated_station()
        self.db = str(folder / "realtime.db")
        self.store = Store.open(self.db)
        self.n = 0

    def run(self, text: str, *, control: Control | None = None, progress: Any = None, **fmt: Any) -> Run:
        self.n += 1
        path = self.folder / f"p{self.n}.yaml"
        path.write_text(text.format(name=f"realtime {self.n}", n=self.n, **fmt), encoding="utf-8")
        spec = pa.run_spec(pa.load_protocol(path, {}))
        roles, missing = roles_for([s.step for s in spec.steps], self.info)
        assert not missing, missing
        roles = [r for r in roles if r in ROLES]
        r = Run(spec, store=self.store, instruments={}, station=self.pty_info, clock=self.clock,
                mode="dry-run", seed=1, operator="bench", auto_operator=True,
                observers=[WorldObserver(self.world)], control=control,
                progress=progress, lease_keys=lease_keys(self.info, roles), handle_signals=False)
        run_id = r.create()
        r.instruments = build_instruments(self.pty_info, roles, clock=self.clock,
                                          recorder=self.store.io_recorder(run_id))
        return r

    def close(self) -> None:
        self.store.close()
        self.sim.close()


def pct(values: list[float], unit: float = 1e3) -> str:
    a = np.asarray(values) * unit
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return f"p50 {p50:7.2f}  p95 {p95:7.2f}  p99 {p99:7.2f}  max {a.max():7.2f}  min {a.min():7.2f}"


# -- 1. immersion timing ---------------------------------------------------------------------------------


@contextlib.contextmanager
def legacy_driver() -> Iterator[None]:
    """The GRBL driver as before its fast polls: L/v prediction, polls every POLL_S (5 Hz)."""
    saved = Grbl.FAST_WINDOW, Grbl._read_motion_settings
    Grbl.FAST_WINDOW = 0.0
    Grbl._read_motion_settings = lambda self, st: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Grbl.FAST_WINDOW, Grbl._read_motion_settings = saved  # type: ignore[method-assign]


def dip_errors(bench: Bench, cycles: int) -> list[float]:
    res = bench.run(DIPS, cycles=cycles).execute()
    if not res.ok:
        raise SystemExit(f"dip run {res.run_id} ended {res.state.value}: {res.reason}")
    achieved = bench.store.run(res.run_id)["steps"][0]["achieved"]  # as recorded
    dips = achieved if isinstance(achieved, list) else (
        json.loads(achieved) if isinstance(achieved, str) else achieved)["dips"]
    assert len(dips) == cycles
    return [d["achieved_s"] - d["commanded_s"] for d in dips]


def sleep_overshoot(seconds: float, n: int) -> list[float]:
    clock = RealClock()
    out = []
    for _ in range(n):
        t0 = clock.monotonic()
        clock.sleep(seconds)
        out.append(clock.monotonic() - t0 - seconds)
    return out


def pty_round_trip(bench: Bench, n: int) -> list[float]:
    port = serial.Serial(bench.sim.address("stage")["port"], 115200, timeout=1.0)
    out = []
    try:
        port.write(b"?")
        port.read_until(b">\r\n")
        for _ in range(n):
            t0 = time.perf_counter()
            port.write(b"?")
            port.read_until(b">\r\n")
            out.append(time.perf_counter() - t0)
    finally:
        port.close()
    return out


def immersion_timing(bench: Bench, dips: int, legacy: int) -> None:
    print(f"1. immersion timing: {dips} dips of 1.000 s commanded (dip_coat, GRBL simulator on a pty, "
          "real clock)")
    t0 = time.perf_counter()
    errors = dip_errors(bench, dips)
    wall = time.perf_counter() - t0
    print(f"  achieved - commanded, ms             {pct(errors)}   (goal p99 <= 20 ms; run {wall:.0f} s)")
    print("  baselines, same run:")
    print(f"  RealClock.sleep(0.2 s) overshoot, ms {pct(sleep_overshoot(0.2, 50))}")
    print(f"  '?' round trip to the pty, ms        {pct(pty_round_trip(bench, 200))}")
    if legacy:
        with legacy_driver():
            old = dip_errors(bench, legacy)
        print(f"  driver at 5 Hz from L/v ({legacy} dips), ms {pct(old)}")


# -- 2. abort to all safe --------------------------------------------------------------------------------


class AbortAt:
    """Progress hook: once `match(kind, data)` is true, post an abort `delay` s later (store or local)."""

    def __init__(self, bench: Bench, match: Any, delay: float, via: str) -> None:
        self.bench, self.match, self.delay, self.via = bench, match, delay, via
        self.control = Control(poll_interval=0.1)
        self.run: Run | None = None
        self.posted: float | None = None
        self.fired = False

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if not self.fired and self.match(kind, data):
            self.fired = True
            threading.Timer(self.delay, self.post).start()

    def post(self) -> None:
        assert self.run is not None
        if self.via == "store":
            other = Store.open(self.bench.db)  # another terminal's connection, as `labctl abort RUN`
            try:
                self.posted = time.time()
                other.post_control(self.run.run_id, "abort", actor="bench")
            finally:
                other.close()
        else:
            self.posted = time.time()
            self.control.request("abort", actor="bench", source="signal")


MOMENTS = {
    "bath preparation (pumps dispensing)": (
        BATH, lambda k, d: k == "step.started" and d["kind"] == "prepare_bath", 1.5),
    "stage travel between baths": (
        IMMERSE, lambda k, d: k == "step.started" and d["kind"] == "immerse", 1.0),
    "immersion hold": (
        IMMERSE, lambda k, d: k == "step.progress" and d.get("label") == "immersed", 0.5),
}


def one_abort(bench: Bench, moment: str, via: str, bath: str) -> dict[str, float]:
    text, match, delay = MOMENTS[moment]
    hook = AbortAt(bench, match, delay, via)
    r = bench.run(text, control=hook.control, progress=hook, bath=bath)
    hook.run = r
    res = r.execute()
    if res.state.value != "aborted" or hook.posted is None:
        raise SystemExit(f"run {res.run_id} ended {res.state.value} ({res.reason}), not aborted")
    events = [{**e, "data": json.loads(e["data"])} for e in bench.store.events(res.run_id)]
    safe = [e["t"] for e in events if e["kind"] == "instrument.safe"]
    failed = [e for e in events if e["kind"] == "instrument.safe_failed"]
    if failed or len(safe) != len(r.instruments):
        raise SystemExit(f"run {res.run_id}: safe state not confirmed everywhere: {failed}")
    received = next(e["t"] for e in events if e["kind"] == "control.received")
    out = {"safe": max(safe) - hook.posted, "received": received - hook.posted, "lift": 0.0}
    withdrawn = [e for e in events if e["kind"] == "stage.withdrawn"]
    if withdrawn:
        stage = r.instruments["stage"]
        z_in = next(e["data"]["z"] for e in events if e["kind"] == "stage.in_bath")
        out["lift"] = stage.move_time(dz=-z_in, speed=0.01)  # the withdrawal from depth to z = 0
    return out


def safe_round_baseline(bench: Bench, n: int) -> list[float]:
    instruments = build_instruments(bench.pty_info, ROLES, clock=bench.clock)
    for inst in instruments.values():
        inst.connect()
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            results = make_safe(list(instruments.items()))
            out.append(time.perf_counter() - t0)
            assert all(r.ok for r in results), results
    finally:
        for inst in instruments.values():
            inst.close()
    return out


def abort_latency(bench: Bench, reps: int) -> None:
    print(f"2. abort to all safe ({len(ROLES)} instruments on ptys, real clock), {reps} aborts per moment")
    every: list[float] = []
    for moment in MOMENTS:
        rows = []
        for k in range(reps):
            via = "store" if k % 2 == 0 else "local"
            bath = "solvent" if k % 2 == 0 else "alloy"  # alternate, so that each immerse run travels
            rows.append((via, one_abort(bench, moment, via, bath)))
        safe = [r["safe"] - r["lift"] for _, r in rows]
        every += safe
        lift = statistics.mean(r["lift"] for _, r in rows)
        print(f"  {moment}:")
        for via in ("store", "local"):
            got = [r for v, r in rows if v == via]
            if got:
                print(f"    via {via:<5}: to control.received ms {pct([r['received'] for r in got])}")
                print(f"    via {via:<5}: to all safe, ms       {pct([r['safe'] - r['lift'] for r in got])}")
        if moment.startswith("stage travel"):
            print("    (includes the feed-hold stop, v/a = 10 mm/s / 100 mm/s^2 = 100 ms)")
        if lift:
            with_lift = statistics.median(r["safe"] for _, r in rows) * 1e3
            print(f"    (sample lift to z = 0 subtracted from 'all safe': {lift * 1e3:.0f} ms, the stage's "
                  f"own prediction; with it p50 {with_lift:.0f} ms)")
    print(f"  all {len(every)} aborts, to all safe, ms  {pct(every)}   (goal <= 250 ms)")
    print(f"  baseline: one safe-state round, no run, ms {pct(safe_round_baseline(bench, 10))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dips", type=int, default=50, help="immersions timed in part 1")
    ap.add_argument("--legacy", type=int, default=10, help="dips with the 5 Hz driver (0: skip)")
    ap.add_argument("--aborts", type=int, default=3, help="aborts per moment in part 2")
    ap.add_argument("--quick", action="store_true", help="10 dips, 3 legacy dips, 2 aborts per moment")
    args = ap.parse_args()
    if args.quick:
        args.dips, args.legacy, args.aborts = 10, 3, 2
    with tempfile.TemporaryDirectory(prefix="labctl-rt-") as tmp:
        bench = Bench(Path(tmp))
        try:
            t0 = time.perf_counter()
            immersion_timing(bench, args.dips, args.legacy)
            abort_latency(bench, args.aborts)
            print(f"total wall time {time.perf_counter() - t0:.0f} s")
        finally:
            bench.close()


if __name__ == "__main__":
    main()
