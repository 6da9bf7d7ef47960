"""Step kinds by name: the built-in modules of `labctl.steps` plus third-party kinds from the `labctl.steps`
entry-point group (value "module:StepKindClass"). Built-ins never depend on entry points being installed; a
plug-in that fails to load, or that reuses a built-in name, is left out and reported by `plugin_problems()`.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from labctl.errors import ConfigError
from labctl.steps.base import StepKind, StepModel

#: built-in kinds, in the order error messages list them; each module `labctl.steps.<kind>` has `KIND_CLASS`
BUILTIN: tuple[str, ...] = (
    "prepare_bath",
    "immerse",
    "dip_coat",
    "sputter",
    "nitride",
    "cycle_symmetric",
    "rate_test",
    "coulombic_efficiency",
    "eis",
    "ocv",
    "rest",
    "operator",
    "refill",
    "wait",
)
ENTRY_POINT_GROUP = "labctl.steps"
_problems: list[str] = []


def _check(cls: Any, where: str) -> StepKind[Any]:
    if not (isinstance(cls, type) and issubclass(cls, StepKind)) or not cls.KIND:
        raise TypeError(f"{where} is not a StepKind subclass with a KIND")
    if cls.MODEL.model_fields.get("kind") is None:
        raise TypeError(f"{where}: its MODEL has no `kind` field")
    return cls()


@functools.cache
def kinds() -> dict[str, StepKind[Any]]:
    """kind name -> StepKind instance (scanned once per process; `kinds.cache_clear()` after installing)."""
    out: dict[str, StepKind[Any]] = {}
    for name in BUILTIN:
        module = importlib.import_module(f"labctl.steps.{name}")
        out[name] = _check(module.KIND_CLASS, f"labctl.steps.{name}")
    _problems.clear()
    from labctl.plugins import load_checked

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:  # load_checked: the plug-in's LABCTL_PLUGIN_API must be this labctl's (labctl.plugins)
            kind = _check(load_checked(ep), f"entry point {ep.name} ({ep.value})")
        except Exception as exc:  # a broken plug-in must not stop labctl; `labctl plan` reports it
            _problems.append(f"step kind plug-in {ep.name!r} not loaded: {exc}")
            continue
        if kind.KIND in out:
            _problems.append(f"step kind plug-in {ep.name!r} reuses the kind {kind.KIND!r}; ignored")
            continue
        out[kind.KIND] = kind
    return out


def plugin_problems() -> list[str]:
    kinds()
    return list(_problems)


def step_kind(name: str) -> StepKind[Any]:
    try:
        return kinds()[name]
    except KeyError:
        raise ConfigError(f"unknown step kind {name!r} (known: {', '.join(kinds())})") from None


def kind_of(step: StepModel) -> StepKind[Any]:
    return step_kind(step.kind)  # type: ignore[attr-defined]


def models() -> tuple[type[StepModel], ...]:
    return tuple(k.MODEL for k in kinds().values())
