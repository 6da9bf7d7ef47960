"""Read a protocol (and a station) through `labctl.protocol` / `labctl.station` into the engine's `RunSpec`.

Those packages belong to the Foundation engineer; this adapter only needs: a loader that returns the resolved
protocol model (name, parameters, sample, steps with a step kind), and the plan (`plan.make_plan`), whose
errors stop the run before any instrument is touched.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from labctl.engine.errors import PreflightError
from labctl.engine.run import RunSpec, StepSpec
from labctl.engine.station_info import StationInfo, station_info
from labctl.errors import ConfigError


def _first(module: str, names: tuple[str, ...]) -> Any:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{module} is not available yet ({exc})") from exc
    for name in names:
        fn = getattr(mod, name, None)
        if fn is not None:
            return fn
    raise ConfigError(f"{module} has none of {', '.join(names)}")


def _call(fn: Any, *args: Any, **offered: Any) -> Any:
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return fn(*args, **{k: v for k, v in offered.items() if takes_any or k in params})


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def load_protocol(path: str | Path, overrides: dict[str, str] | None = None) -> Any:
    load = _first("labctl.protocol", ("load_protocol", "load", "load_file"))
    return _call(load, Path(path), overrides=overrides or {}, params=overrides or {})


def load_station(path: str | Path) -> tuple[Any, str]:
    text = Path(path).read_text(encoding="utf-8")
    load = _first("labctl.station", ("load_station", "load", "load_file"))
    return _call(load, Path(path)), text


def step_of(index: int, step: Any) -> StepSpec:
    """A protocol step (model with a kind, or `{kind: params}`) -> StepSpec with its parameters as a dict."""
    kind = getattr(step, "kind", None) or getattr(step, "type", None)
    if kind is not None:
        params = _dump(step)
        params = (
            {k: v for k, v in params.items() if k not in ("kind", "type")} if isinstance(params, dict) else {}
        )
        # keep quantity objects where the model holds them (fnum reads both)
        params = {k: getattr(step, k, v) for k, v in params.items()}
        return StepSpec(index, str(kind), params)
    data = _dump(step)
    if isinstance(data, dict) and len(data) == 1:
        ((k, v),) = data.items()
        return StepSpec(index, str(k), dict(_dump(v) or {}))
    raise ConfigError(f"step {index + 1}: cannot tell its kind")


def run_spec(protocol: Any, *, path: str = "", text: str = "", sample_id: str | None = None) -> RunSpec:
    steps = [
        step_of(i, s) for i, s in enumerate(getattr(protocol, "steps", None) or _dump(protocol)["steps"])
    ]
    sample = _dump(getattr(protocol, "sample", None)) or {}
    sample = sample if isinstance(sample, dict) else {}
    params = _dump(getattr(protocol, "parameters", None)) or {}
    return RunSpec(
        name=str(getattr(protocol, "name", "") or Path(path).stem),
        steps=steps,
        path=path,
        text=text,
        parameters=params if isinstance(params, dict) else {},
        sample_id=sample_id or (str(sample["id"]) if sample.get("id") else None),
        sample=sample,
    )


def plan_check(protocol: Any, station: Any) -> dict[str, Any]:
    """Run `labctl.protocol.plan.make_plan`; raise `PreflightError` listing its errors. Returns estimates."""
    make_plan = _first("labctl.protocol.plan", ("make_plan",))
    plan = _call(make_plan, protocol, station=station)
    errors = getattr(plan, "errors", None)
    if errors is None and isinstance(plan, dict):
        errors = plan.get("errors")
    if errors:
        lines = [str(getattr(e, "message", e)) for e in errors]
        raise PreflightError("the plan has errors:\n  " + "\n  ".join(lines))
    return {"plan": plan}


def estimates(plan: Any) -> list[float | None]:
    steps = getattr(plan, "steps", None) or (plan.get("steps") if isinstance(plan, dict) else None) or []
    out: list[float | None] = []
    for s in steps:
        d = (
            getattr(s, "duration", None)
            if not isinstance(s, dict)
            else s.get("duration", s.get("duration_s"))
        )
        d = getattr(s, "duration_s", d) if not isinstance(s, dict) else d
        try:
            out.append(float(d) if d is not None else None)
        except (TypeError, ValueError):
            out.append(None)
    return out


def station_from(path: str | Path) -> tuple[Any, StationInfo]:
    model, text = load_station(path)
    return model, station_info(model, text=text)


def sample_area(spec: RunSpec) -> float | None:
    a = spec.sample.get("area")
    if a is None:
        return None
    if hasattr(a, "to_base_units"):
        return float(a.to_base_units().magnitude)
    try:
        return float(a)
    except (TypeError, ValueError):
        from labctl.engine.units import parse_si

        return parse_si(str(a))


__all__ = ["PreflightError", "load_protocol", "plan_check", "run_spec", "station_from"]
