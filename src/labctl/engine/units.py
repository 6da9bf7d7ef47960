"""Parse a quantity string to an SI float (for station values written as text, e.g. "0.5 M", "12 mm")."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from labctl.errors import ConfigError


@lru_cache(maxsize=1)
def _ureg() -> Any:
    import pint

    ureg = pint.UnitRegistry()
    ureg.define("M = mol / L")
    ureg.define("sccm = cm^3 / min")
    return ureg


def parse_si(text: str) -> float:
    """'0.5 M' -> 500.0 (mol/m^3); '12 mm' -> 0.012. Temperatures in degC stay degC."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    if s.endswith(("degC", "°C")):
        return float(s.removesuffix("degC").removesuffix("°C").strip())
    try:
        q = _ureg().Quantity(s)
        return float(q.to_base_units().magnitude)
    except Exception as exc:
        raise ConfigError(f"cannot read quantity {text!r}: {exc}") from exc
