"""The engine reads the station model itself (`labctl.station.Station`); this name stays only for callers that
still import it (`engine/recovery.py`), and is the same model, not a copy."""

from __future__ import annotations

from labctl.station import Station

StationInfo = Station


def station_info(station: Station, *, text: str = "") -> Station:
    """`station` itself (it already carries its source text)."""
    if not isinstance(station, Station):
        raise TypeError(f"expected a labctl.station.Station, got {type(station).__name__}")
    return station
