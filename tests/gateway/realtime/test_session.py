"""`RealtimeSession` against the local realtime server: full turns in each audio format,
barge-in (cancel + truncate to what was played), tool calls, text messages, one response at a
time."""

from __future__ import annotations

import json

import numpy as np

from dsp.g711 import alaw_decode, alaw_encode
from dsp.resample import Resampler
from gateway.realtime import (
    AgentAudio,
    FunctionCallRequested,
    RateLimitsUpdated,
    RealtimeSettings,
    ResponseCreated,
    ResponseDone,
    SessionConnected,
    SpeechStarted,
    SpeechStopped,
    Transcription,
    TranscriptReceived,
)
from gateway.realtime.audio import WireFormat
from gateway.realtime.local import Faults, Script
from tests.gateway.realtime.rig import close_to, prompt_pcm, realtime_rig

TOOL_SCRIPT = Script.from_mapping({"turn": [
    {"turn": 1, "say": "one_moment", "call": "lookup_order", "arguments": {"order_id": "4592"},
     "then_say": "order_shipped"},
]})  # fmt: skip


async def test_a_turn_in_pcmu_plays_the_prompt_bit_exact() -> None:
    async with realtime_rig() as rig:
        await rig.speak("sorry")
        done = await rig.next(ResponseDone)
        assert (done.status, done.reason) == ("completed", "")
        assert np.array_equal(rig.audio(), prompt_pcm(rig.server, "greeting"))
        kinds = [type(e) for e in rig.seen]
        assert kinds.index(SessionConnected) < kinds.index(SpeechStarted)
        assert kinds.index(SpeechStopped) < kinds.index(ResponseCreated) < kinds.index(AgentAudio)
        assert rig.of(RateLimitsUpdated)[0].limits[0].name == "requests"
        final = [t for t in rig.of(TranscriptReceived) if t.final]
        assert [(t.speaker, t.text) for t in final] == [
            ("agent", rig.server.prompts.text["greeting"])
        ]
        deltas = "".join(t.text for t in rig.of(TranscriptReceived) if not t.final)
        assert deltas == final[0].text
        audio = rig.of(AgentAudio)
        assert {(a.response_id, a.item_id) for a in audio} == {(done.response_id,
                                                               final[0].item_id)}  # fmt: skip
        # what went up: 40 ms appends, mu-law, the whole utterance
        sent = rig.server.sessions[0].received_of("input_audio_buffer.append")
        assert {e["audio"] for e in sent} == {"<428 base64 chars>"}  # 320 bytes
        assert rig.session.stats.frames_sent == 2 * len(sent)


async def test_a_turn_in_pcma_is_bit_exact_and_pcm24k_is_close() -> None:
    formats: tuple[WireFormat, ...] = ("audio/pcma", "audio/pcm")
    for fmt in formats:
        settings = RealtimeSettings(provider="local", input_format=fmt, output_format=fmt)
        async with realtime_rig(settings) as rig:
            await rig.speak("goodbye")
            await rig.next(ResponseDone)
            greeting = prompt_pcm(rig.server, "greeting")
            got = rig.audio()
            if fmt == "audio/pcma":
                assert np.array_equal(got, alaw_decode(alaw_encode(greeting)))
            else:  # 8k -> 24k on the server, 24k -> 8k here: two 4 ms resampler delays
                delay = round((Resampler(8000, 24000).delay_ms
                               + Resampler(24000, 8000).delay_ms) * 8)  # fmt: skip
                snr = close_to(got[delay:], greeting)
                print(f"pcm 24 kHz round trip: SNR {snr:.1f} dB (bound 25)")
                assert snr > 25.0
            config = rig.server.sessions[0].sent_of("session.updated")[-1]["session"]
            assert config["audio"]["output"]["format"]["type"] == fmt


async def test_barge_in_cancels_and_truncates_to_what_was_played() -> None:
    async with realtime_rig(faults=Faults(audio_speed=4.0)) as rig:
        await rig.speak("sorry")
        first = await rig.next(AgentAudio)
        await rig.next(AgentAudio)
        # 200 ms of this item arrived; the playout had played 150.7 ms when the caller spoke
        await rig.session.cancel_response()
        await rig.session.truncate(first.item_id, 150.7)
        done = await rig.next(ResponseDone)
        assert (done.status, done.reason) == ("cancelled", "client_cancelled")
        await rig.server_saw(0, lambda r: bool(r.truncations))
        assert rig.server.sessions[0].truncations == [(first.item_id, 150)]
        errors = rig.server.sessions[0].sent_of("error")
        assert errors == []
        muted = rig.session.stats.audio_muted
        print(f"deltas dropped after the cancel: {muted}")


async def test_truncate_is_clamped_to_received_audio_and_skipped_without_audio() -> None:
    async with realtime_rig() as rig:
        await rig.speak("sorry")
        done = await rig.next(ResponseDone)
        item = rig.of(AgentAudio)[0].item_id
        received_ms = rig.audio().size // 8
        await rig.session.truncate("item_never_heard", 100.0)
        await rig.session.truncate(item, 10_000_000.0)  # played more than it got: heard all
        await rig.session.truncate(item, received_ms - 500.2)
        await rig.session.send_text("marker", respond=False)
        await rig.server_saw(0, lambda r: bool(r.truncations))
        assert rig.server.sessions[0].truncations == [(item, received_ms - 501)]
        assert rig.server.sessions[0].sent_of("error") == []
        assert done.status == "completed"


async def test_tool_call_arrives_while_audio_streams_and_its_output_gets_a_reply() -> None:
    async with realtime_rig(script=TOOL_SCRIPT, faults=Faults(audio_speed=8.0)) as rig:
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        assert (call.name, json.loads(call.arguments)) == ("lookup_order", {"order_id": "4592"})
        assert call.call_id.startswith("call_")
        assert call.item_id.startswith("item_")
        assert call.response_id.startswith("resp_")
        # the preamble's audio came first, in the same response; the caller keeps talking
        preamble = rig.of(AgentAudio)
        assert preamble, "no preamble audio before the call"
        assert preamble[0].response_id == call.response_id
        await rig.silence(200)
        first = await rig.next(ResponseDone)
        await rig.session.send_function_output(call.call_id, '{"status": "shipped"}')
        await rig.next(ResponseCreated)
        second = await rig.next(ResponseDone)
        assert (first.status, second.status) == ("completed", "completed")
        follow_item = next(a.item_id for a in rig.of(AgentAudio)
                           if a.response_id == second.response_id)  # fmt: skip
        follow = rig.audio(follow_item)
        assert np.array_equal(follow, prompt_pcm(rig.server, "order_shipped"))
        created = list(rig.server.sessions[0].created_items())
        assert created == [{"type": "function_call_output", "call_id": call.call_id,
                            "output": '{"status": "shipped"}'}]  # fmt: skip
        assert rig.server.sessions[0].sent_of("error") == []


async def test_function_output_during_a_response_waits_for_its_end() -> None:
    async with realtime_rig(script=TOOL_SCRIPT, faults=Faults(audio_speed=5.0)) as rig:
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        # the response is still open (output_item.done, response.done to come)
        await rig.session.send_function_output(call.call_id, "shipped")
        await rig.next(ResponseDone)
        await rig.next(ResponseDone)
        record = rig.server.sessions[0]
        types = [
            e["type"]
            for e in record.received
            if e["type"].startswith(("response.", "conversation."))
        ]
        assert types == ["conversation.item.create", "response.create"]
        assert record.sent_of("error") == []  # never conversation_already_has_active_response


async def test_send_text_adds_a_user_message_and_asks_for_a_reply() -> None:
    async with realtime_rig() as rig:
        await rig.session.send_text("The caller pressed 5.")
        await rig.session.send_text("Caller ID: 555-0100", role="system")
        done = await rig.next(ResponseDone)
        assert done.status == "completed"
        record = rig.server.sessions[0]
        assert record.item_texts() == [("user", "The caller pressed 5."),
                                       ("system", "Caller ID: 555-0100")]  # fmt: skip
        assert len(record.received_of("response.create")) == 1


async def test_caller_transcripts_arrive_when_transcription_is_on() -> None:
    settings = RealtimeSettings(
        provider="local", transcription=Transcription("gpt-4o-mini-transcribe", "en")
    )
    script = Script.from_mapping({"turn": [{"turn": 1, "say": "greeting", "caller": "hi"}]})
    async with realtime_rig(settings, script=script) as rig:
        await rig.speak("sorry")
        await rig.next(ResponseDone)
        caller = [t for t in rig.of(TranscriptReceived) if t.speaker == "caller"]
        assert [(t.text, t.final) for t in caller] == [("hi", False), ("hi", True)]
        update = rig.server.sessions[0].received_of("session.update")[0]["session"]
        assert update["audio"]["input"]["transcription"] == {
            "model": "gpt-4o-mini-transcribe",
            "language": "en",
        }
