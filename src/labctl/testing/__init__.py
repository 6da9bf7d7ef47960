"""Test helpers for driver authors (also for third-party drivers).

`ScriptedTransport` replays a byte-exact transcript: each `write` must equal the next expected host bytes,
and reads return the scripted instrument reply. It checks a driver's exact bytes (terminators included)
without a simulator, the way pymeasure's `expected_protocol` does.

Submodules: `labctl.testing.conformance` (one suite for every instrument: driver against simulator over every
transport, the fault matrix) and `labctl.testing.replay` (a run's stored I/O transcript as a regression test).
"""

from __future__ import annotations

from collections.abc import Iterable

from labctl.clock import VirtualClock
from labctl.drivers.transport import Transport


class TranscriptMismatch(AssertionError):
    """The driver sent bytes other than the transcript expects."""


class ScriptedTransport(Transport):
    """A transport whose peer follows `script`: pairs of (bytes the host must send, bytes the peer answers).

    Use `None` as the host side for bytes the instrument sends unprompted, and `b""` as the reply for
    commands that get none. `assert_done()` checks the whole script was used.
    """

    def __init__(self, script: Iterable[tuple[bytes | None, bytes]], name: str = "scripted",
                 timeout: float = 1.0) -> None:
        super().__init__(name, clock=VirtualClock(), timeout=timeout)
        self.script = list(script)
        self.sent: list[bytes] = []
        self._pending = bytearray()
        self._tx = bytearray()
        self._open = False
        self._release_unprompted()

    def _release_unprompted(self) -> None:
        while self.script and self.script[0][0] is None:
            self._pending += self.script.pop(0)[1]

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def _write(self, data: bytes) -> None:
        self.sent.append(data)
        self._tx += data
        while self.script and self.script[0][0] is not None and self._tx.startswith(self.script[0][0]):
            expected, reply = self.script.pop(0)
            del self._tx[: len(expected)]
            self._pending += reply
            self._release_unprompted()
        if self._tx and not any(e is not None and e.startswith(bytes(self._tx)) for e, _ in self.script[:1]):
            want = self.script[0][0] if self.script else None
            raise TranscriptMismatch(f"driver sent {bytes(self._tx)!r}, transcript expects {want!r}")

    def _read_raw(self, timeout: float, limit: int) -> bytes:
        if not self._pending:
            self.clock.sleep(timeout)
            return b""
        data = bytes(self._pending[:limit])
        del self._pending[:limit]
        return data

    def _flush_raw(self) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def assert_done(self) -> None:
        if self.script or self._tx:
            raise TranscriptMismatch(
                f"transcript not finished: next {self.script[:1]!r}, unsent {bytes(self._tx)!r}")
