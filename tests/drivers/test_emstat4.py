"""Byte-exact transcripts of every public operation of the EmStat4 MethodSCRIPT driver, and the encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.drivers.emstat4 import EmStat4, current_range, eis_frequencies
from labctl.drivers.methodscript import (
    decode_package,
    decode_variable,
    encode_value,
    error_code,
    literal,
    parse_literal,
)
from labctl.errors import (
    InstrumentReportedError,
    InstrumentTimeout,
    LimitViolation,
    MalformedReply,
    PartialReply,
    SafeStateError,
)
from labctl.roles import ImpedanceAnalyzer
from labctl.testing import ScriptedTransport

VERSION = b"tes4_lr1.3.1\n#2024-01-16*\n"


def make(script) -> tuple[EmStat4, ScriptedTransport]:
    t = ScriptedTransport(script)
    return EmStat4(t, name="eis"), t


def script(*lines: str) -> bytes:
    return ("e\n" + "".join(f"{x}\n" for x in lines) + "\n").encode()


def test_is_an_impedance_analyzer():
    assert isinstance(make([])[0], ImpedanceAnalyzer)


def test_verified_package_example():
    """instruments.md [verified]: `Pda84E63DAn;ba82AB973f,14,284`: 5.137 mV, 2.8 nA, underload, range 84."""
    da, ba = decode_package("Pda84E63DAn;ba82AB973f,14,284\n")
    assert da.type_id == "da" and da.value == pytest.approx(5.13737e-3)
    assert ba.value == pytest.approx(2.799987e-9) and ba.status == 4 and ba.status_text == "underload"
    assert ba.range_index == 0x84
    assert encode_value("da", 5.13737e-3) == "da84E63DAn"
    assert math.isnan(decode_variable("cc     nan").value)
    assert decode_variable("eb8000010i").value == 16.0
    for value in (0.0, -1.5e-3, 12.3456, 2e5, -7.1e-11, 123456.0):
        assert decode_variable(encode_value("cc", value)).value == pytest.approx(value, rel=1e-6, abs=1e-18)
    with pytest.raises(ValueError):
        decode_variable("cc8000000x")
    with pytest.raises(ValueError):
        decode_package("garbage")


def test_script_literals():
    assert [literal(x) for x in (0.01, 2e5, 0.1, 1.0, -0.5, 0.0, 1e-5, 1234.5678)] == [
        "10m",
        "200k",
        "100m",
        "1",
        "-500m",
        "0",
        "10u",
        "1234570m",
    ]
    assert parse_literal("200k") == 2e5 and parse_literal("-500m") == -0.5 and parse_literal("3") == 3.0
    with pytest.raises(ValueError):
        literal(float("nan"))
    with pytest.raises(ValueError):
        parse_literal("1x")


def test_literals_scale_exactly():
    """`10u` is the double nearest 1e-5 (10 * 1e-6 is one ulp short and failed a range check at the limit)."""
    for value in (1e-5, 3e-5, 2e5, 0.01, 1e-3, 123457.0, 7e-12, 0.25):
        assert parse_literal(literal(value)) == value
    assert parse_literal("11i") == 11.0 and parse_literal("-3i") == -3.0
    with pytest.raises(ValueError):
        parse_literal("1.5i")
    assert decode_variable(encode_value("dc", 1e-5)).value == 1e-5
    assert decode_variable("dc8989680p").value == 1e-5


def test_error_lines():
    assert error_code(b"Z!0006\n") == 6 and error_code(b"!0003: Line 4\n") == 3
    assert error_code(b"Pda84E63DAn\n") is None


def test_identify():
    d, t = make([(b"t\n", VERSION)])
    assert d.identify() == "es4_lr1.3.1 #2024-01-16"
    t.assert_done()


EIS_SCRIPT = script(
    "var f",
    "var r",
    "var j",
    "set_pgstat_chan 0",
    "set_pgstat_mode 3",
    "set_max_bandwidth 200k",
    "set_range_minmax da 0 0",
    "set_range ba 10m",
    "set_autoranging ba 1n 10m",
    "set_e 0",
    "cell_on",
    "meas_loop_eis f r j 10m 100k 1k 3 0",
    "pck_start",
    "pck_add f",
    "pck_add r",
    "pck_add j",
    "pck_end",
    "endloop",
    "on_finished:",
    "cell_off",
)


def pkg(f: float, zr: float, zi: float) -> bytes:
    return (
        "P" + ";".join([encode_value("dc", f), encode_value("cc", zr), encode_value("cd", zi)]) + "\n"
    ).encode()


def test_eis_potentiostatic_byte_exact():
    out = b"e\nM0000\n" + pkg(1e5, 1.2, -1.5) + pkg(1e4, 10.9, -0.6) + pkg(1e3, 11.0, -0.02) + b"*\n\n"
    d, t = make([(EIS_SCRIPT, out)])
    spec = d.eis(f_start=1e5, f_end=1e3, points_per_decade=1, amplitude=0.01)
    t.assert_done()
    assert spec.freq.tolist() == [1e5, 1e4, 1e3]
    assert spec.z_real.tolist() == pytest.approx([1.2, 10.9, 11.0])
    assert spec.z_imag.tolist() == pytest.approx([-1.5, -0.6, -0.02])
    assert spec.meta["points"] == 3 and spec.meta["status_flags"] == 0


def test_eis_galvanostatic_script():
    expected = script(
        "var f",
        "var r",
        "var j",
        "set_pgstat_chan 0",
        "set_pgstat_mode 6",
        "set_max_bandwidth 20k",
        "set_range ab 3",
        "set_range db 100u",
        "set_i 0",
        "cell_on",
        "meas_loop_geis f r j 100u 10k 1 9 0",
        "pck_start",
        "pck_add f",
        "pck_add r",
        "pck_add j",
        "pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
    )
    d, t = make([(expected, b"e\nM0000\n*\n\n")])
    spec = d.eis(f_start=1e4, f_end=1, points_per_decade=2, amplitude=1e-4, galvanostatic=True)
    t.assert_done()
    assert len(spec.freq) == 0 and spec.meta["commanded_points"] == 9


def test_ocp_and_cp_scripts():
    ocp = script(
        "var p",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        "cell_off",
        "meas_loop_ocp p 500m 1",
        "pck_start",
        "pck_add p",
        "pck_end",
        "endloop",
    )
    out = b"e\nM0000\n" + f"P{encode_value('ab', 0.101, '10')}\nP{encode_value('ab', 0.102, '10')}\n".encode()
    d, t = make([(ocp, out + b"*\n\n")])
    trace = d.ocp(1.0, 0.5)
    t.assert_done()
    assert trace.t.tolist() == [0.5, 1.0] and trace.voltage.tolist() == pytest.approx([0.101, 0.102])
    cp = script(
        "var p",
        "var c",
        "set_pgstat_chan 0",
        "set_pgstat_mode 6",
        "set_range ab 3",
        "set_range db 1m",
        "set_i 0",
        "cell_on",
        "meas_loop_cp p c -500u 1 2",
        "pck_start",
        "pck_add p",
        "pck_add c",
        "pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
    )
    row = f"P{encode_value('ab', -0.02, '10')};{encode_value('ba', -5e-4, '10')}\n".encode()
    d, t = make([(cp, b"e\nM0000\n" + row + row + b"*\n\n")])
    trace = d.chronopotentiometry(-5e-4, 2.0, 1.0)
    t.assert_done()
    assert trace.current.tolist() == pytest.approx([-5e-4, -5e-4]) and trace.t.tolist() == [1.0, 2.0]


def test_abort_and_safe_state():
    d, t = make([(b"Z\n", b"Z!0006\n")])
    d.abort()
    t.assert_done()
    d, t = make(
        [(b"Z\n", b"Pda8000000 ;ba8000000 \nZ\n*\n\n"), (script("cell_off"), b"e\n\n"), (b"t\n", VERSION)]
    )
    assert d.safe_state() == {
        "script_running": False,
        "cell_off": "commanded and executed",
        "firmware": "es4_lr1.3.1 #2024-01-16",
    }
    t.assert_done()
    d, _ = make([(b"Z\n", b"Z\n")])  # never ends: not idle
    with pytest.raises(SafeStateError):
        d.safe_state()


def test_limits_before_any_byte():
    d, t = make([])
    bad = [
        dict(f_start=1e6, f_end=1, points_per_decade=10, amplitude=0.01),
        dict(f_start=1e5, f_end=1e-6, points_per_decade=10, amplitude=0.01),
        dict(f_start=1e5, f_end=1, points_per_decade=0, amplitude=0.01),
        dict(f_start=1e5, f_end=1, points_per_decade=10, amplitude=0.5),
        dict(f_start=1e5, f_end=1, points_per_decade=10, amplitude=0.01, dc_potential=5.0),
        dict(
            f_start=1e5, f_end=1, points_per_decade=10, amplitude=0.02, dc_potential=0.02, galvanostatic=True
        ),
        dict(f_start=1e5, f_end=1, points_per_decade=10, amplitude=0.0, galvanostatic=True),
        dict(f_start=1e5, f_end=1, points_per_decade=1.5, amplitude=0.01),  # not a whole number
        dict(f_start=1e5, f_end=1, points_per_decade=101, amplitude=0.01),
    ]
    for kw in bad:
        with pytest.raises(LimitViolation):
            d.eis(**kw)
    for args in ((1.0, 0.0), (1.0, 2.0), (math.inf, 1.0), (3600.0, 1e-3)):  # the last: 3.6 million points
        with pytest.raises(LimitViolation):
            d.ocp(*args)
    with pytest.raises(LimitViolation):
        d.chronopotentiometry(0.1, 1.0, 0.1)
    assert t.sent == []


def test_device_errors_and_bad_output():
    d, _ = make([(script("cell_off"), b"e\n!0003: Line 1\n\n")])
    with pytest.raises(InstrumentReportedError) as exc:
        d.run_script(["cell_off"])
    assert exc.value.code == 3
    d, _ = make([(script("cell_off"), b"x\n")])
    with pytest.raises(MalformedReply, match="acknowledge"):
        d.run_script(["cell_off"])
    d, _ = make([(script("cell_off"), b"e\nPzz\n")])
    with pytest.raises(MalformedReply, match="package"):
        d.run_script(["cell_off"])
    d, _ = make([(script("cell_off"), b"e\nhello\n")])
    with pytest.raises(MalformedReply, match="unexpected"):
        d.run_script(["cell_off"])
    d, _ = make([(script("cell_off"), b"e\nM0000\nPda80")])
    with pytest.raises(PartialReply):
        d.run_script(["cell_off"])
    d, _ = make([(b"t\n", b"")])
    with pytest.raises(InstrumentTimeout):
        d.identify()
    d, _ = make([(EIS_SCRIPT, b"e\nM0000\n" + f"P{encode_value('dc', 1e5)}\n".encode() + b"*\n\n")])
    with pytest.raises(MalformedReply, match="lacks"):
        d.eis(f_start=1e5, f_end=1e3, points_per_decade=1, amplitude=0.01)


def test_a_failed_exchange_aborts_before_the_next():
    d, t = make([(b"t\n", b"tes4"), (b"Z\n", b"Z!0006\n"), (b"t\n", VERSION)])
    with pytest.raises(PartialReply):
        d.identify()
    assert d.identify().startswith("es4_lr")
    t.assert_done()


def test_helpers():
    assert np.allclose(eis_frequencies(1e5, 1, 1), [1e5, 1e4, 1e3, 1e2, 10, 1])
    assert current_range(2.5e-4) == pytest.approx(1e-3) and current_range(0) == pytest.approx(1e-6)
