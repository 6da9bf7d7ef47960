"""Metrics and reports of a run, from the store: what a battery scientist reads off a cycling study.

`load_run` gathers a run's provenance, steps and measurements; `metrics` computes the standard answers
(overpotential and its growth, hours to failure and the mode, CE, rate capability, EIS fit and σ, fabrication
outcomes); `write_report` writes the PNG figures and a Markdown + HTML summary; `compare_rows` tabulates
several runs side by side.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.analysis import coulombic, cycling, eis
from labctl.analysis.cycling import HOUR
from labctl.analysis.failure import ShortCriterion

CYCLING_KINDS = {"cycle_symmetric", "rate_test", "coulombic_efficiency"}


@dataclass
class StepData:
    index: int
    kind: str
    status: str
    params: dict[str, Any]
    achieved: dict[str, Any]
    cycling: dict[str, np.ndarray] | None = None
    eis: dict[str, np.ndarray] | None = None


@dataclass
class RunData:
    run: dict[str, Any]
    steps: list[StepData] = field(default_factory=list)
    area_m2: float | None = None
    overlayer: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        sample = self.run.get("sample_id") or ""
        return f"run {self.run.get('id', '?')}" + (f" ({sample})" if sample else "")


def _arrays(d: dict[str, Any] | None) -> dict[str, np.ndarray] | None:
    if not d:
        return None
    out = {k: np.asarray(v) for k, v in d.items()}
    return out if any(a.size for a in out.values()) else None


def load_run(store: Any, run_id: int) -> RunData:
    """Everything the analysis needs of one run, read through the store's public API."""
    run = store.run(run_id)
    data = RunData(run=run)
    params = run.get("parameters") or {}
    data.area_m2 = run.get("cell_area_m2") or params.get("cell_area_m2") or _protocol_area(run)
    for step in run.get("steps", []):
        sd = StepData(
            step.get("index", 0),
            step.get("kind", ""),
            step.get("status", ""),
            step.get("params") or {},
            step.get("achieved") or {},
        )
        sid = step.get("id")
        if sd.kind in CYCLING_KINDS:
            sd.cycling = _arrays(store.measurements(run_id, "cycling", step_id=sid))
        if sd.kind == "eis":
            sd.eis = _arrays(store.measurements(run_id, "eis", step_id=sid))
        data.steps.append(sd)
        for key in ("area_m2", "cell_area_m2"):
            if data.area_m2 is None and key in sd.params:
                data.area_m2 = float(sd.params[key])
        layer = sd.achieved.get("overlayer") or sd.achieved.get("sample_overlayer")
        if isinstance(layer, dict):
            data.overlayer.update(layer)
    sample = run.get("sample") or {}
    if isinstance(sample.get("overlayer"), dict):
        data.overlayer.update(sample["overlayer"])
    return data


def _protocol_area(run: dict[str, Any]) -> float | None:
    """The sample area (m²) from the protocol text the run recorded, resolved with its parameters."""
    from labctl.errors import LabctlError
    from labctl.protocol.loader import parse_protocol

    text = run.get("protocol_text")
    if not text:
        return None
    try:
        sample = parse_protocol(text, run.get("protocol_path") or "<recorded protocol>").model.sample
    except LabctlError:
        return None
    return float(sample.area) if sample is not None and sample.area else None


def _thickness(overlayer: dict[str, Any]) -> float | None:
    for key in ("thickness_m", "L_mean_m", "thickness"):
        if overlayer.get(key):
            return float(overlayer[key])
    return None


def _at_hours(table: cycling.CycleTable, hours: float, t0: float = 0.0) -> float | None:
    """The plating overpotential of the cycle nearest `hours` after the step began (None past the data)."""
    if not len(table.cycle):
        return None
    th = (table.t_mid - t0) / HOUR
    if hours > th[-1] + 1e-9:
        return None
    return float(table.plating[int(np.argmin(np.abs(th - hours)))])


def cycling_metrics(
    c: dict[str, np.ndarray],
    *,
    area_m2: float | None,
    voltage_limit: float | None,
    r_el_ohm: float | None = None,
    criterion: ShortCriterion | None = None,
    rate_test: bool = False,
    assess_failure: bool = True,
) -> dict[str, Any]:
    """A cycling step's metrics. Its failure comes first (the run's short criterion, see `failure`), and every
    metric after it uses only the half-cycles that ended before the failure."""
    hcol = c.get("half_cycle")
    hc_all = cycling.half_cycles(c["t"], c["voltage"], c["current"], hcol)
    fail = (cycling.detect_failure(c["t"], c["voltage"], c["current"], hcol, criterion=criterion,
                                   voltage_limit=voltage_limit, r_el_ohm=r_el_ohm, rate_test=rate_test,
                                   hc=hc_all)
            if assess_failure else cycling.Failure(None, None, None, [], "not assessed for Li|Cu CE steps"))
    hc = cycling.before(hc_all, fail.time_s)
    table = cycling.cycles(hc)
    mv = lambda x: None if x is None else round(1e3 * x, 2)  # noqa: E731
    first = float(table.plating[0]) if len(table.cycle) else None
    tenth = float(table.plating[9]) if len(table.cycle) >= 10 else None
    growth = None if rate_test else cycling.growth_per_100h(table.t_mid, table.plating)
    q_plated = float(np.sum(hc_all.charge[hc_all.sign < 0])) if len(hc_all) else 0.0
    t = np.asarray(c["t"])
    t0 = float(t[0]) if t.size else 0.0
    out: dict[str, Any] = {
        "points": int(t.size),
        "duration_h": round(float(np.ptp(t)) / HOUR, 3) if t.size else 0.0,
        "cycles": len(table.cycle),
        "peak_first_half_cycle_mV": mv(float(hc_all.peak[0])) if len(hc_all) else None,
        "overpotential_cycle1_mV": mv(first),
        "overpotential_cycle10_mV": mv(tenth),
        "overpotential_100h_mV": None if rate_test else mv(_at_hours(table, 100, t0)),
        "overpotential_500h_mV": None if rate_test else mv(_at_hours(table, 500, t0)),
        "overpotential_last_mV": mv(float(table.plating[-1])) if len(table.cycle) else None,
        "hysteresis_cycle2_mV": mv(float(table.hysteresis[1])) if len(table.cycle) >= 2 else None,
        "hysteresis_cycle10_mV": mv(float(table.hysteresis[9])) if len(table.cycle) >= 10 else None,
        "growth_mV_per_100h": mv(growth),
        "failure_mode": fail.mode,
        "failure_at_s": fail.time_s,
        "hours_to_failure": None if fail.time_s is None else round((fail.time_s - t0) / HOUR, 2),
        "soft_shorts": len(fail.soft_shorts),
        "failure_detail": fail.detail,
        "current_A": float(np.median(np.abs(hc_all.current))) if len(hc_all) else None,
    }
    if area_m2:
        out["current_density_mA_cm2"] = (
            None if out["current_A"] is None else round(out["current_A"] / area_m2 / 10, 4)
        )
        out["cumulative_capacity_mAh_cm2"] = round(q_plated / 3.6 / (area_m2 * 1e4), 3)
    return out


def metrics(data: RunData) -> dict[str, Any]:
    """The run's standard answers, JSON-able, per step and for the run."""
    result: dict[str, Any] = {
        "run": {
            k: data.run.get(k)
            for k in (
                "id",
                "protocol_name",
                "protocol_sha256",
                "state",
                "mode",
                "operator",
                "host",
                "seed",
                "sample_id",
                "created_at",
                "ended_at",
                "exit_reason",
                "station_name",
                "versions",
            )
        },
        "steps": [],
    }
    r_hf = None  # the engine's R_el: the high-frequency real impedance of the last EIS before the cycling
    criterion: ShortCriterion | None = None  # one per run, as the engine keeps one detector per run
    sigma = None
    for sd in data.steps:
        entry: dict[str, Any] = {
            "index": sd.index,
            "kind": sd.kind,
            "status": sd.status,
            "commanded": sd.params,
            "achieved": sd.achieved,
        }
        if sd.cycling is not None and {"t", "voltage", "current"} <= set(sd.cycling):
            vlim = sd.params.get("voltage_limit")
            if sd.kind != "coulombic_efficiency" and criterion is None:
                rule = sd.params.get("short_detection") or {}
                criterion = ShortCriterion(
                    r_el_ohm=r_hf,
                    threshold=None if rule.get("threshold") is None else float(rule["threshold"]),
                    window=None if rule.get("window") is None else float(rule["window"]),
                )
            entry["cycling"] = cycling_metrics(
                sd.cycling, area_m2=data.area_m2, voltage_limit=float(vlim) if vlim else None,
                criterion=criterion if sd.kind != "coulombic_efficiency" else None,
                rate_test=sd.kind == "rate_test", assess_failure=sd.kind != "coulombic_efficiency",
            )
            hc = cycling.half_cycles(sd.cycling["t"], sd.cycling["voltage"], sd.cycling["current"],
                                     sd.cycling.get("half_cycle"))
            hc = cycling.before(hc, entry["cycling"].get("failure_at_s"))
            if sd.kind == "coulombic_efficiency" and sd.params.get("method") == "aurbach":
                # from the stored trace (the current that flowed, as the 2450 measured it), next to the
                # run's own average; per-cycle pairs are Q_C/Q_C by design
                n = int(sd.achieved.get("cycles") or sd.params.get("cycles") or 0)
                a = coulombic.aurbach_from_half_cycles(hc, n) if n and len(hc) >= 2 * n + 2 else {}
                entry["ce"] = {"method": "aurbach", "ce_avg": a.get("ce_avg"),
                               "ce_avg_run": sd.achieved.get("ce_avg"),
                               "q_reservoir_C": a.get("q_reservoir"), "q_cycle_C": a.get("q_cycle"),
                               "cycles": n, "q_final_strip_C": a.get("q_final_strip")}
            elif sd.kind == "coulombic_efficiency":
                ce = coulombic.ce_per_cycle(hc)
                entry["ce"] = {
                    "method": "cycling",
                    "first_cycle": float(ce["ce"][0]) if ce["ce"].size else None,
                    "mean": float(np.nanmean(ce["ce"])) if ce["ce"].size else None,
                    "cycles": int(ce["ce"].size),
                }
            if sd.kind == "rate_test" and data.area_m2:
                rc = cycling.rate_capability(hc, data.area_m2)
                fm = entry["cycling"]["failure_mode"]
                entry["rate"] = {
                    "current_density_mA_cm2": (rc["current_density"] / 10).round(4).tolist(),
                    "overpotential_mV": (rc["overpotential"] * 1e3).round(2).tolist(),
                    "half_cycles": rc["half_cycles"].tolist(),
                    "outcome": "all stages completed" if fm is None else
                    f"ended by {fm.replace('_', ' ')} at {entry['cycling']['hours_to_failure']} h",
                }
        if sd.eis is not None and {"freq", "z_real", "z_imag"} <= set(sd.eis):
            z = sd.eis["z_real"] + 1j * sd.eis["z_imag"]
            fit = eis.fit(sd.eis["freq"], z)
            r_hf = sd.achieved.get("r_high_freq_ohm", float(sd.eis["z_real"][int(np.argmax(sd.eis["freq"]))]))
            entry["eis"] = {"params": fit.params, "ci95": fit.ci95, "rel_residual": fit.rel_residual}
            thickness = _thickness(data.overlayer)
            if thickness and data.area_m2 and fit["r_film"] > 0 and sigma is None:  # the pristine cell's EIS
                n_c = int(data.overlayer.get("n_coated", 2))
                s, ds = eis.conductivity(
                    thickness,
                    fit["r_film"],
                    data.area_m2,
                    n_coated=n_c,
                    r_rel_err=fit.ci95["r_film"] / 1.96 / fit["r_film"],
                )
                sigma = {
                    "sigma_S_cm": s / 100,
                    "sigma_sd_S_cm": ds / 100,
                    "thickness_m": thickness,
                    "n_coated": n_c,
                    "note": "includes the SEI/native-film part of R_film (no bare baseline)",
                }
                entry["eis"]["conductivity"] = sigma
        result["steps"].append(entry)
    result["overlayer"] = data.overlayer
    result["conductivity"] = sigma
    return result


def first_cycling(m: dict[str, Any]) -> dict[str, Any]:
    return next((s["cycling"] for s in m["steps"] if "cycling" in s), {})


def first_eis(m: dict[str, Any]) -> dict[str, Any]:
    return next((s["eis"] for s in m["steps"] if "eis" in s), {})


def write_report(data: RunData, out_dir: Path) -> dict[str, Any]:
    """Write figures, metrics.json, summary.md and summary.html into `out_dir`; return the metrics."""
    from labctl.analysis import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    m = metrics(data)
    figures: list[str] = []
    for sd, entry in zip(data.steps, m["steps"], strict=True):
        tag = f"step{sd.index:02d}-{sd.kind}"
        if sd.cycling is not None and "cycling" in entry:
            c = sd.cycling
            hc = cycling.before(cycling.half_cycles(c["t"], c["voltage"], c["current"], c.get("half_cycle")),
                                entry["cycling"].get("failure_at_s"))
            fm, at = entry["cycling"].get("failure_mode"), entry["cycling"].get("failure_at_s")
            fail = cycling.Failure(fm, at, None, [], entry["cycling"].get("failure_detail", ""))
            figures.append(
                plots.voltage_vs_time(
                    c["t"],
                    c["voltage"],
                    out_dir / f"{tag}-voltage.png",
                    title=f"{data.label}: {sd.kind.replace('_', ' ')}",
                    failure=fail,
                ).name
            )
            table = cycling.cycles(hc)
            if len(table.cycle) and sd.kind != "coulombic_efficiency":  # CE: the Aurbach figure instead
                fc = int(table.cycle[-1]) + 1 if fm is not None else None
                figures.append(
                    plots.overpotential_vs_cycle(
                        table, out_dir / f"{tag}-overpotential.png", failure_cycle=fc
                    ).name
                )
            ce_entry = entry.get("ce") or {}
            if ce_entry.get("method") == "aurbach" and ce_entry.get("ce_avg") is not None:
                figures.append(plots.aurbach(
                    c["t"], c["voltage"], out_dir / f"{tag}-aurbach.png",
                    q_reservoir=ce_entry["q_reservoir_C"], q_cycle=ce_entry["q_cycle_C"],
                    n=int(ce_entry["cycles"]), q_final=ce_entry["q_final_strip_C"], ce_avg=ce_entry["ce_avg"],
                    area_cm2=data.area_m2 * 1e4 if data.area_m2 else None).name)
            if entry.get("ce", {}).get("method") == "cycling":
                ce = coulombic.ce_per_cycle(hc)
                figures.append(plots.ce_vs_cycle(ce["cycle"], ce["ce"], out_dir / f"{tag}-ce.png").name)
            if "rate" in entry:
                figures.append(
                    plots.rate_capability(
                        np.array(entry["rate"]["current_density_mA_cm2"]),
                        np.array(entry["rate"]["overpotential_mV"]),
                        out_dir / f"{tag}-rate.png",
                    ).name
                )
        if sd.eis is not None and "eis" in entry:
            f = np.logspace(np.log10(sd.eis["freq"].max()), np.log10(sd.eis["freq"].min()), 300)
            zf = eis.circuit(f, **entry["eis"]["params"])
            a_cm2 = data.area_m2 * 1e4 if data.area_m2 else None
            figures.append(
                plots.nyquist(
                    sd.eis["z_real"],
                    sd.eis["z_imag"],
                    out_dir / f"{tag}-nyquist.png",
                    freq=sd.eis["freq"],
                    area_cm2=a_cm2,
                    fit_real=zf.real,
                    fit_imag=zf.imag,
                    circuit="L0-R0-p(R1,CPE1)-p(R2,CPE2)-Ws1",
                ).name
            )
            figures.append(
                plots.bode(sd.eis["freq"], sd.eis["z_real"], sd.eis["z_imag"], out_dir / f"{tag}-bode.png",
                           area_cm2=a_cm2, fit_freq=f, fit_real=zf.real, fit_imag=zf.imag).name
            )
    m["figures"] = figures
    (out_dir / "metrics.json").write_text(json.dumps(m, indent=2, default=_json_default))
    md = summary_markdown(data, m)
    (out_dir / "summary.md").write_text(md)
    (out_dir / "summary.html").write_text(summary_html(data, m))
    return m


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


EIS_UNITS = {"r_el": "Ω", "r_film": "Ω", "r_ct": "Ω", "r_d": "Ω", "q_film": "S·sᵅ", "q_dl": "S·sᵅ",
             "a_film": "—", "a_dl": "—", "tau_w": "s", "l0": "H"}
SUFFIX_UNITS = {"_mV": "mV", "_mV_per_100h": "mV/100 h", "_mA_cm2": "mA/cm²", "_mAh_cm2": "mAh/cm²",
                "_h": "h", "_s": "s", "_A": "A", "_C": "C", "_S_cm": "S/cm", "_ohm": "Ω"}
PLAIN_UNITS = {"points": "—", "cycles": "—", "soft_shorts": "—", "failure_mode": "—", "failure_detail": "—",
               "hours_to_failure": "h", "duration_h": "h", "ce_avg": "—", "ce_avg_run": "—",
               "first_cycle": "—",
               "mean": "—", "method": "—", "outcome": "—", "half_cycles": "—", "overpotential_mV": "mV",
               "current_density_mA_cm2": "mA/cm²"}


def _unit(name: str) -> str:
    if name in PLAIN_UNITS:
        return PLAIN_UNITS[name]
    for suffix, unit in sorted(SUFFIX_UNITS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return unit
    return "—"


def _metric_rows(m: dict[str, Any], area_m2: float | None = None) -> list[tuple[str, str, str]]:
    """(metric, value, unit) rows; EIS resistances also in Ω·cm² when the electrode area is known."""
    rows: list[tuple[str, str, str]] = []
    for entry in m["steps"]:
        for key in ("cycling", "ce", "rate"):
            for name, value in (entry.get(key) or {}).items():
                rows.append((f"step {entry['index']} {entry['kind']}: {name}", _fmt(value), _unit(name)))
        if "eis" in entry:
            for name, value in entry["eis"]["params"].items():
                ci = entry["eis"]["ci95"].get(name)
                rows.append((f"step {entry['index']} eis: {name}",
                             f"{value:.4g} ± {ci:.2g}" if ci else _fmt(value), EIS_UNITS.get(name, "—")))
                if EIS_UNITS.get(name) == "Ω" and area_m2:
                    rows.append((f"step {entry['index']} eis: {name} (area-specific)",
                                 f"{value * area_m2 * 1e4:.4g}", "Ω·cm²"))
    if m.get("conductivity"):
        c = m["conductivity"]
        rows.append(("ionic conductivity σ", f"{c['sigma_S_cm']:.3g} ± {c['sigma_sd_S_cm']:.2g}", "S/cm"))
    return rows


def summary_markdown(data: RunData, m: dict[str, Any]) -> str:
    run = m["run"]
    lines = [f"# {data.label}: {run.get('protocol_name') or ''}", "", "## Provenance", ""]
    lines += [f"- **{k}**: {_fmt(v)}" for k, v in run.items() if v not in (None, "", {})]
    lines += [
        "",
        "## Steps (commanded vs achieved)",
        "",
        "| # | kind | status | commanded | achieved |",
        "|---|---|---|---|---|",
    ]
    values = _step_values(data)
    for e in m["steps"]:
        v = values.get(e["index"])
        lines.append(
            f"| {e['index']} | {e['kind']} | {e['status']} | {_short(e['commanded'], v)} | "
            f"{_short(e['achieved'], v)} |"
        )
    lines += [
        "",
        "## Metrics",
        "",
        "Overpotential = median |V| over the middle 50 % of the plating half-cycle.",
        "",
        "| metric | value | unit |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v} | {u} |" for k, v, u in _metric_rows(m, data.area_m2)]
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in m.get("figures", [])]
    return "\n".join(lines) + "\n"


def _short(d: dict[str, Any], values: Any = None, limit: int = 160) -> str:
    """Flat values as `key=value unit` (units as the protocol wrote them, via `labctl.display`)."""
    flat = {k: v for k, v in d.items() if not isinstance(v, dict | list)}
    text = values.text(flat) if values is not None else ", ".join(f"{k}={_fmt(v)}" for k, v in flat.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _step_values(data: RunData) -> dict[int, Any]:
    """Step index -> its `labctl.display.StepValues` (kinds and the protocol's units)."""
    from labctl.display import run_steps

    steps = data.run.get("steps") or []
    return {s["index"]: v for s, v in zip(steps, run_steps(data.run), strict=True)}


def summary_html(data: RunData, m: dict[str, Any]) -> str:
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td><td>{esc(u)}</td></tr>"
                   for k, v, u in _metric_rows(m, data.area_m2))
    prov = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>"
        for k, v in m["run"].items()
        if v not in (None, "", {})
    )
    values = _step_values(data)
    steps = "".join(
        f"<tr><td>{e['index']}</td><td>{esc(e['kind'])}</td><td>{esc(e['status'])}</td>"
        f"<td>{esc(_short(e['commanded'], values.get(e['index'])))}</td>"
        f"<td>{esc(_short(e['achieved'], values.get(e['index'])))}</td></tr>"
        for e in m["steps"]
    )
    figs = "".join(
        f'<figure><img src="{esc(f)}" alt="{esc(f)}"><figcaption>{esc(f)}</figcaption></figure>'
        for f in m.get("figures", [])
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(data.label)}</title><style>"
        "body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}img{max-width:100%}</style></head>"
        f"<body><h1>{esc(data.label)}: {esc(str(m['run'].get('protocol_name') or ''))}</h1>"
        f"<h2>Provenance</h2><table>{prov}</table><h2>Steps</h2><table><tr><th>#</th><th>kind</th>"
        f"<th>status</th><th>commanded</th><th>achieved</th></tr>{steps}</table><h2>Metrics</h2>"
        "<p>Overpotential = median |V| over the middle 50 % of the plating half-cycle.</p>"
        f"<table><tr><th>metric</th><th>value</th><th>unit</th></tr>{rows}</table><h2>Figures</h2>{figs}"
        "</body></html>"
    )


COMPARE_COLUMNS = (
    "run",
    "sample",
    "protocol",
    "state",
    "j_mA_cm2",
    "eta_c10_mV",
    "eta_100h_mV",
    "growth_mV_100h",
    "hours_to_failure",
    "failure_mode",
    "R_film_ohm",
    "sigma_S_cm",
)


def compare_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """One row per run with the headline metrics, for `labctl runs compare`."""
    rows = []
    for data in runs:
        m = metrics(data)
        c, e = first_cycling(m), first_eis(m)
        rows.append(
            {
                "run": data.run.get("id"),
                "sample": data.run.get("sample_id"),
                "protocol": data.run.get("protocol_name"),
                "state": data.run.get("state"),
                "j_mA_cm2": c.get("current_density_mA_cm2"),
                "eta_c10_mV": c.get("overpotential_cycle10_mV"),
                "eta_100h_mV": c.get("overpotential_100h_mV"),
                "growth_mV_100h": c.get("growth_mV_per_100h"),
                "hours_to_failure": c.get("hours_to_failure"),
                "failure_mode": c.get("failure_mode"),
                "R_film_ohm": (e.get("params") or {}).get("r_film"),
                "sigma_S_cm": (m.get("conductivity") or {}).get("sigma_S_cm"),
            }
        )
    return rows
