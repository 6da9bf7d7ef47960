"""What a step raises: control-flow signals of a run (`RunAborted`) and a step's own failures (`StepFailed`,
`InterlockTripped`). They live with the steps that raise them; the engine catches them (and re-exports them
from `labctl.steps.errors` for its callers)."""

from __future__ import annotations

from labctl.errors import LabctlError


class RunAborted(Exception):
    """An abort was requested (Ctrl-C twice, SIGTERM, `labctl abort`). A step's `run` must not swallow it."""

    def __init__(self, reason: str = "abort requested", actor: str = "labctl") -> None:
        super().__init__(reason)
        self.reason = reason
        self.actor = actor


class StepFailed(LabctlError):
    """A step could not do what the protocol asked (a band not reached, a timeout, ...)."""

    exit_code = 4


class InterlockTripped(LabctlError):
    """A watched condition left its window. `action` says what the run does: fail, pause, end_step, abort."""

    exit_code = 4

    def __init__(self, name: str, message: str, *, action: str = "fail", value: float | None = None) -> None:
        super().__init__(f"interlock {name}: {message}")
        self.name = name
        self.action = action
        self.value = value
        self.detail = message
