"""labctl.protocol: protocol files (models, units, loader with file:line errors, limits, plan, schema).

Public API: `load_protocol(path, overrides) -> LoadedProtocol`, `ProtocolFileError` (`.problems`),
`make_plan(loaded, station) -> Plan`, `protocol_schema()`.
"""

from __future__ import annotations

from typing import Any

from labctl.protocol.loader import LoadedProtocol, load_protocol, parse_overrides, parse_protocol
from labctl.protocol.problems import Problem, ProtocolFileError

__all__ = [
    "LoadedProtocol",
    "Problem",
    "ProtocolFileError",
    "load_protocol",
    "make_plan",
    "parse_overrides",
    "parse_protocol",
    "protocol_schema",
]


def make_plan(loaded: LoadedProtocol, station: Any = None) -> Any:
    from labctl.protocol.plan import make_plan as _make_plan

    return _make_plan(loaded, station)


def protocol_schema() -> dict[str, Any]:
    """JSON Schema of protocol files as written (quantities are strings, steps are one-key mappings)."""
    from labctl.protocol.schema import protocol_schema as _schema

    return _schema()
