"""How each third-party package is pointed at a simulator link, whether a pty path or a `socket://` URL:
the packages themselves are used unmodified."""

from __future__ import annotations

import serial


def nesp_port(url: str, baud_rate: int = 19200):
    """A nesp-lib `Port` on `url`: its own class on a device path; on `socket://`, the same class with the
    serial object opened by pyserial's URL handler (nesp-lib's constructor takes device paths only)."""
    import nesp_lib

    if not url.startswith("socket://"):
        return nesp_lib.Port(url, baud_rate=baud_rate)
    port = nesp_lib.Port.__new__(nesp_lib.Port)
    port._Port__serial = serial.serial_for_url(url, baudrate=baud_rate, timeout=5)  # type: ignore[attr-defined]
    return port


def alicat_address(url: str) -> str:
    """numat alicat's address: a `/dev/...` path (its SerialClient) or `host:port` (its TcpClient)."""
    return url.removeprefix("socket://")


def visa_resource(url: str) -> str:
    """A pyvisa resource for PyMeasure: `ASRL<path>::INSTR` or `TCPIP::host::port::SOCKET`."""
    if url.startswith("socket://"):
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        return f"TCPIP::{host}::{port}::SOCKET"
    return f"ASRL{url}::INSTR"
