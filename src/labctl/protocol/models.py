"""Protocol file models (pydantic v2). Values are held in labctl's internal units after parsing: SI floats
(s, m, m/s, m^3, m^3/s, A/m^2, C/m^2, A, V, W, W/s, Pa, Hz, m^2) except temperatures (degC), gas flow (sccm)
and stirring (rpm); concentrations are mol/m^3 ("0.1 M" -> 100.0), areal capacity C/m^2 (1 mAh/cm^2 = 36000).

In the file each step is a one-key mapping `- <kind>: {...}`; the loader turns it into `{kind: ..., ...}` so
`Protocol.steps` is a list discriminated by `kind`. Each step kind's model lives in its own module of
`labctl.steps`; the union here is assembled from the step registry (built-ins and `labctl.steps` plug-ins).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from labctl.protocol.fields import STRICT, Label, Name, Positive, Text
from labctl.steps import registry
from labctl.steps.base import Override, StepModel


class Sample(BaseModel):
    """The sample: `id` (may reach an instrument, so restricted), substrate, electrode area (m^2),
    optional Li thickness (m) used to check cycling capacity against the Li inventory."""

    model_config = STRICT
    id: Name
    substrate: Label = "Li foil"
    area: Positive("area") | None = None
    li_thickness: Positive("length") | None = None


def _step_union() -> Any:
    models = registry.models()
    union = models[0] if len(models) == 1 else Union[models]  # noqa: UP007 - built from a runtime tuple
    return Annotated[union, Field(discriminator="kind")]


Step = _step_union()
STEP_KINDS: tuple[str, ...] = tuple(registry.kinds())


class Protocol(BaseModel):
    """A protocol file after `${param}` substitution: format `labctl: 1`, name, sample, steps."""

    model_config = STRICT
    labctl: Literal[1]
    name: Label
    description: Text | None = None
    sample: Sample | None = None
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    override: Override | None = None
    steps: list[Step] = Field(min_length=1, max_length=10_000)


__all__ = ["STEP_KINDS", "Override", "Protocol", "Sample", "Step", "StepModel"]
