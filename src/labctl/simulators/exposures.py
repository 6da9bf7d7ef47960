"""Expose a device core outside the process: a TCP server on 127.0.0.1 and a pseudo-terminal.

Both run a small thread that moves bytes between the link and the core and releases timed output when its
time comes on the core's clock. A TCP link stands in for a SCPI raw socket (VISA `TCPIP::host::port::SOCKET`)
or for any serial instrument through pyserial's `socket://`. A pty gives a device path (`/dev/pts/N`) that
any program can open as a serial port.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import tty

from labctl.simulators.core import DeviceCore

POLL_S = 0.002  # how often timed output and disconnect faults are checked


class Exposure:
    """A running exposure; `close()` stops its thread."""

    address: str

    def __init__(self, core: DeviceCore) -> None:
        self.core = core
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-{core.name}", daemon=True)

    def start(self) -> Exposure:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._close_fds()

    def __enter__(self) -> Exposure:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_time(self) -> float:
        nxt = self.core.next_release()
        if nxt is None:
            return 0.05
        poll = POLL_S if self.core.clock.is_virtual else 0.05
        return min(0.05, max(0.0, nxt - self.core.now()), poll)

    def _pump(self, fd_read, fd_send, readable_fd: int) -> bool:
        """Feed what arrived to the core, send what it released. False once the link is gone."""
        ready, _, _ = select.select([readable_fd], [], [], self._wait_time())
        if ready:
            data = fd_read()
            if not data:
                return False
            try:
                self.core.write(data)
            except ConnectionError:
                return False
        if not self.core.connected:
            return False
        out = self.core.read()
        if out:
            fd_send(out)
        return True

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _close_fds(self) -> None:
        pass


class TcpExposure(Exposure):
    """A TCP server on 127.0.0.1 (port 0 = let the OS choose), one client at a time."""

    def __init__(self, core: DeviceCore, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(core)
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.05)
        self.host, self.port = self._server.getsockname()[:2]
        self.address = f"{self.host}:{self.port}"

    @property
    def visa_resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    @property
    def serial_url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.core.reconnect()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                while not self._stop.is_set():
                    try:
                        if not self._pump(lambda c=conn: c.recv(65536), conn.sendall, conn.fileno()):
                            break
                    except OSError:
                        break

    def _close_fds(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()


class PtyExposure(Exposure):
    """A pseudo-terminal: the host opens `path`; the core sits on the master side. POSIX only.

    A DISCONNECT fault closes the master, so the host's next read or write fails as with an unplugged
    adapter; the exposure does not come back (a new pty would have a new path).
    """

    def __init__(self, core: DeviceCore) -> None:
        super().__init__(core)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation before the host opens the port
        self.path = os.ttyname(self._slave)
        self.address = self.path

    @property
    def serial_url(self) -> str:
        """What pyserial opens (`serial_for_url` takes a device path): as `TcpExposure.serial_url`."""
        return self.path

    def _run(self) -> None:
        def read() -> bytes:
            try:
                return os.read(self._master, 65536)
            except OSError:
                return b""

        def send(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(self._master, view)
                view = view[n:]

        while not self._stop.is_set():
            try:
                if not self._pump(read, send, self._master):
                    break
            except OSError:
                break
        if not self._stop.is_set():  # the link went away (disconnect fault): drop the master side
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1


def serve_tcp(core: DeviceCore, port: int = 0) -> TcpExposure:
    return TcpExposure(core, port=port).start()  # type: ignore[return-value]


def serve_pty(core: DeviceCore) -> PtyExposure:
    return PtyExposure(core).start()  # type: ignore[return-value]
