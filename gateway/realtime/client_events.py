"""Builders of every client event tipring sends, in the GA shape (research note §1.3-1.4).

Each returns a plain dict ready for `json.dumps`; tests validate every builder's output against
the `openai` package's client event types, strictly (no unknown keys). Inworld's additions
(`audio.output.model`, `providerData`) are the only keys outside that schema, added by
`session_update` for the Inworld profile alone.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from gateway.realtime.audio import format_param
from gateway.realtime.profiles import model_of, profile_of
from gateway.realtime.settings import RealtimeSettings, SemanticVad, ServerVad, TurnDetection

Role = Literal["user", "system", "assistant"]  # assistant: what the box said for the agent
_ids = itertools.count(1)


def new_event_id() -> str:
    """A client event id, unique in this process: errors name it (`error.event_id`)."""
    return f"tr_{next(_ids)}"


def session_update(settings: RealtimeSettings, event_id: str) -> dict[str, Any]:
    """The whole session config: sent first on every connection (a reconnect starts afresh)."""
    profile = profile_of(settings)
    audio_in: dict[str, Any] = {
        "format": format_param(settings.input_format),
        "turn_detection": _turn_detection(settings.turn_detection),
    }
    if settings.transcription is not None:
        audio_in["transcription"] = {"model": settings.transcription.model}
        if settings.transcription.language:
            audio_in["transcription"]["language"] = settings.transcription.language
    if profile.noise_reduction:
        nr = settings.noise_reduction
        audio_in["noise_reduction"] = None if nr is None else {"type": nr}
    audio_out: dict[str, Any] = {
        "format": format_param(settings.output_format),
        "voice": settings.voice or profile.default_voice,
    }
    if settings.speed is not None:
        audio_out["speed"] = settings.speed
    if profile.default_tts_model:
        audio_out["model"] = settings.tts_model or profile.default_tts_model
    session: dict[str, Any] = {
        "type": "realtime",
        "model": model_of(settings),
        "instructions": settings.instructions,
        "output_modalities": ["audio"],
        "audio": {"input": audio_in, "output": audio_out},
        "tools": [_tool(t.name, t.description, dict(t.parameters)) for t in settings.tools],
        "tool_choice": "auto",
    }
    if profile.provider_data:
        # Inworld would otherwise answer a function output by itself, racing our
        # response.create (research note §2); we queue responses ourselves.
        session["providerData"] = {"auto_tool_response": False}
    return {"type": "session.update", "event_id": event_id, "session": session}


def _turn_detection(td: TurnDetection) -> dict[str, Any] | None:
    match td:
        case None:
            return None
        case ServerVad():
            out: dict[str, Any] = {
                "type": "server_vad", "threshold": td.threshold,
                "prefix_padding_ms": td.prefix_padding_ms,
                "silence_duration_ms": td.silence_duration_ms,
                "create_response": td.create_response,
                "interrupt_response": td.interrupt_response,
            }  # fmt: skip
            if td.idle_timeout_ms is not None:
                out["idle_timeout_ms"] = td.idle_timeout_ms
            return out
        case SemanticVad():
            return {"type": "semantic_vad", "eagerness": td.eagerness,
                    "create_response": td.create_response,
                    "interrupt_response": td.interrupt_response}  # fmt: skip


def _tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "name": name, "description": description,
            "parameters": parameters}  # fmt: skip


def input_audio_append(audio_b64: str) -> dict[str, Any]:
    """Caller audio in the session's input format. No event_id: no reply comes, and at 25-50
    events a second the id would only cost bytes."""
    return {"type": "input_audio_buffer.append", "audio": audio_b64}


def input_audio_commit(event_id: str) -> dict[str, Any]:
    return {"type": "input_audio_buffer.commit", "event_id": event_id}


def input_audio_clear(event_id: str) -> dict[str, Any]:
    return {"type": "input_audio_buffer.clear", "event_id": event_id}


def response_create(event_id: str) -> dict[str, Any]:
    return {"type": "response.create", "event_id": event_id}


def response_cancel(event_id: str, response_id: str = "") -> dict[str, Any]:
    event = {"type": "response.cancel", "event_id": event_id}
    if response_id:
        event["response_id"] = response_id
    return event


def item_truncate(event_id: str, item_id: str, audio_end_ms: int) -> dict[str, Any]:
    """Cut an assistant audio item to what the caller heard. `audio_end_ms` must be an int:
    the API rejects 840.5 (openai-agents-js #552)."""
    if type(audio_end_ms) is not int or audio_end_ms < 0:
        raise ValueError(f"audio_end_ms must be a non-negative int, got {audio_end_ms!r}")
    return {"type": "conversation.item.truncate", "event_id": event_id, "item_id": item_id,
            "content_index": 0, "audio_end_ms": audio_end_ms}  # fmt: skip


def item_create(event_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create", "event_id": event_id, "item": item}


def text_item(text: str, role: Literal["user", "system"]) -> dict[str, Any]:
    """A user or system message (DTMF digits, notes, the caller's words carried over)."""
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


def agent_text_item(text: str) -> dict[str, Any]:
    """What the agent said, carried over to a new session as text (audio cannot be injected)."""
    return {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text}]}  # fmt: skip


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A past function call, carried over so its output still has a call to answer."""
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}
