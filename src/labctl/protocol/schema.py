"""JSON Schema of protocol files as they are written, for editor autocompletion.

Pydantic's schema describes the model after loading (steps carry a `kind` field); in the file each step is a
one-key mapping `- <kind>: {...}`, so the step union is rewritten into that shape.
"""

from __future__ import annotations

from typing import Any

from labctl.protocol.fields import PARAM_REF
from labctl.protocol.models import STEP_KINDS, Protocol


def protocol_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    variants = []
    for name, body in defs.items():
        props = body.get("properties", {})
        kind = props.get("kind", {}).get("const") or (props.get("kind", {}).get("enum") or [None])[0]
        if kind in STEP_KINDS:
            props.pop("kind", None)
            if "required" in body and "kind" in body["required"]:
                body["required"].remove("kind")
            variants.append(
                {
                    "type": "object",
                    "properties": {kind: {"$ref": f"#/$defs/{name}"}},
                    "required": [kind],
                    "additionalProperties": False,
                }
            )
    schema["properties"]["steps"] = {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": variants},
        "description": "steps, each `- <kind>: {fields}`",
    }
    schema["properties"]["parameters"] = {
        "type": "object",
        "description": "values substituted for `${name}`; override with `-p name=value`",
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }
    schema["properties"]["labctl"] = {"const": 1, "description": "format version"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl protocol file"
    _allow_params(schema)
    return schema


def _allow_params(node: Any) -> None:
    """Numbers and booleans may also be written as `${param}` in the file."""
    if isinstance(node, dict):
        for value in node.values():
            _allow_params(value)
        if node.get("type") in ("number", "integer", "boolean") and "anyOf" not in node:
            kind = node.pop("type")
            node["anyOf"] = [{"type": kind}, {"type": "string", "pattern": f"^{PARAM_REF}$"}]
    elif isinstance(node, list):
        for value in node:
            _allow_params(value)
