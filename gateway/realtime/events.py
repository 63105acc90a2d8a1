"""Parsing of server events: one JSON text frame -> one typed event, dispatched on `type`.

`HANDLED` maps every server event type the client acts on (or knowingly ignores) to its parser;
tests validate a sample of each OpenAI type against the SDK's server union. Beta-era names
(`response.audio.delta`, ...) parse like their GA names. Parsing is lenient where Inworld is
lean (ids missing: ""; `speech_started` without `audio_start_ms`: None) and strict about types:
a field present with the wrong type raises `MalformedEvent`, and so does anything not a JSON
object with a string `type`, and a binary frame (the APIs send JSON in text frames only). An
unknown type is `Unknown`, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.realtime.errors import MalformedEvent
from gateway.realtime.messages import (
    FunctionCallRequested,
    RateLimit,
    RateLimitsUpdated,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    TranscriptReceived,
)

T = TypeVar("T")
MAX_TYPE_CHARS = 64  # a hostile server's "type" is cut to this in logs


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The effective config: the format values as the server wrote them (checked by the
    connection against what we asked for)."""

    session_id: str
    input_format: object
    output_format: object


@dataclass(frozen=True, slots=True)
class ServerError:
    type: str
    code: str
    message: str
    event_id: str
    param: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    delta: str  # base64, decoded by the connection's `DownlinkDecoder`


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    """A response's new output item; function calls name themselves here (Inworld's
    `function_call_arguments.done` may not)."""

    item_id: str
    item_type: str
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptionFailed:
    item_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A known event we take no action on (lifecycle detail, keep-alive)."""

    type: str


@dataclass(frozen=True, slots=True)
class Unknown:
    type: str


ServerEvent = (
    SessionCreated | SessionUpdated | ServerError | AudioDelta | OutputItemAdded | ItemTruncated
    | TranscriptionFailed | Ignored | Unknown | SpeechStarted | SpeechStopped | TranscriptReceived
    | FunctionCallRequested | ResponseCreated | ResponseDone | RateLimitsUpdated
)  # fmt: skip


def parse(raw: str | bytes) -> ServerEvent:
    """The typed event in one frame; `MalformedEvent` if it is unusable."""
    return parse_named(raw)[1]


def parse_named(raw: str | bytes) -> tuple[str, ServerEvent]:
    """The frame's `type` as sent (cut to `MAX_TYPE_CHARS`) and its typed event."""
    if isinstance(raw, bytes):
        raise MalformedEvent("", f"a binary frame ({len(raw)} bytes), not a JSON text frame")
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("", f"not JSON ({type(exc).__name__}, {len(raw)} chars)") from None
    if not isinstance(event, dict):
        raise MalformedEvent("", f"a JSON {type(event).__name__}, not an object")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise MalformedEvent("", f"no string 'type' (got {type(kind).__name__})")
    parser = HANDLED.get(kind)
    if parser is None:
        return kind[:MAX_TYPE_CHARS], Unknown(kind[:MAX_TYPE_CHARS])
    return kind, parser(kind, event)


# --- field access -----------------------------------------------------------------------------


def _field(kind: str, event: dict[str, Any], key: str, want: type[T], default: T) -> T:
    value = event.get(key)
    if value is None:
        return default
    if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
        raise MalformedEvent(kind, f"'{key}' is {type(value).__name__}, not {want.__name__}")
    return value


def _number(kind: str, event: dict[str, Any], key: str) -> float | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedEvent(kind, f"'{key}' is {type(value).__name__}, not a number")
    return float(value)


def _s(kind: str, event: dict[str, Any], key: str) -> str:
    return _field(kind, event, key, str, "")


def _int(kind: str, event: dict[str, Any], key: str) -> int | None:
    return _field(kind, event, key, int, None)


def _obj(kind: str, event: dict[str, Any], key: str) -> dict[str, Any]:
    return _field(kind, event, key, dict, {})


def _required(kind: str, event: dict[str, Any], key: str) -> str:
    value = _s(kind, event, key)
    if key not in event:
        raise MalformedEvent(kind, f"'{key}' is missing")
    return value


# --- parsers ----------------------------------------------------------------------------------


def _session(kind: str, event: dict[str, Any]) -> SessionCreated | SessionUpdated:
    session = _obj(kind, event, "session")
    sid = _s(kind, session, "id")
    if kind == "session.created":
        return SessionCreated(sid)
    audio = _obj(kind, session, "audio")
    fmt_in = _obj(kind, audio, "input").get("format")
    fmt_out = _obj(kind, audio, "output").get("format")
    return SessionUpdated(sid, fmt_in, fmt_out)


def _error(kind: str, event: dict[str, Any]) -> ServerError:
    err = _obj(kind, event, "error")
    return ServerError(_s(kind, err, "type"), _s(kind, err, "code"), _s(kind, err, "message"),
                       _s(kind, err, "event_id"), _s(kind, err, "param"))  # fmt: skip


def _speech(kind: str, event: dict[str, Any]) -> SpeechStarted | SpeechStopped:
    item = _s(kind, event, "item_id")
    if kind.endswith("started"):
        return SpeechStarted(item, _int(kind, event, "audio_start_ms"))
    return SpeechStopped(item, _int(kind, event, "audio_end_ms"))


def _caller_text(kind: str, event: dict[str, Any]) -> TranscriptReceived:
    final = kind.endswith("completed")
    text = _s(kind, event, "transcript" if final else "delta")
    return TranscriptReceived("caller", text, final, _s(kind, event, "item_id"))


def _agent_text(kind: str, event: dict[str, Any]) -> TranscriptReceived:
    final = kind.endswith("done")
    key = "delta" if not final else "transcript" if "transcript" in kind else "text"
    return TranscriptReceived("agent", _s(kind, event, key), final, _s(kind, event, "item_id"),
                              _s(kind, event, "response_id"))  # fmt: skip


def _audio(kind: str, event: dict[str, Any]) -> AudioDelta:
    return AudioDelta(_s(kind, event, "response_id"), _s(kind, event, "item_id"),
                      _required(kind, event, "delta"))  # fmt: skip


def _response(kind: str, event: dict[str, Any]) -> ResponseCreated | ResponseDone:
    response = _obj(kind, event, "response")
    rid = _s(kind, response, "id")
    if kind == "response.created":
        return ResponseCreated(rid)
    details = _obj(kind, response, "status_details")
    reason = _s(kind, details, "reason")
    error = _obj(kind, details, "error")
    if not reason and error:
        reason = _s(kind, error, "code") or _s(kind, error, "message")
    return ResponseDone(rid, _s(kind, response, "status") or "completed", reason)


def _output_item(kind: str, event: dict[str, Any]) -> OutputItemAdded:
    item = _obj(kind, event, "item")
    return OutputItemAdded(_s(kind, item, "id"), _s(kind, item, "type"),
                           _s(kind, item, "call_id"), _s(kind, item, "name"))  # fmt: skip


def _function_call(kind: str, event: dict[str, Any]) -> FunctionCallRequested:
    return FunctionCallRequested(
        call_id=_required(kind, event, "call_id"), name=_s(kind, event, "name"),
        arguments=_s(kind, event, "arguments") or "{}", item_id=_s(kind, event, "item_id"),
        response_id=_s(kind, event, "response_id"),
    )  # fmt: skip


def _rate_limits(kind: str, event: dict[str, Any]) -> RateLimitsUpdated:
    raw = _field(kind, event, "rate_limits", list, [])
    limits = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise MalformedEvent(kind, "a rate limit is not an object")
        limits.append(RateLimit(_s(kind, entry, "name"), _int(kind, entry, "limit"),
                                _int(kind, entry, "remaining"),
                                _number(kind, entry, "reset_seconds")))  # fmt: skip
    return RateLimitsUpdated(tuple(limits))


def _truncated(kind: str, event: dict[str, Any]) -> ItemTruncated:
    return ItemTruncated(_s(kind, event, "item_id"), _int(kind, event, "audio_end_ms") or 0)


def _transcription_failed(kind: str, event: dict[str, Any]) -> TranscriptionFailed:
    error = _obj(kind, event, "error")
    return TranscriptionFailed(_s(kind, event, "item_id"), _s(kind, error, "message"))


def _ignored(kind: str, event: dict[str, Any]) -> Ignored:
    return Ignored(kind)


Parser = Callable[[str, dict[str, Any]], ServerEvent]
_TRANSCRIPTION = "conversation.item.input_audio_transcription"
HANDLED: dict[str, Parser] = {
    "session.created": _session,
    "session.updated": _session,
    "error": _error,
    "input_audio_buffer.speech_started": _speech,
    "input_audio_buffer.speech_stopped": _speech,
    "input_audio_buffer.committed": _ignored,
    "input_audio_buffer.cleared": _ignored,
    "input_audio_buffer.timeout_triggered": _ignored,  # VAD commits and responds by itself
    "conversation.created": _ignored,
    "conversation.item.added": _ignored,
    "conversation.item.done": _ignored,
    "conversation.item.created": _ignored,  # beta name, still in the GA union
    "conversation.item.deleted": _ignored,
    "conversation.item.truncated": _truncated,
    f"{_TRANSCRIPTION}.delta": _caller_text,
    f"{_TRANSCRIPTION}.completed": _caller_text,
    f"{_TRANSCRIPTION}.failed": _transcription_failed,
    "response.created": _response,
    "response.done": _response,
    "response.output_item.added": _output_item,
    "response.output_item.done": _ignored,
    "response.content_part.added": _ignored,
    "response.content_part.done": _ignored,
    "response.output_audio.delta": _audio,
    "response.output_audio.done": _ignored,
    "response.output_audio_transcript.delta": _agent_text,
    "response.output_audio_transcript.done": _agent_text,
    "response.output_text.delta": _agent_text,
    "response.output_text.done": _agent_text,
    "response.function_call_arguments.delta": _ignored,  # the .done event carries them whole
    "response.function_call_arguments.done": _function_call,
    "rate_limits.updated": _rate_limits,
}
# Older servers (the beta shape) and GA proxies that kept its names.
BETA_ALIASES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}
INWORLD_ONLY = {"ping": _ignored}  # its keep-alive: {"type": "ping", "timestamp": ms}
HANDLED.update({beta: HANDLED[ga] for beta, ga in BETA_ALIASES.items()})
HANDLED.update(INWORLD_ONLY)
