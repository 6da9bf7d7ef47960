"""A run's stored I/O transcript as a regression test of the drivers (PyLabRobot's io/validation idea).

Every exchange of a run is in the store (`labctl runs io RUN`, `Store.io(run_id)`): what the host sent (`tx`),
each reply as the driver took it (`rx`), and the bytes a driver discarded or that came too late (`event` rows
noted `discarded` / `timeout: ...`). `transcript_script` turns one link's rows back into a `ScriptedTransport`
script; `scripted_links` does it for every link of a run. Run the same protocol again with those transports in
place of the instruments (`replaying` patches the engine's `open_link`) and a driver that now sends other
bytes fails on the first one (`TranscriptMismatch`), one that cannot parse a recorded reply fails the run, and
`assert_done()` proves every recorded exchange was replayed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from labctl.testing import ScriptedTransport

Script = list[tuple[bytes | None, bytes]]
#: event notes whose bytes came from the instrument (a drained stray reply, what a timed-out read had got)
INSTRUMENT_EVENTS = ("discarded", "timeout")


def _data(row: Mapping[str, Any]) -> bytes:
    """A row's bytes: `bytes` from `Store.io`, or `data` as latin-1 text from `labctl runs io --json`."""
    if row.get("bytes") is not None:
        return bytes(row["bytes"])
    data = row.get("data") or ""
    return data.encode("latin-1") if isinstance(data, str) else bytes(data)


def transcript_script(rows: Iterable[Mapping[str, Any]], instrument: str | None = None) -> Script:
    """The ScriptedTransport script of one link: each host write with every instrument byte recorded after it
    (until the next write) as its reply; instrument bytes before the first write are unprompted (`None`)."""
    script: Script = []
    host: bytes | None = None
    reply = bytearray()
    for row in rows:
        if instrument is not None and row["instrument"] != instrument:
            continue
        direction, data = row["direction"], _data(row)
        if direction == "tx":
            if host is not None or reply:
                script.append((host, bytes(reply)))
            host, reply = data, bytearray()
        elif direction == "rx" or (direction == "event" and data
                                   and str(row.get("note", "")).startswith(INSTRUMENT_EVENTS)):
            reply += data
    if host is not None or reply:
        script.append((host, bytes(reply)))
    return script


def scripted_links(rows: Iterable[Mapping[str, Any]]) -> dict[str, Script]:
    """One script per link (the transport's name, e.g. `pump.stock+pump.solvent` for a shared port)."""
    rows = list(rows)
    names = list(dict.fromkeys(row["instrument"] for row in rows))
    return {name: transcript_script(rows, name) for name in names}


@contextlib.contextmanager
def replaying(scripts: Mapping[str, Script]) -> Iterator[dict[str, ScriptedTransport]]:
    """Within the block, the engine opens each station link as a ScriptedTransport playing its recorded
    script (on the run's clock, with the run's recorder); yields the transports opened, by link name. A link
    with no recorded exchange gets an empty script: the first byte the replayed run sends it fails."""
    from labctl.engine import instruments

    opened: dict[str, ScriptedTransport] = {}
    real = instruments.open_link

    def open_scripted(name: str, *, clock: Any = None, timeout: float = 1.0, recorder: Any = None,
                      **_link: Any) -> ScriptedTransport:
        transport = ScriptedTransport(scripts.get(name, []), name=name, timeout=timeout)
        if clock is not None:
            transport.clock = clock
        transport.recorder = recorder
        opened[name] = transport
        return transport

    instruments.open_link = open_scripted  # type: ignore[assignment]
    try:
        yield opened
    finally:
        instruments.open_link = real  # type: ignore[assignment]
