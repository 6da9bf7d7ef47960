"""Simulated AE Bus RF generator (Cesar-like, 13.56 MHz) powering the shared chamber's plasma, byte for byte.

Facts from `reference/instruments.md` §4.3 and the AE Apex manual (5708009-C, table 4-6): packets
`header (address << 3 | n), command, [length if n = 7], data LE, XOR checksum`; the generator answers ACK
(or NAK for a packet with a bad checksum), then its reply packet, which the host ACKs or NAKs (then the
reply is sent again). Set commands answer one CSR byte. 1 RF off, 2 RF on, 3 regulation (6 forward, 7 load,
8 external), 8 setpoint W (2 bytes), 14 control mode (2 host, 4 user port, 6 front panel), 128/129 supply
type/size, 154/155 regulation/control mode, 162 status (4 bytes, byte 0 bit 5 = RF on), 164 setpoint +
regulation (3 bytes), 165 forward, 166 reflected power (2 bytes W).

Where the sources are silent this core chooses, and says so:
- forward power is the setpoint while RF is on (the generator regulates it), reflected power is what the
  world's plasma reflects (`world.reflected_power`), both 0 with RF off; RF power goes to the world through
  `world.rf_power` on every change;
- set commands need host control (CSR 1 otherwise, except 14 itself); RF on while on is accepted (CSR 0);
  a regulation change with RF on is refused (CSR 2); leaving host control switches RF off;
- a wrong data byte count answers CSR 9, an unknown command CSR 99, a setpoint above the rating CSR 4;
- a packet to another address gets no answer; a half-received packet is dropped after 50 ms of silence
  (the serial idle timeout of the real unit is not documented here);
- power-up: RF off, setpoint 0, front-panel control; the regulation mode is kept (non-volatile);
- supply type `CESAR`, size `1312` (5 and 4 ASCII bytes) [verify on hardware];
- `stuck busy` models an output stage that no longer follows commands: RF on/off are acknowledged (CSR 0)
  but the RF state stays as it was; `corrupt_replies = n` flips the checksum of the next n reply packets.
"""

from __future__ import annotations

from collections.abc import Iterator

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

ACK, NAK = 0x06, 0x15
GAP_S = 0.05
SET_LENGTHS = {1: 0, 2: 0, 3: 1, 8: 2, 14: 1}
QUERIES = {128, 129, 154, 155, 162, 164, 165, 166}


def xor(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


def make_packet(address: int, command: int, data: bytes) -> bytes:
    n = len(data)
    body = bytes([address << 3 | min(n, 7), command]) + (bytes([n]) if n > 6 else b"") + data
    return body + bytes([xor(body)])


class AeBusRfSim(DeviceCore):
    """One generator at `address` on the host port."""

    SERIAL = SerialSettings(19200, parity="O")

    def __init__(self, name: str = "aebus_rf", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, address: int = 1, rated_w: int = 1200,
                 addresses: tuple[int, ...] | None = None) -> None:
        self.address = addresses[0] if addresses else address   # `addresses`: a station's role address
        self.rated_w = rated_w
        self.regulation = 6                    # non-volatile
        self.corrupt_replies = 0
        self._awaiting_ack = False
        self._last: bytes = b""
        self._last_rx = 0.0
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.rf = False
        self.setpoint = 0
        self.control = 6
        self._awaiting_ack = False
        self.world.rf_power(self.now(), 0.0)  # type: ignore[union-attr]

    # -- framing ----------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self.lock:
            if self._inbuf and self.now() - self._last_rx > GAP_S:
                self._inbuf.clear()             # the rest of that packet never came: drop it
            self._last_rx = self.now()
        super().write(data)

    def split(self) -> Iterator[bytes]:
        """Host ACK/NAK bytes (while a reply awaits them) and whole packets."""
        while self._inbuf:
            if self._awaiting_ack and self._inbuf[0] in (ACK, NAK):
                msg = bytes(self._inbuf[:1])
                del self._inbuf[:1]
                yield msg
                continue
            if len(self._inbuf) < 2:
                return
            n, start = self._inbuf[0] & 7, 2
            if n == 7:
                if len(self._inbuf) < 3:
                    return
                n, start = self._inbuf[2], 3
            end = start + n + 1
            if len(self._inbuf) < end:
                return
            msg = bytes(self._inbuf[:end])
            del self._inbuf[:end]
            yield msg

    # -- behaviour --------------------------------------------------------------------------------------

    def _send(self, data: bytes, command: int, ack: bool = True) -> bytes:
        pkt = make_packet(self.address, command, data)
        self._last = pkt
        self._awaiting_ack = True
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            pkt = pkt[:-1] + bytes([pkt[-1] ^ 0xFF])
        return (bytes([ACK]) if ack else b"") + pkt

    def handle(self, message: bytes) -> bytes | None:
        if len(message) == 1:                       # the host's ACK or NAK of our reply
            self._awaiting_ack = False
            if message[0] == NAK and self._last:
                return self._send(self._last[2:-1] if self._last[0] & 7 != 7 else self._last[3:-1],
                                  self._last[1], ack=False)
            return None
        self._awaiting_ack = False
        if xor(message) != 0:
            return bytes([NAK])
        if message[0] >> 3 != self.address:
            return None
        command = message[1]
        data = message[3:-1] if message[0] & 7 == 7 else message[2:-1]
        return self._send(self._execute(command, data), command)

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: an active fault in the generator (CSR 7) refuses the command."""
        if len(message) == 1 or xor(message) != 0:
            return self.handle(message)
        return self._send(bytes([7]), message[1])

    def _execute(self, command: int, data: bytes) -> bytes:
        if command in QUERIES:
            return self._report(command) if not data else bytes([9])
        if command not in SET_LENGTHS:
            return bytes([99])
        if len(data) != SET_LENGTHS[command]:
            return bytes([9])
        value = int.from_bytes(data, "little")
        if command == 14:
            if value not in (2, 4, 6):
                return bytes([4])
            self.control = value
            if value != 2:
                self._rf(False)
            return bytes([0])
        if self.control != 2:
            return bytes([1])
        if command in (1, 2):
            if not self.stuck_busy:
                self._rf(command == 2)
            return bytes([0])
        if command == 3:
            if self.rf:
                return bytes([2])
            if value not in (6, 7, 8):
                return bytes([4])
            self.regulation = value
            return bytes([0])
        if value > self.rated_w:                     # command 8
            return bytes([4])
        self.setpoint = value
        if self.rf:
            self.world.rf_power(self.now(), float(value))  # type: ignore[union-attr]
        return bytes([0])

    def _rf(self, on: bool) -> None:
        self.rf = on
        self.world.rf_power(self.now(), float(self.setpoint) if on else 0.0)  # type: ignore[union-attr]

    def _report(self, command: int) -> bytes:
        if command == 128:
            return b"CESAR"
        if command == 129:
            return b"1312"
        if command == 154:
            return bytes([self.regulation])
        if command == 155:
            return bytes([self.control])
        if command == 162:
            return bytes([0x20 if self.rf else 0, 0, 0, 0])
        if command == 164:
            return self.setpoint.to_bytes(2, "little") + bytes([self.regulation])
        if command == 165:
            watts = self.setpoint if self.rf else 0
        else:
            reflected = self.world.reflected_power(self.now()) if self.rf else 0.0  # type: ignore[union-attr]
            watts = min(0xFFFF, max(0, round(reflected)))
        return watts.to_bytes(2, "little")
