"""Every client event we send validates strictly against the `openai` package's GA client
types, and every server event type we handle has a sample that validates against its server
union and parses to the right typed event."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from gateway.realtime import client_events as ce
from gateway.realtime import events as ev
from gateway.realtime import messages as msg
from gateway.realtime.settings import (
    RealtimeSettings,
    SemanticVad,
    ServerVad,
    ToolSchema,
    Transcription,
)
from tests.gateway.realtime.openai_schema import (
    ValidationError,
    check_client,
    check_server,
    known_server_type,
)

LOOKUP = ToolSchema(
    "lookup_order",
    "Find an order by its number.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
SETTINGS = [
    RealtimeSettings(),
    RealtimeSettings(provider="azure", azure_resource="res", model="my-deployment"),
    RealtimeSettings(provider="local", input_format="audio/pcma", output_format="audio/pcm",
                     turn_detection=None, voice="cedar", speed=1.1),
    RealtimeSettings(instructions="Be brief.", turn_detection=ServerVad(0.7, 200, 400, 8000),
                     transcription=Transcription("gpt-4o-mini-transcribe", "en"),
                     noise_reduction="near_field", tools=(LOOKUP, ToolSchema("hang_up"))),
    RealtimeSettings(turn_detection=SemanticVad("low", create_response=False,
                                                interrupt_response=False)),
]  # fmt: skip

# One sample call per builder; the test below fails if a builder has none.
BUILDER_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "session_update": [ce.session_update(s, "tr_1") for s in SETTINGS],
    "input_audio_append": [ce.input_audio_append("f39/fw==")],
    "input_audio_commit": [ce.input_audio_commit("tr_2")],
    "input_audio_clear": [ce.input_audio_clear("tr_3")],
    "response_create": [ce.response_create("tr_4")],
    "response_cancel": [ce.response_cancel("tr_5"), ce.response_cancel("tr_6", "resp_1")],
    "item_truncate": [ce.item_truncate("tr_7", "item_1", 840)],
    "item_create": [ce.item_create("tr_8", ce.text_item("5", "user"))],
    "text_item": [ce.item_create("tr_9", ce.text_item("A note.", "system"))],
    "agent_text_item": [ce.item_create("tr_10", ce.agent_text_item("Hello."))],
    "function_call_item": [ce.item_create("tr_11", ce.function_call_item("c", "f", "{}"))],
    "function_output_item": [ce.item_create("tr_12", ce.function_output_item("c", '{"a":1}'))],
}
NOT_EVENT_BUILDERS = {"new_event_id"}


def test_every_builder_has_a_sample() -> None:
    public = {n for n, f in inspect.getmembers(ce, inspect.isfunction)
              if f.__module__ == ce.__name__ and not n.startswith("_")}  # fmt: skip
    assert public - NOT_EVENT_BUILDERS == set(BUILDER_SAMPLES)


@pytest.mark.parametrize("builder", sorted(BUILDER_SAMPLES))
def test_builder_output_is_a_valid_ga_client_event(builder: str) -> None:
    for event in BUILDER_SAMPLES[builder]:
        check_client(event)
        assert "OpenAI-Beta" not in json.dumps(event)


def test_truncate_refuses_a_fractional_or_negative_offset() -> None:
    for bad in (840.5, -1, True):
        with pytest.raises(ValueError, match="non-negative int"):
            ce.item_truncate("tr", "item", bad)  # type: ignore[arg-type]


def test_inworld_session_update_is_ga_plus_inworld_keys() -> None:
    event = ce.session_update(RealtimeSettings(provider="inworld", instructions="Hi."), "tr_1")
    session = event["session"]
    assert session["model"] == "openai/gpt-5.5"
    assert session["providerData"] == {"auto_tool_response": False}
    assert session["audio"]["output"]["model"] == "inworld-tts-1.5-mini"
    assert session["audio"]["output"]["voice"] == "Sarah"
    assert "noise_reduction" not in session["audio"]["input"]
    # Without the two Inworld keys it is a valid GA event.
    stripped = json.loads(json.dumps(event))
    del stripped["session"]["providerData"], stripped["session"]["audio"]["output"]["model"]
    check_client(stripped)


def test_session_update_carries_every_setting() -> None:
    session = ce.session_update(SETTINGS[3], "tr")["session"]
    audio_in = session["audio"]["input"]
    assert audio_in["turn_detection"] == {
        "type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 200,
        "silence_duration_ms": 400, "idle_timeout_ms": 8000, "create_response": True,
        "interrupt_response": True}  # fmt: skip
    assert audio_in["noise_reduction"] == {"type": "near_field"}
    assert [t["name"] for t in session["tools"]] == ["lookup_order", "hang_up"]
    assert session["instructions"] == "Be brief."
    assert session["output_modalities"] == ["audio"]
    pcm = ce.session_update(SETTINGS[2], "tr")["session"]["audio"]
    assert pcm["input"]["format"] == {"type": "audio/pcma"}
    assert pcm["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert pcm["input"]["turn_detection"] is None


# --- server events ------------------------------------------------------------------------------

IDS = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}
SESSION = {
    "type": "realtime",
    "id": "sess_1",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcmu"}},
    },
}
ITEM = {"id": "item_1", "type": "message", "role": "assistant", "content": []}
RESPONSE = {
    "id": "resp_1",
    "status": "cancelled",
    "output": [],
    "status_details": {"type": "cancelled", "reason": "turn_detected"},
}
T = "conversation.item.input_audio_transcription"
SERVER_SAMPLES: dict[str, tuple[dict[str, Any], type]] = {
    "session.created": ({"session": SESSION}, ev.SessionCreated),
    "session.updated": ({"session": SESSION}, ev.SessionUpdated),
    "error": ({"error": {"type": "invalid_request_error", "code": "invalid_value",
                         "message": "no", "param": "x", "event_id": "tr_1"}}, ev.ServerError),
    "input_audio_buffer.speech_started": ({"audio_start_ms": 5, "item_id": "i"},
                                          msg.SpeechStarted),
    "input_audio_buffer.speech_stopped": ({"audio_end_ms": 9, "item_id": "i"}, msg.SpeechStopped),
    "input_audio_buffer.committed": ({"item_id": "i", "previous_item_id": None}, ev.Ignored),
    "input_audio_buffer.cleared": ({}, ev.Ignored),
    "input_audio_buffer.timeout_triggered": ({"audio_start_ms": 1, "audio_end_ms": 2,
                                              "item_id": "i"}, ev.Ignored),
    "conversation.created": ({"conversation": {"id": "conv_1", "object": "realtime.conversation"}},
                             ev.Ignored),
    "conversation.item.added": ({"item": ITEM}, ev.Ignored),
    "conversation.item.done": ({"item": ITEM}, ev.Ignored),
    "conversation.item.created": ({"item": ITEM}, ev.Ignored),
    "conversation.item.deleted": ({"item_id": "i"}, ev.Ignored),
    "conversation.item.truncated": ({"item_id": "i", "content_index": 0, "audio_end_ms": 840},
                                    ev.ItemTruncated),
    f"{T}.delta": ({"item_id": "i", "delta": "hel"}, msg.TranscriptReceived),
    f"{T}.completed": ({"item_id": "i", "content_index": 0, "transcript": "hello",
                        "usage": {"type": "duration", "seconds": 1.2}}, msg.TranscriptReceived),
    f"{T}.failed": ({"item_id": "i", "content_index": 0, "error": {"message": "x"}},
                    ev.TranscriptionFailed),
    "response.created": ({"response": {"id": "resp_1", "status": "in_progress"}},
                         msg.ResponseCreated),
    "response.done": ({"response": RESPONSE}, msg.ResponseDone),
    "response.output_item.added": ({"response_id": "r", "output_index": 0, "item": {
        "id": "i", "type": "function_call", "call_id": "c", "name": "f", "arguments": ""}},
        ev.OutputItemAdded),
    "response.output_item.done": ({"response_id": "r", "output_index": 0, "item": ITEM},
                                  ev.Ignored),
    "response.content_part.added": ({**IDS, "part": {"type": "audio"}}, ev.Ignored),
    "response.content_part.done": ({**IDS, "part": {"type": "audio", "transcript": "x"}},
                                   ev.Ignored),
    "response.output_audio.delta": ({**IDS, "delta": "f39/fw=="}, ev.AudioDelta),
    "response.output_audio.done": (IDS, ev.Ignored),
    "response.output_audio_transcript.delta": ({**IDS, "delta": "Hel"}, msg.TranscriptReceived),
    "response.output_audio_transcript.done": ({**IDS, "transcript": "Hello"},
                                              msg.TranscriptReceived),
    "response.output_text.delta": ({**IDS, "delta": "Hel"}, msg.TranscriptReceived),
    "response.output_text.done": ({**IDS, "text": "Hello"}, msg.TranscriptReceived),
    "response.function_call_arguments.delta": ({"response_id": "r", "item_id": "i",
                                                "output_index": 0, "call_id": "c", "delta": "{"},
                                               ev.Ignored),
    "response.function_call_arguments.done": ({"response_id": "r", "item_id": "i",
                                               "output_index": 0, "call_id": "c", "name": "f",
                                               "arguments": "{}"}, msg.FunctionCallRequested),
    "rate_limits.updated": ({"rate_limits": [{"name": "requests", "limit": 10, "remaining": 9,
                                              "reset_seconds": 1.5}]}, msg.RateLimitsUpdated),
}  # fmt: skip


def sample(kind: str) -> dict[str, Any]:
    return {"type": kind, "event_id": "event_1", **SERVER_SAMPLES[kind][0]}


# Handled types outside the GA union: Inworld's own, checked against Inworld's documented shape.
INWORLD_SAMPLES: dict[str, tuple[dict[str, Any], type]] = {
    "ping": ({"timestamp": 1733472000000}, ev.Ignored),
}


def _sample_problem(kind: str) -> str:
    """Why the handled type `kind` lacks a validated sample ("" if it has one): a GA type
    needs a sample that the SDK's server union accepts, a beta name the sample of its GA name,
    an Inworld type its own sample (and must not be GA: then the SDK's check applies)."""
    if kind in ev.INWORLD_ONLY:
        if known_server_type(kind):
            return "is in the GA union now: move its sample to SERVER_SAMPLES"
        return "" if kind in INWORLD_SAMPLES else "no Inworld sample"
    ga = ev.BETA_ALIASES.get(kind, kind)
    if kind != ga and known_server_type(kind):
        return "a beta alias that the GA union has as a type of its own"
    if not known_server_type(ga):
        return f"{ga} is not a server event type of the openai package"
    if ga not in SERVER_SAMPLES:
        return f"no sample of {ga} in SERVER_SAMPLES"
    try:
        check_server(sample(ga))
    except ValidationError as exc:
        return f"the sample of {ga} is not valid GA: {exc.errors()[0]}"
    return ""


def test_every_type_in_the_parse_table_has_a_validated_sample() -> None:
    """Enumerates `events.HANDLED` (the table `Connection` parses with and `Dispatcher` acts
    on): adding a handled type without a sample that validates fails here."""
    problems = {kind: why for kind in ev.HANDLED if (why := _sample_problem(kind))}
    assert problems == {}
    assert set(SERVER_SAMPLES) <= set(ev.HANDLED), "samples of types no longer handled"
    assert set(ev.HANDLED) == set(SERVER_SAMPLES) | set(ev.BETA_ALIASES) | set(INWORLD_SAMPLES)


@pytest.mark.parametrize("kind", sorted(INWORLD_SAMPLES))
def test_inworld_only_sample_parses_to_its_typed_event(kind: str) -> None:
    fields, typed = INWORLD_SAMPLES[kind]
    assert type(ev.parse(json.dumps({"type": kind, **fields}))) is typed


@pytest.mark.parametrize("kind", sorted(SERVER_SAMPLES))
def test_sample_is_valid_ga_and_parses_to_its_typed_event(kind: str) -> None:
    event = sample(kind)
    check_server(event)
    parsed = ev.parse(json.dumps(event))
    assert type(parsed) is SERVER_SAMPLES[kind][1]


def test_parsed_values_are_the_events_values() -> None:
    assert ev.parse(json.dumps(sample("response.done"))) == msg.ResponseDone(
        "resp_1", "cancelled", "turn_detected"
    )
    assert ev.parse(json.dumps(sample("response.function_call_arguments.done"))) == \
        msg.FunctionCallRequested("c", "f", "{}", "i", "r")  # fmt: skip
    updated = ev.parse(json.dumps(sample("session.updated")))
    assert updated == ev.SessionUpdated("sess_1", {"type": "audio/pcmu"}, {"type": "audio/pcmu"})
    assert ev.parse(json.dumps(sample("rate_limits.updated"))) == msg.RateLimitsUpdated(
        (msg.RateLimit("requests", 10, 9, 1.5),)
    )
    caller = ev.parse(json.dumps(sample(f"{T}.completed")))
    assert caller == msg.TranscriptReceived("caller", "hello", True, "i")


@pytest.mark.parametrize("beta", sorted(ev.BETA_ALIASES))
def test_beta_names_parse_like_their_ga_names(beta: str) -> None:
    ga = ev.BETA_ALIASES[beta]
    assert not known_server_type(beta)
    as_beta, as_ga = (ev.parse(json.dumps({**sample(ga), "type": t})) for t in (beta, ga))
    assert as_beta == (ev.Ignored(beta) if isinstance(as_ga, ev.Ignored) else as_ga)
