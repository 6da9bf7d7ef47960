"""Problems found in a file, each with file:line:column and the field path, reported all at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from labctl.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file. `line`/`column` are 1-based (0 when unknown); `field` is a dotted path."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileProblemsError(ConfigError):
    """A file with one or more problems; `str()` lists every one, one per line."""

    kind = "file"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field))
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in {self.kind}"
        super().__init__(head + ":\n" + "\n".join(str(p) for p in self.problems))


class ProtocolFileError(FileProblemsError):
    """A protocol file that cannot be used (syntax, schema, units, parameters)."""

    kind = "protocol file"


def field_path(path: tuple[Any, ...]) -> str:
    """`("steps", 1, "immerse", "time")` -> `steps[1].immerse.time`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
