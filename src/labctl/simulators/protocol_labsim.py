"""pyserial URL handler for `labsim://NAME`: an in-process link to a registered simulator core.

pyserial imports this module for `labsim://` URLs once `labctl.simulators` is in
`serial.protocol_handler_packages` (see `labctl.drivers.transport.register_simulator_urls`); pyvisa-py's
`ASRLlabsim://NAME::INSTR` goes through the same handler. Waiting happens on the core's clock, so a dry run
on a virtual clock never sleeps for real.
"""

from __future__ import annotations

from urllib.parse import urlparse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from labctl.drivers.transport import SerialSettings
from labctl.simulators import registry
from labctl.simulators.core import DeviceCore


class Serial(SerialBase):
    """A pyserial port whose other end is a `DeviceCore`."""

    core: DeviceCore | None = None

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port already open")
        name = urlparse(str(self._port)).netloc or str(self._port).removeprefix("labsim://")
        core = registry.get(name)
        if core is None:
            raise SerialException(f"no simulator named {name!r} is running (have: {registry.names()})")
        self.core = core
        core.reconnect()
        self.is_open = True
        self._reconfigure_port()

    def _reconfigure_port(self) -> None:
        if self.core is not None:
            self.core.check_line(SerialSettings(self._baudrate, self._bytesize, self._parity, self._stopbits,
                                                self._xonxoff, self._rtscts))

    def close(self) -> None:
        self.is_open = False
        self.core = None

    def _core(self) -> DeviceCore:
        if not self.is_open or self.core is None:
            raise PortNotOpenError()
        if not self.core.connected:
            raise SerialException(f"simulated {self.core.name} disconnected")
        return self.core

    @property
    def in_waiting(self) -> int:
        return self._core().available()

    def read(self, size: int = 1) -> bytes:
        core = self._core()
        clock = core.clock
        deadline = clock.monotonic() + (1e9 if self._timeout is None else self._timeout)
        buf = bytearray()
        while len(buf) < size:
            buf += core.read(size - len(buf))
            if len(buf) >= size:
                break
            if not core.connected:
                raise SerialException(f"simulated {core.name} disconnected")
            now = clock.monotonic()
            if now >= deadline:
                break
            nxt = core.next_release()
            target = deadline if nxt is None or nxt > deadline else nxt
            if target > now:
                clock.sleep(target - now)
        return bytes(buf)

    def write(self, data: bytes) -> int:
        core = self._core()
        try:
            core.write(bytes(data))
        except ConnectionError as exc:
            raise SerialException(str(exc)) from exc
        return len(data)

    def reset_input_buffer(self) -> None:
        self._core().discard_input()

    def reset_output_buffer(self) -> None:
        pass

    def flush(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass
