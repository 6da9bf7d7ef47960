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
    try:
        load = _first("labctl.protocol.loader", ("load_protocol",))
    except ConfigError:
        try:
            load = _first("labctl.protocol", ("load_protocol", "load", "load_file"))
        except ConfigError:
            return _fallback_protocol(Path(path), overrides or {})
    return _call(load, Path(path), overrides=overrides or {}, params=overrides or {})


def load_station(path: str | Path) -> tuple[Any, str]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        load = _first("labctl.station", ("load_station", "load", "load_file"))
    except ConfigError:
        return _yaml(text, Path(path)), text
    return _call(load, Path(path)), text


# -- stop-gaps while labctl.protocol / labctl.station are missing: plain safe YAML, quantities to SI


def _yaml(text: str, path: Path) -> Any:
    from ruamel.yaml import YAML

    try:
        return YAML(typ="safe", pure=True).load(text)
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _si(value: Any, params: dict[str, Any]) -> Any:
    import re

    from labctl.engine.units import parse_si

    if isinstance(value, dict):
        return {k: _si(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_si(v, params) for v in value]
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{(\w+)\}", value.strip())
        if whole:
            value = params[whole.group(1)]
            if not isinstance(value, str):
                return value
        if any(ch.isdigit() for ch in value[:1] + value[1:2]) and ".." not in value:
            try:
                return parse_si(value)
            except ConfigError:
                return value
    return value


def _fallback_protocol(path: Path, overrides: dict[str, str]) -> dict[str, Any]:
    data = _yaml(path.read_text(encoding="utf-8"), path) or {}
    params = {**(data.get("parameters") or {}), **overrides}
    return {
        "name": data.get("name", path.stem),
        "parameters": params,
        "sample": _si(data.get("sample") or {}, params),
        "steps": [_si(s, params) for s in data.get("steps") or []],
    }


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


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    value = getattr(obj, key, None)
    if value is None and hasattr(obj, "model"):  # labctl.protocol.loader.LoadedProtocol
        value = getattr(obj.model, key, None)
    return value


def run_spec(protocol: Any, *, path: str = "", text: str = "", sample_id: str | None = None) -> RunSpec:
    steps = [step_of(i, s) for i, s in enumerate(_get(protocol, "steps") or [])]
    sample = _dump(_get(protocol, "sample")) or {}
    sample = sample if isinstance(sample, dict) else {}
    params = _dump(_get(protocol, "parameters")) or {}
    return RunSpec(
        name=str(_get(protocol, "name") or Path(path).stem),
        steps=steps,
        path=path,
        text=text,
        parameters=params if isinstance(params, dict) else {},
        sample_id=sample_id or (str(sample["id"]) if sample.get("id") else None),
        sample=sample,
    )


def plan_check(protocol: Any, station: Any) -> dict[str, Any]:
    """Run `labctl.protocol.plan.make_plan`; raise `PreflightError` listing its errors. Returns estimates."""
    try:
        make_plan = _first("labctl.protocol.plan", ("make_plan",))
    except ConfigError:
        if isinstance(protocol, dict):  # the stop-gap reader: no plan available yet
            return {"plan": None}
        raise
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
