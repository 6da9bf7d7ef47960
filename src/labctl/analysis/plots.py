"""The standard figures of physics §4.2, as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from labctl.analysis.cycling import HOUR, CycleTable, Failure

DPI = 150


def _save(fig: plt.Figure, path: Path, *, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def voltage_vs_time(t: np.ndarray, v: np.ndarray, path: Path, *, title: str = "",
                    failure: Failure | None = None, inset_hours: float | None = None) -> Path:
    """Full trace in hours, with zoom panels of a few cycles at the start, middle and end beneath it."""
    th = np.asarray(t) / HOUR
    vm = np.asarray(v) * 1e3
    span = float(th[-1] - th[0]) if th.size else 0.0
    width = inset_hours or max(span / 60, min(span, 4.0))
    zoom = th.size > 0 and span > 3 * width
    fig = plt.figure(figsize=(9, 6.5 if zoom else 4.5))
    grid = fig.add_gridspec(2 if zoom else 1, 3, height_ratios=[2, 1] if zoom else [1])
    ax = fig.add_subplot(grid[0, :])
    stride = max(1, th.size // 200_000)
    ax.plot(th[::stride], vm[::stride], lw=0.5, color="tab:blue")
    ax.set_xlabel("Time (h)")
    ax.set_ylabel("Voltage (mV)")
    ax.set_title(title or "Cell voltage")
    lim = float(np.nanpercentile(np.abs(vm), 99.5)) * 1.3 if vm.size else 1.0
    ax.set_ylim(-lim, lim)
    ax.axhline(0, color="0.6", lw=0.5)
    if failure is not None and failure.hours is not None and failure.mode is not None:
        ax.annotate(f"{failure.mode.replace('_', ' ')}\n{failure.hours:.1f} h", xy=(failure.hours, 0),
                    xytext=(failure.hours, 0.7 * lim), ha="center", fontsize=8, color="tab:red",
                    arrowprops={"arrowstyle": "->", "color": "tab:red"},
                    bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.85})
    if zoom:
        centres = ((th[0] + width / 2, "start"), ((th[0] + th[-1]) / 2, "middle"),
                   (th[-1] - width / 2, "end"))
        for k, (centre, label) in enumerate(centres):
            sub = fig.add_subplot(grid[1, k])
            sel = (th >= centre - width / 2) & (th <= centre + width / 2)
            sub.plot(th[sel], vm[sel], lw=0.7, color="tab:blue")
            ax.axvspan(th[sel][0], th[sel][-1], color="0.85", zorder=0)
            sub.set_title(f"{label}: {th[sel][0]:.0f}–{th[sel][-1]:.0f} h", fontsize=9)
            sub.set_xlabel("Time (h)", fontsize=8)
            if k == 0:
                sub.set_ylabel("Voltage (mV)", fontsize=8)
            sub.tick_params(labelsize=7)
    return _save(fig, path)


def overpotential_vs_cycle(table: CycleTable, path: Path, *, failure_cycle: int | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(table.cycle, table.plating * 1e3, "o", ms=3, label="plating")
    ax.plot(table.cycle, table.stripping * 1e3, "s", ms=3, mfc="none", label="stripping")
    if failure_cycle is not None:
        ax.axvline(failure_cycle, color="tab:red", ls="--", lw=1, label=f"failure (cycle {failure_cycle})")
    ax.set_xlabel("Cycle number")
    ax.set_ylabel("Overpotential (mV)\nmedian |V|, middle 50 % of half-cycle")
    ax.legend(frameon=False)
    ax.set_title("Overpotential per cycle")
    return _save(fig, path)


def nyquist(z_real: np.ndarray, z_imag: np.ndarray, path: Path, *, fit_real: np.ndarray | None = None,
            fit_imag: np.ndarray | None = None, label: str = "measured", circuit: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(z_real, -np.asarray(z_imag), "o", ms=3, mfc="none", label=label)
    if fit_real is not None and fit_imag is not None:
        ax.plot(fit_real, -np.asarray(fit_imag), "-", color="tab:red", lw=1.2,
                label=f"fit {circuit}".strip())
    ax.set_xlabel("Z′ (Ω)")
    ax.set_ylabel("−Z″ (Ω)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Nyquist plot")
    return _save(fig, path)


def ce_vs_cycle(cycle: np.ndarray, ce: np.ndarray, path: Path, *, ce_avg: float | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(cycle, np.asarray(ce) * 100, "o-", ms=3, lw=0.8, label="per cycle")
    if ce_avg is not None:
        ax.axhline(ce_avg * 100, color="tab:red", ls="--", lw=1,
                   label=f"Aurbach average {ce_avg * 100:.2f} %")
    ax.set_xlabel("Cycle number")
    ax.set_ylabel("Coulombic efficiency (%)")
    ax.set_ylim(min(80.0, float(np.nanmin(np.asarray(ce) * 100)) - 1 if len(ce) else 80.0), 101)
    ax.legend(frameon=False)
    ax.set_title("Li|Cu coulombic efficiency")
    return _save(fig, path)


def rate_capability(j_ma_cm2: np.ndarray, over_mv: np.ndarray, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.loglog(j_ma_cm2, over_mv, "o-", ms=4)
    ax.set_xlabel("Current density (mA cm⁻²)")
    ax.set_ylabel("Overpotential (mV)")
    ax.set_title("Rate capability")
    return _save(fig, path)


def compare_overpotential(series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Overpotential vs time (h) for several runs, one line each."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (t_h, over_mv) in series.items():
        ax.plot(t_h, over_mv, ".-", ms=2, lw=0.7, label=label)
    ax.set_xlabel("Time (h)")
    ax.set_ylabel("Overpotential (mV)")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Overpotential: runs compared")
    return _save(fig, path)
