"""`labctl.Protocol`: a protocol file in a notebook, checked and planned exactly as `labctl validate|plan`.

`Protocol.load(path)` raises `FileProblemsError` (every problem with file:line:field, `.problems`) on a bad
file, like `labctl validate`; `.plan(station, **params)` returns the `labctl.protocol.plan.Plan` that `labctl
plan` prints (its `.errors`, `.warnings`, `.steps`, `.duration`, `.as_dict()`), the parameters overridden as
`-p name=value` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from labctl.protocol.loader import LoadedProtocol
    from labctl.protocol.plan import Plan
    from labctl.station import Station


def override_text(value: Any) -> str:
    """A parameter value as `-p` spells it: strings as written, numbers and booleans as YAML reads them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Protocol:
    """A loaded, validated protocol file (parameters resolved with their defaults)."""

    loaded: LoadedProtocol

    @classmethod
    def load(cls, path: str | Path, **params: Any) -> Protocol:
        """Load and check `path`; `params` override its parameters (`-p name=value`)."""
        from labctl.protocol import load_protocol

        return cls(load_protocol(path, {k: override_text(v) for k, v in params.items()}))

    @property
    def path(self) -> Path:
        return Path(self.loaded.path)

    @property
    def name(self) -> str:
        return self.loaded.model.name

    @property
    def sha256(self) -> str:
        return self.loaded.sha256

    @property
    def parameters(self) -> dict[str, Any]:
        """The resolved parameters (defaults with any overrides applied)."""
        return dict(self.loaded.parameters)

    @property
    def steps(self) -> list[Any]:
        """The typed step models (pydantic, quantities in SI units)."""
        return self.loaded.steps

    def with_params(self, **params: Any) -> Protocol:
        """The same file text with other parameter values (re-checked)."""
        from labctl.protocol.loader import parse_protocol

        merged = {**self.loaded.overrides, **{k: override_text(v) for k, v in params.items()}}
        return Protocol(parse_protocol(self.loaded.text, self.loaded.path, merged))

    def plan(self, station: str | Path | Station | None = None, **params: Any) -> Plan:
        """`labctl plan FILE --station STATION -p ...`: durations, consumables, limits, errors and warnings.
        A station file with problems raises `FileProblemsError`, as the CLI reports it."""
        from labctl.protocol import make_plan
        from labctl.station import Station, load_station

        proto = self.with_params(**params) if params else self
        st = station if isinstance(station, Station) or station is None else load_station(station)
        return make_plan(proto.loaded, st)

    def plan_frame(self, station: str | Path | Station | None = None, **params: Any) -> pd.DataFrame:
        """The plan's steps as a DataFrame (duration in s, errors and warnings per step)."""
        import pandas as pd

        p = self.plan(station, **params)
        return pd.DataFrame(
            [{"index": s.index, "line": s.line, "kind": s.kind, "what": s.summary, "duration_s": s.duration,
              "instruments": s.instruments, "warnings": s.warnings, "errors": s.errors} for s in p.steps]
        ).set_index("index")
