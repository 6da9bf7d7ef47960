"""Pydantic validation errors turned into `Problem`s with the file position of each offending value."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from labctl.protocol.problems import Problem
from labctl.protocol.safeyaml import Document


def _message(err: dict[str, Any], field: str) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"`{field}` is required"
    if kind == "extra_forbidden":
        return f"unknown field `{field}`"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = ctx.get("expected_tags", "")
        return f"unknown step kind `{ctx.get('tag', '?')}` (expected one of {expected})"
    if kind == "literal_error":
        return f"`{field}` must be one of {ctx.get('expected', '')}, got `{err.get('input')}`"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"`{field}` must be a whole number, got `{_short(err.get('input'))}`"
    if kind in ("bool_parsing", "bool_type"):
        return f"`{field}` must be true or false, got `{_short(err.get('input'))}`"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"`{field}` {msg.lower()}, got `{_short(err.get('input'))}`"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"`{field}` must be a mapping of names to values, got `{_short(err.get('input'))}`"
    if kind == "list_type":
        return f"`{field}` must be a list, got `{_short(err.get('input'))}`"
    if kind in ("string_type", "str_type"):
        return f"`{field}` must be text, got `{_short(err.get('input'))}`"
    if kind in ("too_short", "too_long"):
        return f"`{field}`: {msg.lower()}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return f"`{field}`: {msg}"


def _short(value: Any) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= 50 else text[:47] + "..."


def problems_from(exc: ValidationError, doc: Document, *, path_map: Any = None) -> list[Problem]:
    """One `Problem` per pydantic error; `path_map(loc)` may translate model locations to file paths."""
    out: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = path_map(loc) if path_map else loc
        field = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
        message = _message(err, field)
        key = (path, message)
        if key in seen:
            continue
        seen.add(key)
        out.append(doc.problem(path, message, key=err.get("type") == "extra_forbidden"))
    return out


def validate(
    model: type[BaseModel],
    data: Any,
    doc: Document,
    *,
    path_map: Any = None,
    context: dict[str, Any] | None = None,
) -> tuple[Any, list[Problem]]:
    """(`model` instance or None, problems)."""
    try:
        return model.model_validate(data, context=context), []
    except ValidationError as exc:
        return None, problems_from(exc, doc, path_map=path_map)
