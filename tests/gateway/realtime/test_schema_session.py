"""The schema on the wire: a session that uses every kind of client event and every kind of
conversation item the client sends (barge-in, text messages, a tool call and its output, a
reconnect that carries all of it over), with every client event the local server received
validated strictly against the `openai` package's client union, and every server event the
local server sent validated against its server union."""

from __future__ import annotations

import json

from gateway.realtime import (
    AgentAudio,
    FunctionCallRequested,
    RealtimeSettings,
    ResponseDone,
    SessionConnected,
    SessionLost,
    Transcription,
)
from gateway.realtime.local import Faults, Script
from gateway.realtime.settings import ServerVad, ToolSchema
from tests.gateway.realtime.openai_schema import check_client, check_server
from tests.gateway.realtime.rig import realtime_rig

SETTINGS = RealtimeSettings(
    provider="local",
    instructions="You are the schema test agent.",
    transcription=Transcription("gpt-4o-mini-transcribe", "en"),
    noise_reduction="near_field",
    turn_detection=ServerVad(0.5, 300, 500, idle_timeout_ms=8000),
    tools=(ToolSchema("lookup_order", "Find an order.",
                      {"type": "object", "properties": {"order_id": {"type": "string"}}}),),
)  # fmt: skip
SCRIPT = Script.from_mapping({"turn": [
    {"turn": 1, "say": "greeting", "caller": "Hi there."},
    {"turn": 2, "say": "anything_else"},  # the reply to a text message
    {"turn": 3, "say": "one_moment", "call": "lookup_order", "arguments": {"order_id": "7"},
     "then_say": "order_shipped"},
]})  # fmt: skip
EXPIRED = json.dumps({"type": "error", "error": {
    "type": "invalid_request_error", "code": "session_expired",
    "message": "Your session hit the maximum duration of 60 minutes."}})  # fmt: skip


async def test_every_event_of_a_rich_session_is_valid_ga_both_ways() -> None:
    # The first session expires after its fourth reply (the tool call's follow-up).
    faults = Faults(audio_speed=8.0, first_connections=1, inject=(EXPIRED,),
                    inject_after="response.done", inject_nth=4)  # fmt: skip
    async with realtime_rig(SETTINGS, script=SCRIPT, faults=faults) as rig:
        await rig.speak("sorry")
        first = await rig.next(AgentAudio)
        await rig.session.cancel_response()
        await rig.session.truncate(first.item_id, 80.0)
        await rig.next(ResponseDone)
        await rig.session.send_text("Caller ID: 555-0100", role="system")  # no reply wanted
        await rig.session.send_text("The caller pressed 5.")  # a reply
        await rig.next(ResponseDone)
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        await rig.next(ResponseDone)
        await rig.session.send_function_output(call.call_id, '{"status": "shipped"}')
        await rig.next(ResponseDone)
        assert (await rig.next(SessionLost)).retrying
        assert (await rig.next(SessionConnected)).connects == 2
        await rig.speak("goodbye")  # the new session answers
        await rig.next(ResponseDone)
        first_record, second_record = rig.server.sessions
        assert first_record.truncations == [(first.item_id, 80)]

    received = [e for r in rig.server.sessions for e in r.received]
    for event in received:
        check_client(event)  # the append's audio is kept as "<N base64 chars>": still a str
    assert {e["type"] for e in received} == {
        "session.update", "input_audio_buffer.append", "response.cancel",
        "conversation.item.truncate", "conversation.item.create", "response.create",
    }  # fmt: skip
    carried = {(i["type"], i.get("role")) for i in second_record.created_items()}
    assert carried == {("message", "user"), ("message", "system"), ("message", "assistant"),
                       ("function_call", None), ("function_call_output", None)}  # fmt: skip

    sent = [e for r in rig.server.sessions for e in r.sent]
    for event in sent:
        check_server(event)
    print(
        f"{len(received)} client and {len(sent)} server events validated; server types: "
        f"{sorted({e['type'] for e in sent})}"
    )
