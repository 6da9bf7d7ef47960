"""Safe YAML with positions: plain dicts/lists/scalars built from parser events, never from a constructor.

Building from events (not `yaml.load`) means no object is ever constructed from a tag, an alias can never
expand (alias bombs are impossible), and every value's line and column is kept for error messages.
Rejected, each as a `Problem` with its position: anything but a regular file and files over 1 MB (read by
`labctl.textfile.read_bounded`), bytes that are not UTF-8, YAML syntax errors, more than one document,
anchors and aliases, tags, duplicate keys, non-string keys, NaN/Inf, nesting deeper than 64 levels.
Scalars resolve by the YAML 1.2 core schema (`yes`/`on` stay strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from labctl.protocol.problems import Problem, field_path
from labctl.textfile import MAX_BYTES, FileRefused, read_bounded

MAX_DEPTH = 64

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_INF_NAN = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")

Path_ = tuple[Any, ...]


@dataclass
class Document:
    """The data of one YAML file and where each value (by path) and each key starts (1-based line, col)."""

    file: str
    text: str
    data: Any = None
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Position of `path`, or of its nearest existing parent (for a missing field)."""
        p = tuple(path)
        while True:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if p in self.keys:
                return self.keys[p]
            if not p:
                return (1, 1)
            p = p[:-1]

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.file, line, col, field_path(path), message)


def read_text(path: str | Path, display: str | None = None) -> tuple[str | None, list[Problem]]:
    """Read a file as UTF-8 through `textfile.read_bounded`: a regular file of at most `MAX_BYTES`, never a
    device, FIFO or directory, never a blocking open."""
    name = display or str(path)
    try:
        raw = read_bounded(path, limit=MAX_BYTES, display=name)
    except FileRefused as exc:
        return None, [Problem(name, 0, 0, "", exc.reason)]
    return decode(raw, name)


def decode(raw: bytes, name: str) -> tuple[str | None, list[Problem]]:
    if len(raw) > MAX_BYTES:
        return None, [Problem(name, 0, 0, "", f"file is {len(raw)} bytes; the limit is {MAX_BYTES} (1 MB)")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem(name, line, 0, "", "the file is not valid UTF-8 text")]


def load(text: str, file: str) -> Document:
    """Parse `text`; `Document.problems` lists everything wrong (then `data` may be partial or None)."""
    doc = Document(file=file, text=text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        doc.problems.append(Problem(file, 0, 0, "", f"file is larger than the limit of {MAX_BYTES} bytes"))
        return doc
    if _SURROGATE.search(text):
        doc.problems.append(Problem(file, 0, 0, "", "the text contains invalid Unicode (lone surrogates)"))
        return doc
    if "\x00" in text:
        doc.problems.append(Problem(file, 0, 0, "", "the file contains NUL bytes; it is not a text file"))
        return doc
    try:
        _build(doc, YAML(typ="safe", pure=True).parse(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "YAML syntax error"
        doc.problems.append(Problem(file, line, col, "", f"YAML syntax error: {msg}"))
        doc.data = None
    except (YAMLError, ValueError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        doc.problems.append(Problem(file, 0, 0, "", f"YAML syntax error: {exc}"))
        doc.data = None
    return doc


def _pos(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1)


def _scalar(doc: Document, event: Any, path: Path_) -> Any:
    value: str = event.value
    if _SURROGATE.search(value):
        doc.problems.append(Problem(doc.file, *_pos(event), field_path(path), "invalid Unicode"))
        return ""
    if event.style is not None or not event.implicit[0]:
        return value  # quoted or block scalar: a string
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        number = float(value)
        if number in (float("inf"), float("-inf")):
            doc.problems.append(
                Problem(doc.file, *_pos(event), field_path(path), f"number `{value}` is too large (infinite)")
            )
            return None
        return number
    if _INF_NAN.match(value):
        doc.problems.append(
            Problem(
                doc.file,
                *_pos(event),
                field_path(path),
                f"`{value}` is not allowed: NaN and infinity are rejected",
            )
        )
        return None
    return value


def _build(doc: Document, events: Any) -> None:
    """Assemble containers from the event stream with an explicit stack (no recursion)."""
    stack: list[tuple[Any, Path_, Any]] = []  # (container, its path, pending key for mappings)
    documents = 0
    root_set = False

    def place(value: Any, event: Any) -> Path_ | None:
        nonlocal root_set
        if not stack:
            doc.data = value
            root_set = True
            doc.values[()] = _pos(event)
            return ()
        container, cpath, pending = stack[-1]
        if isinstance(container, list):
            path = (*cpath, len(container))
            container.append(value)
            doc.values[path] = _pos(event)
            return path
        if pending is _NO_KEY:  # this scalar/collection is a key
            if not isinstance(value, str) or isinstance(value, (dict, list)):
                if isinstance(value, (dict, list)):
                    doc.problems.append(doc.problem(cpath, "mapping keys must be plain names"))
                    stack[-1] = (container, cpath, _BAD_KEY)
                    return None
                value = str(value) if value is not None else "null"
            if value in container:
                line, col = _pos(event)
                first = doc.keys.get((*cpath, value), (0, 0))[0]
                doc.problems.append(
                    Problem(
                        doc.file,
                        line,
                        col,
                        field_path((*cpath, value)),
                        f"duplicate key `{value}` (first defined on line {first})",
                    )
                )
                stack[-1] = (container, cpath, _DUP_KEY)
                return None
            doc.keys[(*cpath, value)] = _pos(event)
            stack[-1] = (container, cpath, value)
            return None
        if pending is _BAD_KEY or pending is _DUP_KEY:
            stack[-1] = (container, cpath, _NO_KEY)
            return None
        path = (*cpath, pending)
        container[pending] = value
        doc.values[path] = _pos(event)
        stack[-1] = (container, cpath, _NO_KEY)
        return path

    def next_path() -> Path_:
        if not stack:
            return ()
        container, cpath, pending = stack[-1]
        if isinstance(container, list):
            return (*cpath, len(container))
        return (*cpath, pending) if isinstance(pending, str) else cpath

    for event in events:
        if isinstance(event, ev.DocumentStartEvent):
            documents += 1
            if documents > 1:
                line, col = _pos(event)
                doc.problems.append(Problem(doc.file, line, col, "", "only one YAML document per file"))
                return
            continue
        if isinstance(event, (ev.StreamStartEvent, ev.StreamEndEvent, ev.DocumentEndEvent)):
            continue
        if isinstance(event, ev.AliasEvent):
            doc.problems.append(
                Problem(
                    doc.file,
                    *_pos(event),
                    field_path(next_path()),
                    f"YAML aliases (`*{event.anchor}`) are not allowed",
                )
            )
            place(None, event)
            continue
        if isinstance(event, (ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent)):
            path = next_path()
            if event.anchor is not None:
                doc.problems.append(
                    Problem(
                        doc.file,
                        *_pos(event),
                        field_path(path),
                        f"YAML anchors (`&{event.anchor}`) are not allowed",
                    )
                )
            if event.tag is not None:
                doc.problems.append(
                    Problem(
                        doc.file, *_pos(event), field_path(path), f"YAML tags (`{event.tag}`) are not allowed"
                    )
                )
        if isinstance(event, ev.ScalarEvent):
            place(_scalar(doc, event, next_path()), event)
        elif isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                line, col = _pos(event)
                doc.problems.append(Problem(doc.file, line, col, "", f"nesting over {MAX_DEPTH} levels"))
                doc.data = None
                return
            container: Any = {} if isinstance(event, ev.MappingStartEvent) else []
            path = place(container, event)
            stack.append((container, path if path is not None else ("?",), _NO_KEY))
        elif isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            stack.pop()
    if not root_set:
        doc.data = None


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NO_KEY = _Marker("NO_KEY")
_BAD_KEY = _Marker("BAD_KEY")
_DUP_KEY = _Marker("DUP_KEY")
