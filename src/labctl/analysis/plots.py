"""The standard figures of physics §4.2, as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter

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


def _decade_marks(freq: np.ndarray) -> list[int]:
    """Indices of the points nearest each decade of frequency inside the sweep."""
    f = np.asarray(freq, dtype=float)
    if f.size == 0:
        return []
    lo, hi = np.ceil(np.log10(f.min()) - 1e-9), np.floor(np.log10(f.max()) + 1e-9)
    return sorted({int(np.argmin(np.abs(np.log10(f) - d))) for d in np.arange(lo, hi + 1)})


def _hz(f: float) -> str:
    for scale, unit in ((1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz"), (1e-3, "mHz")):
        if f >= scale * 0.999:
            return f"{f / scale:.3g} {unit}"
    return f"{f:.2g} Hz"


def nyquist(z_real: np.ndarray, z_imag: np.ndarray, path: Path, *, freq: np.ndarray | None = None,
            area_cm2: float | None = None, fit_real: np.ndarray | None = None,
            fit_imag: np.ndarray | None = None, label: str = "measured", circuit: str = "") -> Path:
    """−Z″ vs Z′ in Ω·cm² (× the electrode area; Ω if it is unknown) on equal axes, with the frequency of
    each decade marked on the measured points and the fitted circuit drawn through them."""
    k = area_cm2 or 1.0
    unit = "Ω·cm²" if area_cm2 else "Ω"
    zr, zi = np.asarray(z_real) * k, -np.asarray(z_imag) * k
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.plot(zr, zi, "o", ms=3.5, mfc="none", color="tab:blue", label=label)
    if fit_real is not None and fit_imag is not None:
        ax.plot(np.asarray(fit_real) * k, -np.asarray(fit_imag) * k, "-", color="tab:red", lw=1.2,
                label=f"fit {circuit}".strip())
    if freq is not None:
        span = max(float(np.ptp(zr)), float(np.ptp(zi)), 1e-12)
        centre = (float(np.mean(zr)), 0.0)
        kept: list[tuple[float, float]] = []
        for n in _decade_marks(freq):
            ax.plot(zr[n], zi[n], "o", ms=5, color="tab:blue")
            if any(np.hypot(zr[n] - x, zi[n] - y) < 0.06 * span for x, y in kept):
                continue  # crowded (the diffusion tail): marked, not labelled
            kept.append((float(zr[n]), float(zi[n])))
            dx, dy = zr[n] - centre[0], zi[n] - centre[1] + 0.05 * span  # outward from the arcs
            norm = float(np.hypot(dx, dy)) or 1.0
            ax.annotate(_hz(float(freq[n])), (zr[n], zi[n]), xytext=(14 * dx / norm, 14 * dy / norm),
                        textcoords="offset points", fontsize=7, color="0.25", ha="center", va="center")
    ax.set_xlabel(f"Z′ ({unit})")
    ax.set_ylabel(f"−Z″ ({unit})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_title("Nyquist plot" + (f" (electrode area {area_cm2:g} cm²)" if area_cm2 else ""))
    return _save(fig, path)


def bode(freq: np.ndarray, z_real: np.ndarray, z_imag: np.ndarray, path: Path, *,
         area_cm2: float | None = None, fit_freq: np.ndarray | None = None,
         fit_real: np.ndarray | None = None, fit_imag: np.ndarray | None = None) -> Path:
    """The Bode pair: |Z| (Ω·cm²) and phase (°) against frequency, measured points and the fit."""
    k = area_cm2 or 1.0
    unit = "Ω·cm²" if area_cm2 else "Ω"
    z = (np.asarray(z_real) + 1j * np.asarray(z_imag)) * k
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True)
    top.loglog(freq, np.abs(z), "o", ms=3.5, mfc="none", label="measured")
    bottom.semilogx(freq, np.degrees(np.angle(z)), "o", ms=3.5, mfc="none")
    if fit_freq is not None and fit_real is not None and fit_imag is not None:
        zf = (np.asarray(fit_real) + 1j * np.asarray(fit_imag)) * k
        top.loglog(fit_freq, np.abs(zf), "-", color="tab:red", lw=1.2, label="fit")
        bottom.semilogx(fit_freq, np.degrees(np.angle(zf)), "-", color="tab:red", lw=1.2)
    top.set_ylabel(f"|Z| ({unit})")
    top.yaxis.set_major_formatter(ScalarFormatter())
    top.yaxis.set_minor_formatter(NullFormatter())
    top.legend(frameon=False, fontsize=8)
    bottom.set_ylabel("Phase (°)")
    bottom.set_xlabel("Frequency (Hz)")
    bottom.axhline(0, color="0.7", lw=0.5)
    top.set_title("Bode plot")
    return _save(fig, path)


def aurbach(t: np.ndarray, v: np.ndarray, path: Path, *, q_reservoir: float, q_cycle: float, n: int,
            q_final: float, ce_avg: float, area_cm2: float | None = None) -> Path:
    """The Aurbach/Adams trace (V vs time) with Q_T, Q_C, Q_S and the average CE written on it."""
    th = (np.asarray(t) - float(np.asarray(t)[0])) / HOUR
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(th, np.asarray(v), lw=0.7)
    ax.set_xlabel("Time (h)")
    ax.set_ylabel("Voltage vs Li (V)")
    per = f" ({q_reservoir / 3.6 / area_cm2:.2f} mAh/cm²)" if area_cm2 else ""
    cyc = f" ({q_cycle / 3.6 / area_cm2:.2f} mAh/cm²)" if area_cm2 else ""
    fin = f" ({q_final / 3.6 / area_cm2:.2f} mAh/cm²)" if area_cm2 else ""
    text = (f"Q_T reservoir = {q_reservoir:.3g} C{per}\nQ_C cycled ×{n} = {q_cycle:.3g} C{cyc}\n"
            f"Q_S final strip = {q_final:.3g} C{fin}\n"
            f"CE_avg = (n·Q_C + Q_S)/(n·Q_C + Q_T) = {ce_avg * 100:.2f} %")
    ax.text(0.5, 0.95, text, transform=ax.transAxes, va="top", ha="center", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"})  # above the Q_C cycles, clear of strips
    ax.set_title("Li|Cu coulombic efficiency, Aurbach (Adams) protocol")
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
    """Overpotential at each stage, in the order run (bars, one tick per stage: no overlapping labels), and
    overpotential vs current density on log–log axes (ohmic slope 1 vs asinh kinetics)."""
    j, o = np.asarray(j_ma_cm2, dtype=float), np.asarray(over_mv, dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    x = np.arange(j.size)
    left.bar(x, o, color="tab:blue", alpha=0.8)
    left.set_xticks(x, [f"{v:g}" for v in j])
    left.set_xlabel("Stage current density (mA cm⁻²), in the order run")
    left.set_ylabel("Overpotential (mV)")
    for xi, oi in zip(x, o, strict=True):
        left.annotate(f"{oi:.0f}", (xi, oi), xytext=(0, 2), textcoords="offset points", ha="center",
                      fontsize=7)
    left.set_ylim(0, float(np.nanmax(o)) * 1.15 if o.size else 1)
    order = np.argsort(j)
    right.loglog(j[order], o[order], "o-", ms=4)
    for axis in (right.xaxis, right.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    right.set_xlabel("Current density (mA cm⁻²)")
    right.set_ylabel("Overpotential (mV)")
    fig.suptitle("Rate capability (median |V|, middle 50 % of each half-cycle)")
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
