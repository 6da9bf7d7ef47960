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
  [verify on hardware];
- the rest of the TPG 36x mnemonic set (docs/instruments/tpg361.md) is a table of stored parameters with
  their ranges (`PARAMETERS`): a set is checked (inadmissible -> NAK, error word 0010), stored, and read back
  by ENQ. Display, filter and lock settings change nothing else; `CAL` scales the reading; `BAU` sets the rate
  a host must open `labsim://` with from its next open (TCP and pty links carry no rate); `SAV,1` restores
  the defaults;
- `COM[,n]` starts continuous mode (n: 0 = 100 ms, 1 = 1 s, 2 = 1 min): the measurement line is sent every
  interval without ENQ until the next message arrives; lines are made as the clock reaches them;
- `RST` (RS-232 test) echoes every byte it receives until ETX; `RES[,1]` lists the hardware errors present
  (`0`: none; the simulated unit has none) and `RES,1` clears the error word; `TMP` is the controller's inside
  temperature, the room (the world's ambient) plus 8 K of self-heating; `MAC` is a locally administered
  address; `PNR` the firmware number of `AYT`.
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
PNR = "010100"
MAC = "02:00:00:36:10:01"
SELF_HEATING_K = 8.0
COM_PERIOD_S = {0: 0.1, 1: 1.0, 2: 60.0}
BAUD = {0: 9600, 1: 19200, 2: 38400, 3: 57600, 4: 115200}


def _int_in(low: int, high: int):
    return lambda v: v if v.isdigit() and low <= int(v) <= high else None


def _cal(v: str) -> str | None:
    try:
        x = float(v)
    except ValueError:
        return None
    return f"{x:.3f}" if 0.1 <= x <= 10.0 else None


def _ipv4(v: str) -> bool:
    parts = v.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


def _eth(v: str) -> str | None:
    fields = v.split(",")
    if len(fields) != 4 or fields[0] not in ("0", "1") or not all(_ipv4(a) for a in fields[1:]):
        return None
    return v


def _cid(v: str) -> str | None:
    return v if 1 <= len(v) <= 4 and v.isascii() and v.isprintable() and "," not in v else None


#: stored parameters: mnemonic -> (power-up default, check of a new value returning its stored text or None)
PARAMETERS = {
    "BAU": ("0", _int_in(0, 4)),                 # 9600 / 19200 / 38400 / 57600 / 115200 baud
    "CAL": ("1.000", _cal),                      # calibration factor 0.100..10.000
    "CID": ("PKR", _cid),                        # measurement point name, 4 characters
    "DCB": ("0", _int_in(0, 2)),                 # bargraph: off / full range / one decade
    "DCC": ("10", _int_in(0, 20)),               # display contrast
    "DCD": ("2", _int_in(2, 3)),                 # display digits
    "DCS": ("0", _int_in(0, 3)),                 # screensave: off / 10 min / 30 min / 1 h
    "ETH": ("1,0.0.0.0,0.0.0.0,0.0.0.0", _eth),  # DHCP or static IP, subnet, gateway
    "FIL": ("1", _int_in(0, 2)),                 # filter: fast / standard / slow
    "FSR": ("5", _int_in(0, 13)),                # full scale of a linear gauge (5 = 1000 mbar)
    "LNG": ("0", _int_in(0, 2)),                 # English / German / French
    "LOC": ("0", _int_in(0, 1)),                 # keypad lock
    "NAD": ("0", _int_in(0, 15)),                # RS-485 node address
    "PUC": ("1", _int_in(0, 1)),                 # underrange control
    "WDT": ("1", _int_in(0, 1)),                 # error acknowledge: manual / automatic
}
#: read-only mnemonics answered from the instrument's state
READ_ONLY = ("PR1", "TID", "AYT", "ERR", "TMP", "MAC", "PNR")


class Tpg361Sim(DeviceCore):
    """One TPG 361 controller with one gauge reading `world.chamber_pressure`."""

    SERIAL = SerialSettings(9600)

    def __init__(self, name: str = "tpg361", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, gauge: str = "PKR") -> None:
        self.gauge = gauge            # what TID reports; "noSEn" = no gauge plugged in
        self.unit = 0                 # non-volatile parameters
        self.sensor_on = True
        self.sensor_fault = False     # a test can break the filament: status 3
        self.params = {name: default for name, (default, _check) in PARAMETERS.items()}   # non-volatile
        super().__init__(name, clock=clock, world=world if world is not None else SimpleWorld(), seed=seed)

    def reset(self) -> None:
        self.error = "0000"
        self.pending: tuple[str, str | None] | None = None   # accepted mnemonic and its parameter
        self.com_period: float | None = None   # continuous mode: seconds between lines
        self.com_next = 0.0
        self.echoing = False                   # RS-232 test (RST) until ETX

    def check_line(self, settings: SerialSettings) -> None:
        """The rate is the stored `BAU` (9600 from the factory), 8N1."""
        self.SERIAL = SerialSettings(BAUD[int(self.params["BAU"])])  # type: ignore[misc]
        super().check_line(settings)

    def rejects(self, reply: bytes) -> bool:
        """The TPG refuses a mnemonic (unknown, bad parameter, no hardware) with NAK."""
        return NAK in reply

    # -- continuous mode: lines are made as the clock reaches them ---------------------------------------

    def _continuous(self) -> None:
        if self.com_period is None:
            return
        now = self.now()
        while self.com_next <= now:
            self.emit(self._measurement_at(self.com_next).encode("ascii") + EOL, at=self.com_next)
            self.com_next += self.com_period

    def read(self, limit: int = 1 << 20) -> bytes:
        with self.lock:
            self._continuous()
        return super().read(limit)

    def available(self) -> int:
        with self.lock:
            self._continuous()
        return super().available()

    def next_release(self) -> float | None:
        nxt = super().next_release()
        if self.com_period is not None:
            return self.com_next if nxt is None else min(nxt, self.com_next)
        return nxt

    # -- framing ----------------------------------------------------------------------------------------

    def split(self) -> Iterator[bytes]:
        """ENQ is a message of its own; ETX clears the buffer; mnemonics end at CR, LF eaten."""
        while self._inbuf:
            if self.echoing:
                byte = bytes(self._inbuf[:1])
                del self._inbuf[0]
                if byte == ETX:
                    self.echoing = False
                else:
                    self.emit(byte)
                continue
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
        self._continuous()
        self.com_period = None                 # any message ends continuous mode
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
        if mnemonic == "COM":
            self.com_period = COM_PERIOD_S[int(param or "1")]
            self.com_next = self.now()
        if mnemonic == "RST":
            self.echoing = True
        return ACK + EOL

    def error_reply(self, message: bytes) -> bytes | None:
        """INSTRUMENT_ERROR: the controller reports an internal error and refuses the command."""
        self.error = CONTROLLER
        self.pending = None
        return NAK + EOL

    def _accept(self, mnemonic: str, param: str | None) -> str | None:
        """Apply a mnemonic; return the error word if it is refused."""
        if mnemonic in READ_ONLY:
            return None if param is None else PARAMETER
        if mnemonic in PARAMETERS:
            if param is None:
                return None
            if self.params["LOC"] == "1" and mnemonic != "LOC":
                return PARAMETER               # keypad/parameter lock on
            value = PARAMETERS[mnemonic][1](param)
            if value is None:
                return PARAMETER
            self.params[mnemonic] = value
            return None
        if mnemonic == "COM":
            return None if param is None or param in ("0", "1", "2") else PARAMETER
        if mnemonic == "SAV":
            if param not in ("0", "1"):
                return PARAMETER
            if param == "1":
                self.params = {name: default for name, (default, _check) in PARAMETERS.items()}
                self.unit = 0
            return None
        if mnemonic == "RES":
            return None if param in (None, "1") else PARAMETER
        if mnemonic == "RST":
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
        if mnemonic in PARAMETERS:
            return self.params[mnemonic]
        if mnemonic in ("COM", "RST"):
            return self._measurement()
        if mnemonic == "TMP":
            return f"{getattr(self.world, 'ambient_c', 22.0) + SELF_HEATING_K:.0f}"
        if mnemonic == "MAC":
            return MAC
        if mnemonic == "PNR":
            return PNR
        if mnemonic == "SAV":
            return param or "0"
        if mnemonic == "RES":
            if param == "1":
                self.error = "0000"
            return "0"                 # the list of hardware errors present: the simulated unit has none
        word, self.error = self.error, "0000"   # ERR: the error word is cancelled when read
        return word

    def _measurement(self) -> str:
        return self._measurement_at(self.now())

    def _measurement_at(self, t: float) -> str:
        if self.gauge == "noSEn":
            return "5,+0.0000E+00"
        if self.gauge == "noid":
            return "6,+0.0000E+00"
        if self.sensor_fault:
            return "3,+0.0000E+00"
        if not self.sensor_on:
            return "4,+0.0000E+00"
        pa = self.world.chamber_pressure(t) * float(self.params["CAL"])  # type: ignore[union-attr]
        status = 0
        if pa < RANGE_PA[0]:
            status, pa = 1, RANGE_PA[0]
        elif pa > RANGE_PA[1]:
            status, pa = 2, RANGE_PA[1]
        volts = self.unit == 5
        value = 1.667 * math.log10(pa / 100.0) + 6.02 if volts else pa / PA_PER_UNIT[self.unit]
        return f"{status},{value:+.4E}"
