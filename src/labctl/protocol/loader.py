"""Load a protocol file: safe YAML -> `${param}` substitution -> pydantic models, every problem at once.

`load_protocol(path, overrides)` returns a `LoadedProtocol` or raises `ProtocolFileError` whose `.problems`
carry file, line, column, field path and a plain sentence. It raises nothing else, whatever the file holds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.protocol.models import STEP_KINDS, Protocol
from labctl.protocol.problems import Problem, ProtocolFileError
from labctl.protocol.safeyaml import Document, load, read_text
from labctl.protocol.validation import validate

_REF = re.compile(r"\$\{([^}]*)\}")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass
class LoadedProtocol:
    """A checked protocol: the model, the resolved parameters, the file text and its SHA-256."""

    model: Protocol
    parameters: dict[str, Any]
    text: str
    path: str
    sha256: str
    overrides: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)

    @property
    def steps(self) -> list[Any]:
        return list(self.model.steps)

    def step_line(self, index: int) -> int:
        return self.positions.get(("steps", index), (0, 0))[0]


def load_protocol(path: str | Path, overrides: dict[str, str] | None = None) -> LoadedProtocol:
    """Load and check the protocol file at `path`, applying `-p name=value` `overrides`."""
    name = str(path)
    text, problems = read_text(path, name)
    if text is None:
        raise ProtocolFileError(problems)
    return parse_protocol(text, name, overrides)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`["a=1", "b = 2 s"]` -> `{"a": "1", "b": "2 s"}`; a malformed item is a `ProtocolFileError`."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not _PARAM_NAME.match(key.strip()):
            raise ProtocolFileError([Problem("<command line>", 0, 0, "-p", f"`{item}` must be name=value")])
        out[key.strip()] = value.strip()
    return out


def parse_protocol(
    text: str, name: str = "<protocol>", overrides: dict[str, str] | None = None
) -> LoadedProtocol:
    doc = load(text, name)
    if doc.problems:
        raise ProtocolFileError(doc.problems)
    data = doc.data
    if not isinstance(data, dict):
        raise ProtocolFileError(
            [
                Problem(
                    name,
                    *doc.where(()),
                    "",
                    "a protocol file must be a mapping with `labctl: 1`, `name` and `steps`",
                )
            ]
        )
    problems: list[Problem] = []
    params = _parameters(data, doc, overrides or {}, problems)
    data = _substitute(data, (), params, doc, problems)
    data = _steps(data, doc, problems)
    model, errs = validate(Protocol, data, doc)
    problems.extend(errs)
    if problems or model is None:
        raise ProtocolFileError(problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedProtocol(
        model=model,
        parameters=params,
        text=text,
        path=name,
        sha256=digest,
        overrides=dict(overrides or {}),
        positions=dict(doc.values),
    )


def _parameters(
    data: dict[str, Any], doc: Document, overrides: dict[str, str], problems: list[Problem]
) -> dict[str, Any]:
    raw = data.get("parameters", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(doc.problem(("parameters",), "`parameters` must be a mapping of names to values"))
        raw = {}
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if not _PARAM_NAME.match(key):
            problems.append(
                doc.problem(
                    ("parameters", key), f"parameter name `{key}` must be letters, digits and `_`", key=True
                )
            )
        elif isinstance(value, (dict, list)) or value is None:
            problems.append(doc.problem(("parameters", key), f"parameter `{key}` must be a single value"))
        elif isinstance(value, str) and _REF.search(value):
            problems.append(
                doc.problem(("parameters", key), f"parameter `{key}` cannot refer to another parameter")
            )
        else:
            params[key] = value
    for key, value in overrides.items():
        if key not in params and key not in raw:
            known = ", ".join(sorted(params)) or "none"
            problems.append(
                Problem(
                    "<command line>",
                    0,
                    0,
                    f"-p {key}",
                    f"unknown parameter `{key}` (this protocol has: {known})",
                )
            )
        else:
            params[key] = value
    return params


def _substitute(
    value: Any, path: tuple[Any, ...], params: dict[str, Any], doc: Document, problems: list[Problem]
) -> Any:
    if path == ("parameters",):
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), params, doc, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), params, doc, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _REF.fullmatch(value.strip())
    names = _REF.findall(value)
    missing = [n for n in names if n not in params]
    if missing or "${" in _REF.sub("", value):
        bad = missing[0] if missing else value
        known = ", ".join(sorted(params)) or "none"
        problems.append(doc.problem(path, f"unknown parameter `{bad}` (defined: {known})"))
        return value
    if whole:
        return params[whole.group(1)]
    return _REF.sub(lambda m: str(params[m.group(1)]), value)


def _steps(data: dict[str, Any], doc: Document, problems: list[Problem]) -> dict[str, Any]:
    steps = data.get("steps")
    if not isinstance(steps, list):
        return data
    out = []
    for i, item in enumerate(steps):
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(
                doc.problem(
                    ("steps", i),
                    "each step must be a single `kind: {fields}` mapping, "
                    "e.g. `- wait: {duration: 10 s}`; kinds: " + ", ".join(STEP_KINDS),
                )
            )
            continue
        ((kind, body),) = item.items()
        if kind not in STEP_KINDS:
            problems.append(
                doc.problem(
                    ("steps", i, kind),
                    f"unknown step kind `{kind}`; kinds: " + ", ".join(STEP_KINDS),
                    key=True,
                )
            )
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            problems.append(doc.problem(("steps", i, kind), f"`{kind}` needs a mapping of fields"))
            continue
        if "kind" in body:
            problems.append(doc.problem(("steps", i, kind, "kind"), "unknown field `kind`", key=True))
            continue
        out.append((i, {"kind": kind, **body}))
    new = dict(data)
    # keep indexes aligned with the file for error positions: steps with problems are dropped only if some
    # problems were found (the whole file is then rejected anyway)
    new["steps"] = [body for _, body in out] if len(out) == len(steps) else _pad(steps, out)
    return new


def _pad(steps: list[Any], good: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    """Replace broken steps by a harmless placeholder so that later indexes still match the file."""
    by_index = dict(good)
    return [by_index.get(i, {"kind": "wait", "duration": "0 s"}) for i in range(len(steps))]
