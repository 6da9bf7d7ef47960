"""Simulated Teledyne 3000TA: the status line every 2 s on the clock, and the `as`/`az`/`st` inputs.

Facts as in `labctl_glovebox.teledyne`. Where the manual is silent this core chooses, and says so:
- lines are scheduled one period ahead of the clock, so a host waiting on the virtual clock finds the next
  one; at most `BACKLOG` lines wait unread (older ones are lost, as a UART buffer overruns);
- the analyzer auto-ranges: LO 0-10 PPM below 10 ppm, MED 0-100 PPM below 100 ppm, else HI 0-1000 PPM;
- `az`/`as` take 60 s each, during which nothing is sent (the manual: nothing in zero or span mode);
- the O2 level is the world's `glovebox_o2_ppm` when it has one, else `ppm`, with 1 % noise.
"""

from __future__ import annotations

from collections.abc import Iterator

from labctl.clock import Clock
from labctl.drivers.transport import SerialSettings
from labctl.simulators.core import DeviceCore

LABCTL_PLUGIN_API = 1
PERIOD_S = 2.0
BACKLOG = 16
CAL_S = 60.0
RANGES = ((10.0, "LO", "0-10 PPM"), (100.0, "MED", "0-100 PPM"), (1000.0, "HI", "0-1000 PPM"))


def status_line(ppm: float) -> bytes:
    """The status line for `ppm` (auto range)."""
    rng, span = next(((r, s) for top, r, s in RANGES if ppm < top), ("HI", "0-1000 PPM"))
    return f"ST, {ppm:.2f} PPM, RA-{rng} {span}, ".encode("ascii") + b"\r\n"


class Teledyne3000TASim(DeviceCore):
    """One 3000TA sampling the glovebox."""

    SERIAL = SerialSettings(2400)
    TERMINATORS = (b"\r",)

    def __init__(self, name: str = "o2", *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0, ppm: float = 0.5) -> None:
        self.ppm = ppm
        super().__init__(name, clock=clock, world=world, seed=seed)

    def reset(self) -> None:
        self.streaming = True
        self.quiet_until = self.now() + 0.0
        self.next_line = self.now() + PERIOD_S

    def level(self) -> float:
        base = getattr(self.world, "glovebox_o2_ppm", None)
        base = self.ppm if base is None else float(base)
        return max(0.0, base * (1.0 + 0.01 * self.rng.gauss(0.0, 1.0)))

    def _schedule(self) -> None:
        """Emit the lines due up to one period ahead; drop what a real buffer would have lost."""
        horizon = self.now() + PERIOD_S
        if self.next_line < self.now() - BACKLOG * PERIOD_S:
            skipped = int((self.now() - BACKLOG * PERIOD_S - self.next_line) // PERIOD_S) + 1
            self.next_line += skipped * PERIOD_S
        while self.next_line <= horizon:
            if self.streaming and self.next_line >= self.quiet_until:
                self.emit(status_line(self.level()), at=self.next_line)
            self.next_line += PERIOD_S
        self._out = self._out[-BACKLOG:]

    def read(self, limit: int = 1 << 20) -> bytes:
        with self.lock:
            self._schedule()
            return super().read(limit)

    def available(self) -> int:
        with self.lock:
            self._schedule()
            return super().available()

    def next_release(self) -> float | None:
        with self.lock:
            self._schedule()
            return super().next_release()

    def split(self) -> Iterator[bytes]:
        for msg in super().split():
            yield msg.lstrip(b"\n")

    def handle(self, message: bytes) -> bytes | None:
        cmd = message.strip().lower()
        if cmd == b"st":
            self.streaming = not self.streaming
            self.cancel_pending()
        elif cmd in (b"as", b"az"):
            self.quiet_until = self.now() + CAL_S
            self.cancel_pending()
        return None  # the analyzer never answers an input
