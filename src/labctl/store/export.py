"""Exports of a run's measurement stream: CSV and Parquet, Battery Data Format names for cycling data.

Battery Data Format (BDF) column names for the `cycling` stream: `t` (s since the run started) ->
`test_time_second`, `voltage` -> `voltage_volt`, `current` -> `current_ampere`, `cycle` -> `cycle_count`,
`half_cycle` -> `step_count` (each half-cycle is one galvanostatic step), plus `unix_time_second` = the
run's start time + `t`. Other streams keep their own column names.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import ConfigError
from labctl.store.errors import StoreError

FORMATS = ("csv", "parquet")
BDF = {
    "t": "test_time_second",
    "voltage": "voltage_volt",
    "current": "current_ampere",
    "cycle": "cycle_count",
    "half_cycle": "step_count",
}
INTEGER_COLUMNS = {"cycle_count", "step_count"}


def export_columns(data: dict[str, np.ndarray], stream: str, run: dict[str, Any]) -> dict[str, np.ndarray]:
    """The columns to write: BDF names (and unix time) for cycling, the stored names otherwise."""
    if stream != "cycling":
        return dict(data)
    cols = {BDF.get(k, k): v for k, v in data.items()}
    for k in INTEGER_COLUMNS & set(cols):
        cols[k] = cols[k].astype(np.int64)
    start = run.get("started_at") or run.get("created_at")
    if "t" in data and start:
        cols["unix_time_second"] = data["t"] + datetime.fromisoformat(start).timestamp()
    return cols


PROVENANCE = ("id", "protocol_name", "protocol_sha256", "station_name", "mode", "seed", "operator",
              "sample_id", "state", "exit_reason", "created_at", "started_at", "ended_at")


def export_metadata(run: dict[str, Any], stream: str) -> dict[str, Any]:
    """What the exported numbers are: the run's provenance and each step's commanded and achieved values, as
    people read them (`"20 mL"`, in the protocol's units) and as SI values with unit names."""
    from labctl.display import run_steps

    steps = []
    for s, v in zip(run.get("steps") or [], run_steps(run), strict=True):
        steps.append({
            "index": s["index"], "kind": s["kind"], "status": s.get("status"),
            "commanded": v.texts(s.get("params") or {}), "achieved": v.texts(s.get("achieved") or {}),
            "commanded_si": v.json(s.get("params") or {}), "achieved_si": v.json(s.get("achieved") or {}),
        })
    return {"labctl_export": 1, "stream": stream, "run": {k: run.get(k) for k in PROVENANCE},
            "parameters": run.get("parameters") or {}, "steps": steps}


def write(
    cols: dict[str, np.ndarray], fmt: str, out: Path, metadata: dict[str, Any] | None = None
) -> int:
    """Write `cols` to `out` as csv or parquet; returns the number of rows. `metadata` goes into the Parquet
    schema (key `labctl`), or beside a CSV as `<out>.meta.json`."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: use csv or parquet")
    if not cols:
        raise StoreError("nothing to export")
    n = len(next(iter(cols.values())))
    try:
        if fmt == "csv":
            with out.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(list(cols))
                w.writerows(zip(*(c.tolist() for c in cols.values()), strict=True))
            if metadata is not None:
                meta = out.with_name(out.name + ".meta.json")
                meta.write_text(json.dumps(metadata, indent=2, ensure_ascii=False, default=str) + "\n")
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise StoreError("parquet export needs pyarrow: pip install pyarrow") from exc
            table = pa.table(cols)
            if metadata is not None:
                table = table.replace_schema_metadata({"labctl": json.dumps(metadata, default=str)})
            pq.write_table(table, out)
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc}") from exc
    return n


def export_run(
    store: Any, run_id: int, *, stream: str = "cycling", fmt: str = "csv", out: Path | None = None
) -> tuple[Path, int, list[str]]:
    """Export one stream of a run; returns (path, rows, column names)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: use csv or parquet")
    run = store.run(run_id)
    data = store.measurements(run_id, stream)
    if not data:
        have = sorted({s["stream"] for s in store.streams(run_id)})
        raise StoreError(
            f"run {run_id} has no {stream!r} data" + (f" (it has: {', '.join(have)})" if have else "")
        )
    cols = export_columns(data, stream, run)
    out = out or Path(f"run-{run_id}-{stream}.{fmt}")
    return out, write(cols, fmt, out, export_metadata(run, stream)), list(cols)
