"""Shared drivers for the physics tests: galvanostatic cycling in potentiostat-sized chunks."""

from __future__ import annotations

import numpy as np

from labctl.simulators.physics import Layer, PhysicalWorld, WorldConfig

AREA = 1.13e-4  # m^2
QUIET = {"measurement_noise": False, "process_noise": False}


def world(seed: int = 0, layer: tuple[str, float] | None = None, **cfg: object) -> PhysicalWorld:
    w = PhysicalWorld(WorldConfig(**cfg), seed=seed)  # type: ignore[arg-type]
    if layer is not None:
        w.sample.add_layer(Layer(layer[0], layer[1]))
    return w


def cycle(w: PhysicalWorld, hours: float, j_ma_cm2: float = 1.0, q_mah_cm2: float = 1.0, dt: float = 1.0,
          chunk_s: float = 3600.0, stop_at_short: bool = False,
          t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Square-wave cycling (plating first) sampled every `dt`; the world gets `chunk_s` of points per call."""
    area_cm2 = (w.cell.p.area_cm2 if w.cell is not None else AREA * 1e4)
    i_a = j_ma_cm2 * 1e-3 * area_cm2
    t_half = q_mah_cm2 / j_ma_cm2 * 3600
    n = round(hours * 3600 / dt)
    per = max(1, round(chunk_s / dt))
    ts, vs = [], []
    for k in range(0, n, per):
        t = t0 + (np.arange(k, min(k + per, n)) + 1) * dt
        half = np.floor((t - t0 - 1e-9) / t_half).astype(int)
        ts.append(t)
        vs.append(w.cell_voltage(t, np.where(half % 2 == 0, i_a, -i_a)))
        if stop_at_short and w.cell is not None and w.cell.shorted:
            break
    return np.concatenate(ts), np.concatenate(vs)


def overpotential_mv(t: np.ndarray, v: np.ndarray, half_cycle: int, t_half: float, t0: float = 0.0) -> float:
    """Median |V| over the middle 50 % of half-cycle `half_cycle` (physics.md §4.1), mV."""
    a = t0 + half_cycle * t_half
    m = (t > a + 0.25 * t_half) & (t <= a + 0.75 * t_half)
    return float(np.median(np.abs(v[m])) * 1e3)
