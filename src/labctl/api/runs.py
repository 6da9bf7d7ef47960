"""A stored run as a notebook sees it: provenance, steps, events, transcript and data as pandas DataFrames.

`RunHandle` reads through the store's public API (the same calls `labctl runs show|io|export`, `runs report`
and `audit verify` make), so a notebook and the CLI can never disagree about a run. Quantities stay in
labctl's internal SI units (`labctl.units.KINDS`); each DataFrame says which in `df.attrs["units"]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.store.errors import StoreError

if TYPE_CHECKING:
    import pandas as pd

    from labctl.store import Store

# The columns of each measurement stream the built-in step kinds write (steps/*.py `store_points`), with
# their units. A stream or column not listed here is returned with unit None ("not declared"), never guessed.
STREAM_UNITS: dict[str, dict[str, str]] = {
    "cycling": {"t": "s", "voltage": "V", "current": "A", "cycle": "1", "half_cycle": "1"},
    "ocv": {"t": "s", "voltage": "V"},
    "eis": {"freq": "Hz", "z_real": "ohm", "z_imag": "ohm", "t_received": "s"},
    "ce": {"cycle": "1", "q_plate": "C", "q_strip": "C", "ce": "1"},
    "qcm": {"t": "s", "pressure": "Pa", "forward": "W", "thickness": "m", "rate": "m/s"},
}

TERMINAL = ("completed", "failed", "aborted", "interrupted")
PROVENANCE = (
    "id", "protocol_name", "protocol_path", "protocol_sha256", "parameters", "station_name", "operator",
    "host", "pid", "mode", "seed", "sample_id", "sample", "versions", "state", "exit_reason", "created_at",
    "started_at", "ended_at",
)


def _frame(rows: list[dict[str, Any]], columns: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns) if columns is not None else None)


def _times(df: pd.DataFrame, cols: list[str], *, unix: bool = False) -> pd.DataFrame:
    """ISO 8601 strings (or unix seconds) -> tz-aware UTC timestamps."""
    import pandas as pd

    for c in cols:
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], unit="s", utc=True) if unix else pd.to_datetime(df[c], utc=True)
    return df


@dataclass(frozen=True)
class Verification:
    """`RunHandle.verify()`: the audit chain up to this run, and the run's records against the chain."""

    ok: bool
    chain_ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    problems: list[str] = field(default_factory=list)
    sealed_streams: int = 0
    unsealed_chunks: int = 0

    def __bool__(self) -> bool:
        return self.ok


class RunHandle:
    """One run in the store. Reads are live: each property asks the store again (a run may still be going)."""

    def __init__(self, store: Store, run_id: int) -> None:
        self._store = store
        self.id = int(run_id)
        self._info = store.run(self.id)  # raises StoreError "no run N in <url>" for an unknown id

    def __repr__(self) -> str:
        return f"<labctl run {self.id}: {self._info['protocol_name']!r} {self.state}>"

    def refresh(self) -> dict[str, Any]:
        """The run's row again (state, times, steps, leases)."""
        self._info = self._store.run(self.id)
        return self._info

    @property
    def state(self) -> str:
        return str(self.refresh()["state"])

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def provenance(self) -> dict[str, Any]:
        """Who ran what, with which parameters, seed, station and package versions (as `runs show`)."""
        info = self.refresh()
        return {k: info.get(k) for k in PROVENANCE}

    @property
    def protocol_text(self) -> str:
        return str(self._info.get("protocol_text") or "")

    @property
    def station_text(self) -> str:
        return str(self._info.get("station_text") or "")

    @property
    def steps(self) -> pd.DataFrame:
        """One row per step: status, reason, times, `commanded` (the protocol's fields in SI units, their
        units in `units`), `achieved` (what the instruments confirmed; the unit is in each key's suffix)."""
        rows = []
        for s in self.refresh()["steps"]:
            rows.append({
                "index": s["index"], "kind": s["kind"], "status": s["status"], "reason": s["reason"],
                "started_at": s["started_at"], "ended_at": s["ended_at"],
                "commanded": s["params"] or {}, "achieved": s["achieved"] or {},
                "units": _field_units(s["kind"], s["params"] or {}),
            })
        cols = ("index", "kind", "status", "reason", "started_at", "ended_at", "commanded", "achieved",
                "units")
        return _times(_frame(rows, cols), ["started_at", "ended_at"]).set_index("index")

    @property
    def events(self) -> pd.DataFrame:
        """The run's audit events in chain order (`data` decoded)."""
        rows = [{**e, "data": json.loads(e["data"])} for e in self._store.events(self.id)]
        df = _frame(rows, ("seq", "t", "kind", "actor", "data", "prev_hash", "hash"))
        return _times(df, ["t"], unix=True)

    @property
    def io(self) -> pd.DataFrame:
        """The instrument I/O transcript: every byte sent and received, with opens, retries and notes."""
        rows = self._store.io(self.id)
        df = _frame(rows, ("t", "instrument", "direction", "length", "bytes", "note", "sha256"))
        return _times(df, ["t"], unix=True)

    @property
    def streams(self) -> pd.DataFrame:
        """The run's measurement streams: stream, step (index), step_id, points."""
        by_id = {s["id"]: s["index"] for s in self._info["steps"]}
        rows = [{**s, "step": by_id.get(s["step_id"])} for s in self._store.streams(self.id)]
        return _frame(rows, ("stream", "step", "step_id", "points"))

    def data(self, stream: str, step: int | None = None, *, unit_names: bool = False) -> pd.DataFrame:
        """A measurement stream as a DataFrame, columns as stored, units in `df.attrs["units"]`.

        `step` (the step's index in the protocol) picks one step; otherwise every step that wrote `stream`
        is concatenated with a `step` column saying which (two EIS sweeps, before and after cycling).
        `unit_names=True` also puts each unit in its column's name (`voltage [V]`), for plots and CSV."""
        import numpy as np
        import pandas as pd

        parts = []
        index_of = {s["id"]: s["index"] for s in self.refresh()["steps"]}
        found = [s for s in self._store.streams(self.id) if s["stream"] == stream]
        if not found:
            have = sorted({s["stream"] for s in self._store.streams(self.id)})
            raise StoreError(f"run {self.id} has no stream {stream!r} (it has: {', '.join(have) or 'none'})")
        for s in found:
            idx = index_of.get(s["step_id"])
            if step is not None and idx != step:
                continue
            cols = self._store.measurements(self.id, stream, step_id=s["step_id"])
            part = pd.DataFrame({k: np.asarray(v) for k, v in cols.items()})
            part.insert(0, "step", idx)
            parts.append(part)
        if not parts:
            raise StoreError(f"run {self.id}: step {step} wrote no {stream!r} data")
        df = pd.concat(parts, ignore_index=True)
        declared = STREAM_UNITS.get(stream, {})
        df.attrs["units"] = {c: declared.get(c) for c in df.columns if c != "step"}
        df.attrs["run"] = self.id
        df.attrs["stream"] = stream
        if unit_names:
            named = {c: f"{c} [{u}]" for c, u in df.attrs["units"].items() if u and u != "1"}
            df = df.rename(columns=named)
            df.attrs["units"] = {named.get(c, c): u for c, u in df.attrs["units"].items()}
        return df

    def metrics(self) -> dict[str, Any]:
        """The standard answers (`runs report --json`): overpotential, hours to failure, CE, EIS fit."""
        from labctl.analysis import report

        return report.metrics(report.load_run(self._store, self.id))

    def report(self, out: str | Path | None = None) -> dict[str, Any]:
        """The metrics; with `out`, also the PNG figures and Markdown/HTML summary `labctl runs report` writes
        (needs matplotlib). Step values are SI with their unit's name, as `runs report --json` gives."""
        from labctl.analysis import report
        from labctl.display import report_with_units

        data = report.load_run(self._store, self.id)
        metrics = report.metrics(data) if out is None else report.write_report(data, Path(out))
        return report_with_units(metrics, data.run)

    def verify(self) -> Verification:
        """`labctl audit verify RUN`: the hash chain, then this run's records (steps, data, transcript,
        protocol and station texts) against what the chain sealed."""
        result = self._store.verify(self.id)
        problems: list[str] = []
        sealed = unsealed = 0
        if result.ok:
            found, sealed, unsealed = self._store.verify_records(self.id)
            problems = [str(p) for p in found]
        return Verification(result.ok and not problems, result.ok, result.checked, result.first_bad_seq,
                            result.reason, problems, sealed, unsealed)


def _field_units(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """The internal unit of each quantity field of step `kind`, read off its pydantic model."""
    try:
        from labctl.steps import step_kind

        model = step_kind(kind).MODEL
    except Exception:  # a plug-in kind that is no longer installed: its fields stay unlabelled
        return {}
    return {name: unit for name, unit in _model_units(model).items() if name in params}


def _model_units(model: Any) -> dict[str, str]:
    from labctl.units import KINDS

    by_example = {k.example: k.unit for k in KINDS.values()}
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            examples = (getattr(meta, "json_schema", None) or {}).get("examples") or []
            # labctl.protocol.fields.Qty gives each quantity field its kind's example ("60 s"): one per kind
            if examples and examples[0] in by_example:
                out[name] = by_example[examples[0]]
    return out
