"""Where a campaign's test runs go: one station, or a multi-channel cycler (a *rack*) whose channels are each
a station of their own.

A rack file lists its channels, each a station file (paths relative to the rack file):

```yaml
labctl_rack: 1
name: 8-channel cycler
channels: {ch1: cycler-8ch/ch1.yaml, ch2: cycler-8ch/ch2.yaml}
```
A channel is a whole station (a potentiostat, an EIS analyser, the cell area), so a test run on a channel is
an ordinary `labctl run --station CHANNEL`: the run leases that channel's instruments, and a second run on the
same channel is refused by the lease, whoever started it. The campaign runner serves each channel with its
own one-slot dispatcher, so a test request takes any free channel and never two runs share one. Channels
must not share an instrument (checked here: two channels with one lease key would be one channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from labctl.errors import ConfigError
from labctl.protocol.fields import STRICT, Label, Name
from labctl.protocol.problems import FileProblemsError, Problem
from labctl.protocol.safeyaml import load, read_text
from labctl.protocol.validation import validate


class RackFileError(FileProblemsError):
    """A rack (multi-channel cycler) file that cannot be used."""

    kind = "rack file"


class _RackFile(BaseModel):
    model_config = STRICT
    labctl_rack: int = Field(description="format version: 1")
    name: Label
    description: str | None = None
    channels: dict[Name, str] = Field(min_length=1, max_length=256)


@dataclass(frozen=True)
class Channel:
    name: str
    path: Path


@dataclass(frozen=True)
class Rack:
    """Test stations: one channel for a plain station file, N for a rack file."""

    name: str
    path: Path
    channels: list[Channel]

    @property
    def first(self) -> Path:
        return self.channels[0].path


def is_rack(path: str | Path) -> bool:
    """Whether `path` is a rack file (its mapping has `labctl_rack`); anything else is read as a station."""
    text, _ = read_text(path, str(path))
    if text is None:
        return False
    data = load(text, str(path)).data
    return isinstance(data, dict) and "labctl_rack" in data


def load_rack(path: str | Path) -> Rack:
    """A rack file's channels (each station loaded and checked), or a plain station file as a one-channel
    rack; `RackFileError`/`StationFileError` with file:line:col otherwise."""
    from labctl.station import load_station

    path = Path(path)
    if not is_rack(path):
        st = load_station(path)
        return Rack(st.name, path, [Channel(st.name, path)])
    name = str(path)
    text, problems = read_text(path, name)
    if text is None:
        raise RackFileError(problems)
    doc = load(text, name)
    if doc.problems:
        raise RackFileError(doc.problems)
    raw, problems = validate(_RackFile, doc.data, doc)
    if raw is None:
        raise RackFileError(problems)
    if raw.labctl_rack != 1:
        problems.append(doc.problem(("labctl_rack",), f"unknown rack format {raw.labctl_rack}; this labctl "
                                    "reads `labctl_rack: 1`"))
    channels: list[Channel] = []
    owner: dict[str, str] = {}  # lease key -> channel
    for cname, rel in raw.channels.items():
        where = ("channels", cname)
        p = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        try:
            st = load_station(p)
        except FileProblemsError as exc:
            problems += exc.problems
            problems.append(doc.problem(where, f"channel `{cname}`: station file `{rel}` has problems"))
            continue
        except ConfigError as exc:
            problems.append(doc.problem(where, f"channel `{cname}`: {exc}"))
            continue
        shared: dict[str, list[str]] = {}  # other channel -> the instruments this one shares with it
        for spec in st.instruments.values():
            other = owner.setdefault(spec.lease_key, cname)
            if other != cname:
                shared.setdefault(other, []).append(spec.lease_key)
        for other, keys in shared.items():
            problems.append(doc.problem(where, f"channel `{cname}` shares {', '.join(sorted(keys))} with "
                                        f"`{other}`: two channels cannot drive one instrument"))
        channels.append(Channel(cname, p))
    if problems:
        raise RackFileError(problems)
    return Rack(raw.name, path, channels)


def problems_of(path: str | Path) -> list[Problem]:
    """Every problem of a rack or station file ([] when it loads)."""
    try:
        load_rack(path)
    except FileProblemsError as exc:
        return list(exc.problems)
    return []
