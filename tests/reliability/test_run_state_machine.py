"""Property-based engine test: a hypothesis state machine starts runs and sends them pause, resume, abort,
ack and instrument faults in random order, several runs at once on one real store (SQLite).

Each run is a real `Run` in its own thread (virtual clock, in-memory instruments), waiting for the operator
twice: operator, 3 cycles, operator, EIS. Runs lease random subsets of three instrument keys. After every
event the model's state of each run must be the store's, the leases held must be exactly those of the live
runs, and the audit chain must verify; at the end every run reaches a terminal state.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from labctl.clock import VirtualClock
from labctl.compose import step_from_fields
from labctl.engine.run import Run, RunSpec
from labctl.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_fakes import STATION, bench

KEYS = ("bench-A", "bench-B", "bench-C")
STEPS = [
    ("operator", {"message": "Assemble the cell"}),
    ("cycle_symmetric", {"current_density": "1 mA/cm^2", "capacity": "1 mAh/cm^2", "cycles": 3,
                         "sample_every": "10 s", "voltage_limit": "1 V"}),
    ("operator", {"message": "Move the cell to the EIS rig"}),
    ("eis", {"frequencies": "100 kHz..1 Hz", "points_per_decade": 5, "amplitude": "10 mV"}),
]
TERMINAL = {"completed", "failed", "aborted"}
WAIT_S = 20.0


class Model:
    """What one run should be doing: its state, the operator prompt it is at, a pending pause, a fault."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.state = "awaiting_operator"
        self.prompt = 0  # index of the operator prompt waiting (0 or 1)
        self.pause_pending = False
        self.fault = False
        self.thread: threading.Thread | None = None
        self.run_id = 0
        self.entered = {"awaiting_operator": 1, "paused": 0}  # times the run went into each waiting state

    def go(self, state: str) -> None:
        self.state = state
        if state in self.entered:
            self.entered[state] += 1

    def proceed(self) -> None:
        """The run goes on from an answered prompt or a resume: next safe point, then the next step."""
        if self.pause_pending:
            self.pause_pending = False
            self.go("paused")
        elif self.fault:  # the next instrument step (cycling or EIS) fails
            self.go("failed")
        elif self.prompt == 0:
            self.prompt = 1
            self.go("awaiting_operator")
        else:
            self.go("completed")


class RunsMachine(RuleBasedStateMachine):
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[int, Model] = {}

    @initialize()
    def open_store(self) -> None:
        self.db = Path(tempfile.mkdtemp(dir=TMP_ROOT)) / "sm.db"
        self.store = Store.open(f"sqlite:///{self.db}")

    # -- helpers ------------------------------------------------------------------------------------

    def _state(self, run_id: int) -> str:
        with sqlite3.connect(self.db, timeout=10) as con:
            return con.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()[0]

    def _entered(self, run_id: int, state: str) -> int:
        """How often the store recorded the run going into `state`."""
        with sqlite3.connect(self.db, timeout=10) as con:
            rows = con.execute(
                "SELECT data FROM events WHERE run_id = ? AND kind = 'run.state'", (run_id,)
            ).fetchall()
        return sum(json.loads(d)["to"] == state for (d,) in rows)

    def _settle(self, m: Model, consumed: int | None = None) -> None:
        """Wait until the store shows the model's state (and the command was taken by the run)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            taken = consumed is None or self._consumed(consumed)
            settled = m.state not in m.entered or self._entered(m.run_id, m.state) == m.entered[m.state]
            if taken and settled and self._state(m.run_id) == m.state:
                if m.state in TERMINAL and m.thread is not None:
                    m.thread.join(WAIT_S)
                    assert not m.thread.is_alive(), f"run {m.run_id} recorded {m.state} but did not return"
                return
            time.sleep(0.02)
        raise AssertionError(f"run {m.run_id}: store says {self._state(m.run_id)!r}, model says {m.state!r}")

    def _consumed(self, command_id: int) -> bool:
        with sqlite3.connect(self.db, timeout=10) as con:
            row = con.execute("SELECT consumed_at FROM control WHERE id = ?", (command_id,)).fetchone()
        return row is not None and row[0] is not None

    def _post(self, m: Model, command: str) -> int:
        return self.store.post_control(m.run_id, command, actor="hypothesis")

    # -- rules --------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.models) < 6)
    @rule(target=runs, keys=st.sets(st.sampled_from(KEYS), min_size=1, max_size=2))
    def start(self, keys: set[str]) -> int:
        clock = VirtualClock()
        spec = RunSpec("sm", [step_from_fields(i, k, p) for i, (k, p) in enumerate(STEPS)])
        run = Run(
            spec, store=self.store, instruments=bench(clock), station=STATION, clock=clock,
            handle_signals=False, lease_keys=sorted(keys),
        )
        m = Model(tuple(sorted(keys)))
        m.run_id = run.create()
        m.inst = run.instruments
        held = {k for other in self.models.values() if other.state not in TERMINAL for k in other.keys}
        if held & set(keys):
            m.state = "failed"  # preflight refuses: another live run holds one of its instruments
        m.thread = threading.Thread(target=run.execute, daemon=True)
        self.models[m.run_id] = m
        m.thread.start()
        self._settle(m)
        return m.run_id

    @rule(run_id=runs)
    def ack(self, run_id: int) -> None:
        m = self.models[run_id]
        if m.state != "awaiting_operator":
            return
        cid = self._post(m, "ack")
        m.proceed()
        self._settle(m, cid)

    @rule(run_id=runs)
    def pause(self, run_id: int) -> None:
        m = self.models[run_id]
        if m.state in TERMINAL:
            return
        cid = self._post(m, "pause")
        if m.state == "awaiting_operator":
            m.pause_pending = True  # a pause waits for the operator's answer
        self._settle(m, cid)

    @rule(run_id=runs)
    def resume(self, run_id: int) -> None:
        m = self.models[run_id]
        if m.state in TERMINAL:
            return
        cid = self._post(m, "resume")
        if m.state == "paused":
            m.proceed()
        elif m.pause_pending:
            m.pause_pending = False  # a resume cancels a pause that has not taken effect
        self._settle(m, cid)

    @rule(run_id=runs)
    def abort(self, run_id: int) -> None:
        m = self.models[run_id]
        if m.state in TERMINAL:
            return
        cid = self._post(m, "abort")
        m.go("aborted")
        self._settle(m, cid)

    @rule(run_id=runs, role=st.sampled_from(["potentiostat", "eis"]))
    def fault(self, run_id: int, role: str) -> None:
        """The instrument the run uses next starts failing (whichever it is, the run must end failed)."""
        m = self.models[run_id]
        if m.state in TERMINAL:
            return
        m.inst["potentiostat"].fail_on, m.inst["eis"].fail_on = "acquire", "eis"
        m.fault = True

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def leases_are_the_live_runs(self) -> None:
        if not self.models:
            return
        with sqlite3.connect(self.db, timeout=10) as con:
            held = dict(con.execute("SELECT instrument, run_id FROM leases").fetchall())
        want = {k: rid for rid, m in self.models.items() if m.state not in TERMINAL for k in m.keys}
        assert held == want

    @invariant()
    def audit_chain_verifies(self) -> None:
        if self.models:
            assert self.store.verify().ok

    def teardown(self) -> None:
        try:
            for m in self.models.values():
                if m.state not in TERMINAL:
                    cid = self._post(m, "abort")
                    m.state = "aborted"
                    self._settle(m, cid)
            for m in self.models.values():
                assert m.thread is not None
                m.thread.join(WAIT_S)
                assert not m.thread.is_alive()
                assert self._state(m.run_id) in TERMINAL
                assert m.inst["potentiostat"].safe_calls >= 1 or m.state == "failed"
            assert self.store.verify().ok
            problems, _, _ = self.store.verify_records()
            assert not problems, problems
        finally:
            self.store.close()


TMP_ROOT: Path | None = None  # each example's database goes in its own directory below the test's tmp_path
RunsMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.timeout(600)
def test_random_runs_and_commands_keep_store_and_model_in_step(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    monkeypatch.setattr(sys.modules[__name__], "TMP_ROOT", tmp_path)
    RunsMachine.TestCase("runTest").runTest()
