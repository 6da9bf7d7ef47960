"""The conformance spec of every built-in instrument (labctl.testing.conformance): how each identifies, one
safe read, what makes it active, how its simulator shows it safe, and the calls its fault matrix hits."""

from __future__ import annotations

from labctl.drivers.keithley2450 import Keithley2450
from labctl.drivers.transport import SerialSettings
from labctl.errors import Disconnected, InstrumentBusy, InstrumentReportedError, InstrumentTimeout
from labctl.simulators.core import DeviceCore, FaultKind
from labctl.simulators.keithley2450 import IDN
from labctl.simulators.world import SimpleWorld
from labctl.testing.conformance import Bench, FaultOp, InstrumentSpec

ML = 1e-6
#: Linux ptys refuse parity bits and CS7 (tcsetattr EINVAL): a 7E1/8O1 instrument is opened 8N1 over a pty
PTY_8N1_9600, PTY_8N1_19200 = SerialSettings(9600), SerialSettings(19200)


def _raises(call, error: type[BaseException], text: str) -> None:
    try:
        call()
    except error as exc:
        assert text in str(exc), f"{type(exc).__name__}: {exc} does not say {text!r}"
        return
    raise AssertionError(f"expected {error.__name__} ({text})")


def _grbl_safe(core: DeviceCore) -> bool:
    word, pos = core.machine_state()  # type: ignore[attr-defined]
    return word == "Idle" and abs(pos[2]) < 1e-6


def _grbl_move(g) -> None:
    g.unlock()
    g.move_to(z=-0.005, speed=0.005, wait=False)


def _ne1000_active(p) -> None:
    p.configure(diameter=14.43e-3)
    p.dispense(1 * ML, 1 * ML / 60)


def _ne1000_after(b: Bench, kind: FaultKind, op: str) -> None:
    if kind is FaultKind.POWER_CYCLE:
        # the command was lost with the power; the pump then reports its reset alarm once: the instrument
        # telling us, not a dirty line; its settings live in non-volatile memory
        _raises(b.driver.identify, InstrumentReportedError, "reset")
        assert b.driver._exchange("DIA")[1] == "14.43"


def _ika_active(h) -> None:
    h.set_temperature(30.0)
    h.heater(True)
    h.stirrer(250)


def _tpg_after(b: Bench, kind: FaultKind, op: str) -> None:
    if kind is FaultKind.STUCK_BUSY:
        _raises(b.driver.pressure, InstrumentBusy, "")  # it stays busy and says so cleanly each time
        b.core.power_cycle()
    assert b.driver.error_word() == "0000"


def _alicat_active(m) -> None:
    m.select_gas("Ar")
    m.set_flow(10.0)


def _rf_active(g) -> None:
    g.set_power(40)
    g.rf_on()


def _rf_after(b: Bench, kind: FaultKind, op: str) -> None:
    assert b.driver.is_on() is False
    if kind is FaultKind.POWER_CYCLE:  # power-up gave control back to the front panel
        _raises(lambda: b.driver.set_power(60), InstrumentReportedError, "wrong control mode")
        b.driver.connect()
    b.driver.set_power(70)
    assert b.driver.setpoint() == (70.0, "forward")


def _keithley_active(k) -> None:
    k.configure_galvanostatic(voltage_limit=2.0)
    k.set_current(1e-3)
    k.output(True)


def _keithley_after(b: Bench, kind: FaultKind, op: str) -> None:
    if kind is FaultKind.DISCONNECT and b.exposure == "tcp":
        # over pyvisa-py the dropped socket read as a timeout; the next write finds the broken pipe, and the
        # driver reopens on the exchange after that
        _raises(b.driver.identify, Disconnected, "write failed")
    assert b.driver.limit_tripped() is False
    on = kind is not FaultKind.POWER_CYCLE  # a power cycle switched the output off
    v, i = b.driver.read()
    assert (abs(v - (0.01 if on else 0.0)) < 1e-9, abs(i - (1e-3 if on else 0.0)) < 1e-12) == (True, True)


def _eis(d):
    return d.eis(f_start=1e4, f_end=1e2, points_per_decade=2, amplitude=0.01)


SPECS: dict[str, InstrumentSpec] = {s.driver: s for s in [
    InstrumentSpec(
        "grbl", identity="Grbl 1.1h", safe_read=lambda g: g.status(), activate=_grbl_move,
        core_safe=_grbl_safe,
        safe_reply=lambda r: r["z"] == 0.0 and r["state"] == "Idle",
        core_options={"settings": {122: 1000.0}},
        fault_ops={
            "status": FaultOp(rb"^\?$", lambda g: g.status(), not_for={
                FaultKind.INSTRUMENT_ERROR: "GRBL never answers a real-time `?` with an error"}),
            "line": FaultOp(rb"\$I", lambda g: g.identify()),
        },
        expect={FaultKind.POWER_CYCLE: InstrumentReportedError},  # the restart banner and ALARM lock
        delay={FaultKind.TRICKLE: 0.2},
    ),
    InstrumentSpec(
        "ne1000", identity="NE1000V3.928", safe_read=lambda p: p.status(), activate=_ne1000_active,
        core_safe=lambda c: c.pumps[1].prompt in "SP",  # type: ignore[attr-defined]
        safe_reply=lambda r: r["status"] in ("S", "P"),
        core_options={"addresses": (1, 2)}, driver_options={"address": 1},
        setup=lambda p: p.configure(diameter=14.43e-3), after_fault=_ne1000_after,
        fault_ops={"status": FaultOp(rb"^01\r$", lambda p: p.status()),
                   "command": FaultOp(rb"^01VER", lambda p: p.identify())},
    ),
    InstrumentSpec(
        "ika_rct", identity="RCT digital", safe_read=lambda h: h.bath_temperature(), activate=_ika_active,
        core_safe=lambda c: not c.heating and not c.stirring,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["heating"] is False and r["stirring"] is False,
        setup=lambda h: h.set_temperature(40.0),
        fault_ops={"bath": FaultOp(rb"^IN_PV_1", lambda h: h.bath_temperature())},
        # the RCT has no error answer and says nothing after a restart: silence
        expect={FaultKind.POWER_CYCLE: InstrumentTimeout, FaultKind.INSTRUMENT_ERROR: InstrumentTimeout},
        pty_line=PTY_8N1_9600,
    ),
    InstrumentSpec(
        "tpg361", identity="TPG361,", safe_read=lambda g: g.pressure(), core_safe=lambda c: True,
        safe_reply=lambda r: r["error_word"] == "0000",
        setup=lambda g: g.set_unit("Pa"), after_fault=_tpg_after,
        fault_ops={"mnemonic": FaultOp(rb"^PR1\r\n$", lambda g: g.pressure()),
                   "enquiry": FaultOp(rb"^\x05$", lambda g: g.pressure())},
        expect={FaultKind.STUCK_BUSY: InstrumentBusy},  # a front panel in a menu NAKs everything
        delay={FaultKind.TRICKLE: 0.6},
    ),
    InstrumentSpec(
        "alicat", identity="10v05.0-R22", safe_read=lambda m: m.flow(), activate=_alicat_active,
        core_safe=lambda c: c.setpoint == 0.0,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["flow_sccm"] == 0.0 and r["setpoint_sccm"] == 0.0,
        setup=lambda m: m.set_flow(10.0),
        fault_ops={"poll": FaultOp(rb"^A\r$", lambda m: m.flow()),
                   "setpoint": FaultOp(rb"^AS", lambda m: m.set_flow(20.0))},
    ),
    InstrumentSpec(
        "aebus_rf", identity="CESAR 1312", safe_read=lambda g: g.is_on(), activate=_rf_active,
        core_safe=lambda c: not c.rf and c.setpoint == 0,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["rf_on"] is False and r["forward_w"] == 0.0,
        setup=lambda g: g.set_power(40), after_fault=_rf_after,
        fault_ops={"status": FaultOp(rb"^[\x08-\x0f]\xa2", lambda g: g.is_on()),
                   "setpoint": FaultOp(rb"^[\x08-\x0f]\x08", lambda g: g.set_power(60))},
        pty_line=PTY_8N1_19200,
    ),
    InstrumentSpec(
        "sqm160", identity="MON Ver 4.13", safe_read=lambda q: q.thickness(),
        activate=lambda q: q.shutter(True),
        core_safe=lambda c: not c.shutter_open,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["shutter_open"] is False,
        fault_ops={"thickness": FaultOp(rb"^!.N1", lambda q: q.thickness()),  # sync, length, message
                   "shutter": FaultOp(rb"^!.U1", lambda q: q.shutter(True)),
                   "readings": FaultOp(rb"^!.W", lambda q: q.readings())},
        make_world=lambda: SimpleWorld(rate_kg_m2_s_per_w=1e-9),
    ),
    InstrumentSpec(
        "emstat4", identity="es4_lr", safe_read=lambda d: d.ocp(0.2, 0.1),
        activate=lambda d: d.run_script(["cell_on"]),
        core_safe=lambda c: not c.cell_on,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["script_running"] is False,
        fault_ops={
            "version": FaultOp(rb"^t\n$", lambda d: d.identify()),
            # a sweep's lines each have their own deadline: the acknowledge (timeout), the loop marker and
            # the first package (timeout + 3 x 0.1 s for a 10 kHz point each)
            "eis": FaultOp(rb"^\n$", _eis, bound=lambda d: 3 * d.transport.timeout + 2 * 0.3),
        },
        delay={FaultKind.TRICKLE: 0.05},  # 38 version bytes x 0.05 s > the 1 s deadline
        make_world=lambda: SimpleWorld(cell_ohm=50.0, cell_farad=2e-6),
    ),
    InstrumentSpec(
        "keithley2450", identity=IDN, safe_read=lambda k: k.read(), activate=_keithley_active,
        core_safe=lambda c: not c.output,  # type: ignore[attr-defined]
        safe_reply=lambda r: r["output"] is False,
        setup=_keithley_active, after_fault=_keithley_after,
        fault_ops={"trip": FaultOp(rb"TRIP\?", lambda k: k.limit_tripped()),
                   "read": FaultOp(rb"^:READ\?", lambda k: k.read())},
        delay={FaultKind.TRICKLE: 2.1, FaultKind.LATE: 2.5},  # the reply "0\n" is 2 bytes
        timeout=2.0, extra_bound=Keithley2450.RESYNC_MAX, visa=True, stuck_busy_refuses=False,
        # pyvisa drops what a timed-out read got: a garbled reply (no terminator left) is a timeout over VISA,
        # and pyvisa-py reads a socket the peer closed as a timeout too
        expect_over={"tcp": {FaultKind.GARBAGE: InstrumentTimeout, FaultKind.TRICKLE: InstrumentTimeout,
                             FaultKind.TRUNCATE: InstrumentTimeout, FaultKind.DISCONNECT: InstrumentTimeout}},
    ),
]}
