"""Connections end and the call goes on: a dropped socket, the session limit, a dead link
(no pong), a planned rotation; each new session gets the instructions and the conversation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import trio

from gateway.realtime import (
    AgentAudio,
    ErrorReported,
    FunctionCallRequested,
    RealtimeSettings,
    ResponseDone,
    SessionConnected,
    SessionLost,
    Transcription,
)
from gateway.realtime import connection as connection_module
from gateway.realtime.local import Faults, Script
from tests.gateway.realtime.rig import FAST, Rig, prompt_pcm, realtime_rig

CARRY = RealtimeSettings(
    provider="local",
    instructions="You are the tipring test agent.",
    transcription=Transcription("gpt-4o-mini-transcribe"),
)
SCRIPT = Script.from_mapping({"turn": [
    {"turn": 1, "say": "greeting", "caller": "Where is my order?"},
    {"turn": 2, "say": "one_moment", "call": "lookup_order", "arguments": {"order_id": "7"},
     "then_say": "order_shipped"},
]})  # fmt: skip


async def feed_silence(rig: Rig, seconds: float) -> None:
    """Caller line noise at real time (so a stalled server's socket backs up, as a real one's)."""
    for _ in range(int(seconds / 0.02)):
        rig.frames_send.send_nowait(np.zeros(160, np.int16))
        await trio.sleep(0.02)


async def test_a_dropped_socket_reconnects_and_carries_the_conversation_over() -> None:
    faults = Faults(audio_speed=50.0, disconnect_after_s=0.6, first_connections=1)
    async with realtime_rig(CARRY, script=SCRIPT, faults=faults) as rig:
        await rig.speak("sorry")
        await rig.next(ResponseDone)
        lost = await rig.next(SessionLost)
        assert lost.retrying
        assert "1011" in lost.reason
        connected = await rig.next(SessionConnected)
        assert (connected.connects, connected.rotated) == (2, False)
        second = await rig.server_saw(1, lambda r: len(list(r.created_items())) >= 2)
        update = second.received_of("session.update")[0]["session"]
        assert update["instructions"] == "You are the tipring test agent."
        assert second.item_texts() == [
            ("user", "Where is my order?"),
            ("assistant", rig.server.prompts.text["greeting"]),
        ]
        # the call goes on in the new session: the next turn is answered there
        await rig.speak("sorry")
        await rig.next(FunctionCallRequested)
        assert second.turns == 1
        assert rig.session.stats.connects == 2


async def test_a_function_output_after_a_drop_finds_its_call_in_the_new_session() -> None:
    script = Script.from_mapping({"turn": [{"turn": 1, "call": "lookup_order",
                                            "then_say": "order_shipped"}]})  # fmt: skip
    faults = Faults(audio_speed=50.0, disconnect_after_s=0.5, first_connections=1)
    async with realtime_rig(script=script, faults=faults) as rig:
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        await rig.next(SessionConnected)  # the tool took longer than the socket lived
        await rig.session.send_function_output(call.call_id, '{"status": "shipped"}')
        done = await rig.next(ResponseDone)
        assert done.status == "completed"
        second = rig.server.sessions[1]
        assert [i["type"] for i in second.created_items()] == [
            "function_call",
            "function_call_output",
        ]
        assert second.sent_of("error") == []
        assert np.array_equal(rig.audio(rig.of(AgentAudio)[-1].item_id),
                              prompt_pcm(rig.server, "order_shipped"))  # fmt: skip


async def test_the_session_limit_moves_the_call_to_a_new_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    faults = Faults(audio_speed=50.0, session_limit_s=0.5, first_connections=1)
    async with realtime_rig(CARRY, script=SCRIPT, faults=faults) as rig:
        await rig.speak("sorry")
        expired = await rig.next(ErrorReported)
        assert (expired.code, expired.fatal) == ("session_expired", False)
        lost = await rig.next(SessionLost)
        assert lost.retrying
        assert lost.reason.startswith("session expired: Your session hit the maximum duration")
        await rig.next(SessionConnected)
        assert rig.server.sessions[0].closed.startswith("1001")
        assert "carrying the call over to a new session" in caplog.text


async def test_rotation_switches_sessions_between_turns_without_a_loss() -> None:
    settings = RealtimeSettings(
        provider="local",
        instructions="Rotate me.",
        transcription=Transcription("whisper-1"),
        rotate_after_s=0.5,
    )
    async with realtime_rig(settings, script=SCRIPT, faults=Faults(audio_speed=50.0,
                            session_limit_s=8.0)) as rig:  # fmt: skip
        await rig.speak("sorry")
        done = await rig.next(ResponseDone)
        answered_at = trio.current_time()
        rotated = await rig.next(SessionConnected, timeout_s=8.0)
        switched_at = trio.current_time()
        assert (rotated.connects, rotated.rotated) == (2, True)
        assert rig.of(SessionLost) == []
        # the greeting (3.9 s of audio, streamed in ~0.1 s) was left to play out first
        played_s = prompt_pcm(rig.server, "greeting").size / 8000
        assert switched_at - answered_at >= played_s - 0.5, switched_at - answered_at
        second = await rig.server_saw(1, lambda r: len(list(r.created_items())) >= 2)
        assert second.item_texts() == [
            ("user", "Where is my order?"),
            ("assistant", rig.server.prompts.text["greeting"]),
        ]
        assert second.received_of("session.update")[0]["session"]["instructions"] == "Rotate me."
        first = await rig.server_saw(0, lambda r: bool(r.closed))
        assert first.closed.startswith("client"), first.closed  # closed by us, politely
        await rig.speak("sorry")
        await rig.next(FunctionCallRequested)
        assert second.turns == 1
        assert done.status == "completed"


async def test_a_stalled_server_is_found_dead_by_the_keepalive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection_module, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(connection_module, "PING_TIMEOUT_S", 0.3)
    faults = Faults(audio_speed=50.0, stall_after_events=2, stall_s=3.0, first_connections=1)
    async with realtime_rig(faults=faults) as rig, trio.open_nursery() as nursery:
        nursery.start_soon(feed_silence, rig, 3.0)
        lost = await rig.next(SessionLost)
        assert lost.reason == "no pong within 0.3 s: the link is dead"
        assert (await rig.next(SessionConnected)).connects == 2
        nursery.cancel_scope.cancel()


async def test_a_refused_first_connect_is_retried() -> None:
    faults = Faults(audio_speed=50.0, reject_status=503, first_connections=1)
    async with realtime_rig(faults=faults) as rig:
        connected = await rig.next(SessionConnected)
        assert connected.connects == 1
        assert rig.server.sessions[0].closed == "rejected 503"
        assert len(rig.server.sessions) == 2


async def test_malformed_and_unknown_events_are_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    faults = Faults(audio_speed=50.0, malformed_every=5, unknown_every=7)
    async with realtime_rig(faults=faults) as rig:
        await rig.speak("sorry")
        done = await rig.next(ResponseDone)
        assert done.status == "completed"
        assert np.array_equal(rig.audio(), prompt_pcm(rig.server, "greeting"))
        stats = rig.session.stats
        assert stats.unknown > 0
        assert stats.connects == 1
        assert "dropped a malformed server event" in caplog.text
        assert "ignoring server event type 'tipring.fault.unknown_event'" in caplog.text
        assert FAST.malformed_every == 0
