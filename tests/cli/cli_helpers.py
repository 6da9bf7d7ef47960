"""Helpers of the CLI tests (imported by name: tests/cli is on sys.path in pytest's default import mode)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def record_run(store, **kw: object) -> int:  # type: ignore[no-untyped-def]
    """A run with two wait steps, ended in `state` (default completed) with `reason`."""
    state = str(kw.pop("state", "completed"))
    reason = kw.pop("reason", None)
    args: dict = {
        "protocol_name": "Li-In alloy",
        "protocol_path": "protocols/li-in.yaml",
        "protocol_text": "labctl: 1\nname: Li-In alloy\n",
        "parameters": {},
        "station_name": "sim-bench",
        "station_text": "name: sim-bench\n",
        "operator": "ada",
        "mode": "dry-run",
        "seed": 7,
        "sample_id": "LIN-001",
        "steps": [{"index": i, "kind": "wait", "params": {"duration": 1.0 + i}} for i in range(2)],
    }
    args.update(kw)
    rid = store.create_run(**args)
    if state != "created":
        store.set_run_state(rid, "running")
        if state != "running":
            store.set_run_state(rid, state, reason=str(reason or ""))
    return rid
