"""The checks every table of tipring.toml is read with: a value's type, a number's range, a
table, its known keys, a choice. Each raises `ConfigError` naming the dotted key, the value and
what is allowed, in the same words everywhere (`must be a whole number`, `true or false`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError


def typed(value: object, kind: type | tuple[type, ...], key: str) -> Any:
    """`value` if it is of `kind` (a bool is not a number), else `ConfigError` naming `key`."""
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = {str: "a string", int: "a whole number", bool: "true or false"}
        wanted = names.get(kind, "a number") if isinstance(kind, type) else "a number"
        raise ConfigError(f"{key} must be {wanted}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    return value


def number(value: object, key: str, low: float, high: float) -> float:
    got = float(typed(value, (int, float), key))
    if not low <= got <= high:
        raise ConfigError(f"{key} must be {low:.12g}..{high:.12g}, got {value!r}")
    return got


def table_at(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a table, got {value!r}")
    return value


def known_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key} is not a setting; known: {', '.join(known)}")


def check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} {value!r} is not one of {', '.join(map(str, allowed))}")
