"""The simulator framework and the transport, with a tiny echo instrument, over all three exposures."""

from __future__ import annotations

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.transport import SerialSettings, SerialTransport, VisaTransport
from labctl.errors import Disconnected, InstrumentTimeout, PartialReply
from labctl.simulators import registry
from labctl.simulators.core import DeviceCore
from labctl.simulators.exposures import serve_pty, serve_tcp


class EchoCore(DeviceCore):
    """Answers `PING\\n` with `PONG\\n` and `ADD a b\\n` with the sum; counts resets."""

    SERIAL = SerialSettings(19200)

    def reset(self) -> None:
        self.resets = getattr(self, "resets", -1) + 1

    def handle(self, message: bytes) -> bytes | None:
        words = message.strip().split()
        if words == [b"PING"]:
            return b"PONG\n"
        if words and words[0] == b"ADD":
            return b"%g\n" % (float(words[1]) + float(words[2]))
        return None

    def error_reply(self, message: bytes) -> bytes:
        return b"ERR\n"


@pytest.fixture
def vclock():
    return VirtualClock()


@pytest.fixture
def echo(vclock):
    core = EchoCore("echo", clock=vclock)
    registry.register("echo", core)
    yield core
    registry.unregister("echo")


def open_labsim(clock, settings=SerialSettings(19200), timeout=1.0) -> SerialTransport:
    t = SerialTransport("echo", "labsim://echo", settings, clock=clock, timeout=timeout)
    t.open()
    return t


def test_query_in_process(echo, vclock):
    records = []
    t = open_labsim(vclock)
    t.recorder = records.append
    assert t.query(b"PING\n", b"\n") == b"PONG\n"
    assert t.query(b"ADD 1 2.5\n", b"\n") == b"3.5\n"
    assert [r.direction for r in records] == ["tx", "rx", "tx", "rx"]
    assert vclock.monotonic() == 0.0  # nothing waited


def test_no_reply_times_out_on_the_virtual_clock(echo, vclock):
    t = open_labsim(vclock, timeout=2.0)
    echo.inject("no_reply", b"PING")
    with pytest.raises(InstrumentTimeout):
        t.query(b"PING\n", b"\n")
    assert vclock.monotonic() == pytest.approx(2.0)
    assert t.query(b"PING\n", b"\n") == b"PONG\n"


def test_late_reply_is_flushed_not_taken_for_the_next(echo, vclock):
    t = open_labsim(vclock, timeout=1.0)
    echo.inject("late", b"ADD", delay=1.5)
    with pytest.raises(InstrumentTimeout):
        t.query(b"ADD 1 1\n", b"\n")
    vclock.sleep(1.0)  # the late "2" arrives now
    t.drain()
    assert t.query(b"PING\n", b"\n") == b"PONG\n"


def test_truncated_and_trickled_replies(echo, vclock):
    t = open_labsim(vclock, timeout=1.0)
    echo.inject("truncate", b"PING")
    with pytest.raises(PartialReply):
        t.query(b"PING\n", b"\n")
    echo.inject("trickle", b"PING", delay=0.1)
    assert t.query(b"PING\n", b"\n") == b"PONG\n"  # 5 bytes over 0.4 s: inside the deadline
    echo.inject("trickle", b"PING", delay=0.5)
    with pytest.raises(PartialReply):
        t.query(b"PING\n", b"\n")


def test_disconnect_and_power_cycle(echo, vclock):
    t = open_labsim(vclock)
    echo.inject("disconnect", b"PING")
    t.write(b"PING\n")
    with pytest.raises(Disconnected):
        t.read_until(b"\n")
    t.close()
    t.open()  # reopening the link is reconnecting the cable
    echo.inject("power_cycle")
    resets = echo.resets
    with pytest.raises(InstrumentTimeout):
        t.query(b"PING\n", b"\n")
    assert echo.resets == resets + 1


def test_wrong_line_settings_garble(echo, vclock):
    t = open_labsim(vclock, settings=SerialSettings(9600))
    with pytest.raises((InstrumentTimeout, PartialReply)):
        reply = t.query(b"PING\n", b"\n", timeout=0.5)
        assert reply != b"PONG\n"
        raise PartialReply("garbled")


def test_over_tcp_serial_and_visa():
    core = EchoCore("echo-tcp", clock=RealClock())
    with serve_tcp(core) as exp:
        t = SerialTransport("echo", exp.serial_url, clock=RealClock())
        t.open()
        assert t.query(b"ADD 2 2\n", b"\n") == b"4\n"
        t.close()
        v = VisaTransport("echo", exp.visa_resource, clock=RealClock())
        v.open()
        assert v.query(b"PING\n", b"\n") == b"PONG\n"
        v.close()


@pytest.mark.pty
def test_over_pty():
    core = EchoCore("echo-pty", clock=RealClock())
    with serve_pty(core) as exp:
        t = SerialTransport("echo", exp.path, SerialSettings(19200), clock=RealClock())
        t.open()
        assert t.query(b"PING\n", b"\n") == b"PONG\n"
        assert t.query(b"ADD 3 4\n", b"\n") == b"7\n"
        t.close()


def test_scripted_transport_checks_bytes():
    from labctl.testing import ScriptedTransport, TranscriptMismatch

    t = ScriptedTransport([(None, b"hello\n"), (b"PING\n", b"PONG\n"), (b"GO\n", b"")])
    assert t.read_until(b"\n") == b"hello\n"
    assert t.query(b"PING\n", b"\n") == b"PONG\n"
    t.write(b"GO\n")
    t.assert_done()
    with pytest.raises(TranscriptMismatch):
        ScriptedTransport([(b"A\n", b"")]).write(b"B\n")
