"""The OpenAI Realtime (GA) event schema, from the `openai` package's own types: the check
that every client event tipring sends and every server event it handles is what OpenAI
specifies. Test-only (the package is 37 MB and slow to import; the appliance never loads it).

- `check_client(event)`: strict: the TypedDict union (`RealtimeClientEventParam`) with
  `extra="forbid"`, so a misspelt or beta-era key fails as well as a missing or mistyped one.
- `check_server(event)`: the pydantic model union (`RealtimeServerEvent`); `extra="allow"` in
  the models themselves, so unknown optional keys pass, missing or mistyped ones do not.
- `known_server_type(type_)`: whether this SDK version has a model for a server event type.
Both unions are re-wrapped with `Field(discriminator="type")`: one precise error per failure
instead of pydantic's smart-union dozens (research note §3).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Union, get_args, get_origin

from openai.types.realtime import (
    RealtimeClientEventParam,
    RealtimeServerEvent,
)
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

__all__ = ["ValidationError", "check_client", "check_server", "known_server_type"]


def _members(alias: Any) -> tuple[Any, ...]:
    args = get_args(alias)  # Annotated[Union[...], PropertyInfo] or a plain Union
    return get_args(args[0]) if get_origin(args[0]) is Union else args


def _discriminated(alias: Any, **kwargs: Any) -> TypeAdapter[Any]:
    union = Union[_members(alias)]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="type")], **kwargs)  # type: ignore[arg-type]


@functools.cache
def _server() -> TypeAdapter[Any]:
    return _discriminated(RealtimeServerEvent)


@functools.cache
def _client() -> TypeAdapter[Any]:
    return _discriminated(RealtimeClientEventParam, config=ConfigDict(extra="forbid"))


@functools.cache
def _server_types() -> frozenset[str]:
    return frozenset(m.model_fields["type"].annotation.__args__[0] for m in _members(
        RealtimeServerEvent))  # fmt: skip


def check_client(event: dict[str, Any]) -> None:
    """Raise `ValidationError` unless `event` is a valid GA client event, no extra keys."""
    _client().validate_python(event)


def check_server(event: dict[str, Any]) -> Any:
    """The typed SDK model of a GA server event; `ValidationError` if it is not valid."""
    return _server().validate_python(event)


def known_server_type(type_: str) -> bool:
    return type_ in _server_types()
