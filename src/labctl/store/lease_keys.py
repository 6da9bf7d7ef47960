"""Lease keys name the physical instrument, not the spelling of its link.

`link_key` resolves a station link to a canonical address before it is leased: host names through
getaddrinfo (the lowest IPv4 address it has, else the lowest IPv6; `::1` counts as `127.0.0.1`), device
paths through their symlinks (`os.path.realpath`), VISA `TCPIP::host::port::SOCKET` as `socket://ip:port`,
`ASRL/dev/x::INSTR` as the device, and case-insensitive parts in one case. So
`socket://localhost:5025`, `socket://127.0.0.1:5025` and `TCPIP0::localhost::5025::SOCKET` are one key,
and so are `/dev/ttyUSB0` and `/dev/serial/by-id/usb-...` pointing at it. A name that does not resolve
keeps its spelling (lowercased): connecting to it will fail anyway.

`identity_key` is the second lease a run takes once an instrument has identified: its identification
string, for drivers whose identification carries a serial number (`IDENTITY_IS_UNIQUE`), so the same
instrument reached through two different links (USB and LAN) cannot be driven by two runs at once.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from typing import Any
from urllib.parse import urlsplit

IN_PROCESS = ("labsim://", "asrllabsim://")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
_VISA_SOCKET = re.compile(r"^tcpip\d*::([^:]+)::(\d+)::socket$", re.IGNORECASE)
_VISA_INSTR = re.compile(r"^tcpip\d*::([^:]+)(?:::([^:]+))?::instr$", re.IGNORECASE)
_VISA_SERIAL = re.compile(r"^asrl(/[^:]+)::instr$", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def canonical_host(host: str) -> str:
    """The address `host` resolves to (see the module); its lowercased name if it does not resolve."""
    name = host.strip().lower()
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return name
    addrs = {ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}
    addrs = {LOOPBACK if a == ipaddress.ip_address("::1") else a for a in addrs}
    if not addrs:
        return name
    v4 = sorted(a for a in addrs if a.version == 4)
    return str(v4[0] if v4 else sorted(addrs)[0])


def _device(path: str) -> str:
    return os.path.realpath(path) if path.startswith("/") else path


def link_key(link: str) -> str:
    """The canonical spelling of a station link (a serial port, a pyserial URL or a VISA resource)."""
    text = link.strip()
    low = text.lower()
    if not text or low.startswith(IN_PROCESS):
        return text  # simulators inside this process: nothing else can reach them
    if low.startswith(("socket://", "rfc2217://")):
        try:
            url = urlsplit(text)
            host, port = url.hostname, url.port
        except ValueError:
            return text
        if host and port is not None:
            return f"{url.scheme.lower()}://{canonical_host(host)}:{port}"  # options are not the address
        return text
    if m := _VISA_SOCKET.match(text):
        return f"socket://{canonical_host(m[1])}:{int(m[2])}"
    if m := _VISA_INSTR.match(text):
        return f"vxi11://{canonical_host(m[1])}/{(m[2] or 'inst0').lower()}"
    if m := _VISA_SERIAL.match(text):
        return _device(m[1])
    if text.startswith("/"):
        return _device(text)
    return text


def lease_key(link: str, address: int | None, role: str) -> str:
    """The lease of one station role: its canonical link (and network address on a shared link)."""
    key = link_key(link) if link else ""
    return key + (f"#{address}" if address is not None else "") or role


def identity_key(instrument: Any, identity: str, link: str) -> str | None:
    """The identity lease of an instrument that identified as `identity`, or None when its identification
    names no single unit (no serial number) or it is simulated inside this process."""
    if not getattr(type(instrument), "IDENTITY_IS_UNIQUE", False) or link.lower().startswith(IN_PROCESS):
        return None
    ident = " ".join(str(identity).split())
    return f"identity:{ident}" if ident else None
