"""Builders of the server events the local realtime server sends, in the GA shape.

Every event here validates against the `openai` package's server union (tests check every event
a rich session sends); `event_id` is added by the sender. `lean=True` variants drop what Inworld
leaves out (ids and offsets), for testing the client's Inworld profile.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def error(code: str, message: str, *, kind: str = "invalid_request_error", param: str = "",
          event_id: str = "") -> Event:  # fmt: skip
    err: dict[str, Any] = {"type": kind, "code": code, "message": message}
    if param:
        err["param"] = param
    if event_id:
        err["event_id"] = event_id
    return {"type": "error", "error": err}


def session_event(kind: str, session: dict[str, Any]) -> Event:
    return {"type": kind, "session": session}


def speech_started(item_id: str, audio_start_ms: int, lean: bool) -> Event:
    event: Event = {"type": "input_audio_buffer.speech_started", "item_id": item_id}
    if not lean:
        event["audio_start_ms"] = audio_start_ms
    return event


def speech_stopped(item_id: str, audio_end_ms: int, lean: bool) -> Event:
    event: Event = {"type": "input_audio_buffer.speech_stopped", "item_id": item_id}
    if not lean:
        event["audio_end_ms"] = audio_end_ms
    return event


def committed(item_id: str, previous_item_id: str | None) -> Event:
    return {"type": "input_audio_buffer.committed", "item_id": item_id,
            "previous_item_id": previous_item_id}  # fmt: skip


def cleared() -> Event:
    return {"type": "input_audio_buffer.cleared"}


def item_event(kind: str, item: dict[str, Any], previous_item_id: str | None = None) -> Event:
    """conversation.item.added / .done / .retrieved."""
    event: Event = {"type": kind, "item": item}
    if kind != "conversation.item.retrieved":
        event["previous_item_id"] = previous_item_id
    return event


def item_deleted(item_id: str) -> Event:
    return {"type": "conversation.item.deleted", "item_id": item_id}


def item_truncated(item_id: str, audio_end_ms: int) -> Event:
    return {"type": "conversation.item.truncated", "item_id": item_id, "content_index": 0,
            "audio_end_ms": audio_end_ms}  # fmt: skip


def transcription_delta(item_id: str, delta: str) -> Event:
    return {"type": "conversation.item.input_audio_transcription.delta", "item_id": item_id,
            "content_index": 0, "delta": delta}  # fmt: skip


def transcription_completed(item_id: str, transcript: str, seconds: float) -> Event:
    return {"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
            "content_index": 0, "transcript": transcript,
            "usage": {"type": "duration", "seconds": round(seconds, 3)}}  # fmt: skip


def response_object(response_id: str, status: str, output: list[dict[str, Any]],
                    reason: str | None = None, audio_ms: int = 0) -> dict[str, Any]:  # fmt: skip
    response: dict[str, Any] = {
        "id": response_id, "object": "realtime.response", "status": status,
        "output": output, "conversation_id": "conv_local", "output_modalities": ["audio"],
        "status_details": None, "usage": None,
    }  # fmt: skip
    if status in ("cancelled", "incomplete", "failed"):
        response["status_details"] = {"type": status, "reason": reason}
    if status != "in_progress":
        tokens = audio_ms // 50  # ~20 audio tokens a second
        response["usage"] = {
            "total_tokens": 40 + tokens, "input_tokens": 40, "output_tokens": tokens,
            "input_token_details": {"cached_tokens": 0, "text_tokens": 40, "audio_tokens": 0},
            "output_token_details": {"text_tokens": 0, "audio_tokens": tokens},
        }  # fmt: skip
    return response


def response_event(kind: str, response: dict[str, Any], lean: bool = False) -> Event:
    event: Event = {"type": kind, "response": response}
    if lean and kind == "response.done" and response.get("usage"):
        event["usage"] = response.pop("usage")  # Inworld puts usage at the top level
    return event


def rate_limits(remaining_requests: int) -> Event:
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": "requests", "limit": 1000, "remaining": remaining_requests, "reset_seconds": 60.0},
        {"name": "tokens", "limit": 100000, "remaining": 99000, "reset_seconds": 1.5},
    ]}  # fmt: skip


def output_item(kind: str, response_id: str, index: int, item: dict[str, Any]) -> Event:
    """response.output_item.added / .done."""
    return {"type": kind, "response_id": response_id, "output_index": index, "item": item}


def part_event(kind: str, ids: dict[str, Any], transcript: str) -> Event:
    """response.content_part.added / .done for an audio part."""
    return {"type": kind, **ids, "content_index": 0,
            "part": {"type": "audio", "transcript": transcript}}  # fmt: skip


def content_event(kind: str, ids: dict[str, Any], **fields: Any) -> Event:
    """output_audio.delta/.done, output_audio_transcript.delta/.done: `ids` are response_id,
    item_id, output_index."""
    return {"type": kind, **ids, "content_index": 0, **fields}


def function_arguments(kind: str, ids: dict[str, Any], call_id: str, lean: bool,
                       **fields: Any) -> Event:  # fmt: skip
    """response.function_call_arguments.delta/.done (`lean`: Inworld's, without name/ids)."""
    if lean and kind.endswith(".done"):
        return {"type": kind, "call_id": call_id, "arguments": fields["arguments"]}
    return {"type": kind, **ids, "call_id": call_id, **fields}


def assistant_item(item_id: str, status: str, transcript: str | None) -> dict[str, Any]:
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": status, "content": content}  # fmt: skip


def user_audio_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": transcript}]}  # fmt: skip


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str) -> dict[str, Any]:  # fmt: skip
    return {"id": item_id, "object": "realtime.item", "type": "function_call", "status": status,
            "call_id": call_id, "name": name, "arguments": arguments}  # fmt: skip
