"""The run state machine: a `transitions` machine built from one data table.

States are an Enum; `auto_transitions=False`, so only the transitions in `TRANSITIONS` exist. Every transition
first calls the model's `record_transition` as a `before` callback: it writes the audited state change to the
store, so if that (or any other `before` work) fails, the state does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

from labctl.errors import LabctlError


class RunState(StrEnum):
    CREATED = "created"
    PREFLIGHT = "preflight"
    RUNNING = "running"
    PAUSED = "paused"
    AWAITING_OPERATOR = "awaiting_operator"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"


TERMINAL = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.ABORTED, RunState.INTERRUPTED})
LIVE = frozenset(RunState) - TERMINAL

S = RunState
#: The whole machine: (trigger, sources, destination). Nothing else is allowed.
TRANSITIONS: list[tuple[str, tuple[RunState, ...], RunState]] = [
    ("start_preflight", (S.CREATED,), S.PREFLIGHT),
    ("start", (S.PREFLIGHT,), S.RUNNING),
    ("pause", (S.RUNNING,), S.PAUSED),
    ("resume", (S.PAUSED,), S.RUNNING),
    ("await_operator", (S.RUNNING,), S.AWAITING_OPERATOR),
    ("operator_done", (S.AWAITING_OPERATOR,), S.RUNNING),
    ("complete", (S.RUNNING,), S.COMPLETED),
    ("fail", (S.CREATED, S.PREFLIGHT, S.RUNNING, S.PAUSED, S.AWAITING_OPERATOR), S.FAILED),
    ("abort", (S.CREATED, S.PREFLIGHT, S.RUNNING, S.PAUSED, S.AWAITING_OPERATOR), S.ABORTED),
    ("interrupt", tuple(sorted(LIVE, key=list(RunState).index)), S.INTERRUPTED),
]
TRIGGERS: tuple[str, ...] = tuple(t for t, _, _ in TRANSITIONS)


class InvalidTransition(LabctlError):
    """A trigger that the table does not allow from the current state."""


def allowed(state: RunState, trigger: str) -> RunState | None:
    """The destination of `trigger` from `state`, or None if the table does not allow it."""
    for name, sources, dest in TRANSITIONS:
        if name == trigger and state in sources:
            return dest
    return None


class RunMachine:
    """The model the machine drives. `on_change(from, to, trigger, reason, actor)` runs before each change;
    if it raises, the state stays where it was."""

    state: RunState

    def __init__(
        self,
        on_change: Callable[[RunState, RunState, str, str, str], None] | None = None,
        initial: RunState = RunState.CREATED,
    ) -> None:
        self._on_change = on_change
        self.history: list[tuple[RunState, RunState, str]] = []
        self.machine = Machine(
            model=self,
            states=RunState,
            initial=initial,
            auto_transitions=False,
            transitions=[
                {
                    "trigger": t,
                    "source": list(src),
                    "dest": dst,
                    "before": "record_transition",
                    "after": "_remember",
                }
                for t, src, dst in TRANSITIONS
            ],
            send_event=True,
            ignore_invalid_triggers=False,
        )

    def record_transition(self, event: Any) -> None:
        reason = event.kwargs.get("reason", "")
        actor = event.kwargs.get("actor", "labctl")
        if self._on_change is not None:
            self._on_change(
                RunState[event.transition.source],
                RunState[event.transition.dest],
                event.event.name,
                reason,
                actor,
            )

    def _remember(self, event: Any) -> None:
        self.history.append(
            (RunState[event.transition.source], RunState[event.transition.dest], event.event.name)
        )

    def fire(self, trigger: str, *, reason: str = "", actor: str = "labctl") -> RunState:
        """Fire `trigger`; raise `InvalidTransition` (state unchanged) if the table does not allow it."""
        if trigger not in TRIGGERS:
            raise InvalidTransition(f"unknown trigger {trigger!r}")
        if allowed(self.state, trigger) is None:
            raise InvalidTransition(f"cannot {trigger} a run that is {self.state.value}")
        try:
            self.trigger(trigger, reason=reason, actor=actor)  # type: ignore[attr-defined]
        except MachineError as exc:  # pragma: no cover - allowed() already checked
            raise InvalidTransition(str(exc)) from exc
        return self.state

    def can(self, trigger: str) -> bool:
        return allowed(self.state, trigger) is not None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL
