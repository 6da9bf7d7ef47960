"""Simulated AE Bus RF generator (Cesar-like, 13.56 MHz) powering the shared chamber's plasma, byte for byte.

Facts from `reference/instruments.md` §4.3 and the AE Apex manual (5708009-C, §"Communicating through the
RS-232, AE Bus host port", tables 4-5 CSR codes and 4-6 host port commands): packets
`header (address << 3 | n), command, [length if n = 7], data LE, XOR checksum`; the generator answers ACK
(or NAK for a packet with a bad checksum), then its reply packet, which the host ACKs or NAKs (then the
reply is sent again). Address 0 is the broadcast address: every generator executes the packet and none
answers (no ACK, no reply). Set commands answer one CSR byte. No more than the host port time out (factory
0.02 s, command 40) may pass between the bytes of a packet, or the generator drops it. Commands:
- set: 1 RF off (honoured whoever has control), 2 RF on, 3 regulation (6 forward, 7 load, 8 external),
  4 forward power limit, 5 reflected power limit, 6 external feedback limit, 8 setpoint W, 9 max external
  feedback (+ display decimals), 11 active target (1-4), 12 target life (target, kWh x 100), 14 control
  mode (2 host, 4 user port, 6 front panel), 15 out-of-setpoint timer s, 16 allowable deviation %, 40 host
  port time out (x 10 ms), 93 pulsing frequency Hz, 96 pulsing duty cycle %;
- report: 128/129 supply type/size, 130/198 software version/revision, 140 host port time out, 154/155
  regulation/control mode, 156 active target, 157 target life (of the target in the data byte), 162 process
  status (4 bytes: byte 0 bit 5 output on, bit 6 RF on requested, bit 7 out of setpoint; byte 2 bit 5 out
  of setpoint fault), 164 setpoint + regulation, 165 forward, 166 reflected, 167 delivered power, 168
  external feedback, 169/170/171 the limits, 184 out-of-setpoint timer, 185 allowable deviation, 193/196
  pulsing frequency/duty, 201/202/203 counts of unit-on, output-on and overtemperature events, 205 run time
  s, 206 energy kWh, 210 fault/warning byte.

Where the sources are silent this core chooses, and says so:
- the output is regulated at every packet the generator receives (its loop is faster than any host): forward
  regulation holds forward = setpoint, load regulation holds forward - reflected = setpoint, both clamped by
  the forward power limit and the rating and folded back so reflected stays within its limit; the world
  says what the plasma reflects (`world.reflected_power`) and is told the forward power (`world.rf_power`);
- nothing is wired to the user port: external feedback reads 0, so external regulation delivers no power
  and reports out of setpoint;
- out of setpoint = forward (forward regulation) or delivered (load) further than the allowable deviation
  from the setpoint while RF is on; lasting longer than the out-of-setpoint timer (0 = never) it switches
  RF off and raises the out-of-setpoint fault until the next RF on;
- set commands need host control (CSR 1 otherwise, except 1 and 14); RF on while on is accepted (CSR 0);
  a regulation change with RF on is refused (CSR 2); leaving host control switches RF off;
- a wrong data byte count answers CSR 9, an unknown command CSR 99, a value outside its range CSR 4 (50/51
  for pulsing frequency/duty); recipe commands (19-28, 188, 189) answer CSR 99: a recipe changes the power on
  the generator's own timeline, which the world (told of power changes as they happen) cannot account;
  pulsing parameters are kept and reported, the output stays continuous (no pulse-enable command is listed);
- limits range 0 .. the rating (the reflected limit too) and default to it [verify on hardware]; the limits,
  deviation (default 10 %), timer, targets, time out and counters are non-volatile; power-up: RF off,
  setpoint 0, front-panel control; the regulation mode is kept;
- supply type `CESAR`, size `1312`, software `01200` revision `A05` [verify on hardware];
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
BROADCAST = 0
#: set command -> (data bytes, low, high) of its single value; None for high: the generator's rating
SETTINGS: dict[int, tuple[int, int, int | None]] = {
    4: (2, 0, None), 5: (2, 0, None), 6: (2, 0, 0xFFFF), 15: (2, 0, 599), 16: (1, 1, 99), 40: (2, 2, 500),
    93: (4, 150, 50000), 96: (2, 10, 90)}
SET_LENGTHS = {1: 0, 2: 0, 3: 1, 8: 2, 9: 3, 11: 1, 12: 5, 14: 1,
               **{c: n for c, (n, _, _) in SETTINGS.items()}}
OUT_OF_RANGE = {93: 50, 96: 51}
REPORTS = {128, 129, 130, 140, 154, 155, 156, 157, 162, 164, 165, 166, 167, 168, 169, 170, 171, 184, 185,
           193, 196, 198, 201, 202, 203, 205, 206, 210}


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
        self.corrupt_replies = 0
        self._awaiting_ack = False
        self._last: bytes = b""
        self._last_rx = 0.0
        # non-volatile settings
        self.regulation = 6
        self.settings = {4: rated_w, 5: rated_w, 6: 0xFFFF, 15: 0, 16: 10, 40: 2, 93: 150, 96: 50}
        self.max_feedback = (5000, 0)
        self.active_target = 1
        self.target_life = {t: 0.0 for t in range(1, 5)}        # kWh x 100 left, counted down by energy
        self.counters = {201: 0, 202: 0, 203: 0}
        self.run_s = 0.0
        self.energy_j = 0.0
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.rf = False
        self.setpoint = 0
        self.control = 6
        self.forward = 0.0
        self.fault_oos = False
        self._oos_since: float | None = None
        self._t_accrued = self.now()
        self._awaiting_ack = False
        self.counters[201] += 1
        self.world.rf_power(self.now(), 0.0)  # type: ignore[union-attr]

    # -- framing ----------------------------------------------------------------------------------------

    @property
    def gap_s(self) -> float:
        """Host port time out: the longest silence allowed inside a packet."""
        return self.settings[40] / 100

    def write(self, data: bytes) -> None:
        with self.lock:
            if self._inbuf and self.now() - self._last_rx > self.gap_s:
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
        target = message[0] >> 3
        if target not in (self.address, BROADCAST):
            return None
        command = message[1]
        data = message[3:-1] if message[0] & 7 == 7 else message[2:-1]
        self._update(self.now())
        reply = self._execute(command, data)
        self._regulate(self.now())
        return None if target == BROADCAST else self._send(reply, command)

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: an active fault in the generator (CSR 7) refuses the command."""
        if len(message) == 1 or xor(message) != 0:
            return self.handle(message)
        return self._send(bytes([7]), message[1])

    def rejects(self, reply: bytes) -> bool:
        """True when `reply` holds a CSR 99 (command not implemented) or a NAK (packet refused), and for
        silence; `reply` may hold several ACK + packet answers."""
        i, answers = 0, 0
        while i < len(reply):
            if reply[i] == ACK:
                i += 1
                continue
            if reply[i] == NAK:
                return True
            n, start = reply[i] & 7, i + 2
            if n == 7 and i + 2 < len(reply):
                n, start = reply[i + 2], i + 3
            data = reply[start:start + n]
            if n == 1 and data == bytes([99]):
                return True
            answers, i = answers + 1, start + n + 1
        return answers == 0

    # -- the output stage -------------------------------------------------------------------------------

    def _update(self, now: float) -> None:
        """Run time, energy and target life accrue; the out-of-setpoint timer may switch RF off."""
        dt = max(0.0, now - self._t_accrued)
        if self.rf and dt > 0:
            delivered = self._delivered()
            self.run_s += dt
            self.energy_j += delivered * dt
            t = self.active_target
            self.target_life[t] = max(0.0, self.target_life[t] - delivered * dt / 3.6e6 * 100)  # kWh x 100
        self._t_accrued = now
        timer = self.settings[15]
        if self.rf and timer and self._oos_since is not None and now - self._oos_since > timer:
            self._rf(False)
            self.fault_oos = True

    def _reflected(self) -> float:
        return float(self.world.reflected_power(self.now())) if self.forward > 0 else 0.0  # type: ignore

    def _delivered(self) -> float:
        return max(0.0, self.forward - self._reflected())

    def _regulate(self, now: float) -> None:
        """Set the forward power the regulation asks for, within the limits; tell the world."""
        if not self.rf:
            self.forward = 0.0
        else:
            cap = float(min(self.settings[4], self.rated_w))
            self._tell(min(float(self.setpoint), cap))
            ratio = self._reflected() / self.forward if self.forward > 0 else 0.0
            if self.regulation == 7 and ratio < 1:
                want = self.setpoint / (1 - ratio)
            elif self.regulation == 8:
                want = 0.0                                   # external feedback: nothing wired
            else:
                want = float(self.setpoint)
            if ratio > 0:
                want = min(want, self.settings[5] / ratio)    # reflected power limit: fold back
            self.forward = min(want, cap)
        self.world.rf_power(now, self.forward)  # type: ignore[union-attr]
        oos = self.rf and self._out_of_setpoint()
        if not oos:
            self._oos_since = None
        elif self._oos_since is None:
            self._oos_since = now

    def _tell(self, watts: float) -> None:
        self.forward = watts
        self.world.rf_power(self.now(), watts)  # type: ignore[union-attr]

    def _out_of_setpoint(self) -> bool:
        actual = self._delivered() if self.regulation == 7 else self.forward
        if self.regulation == 8:
            return self.setpoint > 0
        return abs(actual - self.setpoint) > self.settings[16] / 100 * max(self.setpoint, 1)

    def _rf(self, on: bool) -> None:
        if on and not self.rf:
            self.counters[202] += 1
            self.fault_oos = False
        self.rf = on
        self._regulate(self.now())

    # -- commands ---------------------------------------------------------------------------------------

    def _execute(self, command: int, data: bytes) -> bytes:
        if command in REPORTS:
            if command == 157:
                return self._target_life(data)
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
        if command == 1:                             # always honoured
            if not self.stuck_busy:
                self._rf(False)
            return bytes([0])
        if self.control != 2:
            return bytes([1])
        return bytes([self._set(command, data, value)])

    def _set(self, command: int, data: bytes, value: int) -> int:
        """CSR of one set command (host control established)."""
        if command == 2:
            if not self.stuck_busy:
                self._rf(True)
            return 0
        if command == 3:
            if self.rf:
                return 2
            if value not in (6, 7, 8):
                return 4
            self.regulation = value
            return 0
        if command == 8:
            if value > self.rated_w:
                return 4
            self.setpoint = value
            return 0
        if command == 9:
            full, decimals = int.from_bytes(data[:2], "little"), data[2]
            if not 500 <= full <= 5000 or decimals > 4:
                return 4
            self.max_feedback = (full, decimals)
            return 0
        if command == 11:
            if not 1 <= value <= 4:
                return 4
            self.active_target = value
            return 0
        if command == 12:
            if not 1 <= data[0] <= 4:
                return 4
            self.target_life[data[0]] = float(int.from_bytes(data[1:], "little"))
            return 0
        _, low, high = SETTINGS[command]
        if not low <= value <= (self.rated_w if high is None else high):
            return OUT_OF_RANGE.get(command, 4)
        self.settings[command] = value
        return 0

    def _target_life(self, data: bytes) -> bytes:
        if len(data) != 1:
            return bytes([9])
        if not 1 <= data[0] <= 4:
            return bytes([4])
        return int(self.target_life[data[0]]).to_bytes(4, "little")

    def _report(self, command: int) -> bytes:
        def u16(x: float) -> bytes:
            return min(0xFFFF, max(0, round(x))).to_bytes(2, "little")

        fixed = {128: b"CESAR", 129: b"1312", 130: b"01200", 198: b"A05",
                 154: bytes([self.regulation]), 155: bytes([self.control]), 156: bytes([self.active_target]),
                 210: bytes([0x20 if self.fault_oos else 0])}
        if command in fixed:
            return fixed[command]
        if command == 162:
            byte0 = 0x60 if self.rf else 0       # output on + RF on requested (no interlock parts them)
            byte0 |= 0x80 if self.rf and self._out_of_setpoint() else 0
            return bytes([byte0, 0, 0x20 if self.fault_oos else 0, 0])
        if command == 164:
            return self.setpoint.to_bytes(2, "little") + bytes([self.regulation])
        if command in (165, 166, 167, 168):
            return u16({165: self.forward, 166: self._reflected(), 167: self._delivered(), 168: 0.0}[command])
        if command in (201, 202, 203):
            return self.counters[command].to_bytes(4, "little")
        if command in (205, 206):
            value = self.run_s if command == 205 else self.energy_j / 3.6e6
            return int(value).to_bytes(4, "little")
        setting = {169: 4, 170: 5, 171: 6, 184: 15, 185: 16, 140: 40, 193: 93, 196: 96}[command]
        return self.settings[setting].to_bytes(SETTINGS[setting][0], "little")
