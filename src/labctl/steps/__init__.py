"""Step kinds, one module each: model, roles, plan-time analysis and `run` (DESIGN.md §10).

`step_kind(name)` gives a kind, `kinds()` all of them (built-ins and `labctl.steps` entry points),
`parse_step(kind, fields)` validates a step written as in a protocol file (quantities with units).
"""

from __future__ import annotations

from typing import Any

import labctl.protocol  # noqa: F401 - first: the protocol models import this package's registry
from labctl.steps.base import Override, PlanContext, StepContext, StepKind, StepModel
from labctl.steps.registry import kind_of, kinds, models, plugin_problems, step_kind


def parse_step(kind: str, fields: dict[str, Any]) -> StepModel:
    """The typed model of a step written in code as in a protocol file (`"20 mL"`, `"1 mA/cm^2"`)."""
    return step_kind(kind).MODEL.model_validate({"kind": kind, **fields})


__all__ = [
    "Override",
    "PlanContext",
    "StepContext",
    "StepKind",
    "StepModel",
    "kind_of",
    "kinds",
    "models",
    "parse_step",
    "plugin_problems",
    "step_kind",
]
