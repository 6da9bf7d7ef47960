"""Simulated Pfeiffer TPG 361 with a PKR full-range gauge on the shared chamber, byte for byte.

Facts from `reference/instruments.md` §4.1 (TPG 36x/26x manuals; InstrumentKit's transcript):
- host `MNEMONIC[,params]<CR>[<LF>]` -> `<ACK><CR><LF>` or `<NAK><CR><LF>`; host `<ENQ>` -> data `<CR><LF>`;
  ETX (`\\x03`) clears the input buffer; ENQ after a set command returns the stored value;
- `PR1` -> `status,sx.xxxxEsxx` in the current unit, status 0 ok, 1 underrange, 2 overrange, 3 sensor error,
  4 sensor off, 5 no sensor, 6 identification error;
- `UNI[,n]` 0 mbar, 1 Torr, 2 Pa, 3 Micron, 4 hPa, 5 V; `TID`; `SEN[,n]` (0 cannot switch, 1 off, 2 on);
  `AYT`; `ERR` error word (`1000` controller, `0100` no hardware, `0010` inadmissible parameter, `0001`
  syntax), cleared when read.

Where the manuals are silent this core chooses, and says so:
- a refused mnemonic (unknown: syntax; bad parameter: inadmissible; `PR2` on this one-gauge unit: no
  hardware) is answered NAK and sets the error word; ENQ without an accepted mnemonic is answered NAK;
- the unit and the sensor switch are kept over a power cycle (non-volatile parameters);
- the PKR range is 5e-9 .. 1000 mbar (PKR 251 data sheet); outside it the status is under/overrange and the
  value is the range end; a switched-off sensor reports status 4 with value 0;
- `stuck busy` is modelled as a controller whose front panel sits in a parameter menu: it NAKs everything;
- the `voltage` display (UNI,5) reports the PKR output law U = 1.667 log10(p/mbar) + 6.02
  [verify on hardware].
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore
from labctl.simulators.world import SimpleWorld

ACK, NAK, ENQ, ETX = b"\x06", b"\x15", b"\x05", b"\x03"
EOL = b"\r\n"
PA_PER_UNIT = {0: 100.0, 1: 101325.0 / 760.0, 2: 1.0, 3: 101325.0 / 760.0 / 1000.0, 4: 100.0}
RANGE_PA = (5e-7, 1e5)
SYNTAX, PARAMETER, NO_HARDWARE, CONTROLLER = "0001", "0010", "0100", "1000"
AYT = "TPG361,PTG28290,44990000,010100,010100"


class Tpg361Sim(DeviceCore):
    """One TPG 361 controller with one gauge reading `world.chamber_pressure`."""

    SERIAL = SerialSettings(9600)

    def __init__(self, name: str = "tpg361", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, gauge: str = "PKR") -> None:
        self.gauge = gauge            # what TID reports; "noSEn" = no gauge plugged in
        self.unit = 0                 # non-volatile parameters
        self.sensor_on = True
        self.sensor_fault = False     # a test can break the filament: status 3
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.error = "0000"
        self.pending: tuple[str, str | None] | None = None   # accepted mnemonic and its parameter

    # -- framing ----------------------------------------------------------------------------------------

    def split(self) -> Iterator[bytes]:
        """ENQ is a message of its own; ETX clears the buffer; mnemonics end at CR, LF eaten."""
        while self._inbuf:
            if self._inbuf[0:1] == b"\n":
                del self._inbuf[0]
                continue
            etx = self._inbuf.find(ETX)
            enq = self._inbuf.find(ENQ)
            cr = self._inbuf.find(b"\r")
            if etx >= 0 and (cr < 0 or etx < cr) and (enq < 0 or etx < enq):
                del self._inbuf[: etx + 1]
                self.pending = None
                continue
            if enq >= 0 and (cr < 0 or enq < cr):
                del self._inbuf[: enq + 1]  # ENQ ends anything before it (garbage is dropped)
                yield ENQ
                continue
            if cr < 0:
                return
            end = cr + 2 if self._inbuf[cr + 1: cr + 2] == b"\n" else cr + 1
            msg = bytes(self._inbuf[:end])
            del self._inbuf[:end]
            yield msg

    # -- behaviour --------------------------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes | None:
        if self.stuck_busy:
            return NAK + EOL
        if message == ENQ:
            if self.pending is None:
                return NAK + EOL
            return self._data(*self.pending).encode("ascii") + EOL
        text = message.rstrip(b"\r\n").decode("ascii", "replace").strip().upper()
        mnemonic, _, param = text.partition(",")
        refusal = self._accept(mnemonic, param if _ else None)
        if refusal:
            self.error = refusal
            self.pending = None
            return NAK + EOL
        self.pending = (mnemonic, param if _ else None)
        return ACK + EOL

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: the controller reports an internal error and refuses the command."""
        self.error = CONTROLLER
        self.pending = None
        return NAK + EOL

    def _accept(self, mnemonic: str, param: str | None) -> str | None:
        """Apply a mnemonic; return the error word if it is refused."""
        if mnemonic in ("PR1", "TID", "AYT", "ERR"):
            return None if param is None else PARAMETER
        if mnemonic in ("PR2", "PRX"):
            return NO_HARDWARE
        if mnemonic == "UNI":
            if param is None:
                return None
            if param.isdigit() and int(param) in range(6):
                self.unit = int(param)
                return None
            return PARAMETER
        if mnemonic == "SEN":
            if param is None:
                return None
            if param in ("0", "1", "2"):
                if param != "0":
                    self.sensor_on = param == "2"
                return None
            return PARAMETER
        return SYNTAX

    def _data(self, mnemonic: str, param: str | None) -> str:
        if mnemonic == "PR1":
            return self._measurement()
        if mnemonic == "UNI":
            return str(self.unit)
        if mnemonic == "TID":
            return self.gauge
        if mnemonic == "SEN":
            return "2" if self.sensor_on else "1"
        if mnemonic == "AYT":
            return AYT
        word, self.error = self.error, "0000"   # ERR: the error word is cancelled when read
        return word

    def _measurement(self) -> str:
        if self.gauge == "noSEn":
            return "5,+0.0000E+00"
        if self.gauge == "noid":
            return "6,+0.0000E+00"
        if self.sensor_fault:
            return "3,+0.0000E+00"
        if not self.sensor_on:
            return "4,+0.0000E+00"
        pa = self.world.chamber_pressure(self.now())  # type: ignore[union-attr]
        status = 0
        if pa < RANGE_PA[0]:
            status, pa = 1, RANGE_PA[0]
        elif pa > RANGE_PA[1]:
            status, pa = 2, RANGE_PA[1]
        volts = self.unit == 5
        value = 1.667 * math.log10(pa / 100.0) + 6.02 if volts else pa / PA_PER_UNIT[self.unit]
        return f"{status},{value:+.4E}"
