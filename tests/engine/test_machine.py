"""The run machine: every (state, trigger) pair of the table; a failing `before` leaves the state alone."""

from __future__ import annotations

import itertools

import pytest

from labctl.engine.machine import (
    TERMINAL,
    TRANSITIONS,
    TRIGGERS,
    InvalidTransition,
    RunMachine,
    RunState,
    allowed,
)

EXPECTED = {
    (RunState.CREATED, "start_preflight"): RunState.PREFLIGHT,
    (RunState.PREFLIGHT, "start"): RunState.RUNNING,
    (RunState.RUNNING, "pause"): RunState.PAUSED,
    (RunState.PAUSED, "resume"): RunState.RUNNING,
    (RunState.RUNNING, "await_operator"): RunState.AWAITING_OPERATOR,
    (RunState.AWAITING_OPERATOR, "operator_done"): RunState.RUNNING,
    (RunState.RUNNING, "complete"): RunState.COMPLETED,
    **{
        (s, "fail"): RunState.FAILED
        for s in (
            RunState.CREATED,
            RunState.PREFLIGHT,
            RunState.RUNNING,
            RunState.PAUSED,
            RunState.AWAITING_OPERATOR,
        )
    },
    **{
        (s, "abort"): RunState.ABORTED
        for s in (
            RunState.CREATED,
            RunState.PREFLIGHT,
            RunState.RUNNING,
            RunState.PAUSED,
            RunState.AWAITING_OPERATOR,
        )
    },
    **{(s, "interrupt"): RunState.INTERRUPTED for s in RunState if s not in TERMINAL},
}


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(RunState, TRIGGERS)))
def test_every_state_trigger_pair(state: RunState, trigger: str) -> None:
    seen = []
    m = RunMachine(lambda a, b, t, r, who: seen.append((a, b, t, r, who)), initial=state)
    expected = EXPECTED.get((state, trigger))
    assert allowed(state, trigger) == expected
    if expected is None:
        with pytest.raises(InvalidTransition):
            m.fire(trigger)
        assert m.state is state and seen == []
    else:
        assert m.fire(trigger, reason="because", actor="ana") is expected
        assert m.state is expected
        assert seen == [(state, expected, trigger, "because", "ana")]
        assert m.history == [(state, expected, trigger)]


def test_table_has_no_pair_beyond_the_expected() -> None:
    pairs = {(s, t): d for t, sources, d in TRANSITIONS for s in sources}
    assert pairs == EXPECTED


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL:
        assert all(allowed(state, t) is None for t in TRIGGERS)


@pytest.mark.parametrize(("state", "trigger"), sorted(EXPECTED, key=lambda k: (k[0].value, k[1])))
def test_failure_in_before_leaves_state_unchanged(state: RunState, trigger: str) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("store is down")

    m = RunMachine(boom, initial=state)
    with pytest.raises(RuntimeError):
        m.fire(trigger)
    assert m.state is state and m.history == []


def test_unknown_trigger_is_a_clear_error() -> None:
    with pytest.raises(InvalidTransition, match="unknown trigger"):
        RunMachine().fire("explode")


def test_a_whole_happy_path() -> None:
    m = RunMachine()
    for trig in (
        "start_preflight",
        "start",
        "pause",
        "resume",
        "await_operator",
        "operator_done",
        "complete",
    ):
        m.fire(trig)
    assert m.state is RunState.COMPLETED and m.terminal
