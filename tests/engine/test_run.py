"""Whole runs on fake instruments: every step kind, interrupts in every state, failures in every executor."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labctl.steps.interlocks import Condition

BATH = ("prepare_bath", {"bath": "alloy", "salt": "InCl3", "solvent": "THF", "concentration": "0.1 M",
                         "volume": "20 mL", "temperature": "25 degC"})
IMMERSE = ("immerse", {"bath": "alloy", "depth": "12 mm", "speed": "5 mm/s", "time": "60 s",
                       "rinse": {"bath": "solvent", "time": "10 s"}, "dry": "300 s"})
DIP = ("dip_coat", {"bath": "alloy", "depth": "10 mm", "dip_speed": "5 mm/s", "withdrawal_speed": "1 mm/s",
                    "dwell": "30 s", "cycles": 2, "drying_time": "60 s"})
SPUTTER = ("sputter", {"power": "60 W", "flow": "20 sccm", "pressure": "0.5 Pa", "thickness": "150 nm",
                       "ramp_rate": "1 W/s", "presputter": "60 s", "max_time": "20000 s",
                       "base_pressure": "5e-4 Pa"})
NITRIDE = ("nitride", {"power": "50 W", "gas": "N2", "flow": "100 sccm", "pressure": "2 Pa", "time": "600 s",
                       "ramp_rate": "1 W/s", "base_pressure": "5e-4 Pa"})
CYCLE = ("cycle_symmetric", {"current_density": "1 mA/cm^2", "capacity": "1 mAh/cm^2", "cycles": 3,
                             "sample_every": "10 s", "voltage_limit": "1 V"})
RATE = ("rate_test", {"stages": [{"current_density": "1 mA/cm^2", "cycles": 2},
                                 {"current_density": "2 mA/cm^2", "cycles": 2}],
                      "capacity": "0.1 mAh/cm^2", "sample_every": "10 s", "voltage_limit": "1 V"})
CE = ("coulombic_efficiency", {"current_density": "1 mA/cm^2", "capacity": "0.1 mAh/cm^2", "cycles": 3,
                               "sample_every": "10 s", "cutoff_voltage": "1 V"})
OCV = ("ocv", {"duration": "600 s", "sample_every": "10 s"})
EIS = ("eis", {"frequencies": "1 MHz..0.1 Hz", "points_per_decade": 10, "amplitude": "10 mV"})
OPERATOR = ("operator", {"message": "Assemble the Li|Li coin cell"})
WAIT = ("wait", {"duration": "60 s"})
REST = ("rest", {"duration": "120 s"})

ALL = [BATH, IMMERSE, DIP, SPUTTER, NITRIDE, CYCLE, RATE, CE, OCV, EIS, OPERATOR, WAIT, REST]


def all_safe(h) -> None:
    """Every instrument was safe-stated at preflight and again at the end, and it was recorded."""
    for role, inst in h.inst.items():
        assert inst.safe_calls == 2, role
    safe_roles = {d["role"] for _, k, d, _ in h.store.events if k == "instrument.safe"}
    assert safe_roles == set(h.inst)


@pytest.mark.parametrize("step", ALL, ids=[s[0] for s in ALL])
def test_each_step_kind_alone(h, step) -> None:
    res = h.make([step]).execute()
    assert res.state.value == "completed", res.reason
    assert res.steps[0].status == "done", res.steps[0].reason
    assert h.store.states(res.run_id) == ["preflight", "running", "completed"] or step[0] == "operator"
    all_safe(h)


def test_a_full_fabricate_then_cycle_run(h) -> None:
    res = h.make([BATH, IMMERSE, OPERATOR, EIS, CYCLE, EIS]).execute()
    assert res.ok, res.reason
    bath, imm = res.steps[0].achieved, res.steps[1].achieved
    assert bath["concentration"] == pytest.approx(100.0, rel=1e-3)
    assert bath["stock_m3"] == pytest.approx(4e-6, rel=1e-3) and bath["solvent_m3"] == pytest.approx(
        16e-6, rel=1e-3
    )
    assert imm["commanded_time_s"] == 60.0 and imm["immersion_time_s"] == pytest.approx(60.0, abs=1e-6)
    assert imm["rinse_s"] == pytest.approx(10.0, abs=1e-6) and imm["dry_s"] == pytest.approx(300.0)
    data = h.store.measurements(res.run_id, "cycling")
    assert set(data) == {"t", "voltage", "current", "cycle", "half_cycle"}
    assert len(data["t"]) == 3 * 2 * 360 and np.all(np.diff(data["t"]) > 0)
    assert data["t"][0] > imm["t_out"]  # t is relative to the run start, after the fabrication
    assert h.store.states(res.run_id) == ["preflight", "running", "awaiting_operator", "running", "completed"]
    ack = next(d for _, k, d, _ in h.store.events if k == "operator.ack")
    assert ack["auto"] is True and ack["actor"] == "auto (dry run)"
    assert h.run.notes["r_el_ohm"] == pytest.approx(2.0, rel=0.01)
    ocv = h.store.measurements(res.run_id, "ocv")  # each EIS measures the OCV it sits at first (ocv: true)
    assert len(ocv["t"]) == 2 * 10 and res.steps[3].achieved["dc_v"] == pytest.approx(ocv["voltage"][9])
    assert res.points == len(data["t"]) + 2 * 31 + len(ocv["t"])


def test_sputter_stops_at_the_qcm_target_and_ramps_within_the_rate(h) -> None:
    res = h.make([SPUTTER]).execute()
    a = res.steps[0].achieved
    assert a["thickness_m"] >= 150e-9 and a["thickness_m"] < 151e-9
    powers = h.inst["rf"].powers
    rates = [
        abs(p2 - p1) / (t2 - t1) for (t1, p1), (t2, p2) in itertools.pairwise(powers) if t2 > t1
    ]
    assert max(rates) <= 1.0 + 1e-9
    assert not h.inst["rf"].on and h.inst["mfc"].ch.sccm == 0 and not h.inst["qcm"].ch.open


def test_short_circuit_ends_cycling_with_its_time(h) -> None:
    h.inst["potentiostat"].short_at = 5 * 3600 + 1234.0
    res = h.make([("cycle_symmetric", {**CYCLE[1], "cycles": 10})]).execute()
    a = res.steps[0].achieved
    assert res.ok and a["ended_by"] == "short_circuit"
    assert a["ended_at_s"] == pytest.approx(5 * 3600 + 1234.0, abs=10.0)
    assert a["half_cycles"] < 20


def test_short_circuit_with_stop_after_keeps_cycling_then_ends(h) -> None:
    h.inst["potentiostat"].short_at = 5 * 3600 + 1234.0
    fields = {**CYCLE[1], "cycles": 20, "short_detection": {"stop_after": "10 h"}}
    res = h.make([("cycle_symmetric", fields)]).execute()
    a = res.steps[0].achieved
    assert res.ok and a["ended_by"] == "short_circuit"
    assert a["short_at_s"] == pytest.approx(5 * 3600 + 1234.0, abs=10.0)
    assert 14 <= a["half_cycles"] <= 17  # about 10 h of shorted 1 h half-cycles after the short at 5.3 h
    assert any(k == "cell.short_circuit" for _, k, _, _ in h.store.events)


def test_voltage_limit_ends_the_step(h) -> None:
    res = h.make([("cycle_symmetric", {**CYCLE[1], "voltage_limit": "10 mV"})]).execute()
    assert res.ok and res.steps[0].achieved["ended_by"] == "voltage_limit"


def test_prepare_bath_refuses_a_concentration_above_the_stock(h) -> None:
    res = h.make([("prepare_bath", {**BATH[1], "concentration": "0.6 M"})]).execute()
    assert res.state.value == "failed" and "above the stock" in res.steps[0].reason
    all_safe(h)


# -- failures injected in each executor ----------------------------------------------------------------

INJECT = [
    (BATH, "pump.stock", "dispense"),
    (IMMERSE, "stage", "move_to"),
    (DIP, "stage", "move_to"),
    (SPUTTER, "rf", "set_power"),
    (NITRIDE, "rf", "set_power"),
    (CYCLE, "potentiostat", "acquire"),
    (RATE, "potentiostat", "acquire"),
    (CE, "potentiostat", "acquire"),
    (OCV, "potentiostat", "acquire"),
    (EIS, "eis", "eis"),
    (SPUTTER, "gauge", "pressure"),
]


@pytest.mark.parametrize(("step", "role", "method"), INJECT, ids=[f"{s[0]}-{m}" for s, _, m in INJECT])
def test_failure_in_executor_ends_failed_with_everything_safe(h, step, role, method) -> None:
    run = h.make([WAIT, step, WAIT])
    h.on("step.started", lambda d: d["index"] == 1, lambda r: setattr(h.inst[role], "fail_on", method))
    res = run.execute()
    assert res.state.value == "failed" and "injected failure" in res.reason
    assert [s.status for s in res.steps] == ["done", "failed"]
    all_safe(h)
    assert h.store.leases == {}


def test_interlock_trip_during_a_wait_fails_the_step(h) -> None:
    run = h.make([WAIT])
    h.on(
        "step.started",
        lambda d: True,
        lambda r: r.watch.add(Condition("door", lambda: "door open", action="fail")),
    )
    res = run.execute()
    assert res.state.value == "failed" and "door open" in res.reason
    all_safe(h)


def test_operator_timeout_fails_when_interactive(h) -> None:
    res = h.make([("operator", {"message": "x", "timeout": "0.05 s"})], interactive=True).execute()
    assert res.state.value == "failed" and "acknowledgement" in res.reason
    all_safe(h)


def test_one_instrument_failing_safe_state_does_not_stop_the_others(h) -> None:
    run = h.make([WAIT])
    h.on("step.started", lambda d: True, lambda r: setattr(h.inst["rf"], "fail_on", "safe_state"))
    res = run.execute()
    assert res.state.value == "failed" and "rf" in res.reason
    assert {r.role for r in res.safe if r.ok} == set(h.inst) - {"rf"}
    assert any(k == "instrument.safe_failed" and d["role"] == "rf" for _, k, d, _ in h.store.events)


# -- interrupts in every state ---------------------------------------------------------------------------


def test_abort_in_created(h) -> None:
    run = h.make([WAIT])
    h.store.post_control(run.run_id, "abort", actor="ana")
    res = run.execute()
    assert h.store.states(res.run_id) == ["aborted"]
    assert res.steps == [] and all(i.safe_calls == 0 for i in h.inst.values())


def test_abort_in_preflight(h) -> None:
    run = h.make([WAIT])
    h.on("preflight.instrument", lambda d: d["role"] == "eis", h.post("abort"))
    res = run.execute()
    assert h.store.states(res.run_id) == ["preflight", "aborted"]
    all_safe(h)


@pytest.mark.parametrize("state", ["created", "preflight"])
def test_pause_before_running_takes_effect_at_the_first_safe_point(h, state) -> None:
    run = h.make([WAIT, WAIT])
    if state == "created":
        h.store.post_control(run.run_id, "pause", actor="ana")
    else:
        h.on("preflight.instrument", lambda d: d["role"] == "eis", h.post("pause"))
    h.on("run.state", lambda d: d["to"] == "paused", h.post("resume"))
    res = run.execute()
    assert h.store.states(res.run_id) == ["preflight", "running", "paused", "running", "completed"]


@pytest.mark.parametrize("state", ["created", "preflight", "running", "paused", "awaiting_operator"])
def test_resume_outside_paused_is_ignored(h, state) -> None:
    run = h.make([WAIT, ("operator", {"message": "ok?"})], interactive=state == "awaiting_operator")
    if state == "created":
        h.store.post_control(run.run_id, "resume", actor="ana")
    elif state == "preflight":
        h.on("preflight.instrument", lambda d: True, h.post("resume"))
    elif state == "running":
        h.on("step.started", lambda d: True, h.post("resume"))
    elif state == "paused":
        h.on("step.started", lambda d: True, h.post("pause"))
        h.on("run.state", lambda d: d["to"] == "paused", lambda r: (h.post("resume")(r), h.post("resume")(r)))
    else:
        h.on("operator.prompt", lambda d: True, lambda r: (h.post("resume")(r), h.post("ack")(r)))
    res = run.execute()
    assert res.ok
    assert h.store.states(res.run_id)[-1] == "completed"
    assert h.store.states(res.run_id).count("paused") == (1 if state == "paused" else 0)


def test_pause_resume_while_running(h) -> None:
    run = h.make([WAIT, WAIT])
    h.on("step.progress", lambda d: True, h.post("pause"))
    h.on("run.state", lambda d: d["to"] == "paused", h.post("resume", actor="bob"))
    res = run.execute()
    assert res.ok
    assert h.store.states(res.run_id) == ["preflight", "running", "paused", "running", "completed"]
    who = [a for r, k, d, a in h.store.events if k == "run.state" and d["to"] == "running"]
    assert who[-1] == "bob"


def test_abort_while_running(h) -> None:
    run = h.make([REST, WAIT])
    h.on("step.progress", lambda d: True, h.post("abort"))
    res = run.execute()
    assert res.state.value == "aborted"
    assert res.steps[0].status == "deviated" and res.steps[0].achieved["time_s"] < 120.0
    all_safe(h)


def test_abort_while_paused(h) -> None:
    run = h.make([WAIT, WAIT])
    h.on("step.progress", lambda d: True, h.post("pause"))
    h.on("run.state", lambda d: d["to"] == "paused", h.post("abort"))
    res = run.execute()
    assert h.store.states(res.run_id) == ["preflight", "running", "paused", "aborted"]
    all_safe(h)


def test_pause_while_awaiting_operator_waits_for_the_answer(h) -> None:
    run = h.make([("operator", {"message": "ok?"}), WAIT], interactive=True, operator="ana")
    h.on("operator.prompt", lambda d: True, lambda r: (h.post("pause")(r), h.post("ack", actor="carl")(r)))
    h.on("run.state", lambda d: d["to"] == "paused", h.post("resume"))
    res = run.execute()
    assert res.ok
    assert h.store.states(res.run_id) == [
        "preflight",
        "running",
        "awaiting_operator",
        "running",
        "paused",
        "running",
        "completed",
    ]
    ack = next(d for _, k, d, _ in h.store.events if k == "operator.ack")
    assert ack["actor"] == "carl" and ack["auto"] is False


def test_abort_while_awaiting_operator(h) -> None:
    run = h.make([("operator", {"message": "ok?"})], interactive=True)
    h.on("operator.prompt", lambda d: True, h.post("abort"))
    res = run.execute()
    assert h.store.states(res.run_id) == ["preflight", "running", "awaiting_operator", "aborted"]
    all_safe(h)


def test_ctrl_c_once_pauses_twice_aborts(h) -> None:
    run = h.make([WAIT, WAIT])
    h.on("step.progress", lambda d: True, lambda r: r.control._on_sigint(2, None))
    h.on("run.state", lambda d: d["to"] == "paused", lambda r: r.control._on_sigint(2, None))
    res = run.execute()
    assert h.store.states(res.run_id) == ["preflight", "running", "paused", "aborted"]
    assert any(k == "run.state" and a == "ctrl-c" and d["to"] == "aborted" for _, k, d, a in h.store.events)


def test_sigterm_aborts(h) -> None:
    run = h.make([WAIT])
    h.on("step.progress", lambda d: True, lambda r: r.control._on_sigterm(15, None))
    assert run.execute().state.value == "aborted"


# -- immersion is not pausable; an abort withdraws at once ------------------------------------------------


def test_pause_during_immersion_finishes_the_step_first(h) -> None:
    run = h.make([IMMERSE, WAIT])
    h.on("step.progress", lambda d: d.get("label") == "immersed", h.post("pause"))
    h.on("run.state", lambda d: d["to"] == "paused", h.post("resume"))
    res = run.execute()
    assert res.ok and res.steps[0].status == "done"
    assert res.steps[0].achieved["immersion_time_s"] == pytest.approx(60.0, abs=1e-6)
    paused_at = next(i for i, (k, d) in enumerate(h.seen) if k == "run.state" and d["to"] == "paused")
    finished = next(i for i, (k, d) in enumerate(h.seen) if k == "step.finished")
    assert paused_at > finished


def test_abort_during_immersion_withdraws_and_records_deviation(h) -> None:
    run = h.make([IMMERSE, WAIT])
    h.on("step.progress", lambda d: d.get("label") == "immersed" and d["fraction"] > 0.3, h.post("abort"))
    res = run.execute()
    assert res.state.value == "aborted"
    step = res.steps[0]
    assert step.status == "deviated" and "withdrawn" in step.reason
    rec = step.achieved["immersions"][0]
    assert 15.0 < rec["achieved_s"] < 60.0 and rec["commanded_s"] == 60.0
    stage = h.inst["stage"]
    assert stage.z > -0.02  # above the bath surface (surface_z = -20 mm)
    assert stage.log[-1][2] == 0.0
    all_safe(h)


def test_an_ack_sent_before_the_prompt_does_not_answer_it(h) -> None:
    run = h.make([WAIT, ("operator", {"message": "ok?", "timeout": "0.3 s"})], interactive=True)
    h.on("step.started", lambda d: d["index"] == 0, h.post("ack"))
    res = run.execute()
    assert res.state.value == "failed" and "acknowledgement" in res.reason
    assert "operator.ack_ignored" in h.store.kinds()


class AssemblyWorld:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def assemble_cell(self, *, area_m2: float | None = None, electrolyte: str = "carbonate", **build) -> str:
        self.calls.append({"area": area_m2, "electrolyte": electrolyte})
        return "cell assembled"


def test_assemble_operator_step_tells_the_simulated_world(h) -> None:
    world = AssemblyWorld()
    step = ("operator", {"message": "Assemble the Li|Li coin cell", "cell": {"electrolyte": "ether"}})
    run = h.make([step], world=world)
    run.notes["cell_area"] = 1.13e-4
    res = run.execute()
    assert res.ok
    assert world.calls == [{"area": 1.13e-4, "electrolyte": "ether"}]
    ack = next(d for _, k, d, _ in h.store.events if k == "operator.ack")
    assert ack["auto"] is True and ack["world"]["called"] == "assemble_cell"


def test_pressure_fault_configured_to_pause_quiets_the_chamber_and_pauses(h) -> None:
    step = ("sputter", {**SPUTTER[1], "on_pressure_fault": "pause"})
    run = h.make([step, WAIT])
    h.on("step.progress", lambda d: d.get("readings", {}).get("thickness_nm", 0) > 50,
         lambda r: setattr(h.inst["gauge"].ch, "extra_pressure", 100.0))
    h.on("run.state", lambda d: d["to"] == "paused",
         lambda r: (setattr(h.inst["gauge"].ch, "extra_pressure", 0.0), h.post("resume")(r)))
    res = run.execute()
    assert res.ok
    assert res.steps[0].status == "deviated" and "chamber_pressure" in res.steps[0].reason
    assert h.store.states(res.run_id) == ["preflight", "running", "paused", "running", "completed"]
    quiet_at = next(i for i, (k, d) in enumerate(h.seen) if k == "step.finished")
    assert quiet_at >= 0 and not h.inst["rf"].on and h.inst["mfc"].ch.sccm == 0.0
