"""Advanced Energy RF generator over AE Bus (Dressler/AE Cesar family) as the `rf` role.

Protocol facts: `reference/instruments.md` §4.3 (InstrumentKit's Cesar 1312 driver, AE Apex manual
5708009-C table 4-6). A packet is `header, command, [length], data (little-endian), checksum` with
`header = address << 3 | n` (n = data bytes 0-6; 7 means a length byte follows) and checksum = XOR of all
bytes before it. The generator answers ACK 0x06 (or NAK 0x15: packet rejected, not executed), then its own
packet, which the host ACKs (or NAKs to have it sent again). Set commands answer one CSR byte (0 = OK).
Commands used: 1 RF off, 2 RF on, 3 regulation mode, 8 power setpoint (2 bytes, W), 14 control mode,
128/129 supply type/size, 154 regulation mode?, 155 control mode?, 162 process status (4 bytes; byte 0
bit 5 = RF on), 164 setpoint + regulation (3 bytes), 165 forward power, 166 reflected power (2 bytes, W).

Line settings: `SERIAL` holds defaults, 19200 baud, 8 data bits, odd parity, 1 stop bit. The tested unit
used odd parity; the baud rate is a setting of the generator [verify on the bench's unit].

Retry policy (bounded, documented):
- a NAK from the generator means it rejected our packet and executed nothing, so the same packet is sent
  again, at most `NAK_RETRIES` times;
- a reply with a bad checksum is NAKed so the generator repeats its reply (the command is not executed
  again), at most `CHECKSUM_RETRIES` times, then `ChecksumError`;
- after a timeout or a garbled reply nothing is re-sent: whether the command was executed is unknown. Every
  command this driver sends is a state command (RF on, RF off, setpoint W, a mode), so repeating one would
  be harmless - RF on while on stays on, unlike a toggle - but the driver still reads the state instead:
  `rf_on` and `rf_off` confirm by the status bit, `safe_state` by status and setpoint read-back.
All exchanges of one operation share one deadline (the transport timeout).
"""

from __future__ import annotations

from typing import Any, ClassVar

from labctl.drivers.base import Driver, idempotent
from labctl.drivers.limits import Limit
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import (
    ChecksumError,
    InstrumentBusy,
    InstrumentError,
    InstrumentReportedError,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)

ACK, NAK = b"\x06", b"\x15"
RF_OFF, RF_ON, SET_REGULATION, SET_POWER, SET_CONTROL = 1, 2, 3, 8, 14
SUPPLY_TYPE, SUPPLY_SIZE, REGULATION, CONTROL, STATUS = 128, 129, 154, 155, 162
SETPOINT, FORWARD, REFLECTED = 164, 165, 166
CSR = {0: "OK", 1: "wrong control mode", 2: "RF output is on", 4: "data out of range",
       5: "user port RF signal is off", 7: "active fault(s) in the generator", 9: "wrong data byte count",
       19: "recipe mode is active", 50: "frequency out of range", 51: "duty cycle out of range",
       99: "command not implemented"}
CONTROL_MODES = {"host": 2, "user": 4, "front_panel": 6}
REGULATION_MODES = {"forward": 6, "load": 7, "external": 8}
RF_ON_BIT = 0x20


def checksum(data: bytes) -> int:
    """XOR of all bytes."""
    x = 0
    for b in data:
        x ^= b
    return x


def packet(address: int, command: int, data: bytes = b"") -> bytes:
    """One AE Bus packet, checksum included."""
    n = len(data)
    if not 0 <= address <= 31 or not 0 <= command <= 255 or n > 255:
        raise ValueError(f"bad AE Bus packet: address {address}, command {command}, {n} data bytes")
    body = bytes([address << 3 | min(n, 7), command]) + (bytes([n]) if n > 6 else b"") + data
    return body + bytes([checksum(body)])


def _name(table: dict[str, int], code: int) -> str:
    return next((k for k, v in table.items() if v == code), f"unknown ({code})")


class AeBusRf(Driver):
    """One AE Bus RF generator at `address` (1-31); implements `RfGenerator`."""

    NAME = "aebus_rf"
    ROLE = "rf"
    SIMULATOR = "labctl.simulators.aebus_rf:AeBusRfSim"
    SERIAL = SerialSettings(19200, parity="O")
    TIMEOUT = 1.0
    LIMITS: ClassVar[dict[str, Limit]] = {
        "power": Limit("power", "W", 0.0, 300.0, "bench magnetron rating; stations tighten per target"),
        "ramp_rate": Limit("ramp_rate", "W/s", 0.0, 20.0, "ceramic targets (LiF) crack under fast ramps"),
    }
    NAK_RETRIES = 2
    CHECKSUM_RETRIES = 2
    CONFIRM_TIMEOUT = 2.0     # s for the status bit to follow RF on/off
    POLL = 0.1

    def __init__(self, transport: Transport, *, address: int = 1, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        if not 1 <= address <= 31:
            raise LimitViolation(f"AE Bus address must be 1-31 (0 is broadcast), got {address}")
        super().__init__(transport, name=name, limits=limits)
        self.address = address

    # -- the exchange layer ---------------------------------------------------------------------------

    def _read(self, n: int, deadline: float) -> bytes:
        t = self.transport
        return t.read_exact(n, timeout=max(0.0, deadline - t.clock.monotonic()))

    def _read_packet(self, deadline: float) -> bytes:
        head = self._read(2, deadline)
        n = head[0] & 7
        extra = b""
        if n == 7:
            extra = self._read(1, deadline)
            n = extra[0]
        return head + extra + self._read(n + 1, deadline)

    def _transact(self, command: int, data: bytes, deadline: float) -> bytes:
        t = self.transport
        tx = packet(self.address, command, data)
        for _ in range(1 + self.NAK_RETRIES):
            t.write(tx)
            first = self._read(1, deadline)
            if first == ACK:
                break
            if first != NAK or (extra := t.drain()):   # a real NAK comes alone; NAK + bytes is line noise
                got = first if first != NAK else first + extra
                raise MalformedReply(f"expected ACK/NAK to command {command}, got {got!r}",
                                     instrument=self.name)
        else:
            raise InstrumentReportedError(f"command {command} rejected (NAK) {1 + self.NAK_RETRIES} times",
                                          instrument=self.name, code="NAK")
        for attempt in range(1 + self.CHECKSUM_RETRIES):
            reply = self._read_packet(deadline)
            if checksum(reply) == 0:
                break
            if attempt == self.CHECKSUM_RETRIES:
                raise ChecksumError(f"reply {reply.hex(' ')} to command {command} fails its checksum "
                                    f"{1 + self.CHECKSUM_RETRIES} times", instrument=self.name)
            t.write(NAK)                       # the generator sends its reply again
        if reply[0] >> 3 != self.address or reply[1] != command:
            raise MalformedReply(f"reply {reply.hex(' ')} is not from address {self.address} for command "
                                 f"{command}", instrument=self.name)
        t.write(ACK)
        return reply[3:-1] if reply[0] & 7 == 7 else reply[2:-1]

    def _exchange(self, command: int, data: bytes = b"") -> bytes:
        t = self.transport
        self._prepare_link()
        with self._link_guard():
            return self._transact(command, data, t.clock.monotonic() + t.timeout)

    def _set(self, command: int, data: bytes = b"") -> None:
        """A set command: its one-byte CSR must be 0."""
        reply = self._exchange(command, data)
        if len(reply) != 1:
            raise MalformedReply(f"command {command} answered {reply.hex(' ')}, not a CSR byte",
                                 instrument=self.name)
        if reply[0] != 0:
            raise InstrumentReportedError(f"command {command} rejected: {CSR.get(reply[0], 'unknown CSR')} "
                                          f"(CSR {reply[0]})", instrument=self.name, code=reply[0])

    def _query(self, command: int, length: int) -> bytes:
        """A report command answering `length` data bytes (a lone byte instead is a CSR refusal)."""
        reply = self._exchange(command)
        if len(reply) == 1 and length != 1:
            raise InstrumentReportedError(f"command {command} refused: {CSR.get(reply[0], 'unknown CSR')} "
                                          f"(CSR {reply[0]})", instrument=self.name, code=reply[0])
        if len(reply) != length:
            raise MalformedReply(f"command {command} answered {len(reply)} bytes, expected {length}",
                                 instrument=self.name)
        return reply

    def _word(self, command: int) -> int:
        return int.from_bytes(self._query(command, 2), "little")

    # -- connection, identity, modes ------------------------------------------------------------------

    def connect(self) -> None:
        """Open the port and take host control (command 14 = 2), which RF on/off and setpoints require."""
        self.transport.open()
        self.set_control_mode("host")

    def identify(self) -> str:
        """Supply type and size (commands 128, 129), e.g. `CESAR 1312`."""
        kind = self._exchange(SUPPLY_TYPE).decode("ascii", "replace").strip()
        size = self._exchange(SUPPLY_SIZE).decode("ascii", "replace").strip()
        return f"{kind} {size}".strip()

    @idempotent
    def set_control_mode(self, mode: str) -> None:
        """`host`, `user` (user port) or `front_panel`; leaving host control switches RF off."""
        if mode not in CONTROL_MODES:
            raise LimitViolation(f"control mode must be one of {', '.join(CONTROL_MODES)}, got {mode!r}")
        self._set(SET_CONTROL, bytes([CONTROL_MODES[mode]]))

    @idempotent
    def control_mode(self) -> str:
        return _name(CONTROL_MODES, self._query(CONTROL, 1)[0])

    @idempotent
    def set_regulation(self, mode: str) -> None:
        """`forward`, `load` (delivered) or `external` (DC bias) power regulation; only with RF off."""
        if mode not in REGULATION_MODES:
            raise LimitViolation(f"regulation must be one of {', '.join(REGULATION_MODES)}, got {mode!r}")
        self._set(SET_REGULATION, bytes([REGULATION_MODES[mode]]))

    @idempotent
    def regulation(self) -> str:
        return _name(REGULATION_MODES, self._query(REGULATION, 1)[0])

    # -- power ----------------------------------------------------------------------------------------

    @idempotent
    def set_power(self, watts: float) -> None:
        """Power setpoint in W (the generator's resolution is 1 W); limit-checked before any byte."""
        self.check("power", watts)
        self._set(SET_POWER, round(watts).to_bytes(2, "little"))

    @idempotent
    def setpoint(self) -> tuple[float, str]:
        """(setpoint W, regulation mode) from command 164."""
        data = self._query(SETPOINT, 3)
        return float(int.from_bytes(data[:2], "little")), _name(REGULATION_MODES, data[2])

    @idempotent
    def forward_power(self) -> float:
        return float(self._word(FORWARD))

    @idempotent
    def reflected_power(self) -> float:
        return float(self._word(REFLECTED))

    @idempotent
    def status(self) -> bytes:
        """The 4 process-status bytes (command 162)."""
        return self._query(STATUS, 4)

    @idempotent
    def is_on(self) -> bool:
        return bool(self.status()[0] & RF_ON_BIT)

    def _wait_state(self, on: bool) -> bool:
        t = self.transport
        deadline = t.clock.monotonic() + self.CONFIRM_TIMEOUT
        while self.is_on() != on:
            if t.clock.monotonic() >= deadline:
                return False
            t.clock.sleep(self.POLL)
        return True

    def rf_on(self) -> None:
        """RF on (needs host control: CSR 1 otherwise), confirmed by the status bit.

        If the reply is lost the command is not re-sent; the status says whether RF came on.
        """
        try:
            self._set(RF_ON)
        except InstrumentReportedError:
            raise
        except InstrumentError as exc:      # lost or garbled reply: executed or not, the status tells
            if not self.is_on():
                exc.add_note("RF on was not re-sent; the status read afterwards shows RF off")
                raise
            return
        if not self._wait_state(True):
            raise InstrumentError(f"RF on accepted but the status shows RF off after "
                                  f"{self.CONFIRM_TIMEOUT:g} s", instrument=self.name)

    def rf_off(self) -> None:
        """RF off, confirmed by the status bit within `CONFIRM_TIMEOUT` (else `InstrumentBusy`)."""
        self._set(RF_OFF)
        if not self._wait_state(False):
            raise InstrumentBusy(f"RF still on {self.CONFIRM_TIMEOUT:g} s after RF off", instrument=self.name)

    def safe_state(self) -> dict[str, Any]:
        """RF off and setpoint 0, confirmed by the status bit and the setpoint read-back.

        If another control mode holds the generator (CSR 1), the driver takes host control to switch RF off
        (the Apex honours RF off from any interface; older units may not) and to zero the setpoint.
        """
        try:
            for step in (self.rf_off, lambda: self.set_power(0.0)):
                try:
                    step()
                except InstrumentReportedError as exc:
                    if exc.code != 1:
                        raise
                    self.set_control_mode("host")
                    step()
            on = self.is_on()
            watts, regulation = self.setpoint()
            forward, reflected = self.forward_power(), self.reflected_power()
        except InstrumentError as exc:
            raise SafeStateError(f"RF off not confirmed: {exc.detail}", instrument=self.name) from exc
        if on or watts != 0.0:
            raise SafeStateError(f"read-back shows RF {'on' if on else 'off'}, setpoint {watts:g} W",
                                 instrument=self.name)
        return {"rf_on": False, "setpoint_w": watts, "regulation": regulation, "forward_w": forward,
                "reflected_w": reflected}
