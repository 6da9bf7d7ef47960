"""What a finished cell says about its life, from its run's analysis (`labctl.analysis.report`).

- the run completed and the analysis found a failure (hard short, voltage limit, runaway: physics.md §4.1), or
  the step's own short/voltage detector ended it (`achieved.ended_by`; also when the protocol made that trip
  fail or abort the run): `failed` at the hours of cycling before it;
- it completed without a failure, or failed after the horizon: `censored` at the hours it was cycled (at most
  the horizon): it lived *at least* that long;
- the run failed (a hardware or software fault) or was aborted without such a trip, was interrupted, never
  started, or has no cycling data: `excluded`, with the reason, never counted as a short life.
Hours count from the cell's first cycling sample, not from the start of the run (fabrication and OCV
before cycling are not life under test).
"""

from __future__ import annotations

from typing import Any

HOUR = 3600.0
KEPT = ("cycles", "duration_h", "failure_mode", "failure_detail", "overpotential_cycle1_mV",
        "overpotential_cycle10_mV", "overpotential_100h_mV", "overpotential_last_mV", "hysteresis_cycle10_mV",
        "growth_mV_per_100h", "soft_shorts")


def classify(store: Any, request_state: str, run_id: int | None, request_reason: str,
             horizon_s: float | None) -> tuple[str, float | None, str, dict[str, Any]]:
    """(status, hours, reason, metrics) of one cell."""
    if request_state == "cancelled":
        return "excluded", None, f"request cancelled: {request_reason}".rstrip(": "), {}
    if run_id is None:
        return "excluded", None, f"never ran: {request_reason or 'no run'}", {}
    run = store.run(run_id)
    ended = f"run {run['state']}: {run.get('exit_reason') or ''}".rstrip(": ")
    if run["state"] not in ("completed", "failed", "aborted"):
        return "excluded", None, ended, {}
    from labctl.analysis import report

    data = report.load_run(store, run_id)
    step = next((s for s in data.steps if s.kind == "cycle_symmetric" and s.cycling is not None
                 and {"t", "voltage", "current"} <= set(s.cycling) and s.cycling["t"].size > 1), None)
    if step is None:
        return "excluded", None, ended if run["state"] != "completed" else "no symmetric cycling data", {}
    assert step.cycling is not None
    t0 = float(step.cycling["t"][0])
    trip, trip_at = step.achieved.get("ended_by"), step.achieved.get("ended_at_s")
    if run["state"] != "completed":  # only the cell's own trip makes a failed run a life; else a fault
        if trip and trip_at is not None:
            hours = max((float(trip_at) - t0) / HOUR, 1e-6)
            return "failed", hours, f"{trip} (the step's detector); {ended}", {}
        return "excluded", None, ended, {}
    vlim = step.params.get("voltage_limit")
    m = report.cycling_metrics(step.cycling, area_m2=data.area_m2,
                               voltage_limit=float(vlim) if vlim else None)
    metrics = {k: m.get(k) for k in KEPT}
    cycled = (float(step.cycling["t"][-1]) - t0) / HOUR
    horizon = None if horizon_s is None else horizon_s / HOUR
    failure = None
    if m["failure_mode"] is not None and m["failure_at_s"] is not None:  # run time: from this step's start
        failure = ((float(m["failure_at_s"]) - t0) / HOUR, f"{m['failure_mode']}: {m['failure_detail']}")
    elif trip and trip_at is not None:
        failure = ((float(trip_at) - t0) / HOUR, f"{trip} (the step's detector)")
    if failure is not None:
        hours = max(failure[0], 1e-6)
        if horizon is None or hours <= horizon:
            return "failed", hours, failure[1], metrics
        return "censored", horizon, f"alive at the horizon ({failure[1]} after it)", metrics
    if cycled <= 0:
        return "excluded", None, "no cycling time recorded", metrics
    hours = cycled if horizon is None else min(cycled, horizon)
    return "censored", hours, "alive at the end of its test", metrics


def frame(rows: list[dict[str, Any]], factors: list[str]) -> Any:
    """Observations as a DataFrame indexed by the cell's place in the run order: factor values, status, hours,
    reason, run and request ids and the kept metrics (None until the cell is observed)."""
    import pandas as pd

    out = []
    for r in rows:
        out.append({"seq": r["seq"] + 1, "point": r["point"] + 1, "replicate": r["replicate"] + 1,
                    **{f: r["values"].get(f) for f in factors}, "sample_id": r["sample_id"],
                    "request_id": r["request_id"], "run_id": r["run_id"],
                    "status": r["status"] or ("refused by plan" if not r["plan_ok"] else "pending"),
                    "hours": r["hours"], "reason": r["reason"] or "; ".join(r["plan_errors"]),
                    **{k: r["metrics"].get(k) for k in KEPT}})
    cols = ["seq", "point", "replicate", *factors, "sample_id", "request_id", "run_id", "status", "hours",
            "reason", *KEPT]
    df = pd.DataFrame(out, columns=cols)
    return df.set_index("seq")
