"""Turn a loaded protocol (`labctl.protocol`) and a station file (`labctl.station`) into the engine's
`RunSpec`, and run the plan check whose errors stop a run before any instrument is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.engine.errors import PreflightError
from labctl.engine.run import RunSpec, StepSpec
from labctl.engine.station_info import StationInfo, station_info
from labctl.protocol.loader import LoadedProtocol, load_protocol
from labctl.protocol.plan import Plan, make_plan
from labctl.station import Station, load_station


def step_of(index: int, step: Any) -> StepSpec:
    """A step model -> StepSpec whose params are the model's fields (SI floats, nested dicts)."""
    params = step.model_dump(exclude={"kind"})
    if step.kind == "eis":  # the frequency range is a string in the file; executors want its ends
        params.update(f_start=step.f_start, f_end=step.f_end)
    return StepSpec(index, step.kind, params)


def step_from_fields(index: int, kind: str, fields: dict[str, Any]) -> StepSpec:
    """A step written in code as it would be in a protocol file (quantities as strings with units)."""
    from pydantic import TypeAdapter

    from labctl.protocol.models import Step

    return step_of(index, TypeAdapter(Step).validate_python({"kind": kind, **fields}))


def run_spec(loaded: LoadedProtocol, *, sample_id: str | None = None) -> RunSpec:
    model = loaded.model
    sample = model.sample.model_dump() if model.sample is not None else {}
    return RunSpec(
        name=model.name,
        steps=[step_of(i, s) for i, s in enumerate(model.steps)],
        path=loaded.path,
        text=loaded.text,
        parameters=dict(loaded.parameters),
        sample_id=sample_id or sample.get("id"),
        sample=sample,
    )


def plan_check(loaded: LoadedProtocol, station: Station | None) -> Plan:
    """The plan of `loaded` on `station`; `PreflightError` listing every error if it has any."""
    plan = make_plan(loaded, station)
    if plan.errors:
        raise PreflightError("the plan has errors:\n  " + "\n  ".join(plan.errors))
    return plan


def station_from(path: str | Path) -> tuple[Station, StationInfo]:
    station = load_station(path)
    return station, station_info(station, text=station.source_text)


def sample_area(spec: RunSpec) -> float | None:
    area = spec.sample.get("area")
    return float(area) if area else None


__all__ = ["PreflightError", "load_protocol", "plan_check", "run_spec", "station_from"]
