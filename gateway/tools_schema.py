"""The JSON Schema subset tool parameters are written in, and the check of a tool call's
arguments against it. Pure: no I/O, no trio.

Supported keywords: `type` (object, string, integer, number, boolean, array; one name, not a
list), `properties`, `required`, `additionalProperties` (a boolean), `items`, `enum`, and the
annotations `description`, `title`, `default`, `examples` (passed to the model, not checked).
Anything else (`format`, `pattern`, `minimum`, `$ref`, `oneOf`, ...) is refused when the tool
is declared, so a schema never looks stricter than what is enforced. `integer` means a JSON
number without a fraction or exponent (Python `int`); booleans are never numbers.

`check_schema` is for declaration time (raises `ConfigError` naming the key); `parse_arguments`
and `validate` are for each call and return problems as text for the model (never the
offending values: they may be sensitive).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from gateway.errors import ConfigError

TYPES: Final = ("object", "string", "integer", "number", "boolean", "array")
CHECKED: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "enum"}
)
ANNOTATIONS: Final = frozenset({"description", "title", "default", "examples"})
MAX_ARGUMENTS_DEPTH = 32  # real arguments nest two or three deep; this keeps the recursive
# checks (`validate`, the runner's redaction) far from Python's recursion limit
MAX_ARGUMENTS_CHARS = 65536  # a function call's arguments are a few hundred bytes; past this
# the model is looping or the event is corrupt, and parsing it would only waste the CPU


def check_schema(schema: object, where: str, *, top: bool = True) -> None:
    """Raise `ConfigError` (naming `where` and the key) unless `schema` is in the subset; the
    top level must be `{"type": "object", ...}` (a function's parameters)."""
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where} {show(schema)} is not a table (a JSON schema object)")
    for key in schema:
        if key not in CHECKED and key not in ANNOTATIONS:
            known = ", ".join(sorted(CHECKED | ANNOTATIONS))
            raise ConfigError(f"{where}.{key} is not a supported schema keyword; use {known}")
    kind = schema.get("type")
    if kind is not None and kind not in TYPES:
        raise ConfigError(f"{where}.type {show(kind)} is not one of {', '.join(TYPES)}")
    if top and kind != "object":
        raise ConfigError(f"{where}.type must be 'object' (function parameters), got {show(kind)}")
    if "enum" in schema:
        _check_enum(schema["enum"], kind, f"{where}.enum")
    if "items" in schema:
        if kind != "array":
            raise ConfigError(f"{where}.items needs type 'array', got {show(kind)}")
        check_schema(schema["items"], f"{where}.items", top=False)
    _check_object_keys(schema, kind, where)


def _check_object_keys(schema: Mapping[str, Any], kind: object, where: str) -> None:
    keys = [k for k in ("properties", "required", "additionalProperties") if k in schema]
    if keys and kind != "object":
        raise ConfigError(f"{where}.{keys[0]} needs type 'object', got {show(kind)}")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ConfigError(f"{where}.properties {show(properties)} is not a table")
    for name, sub in properties.items():
        check_schema(sub, f"{where}.properties.{name}", top=False)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(f"{where}.required {show(required)} is not a list of names")
    for name in required:
        if name not in properties:
            raise ConfigError(f"{where}.required names '{name}', which is not in properties")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        raise ConfigError(f"{where}.additionalProperties {show(extra)} is not true or false")


def _check_enum(enum: object, kind: object, where: str) -> None:
    if not isinstance(enum, list) or not enum:
        raise ConfigError(f"{where} {show(enum)} is not a non-empty list")
    for value in enum:
        if kind is not None and not _is_type(value, str(kind)):
            raise ConfigError(f"{where} value {show(value)} is not of type {kind}")
        if _json_type(value) not in ("string", "integer", "number", "boolean"):
            raise ConfigError(f"{where} value {show(value)} is not a string, number or boolean")


def parse_arguments(text: str) -> dict[str, Any] | str:
    """The model's arguments string as a dict, or what is wrong with it (as text). An empty
    string is `{}`: models send it for functions without parameters."""
    if len(text) > MAX_ARGUMENTS_CHARS:
        return f"arguments are {len(text)} characters, more than {MAX_ARGUMENTS_CHARS}"
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, so is _refuse_constant's
        return f"arguments are not valid JSON ({exc})"
    except RecursionError:
        return f"arguments are nested more than {MAX_ARGUMENTS_DEPTH} deep"
    if not isinstance(value, dict):
        return f"arguments must be a JSON object, got {_json_type(value)}"
    if _depth(value) > MAX_ARGUMENTS_DEPTH:
        return f"arguments are nested more than {MAX_ARGUMENTS_DEPTH} deep"
    return value


def _depth(value: object) -> int:
    """How deep lists and dicts nest in `value` (without recursion: it is the model's)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def validate(value: object, schema: Mapping[str, Any], path: str = "arguments") -> list[str]:
    """Every way `value` breaks `schema` (one checked by `check_schema`), as text naming the
    path (`arguments.items[2]: expected string, got integer`); empty when it conforms."""
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [f"{path}: expected {kind}, got {_json_type(value)}"]
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return [f"{path}: must be one of {', '.join(json.dumps(v) for v in schema['enum'])}"]
    problems: list[str] = []
    if isinstance(value, dict):
        problems += _validate_object(value, schema, path)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{index}]")
    return problems


def _validate_object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = [
        f"{path}: missing required property '{name}'"
        for name in schema.get("required", [])
        if name not in value
    ]
    for name, item in value.items():
        if name in properties:
            problems += validate(item, properties[name], f"{path}.{name}")
        elif schema.get("additionalProperties", True) is False:
            allowed = ", ".join(properties) or "none"
            problems.append(f"{path}: unexpected property '{name}' (allowed: {allowed})")
    return problems


def _is_type(value: object, kind: str) -> bool:
    match kind:
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
    return False


def _same(value: object, option: object) -> bool:
    """JSON equality: `true` is not `1` (Python says it is)."""
    return isinstance(value, bool) == isinstance(option, bool) and value == option


def _json_type(value: object) -> str:
    for kind in ("boolean", "integer", "number", "string", "object", "array"):
        if _is_type(value, kind):
            return kind
    return "null" if value is None else type(value).__name__


def show(value: object) -> str:
    """A config value for an error message: short, quoted like the config file has it."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
