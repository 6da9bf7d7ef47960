"""The cell model at scale: 1000 h of 1-second galvanostatic cycling (3.6 M points) computed by
`PhysicalWorld.cell_voltage` in 1-hour chunks, as a potentiostat buffer would ask for it.

Baseline, same run and same chunks: numpy filling the same arrays with a trivial formula
(`v = 0.07·sign(i) + 1e-3·sin(t)`), i.e. the cost of touching 3.6 M points at all. Goal (issue 5): well
under a second of CPU for the model. Also shown: the chunk size's effect (10 min and 6 h buffers) and the
number of points per second.

Usage: python benchmarks/bench_physics.py [--hours 1000] [--seed 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labctl.simulators.physics import Layer, PhysicalWorld, WorldConfig

AREA = 1.13e-4


def chunks(hours: float, chunk_s: float, dt: float = 1.0):
    i_a = 1e-3 * AREA * 1e4  # 1 mA/cm², 1 mAh/cm² half-cycles
    n, per = round(hours * 3600 / dt), round(chunk_s / dt)
    for k in range(0, n, per):
        t = (np.arange(k, min(k + per, n)) + 1) * dt
        yield t, np.where(np.floor((t - 1e-9) / 3600).astype(int) % 2 == 0, i_a, -i_a)


def run_model(hours: float, chunk_s: float, seed: int, coated: bool,
              short: bool = True) -> tuple[float, int, dict]:
    w = PhysicalWorld(WorldConfig(), seed=seed)
    if coated:
        w.sample.add_layer(Layer("li_in", 5.0))
    cell = w.assemble_cell(area_m2=AREA)
    if not short:  # the full model on every point (a shorted cell takes the cheap branch)
        cell.p.u_crit, cell.p.has_soft = float("inf"), False
    data = list(chunks(hours, chunk_s))
    c0 = time.process_time()
    n = 0
    for t, i in data:
        n += w.cell_voltage(t, i).size
    return time.process_time() - c0, n, w.cell_state()


def run_baseline(hours: float, chunk_s: float) -> float:
    data = list(chunks(hours, chunk_s))
    c0 = time.process_time()
    for t, i in data:
        v = 0.07 * np.sign(i) + 1e-3 * np.sin(t)
        v.sum()
    return time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"cell_voltage, {a.hours:g} h of 1 s points, best of {a.repeat} (CPU seconds)")
    print(f"{'case':34s} {'points':>9s} {'model s':>8s} {'baseline s':>10s} {'ratio':>6s} {'Mpoints/s':>9s}")
    cases = (("bare Li, 1 h chunks", 3600.0, False, True),
             ("bare Li, short off, 1 h chunks", 3600.0, False, False),
             ("Li-In 5 um, 1 h chunks", 3600.0, True, True), ("bare Li, 10 min chunks", 600.0, False, True),
             ("bare Li, 6 h chunks", 21600.0, False, True))
    state: dict = {}
    for label, chunk_s, coated, short in cases:
        model = min(run_model(a.hours, chunk_s, a.seed, coated, short)[0] for _ in range(a.repeat))
        _, n, st = run_model(a.hours, chunk_s, a.seed, coated, short)
        state = st if label.startswith("bare Li, 1 h") else state
        base = min(run_baseline(a.hours, chunk_s) for _ in range(a.repeat))
        print(f"{label:34s} {n:9d} {model:8.3f} {base:10.3f} {model / base:6.1f} {n / model / 1e6:9.2f}")
    short = state["t_short_s"]
    print(f"(bare cell, seed {a.seed}: short at {short / 3600:.0f} h)" if short else "(no short)")


if __name__ == "__main__":
    main()
