"""The engine's own user errors, and the step signals it handles (defined in `labctl.steps.errors`)."""

from __future__ import annotations

from labctl.errors import LabctlError
from labctl.steps.errors import InterlockTripped, RunAborted, StepFailed


class PreflightError(LabctlError):
    """Something that must hold before any instrument moves does not."""

    exit_code = 4


__all__ = ["InterlockTripped", "PreflightError", "RunAborted", "StepFailed"]
