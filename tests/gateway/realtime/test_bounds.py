"""What a hostile or broken server cannot make the session do: wait forever for a response that
never ends (`RESPONSE_STALL_S`), grow the conversation log and the carried-over items without
bound (`MAX_ITEM_CHARS`, `MAX_LOG_CHARS`), or hold a hang-up while a socket closes
(`HANGUP_CLOSE_S`). Faults come from the local server's knobs; time limits are shortened."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from gateway.realtime import (
    AgentAudio,
    FunctionCallRequested,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
    ResponseCreated,
    ResponseDone,
    SessionConnected,
    SessionLost,
)
from gateway.realtime import connection as connection_module
from gateway.realtime.conversation import CUT_MARK, MAX_ITEM_CHARS, MAX_LOG_CHARS
from gateway.realtime.local import Faults, LocalRealtimeServer
from tests.gateway.realtime.rig import WAIT_S, prompt_pcm, realtime_rig
from tests.gateway.realtime.test_schema import sample
from tests.gateway.realtime.test_session import TOOL_SCRIPT

STALL_S = 0.3
STRAY = json.dumps({**sample("response.created"), "response": {
    "object": "realtime.response", "id": "resp_stray", "status": "in_progress", "output": []
}})  # fmt: skip


async def test_a_stray_response_created_stops_blocking_the_queue_after_the_stall_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connection_module, "RESPONSE_STALL_S", STALL_S)
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    # Right after the tool call's response ends, a response.created that nothing follows.
    faults = Faults(audio_speed=50.0, inject=(STRAY,), inject_after="response.done")
    async with realtime_rig(script=TOOL_SCRIPT, faults=faults) as rig:
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        await rig.next(ResponseDone)
        stray = await rig.next(ResponseCreated)
        stray_at = trio.current_time()
        assert stray.response_id == "resp_stray"
        await rig.session.send_function_output(call.call_id, '{"status": "shipped"}')
        given_up = await rig.next(ResponseDone)
        waited_s = trio.current_time() - stray_at
        print(f"stray response released after {waited_s:.2f} s (stall time {STALL_S} s)")
        assert given_up.response_id == "resp_stray"
        assert (given_up.status, given_up.reason) == ("incomplete", "stalled")
        assert STALL_S <= waited_s < STALL_S + 1.0
        follow = await rig.next(ResponseDone)
        assert follow.status == "completed"
        item = next(a.item_id for a in rig.of(AgentAudio) if a.response_id == follow.response_id)
        assert np.array_equal(rig.audio(item), prompt_pcm(rig.server, "order_shipped"))
        record = rig.server.sessions[0]
        assert [e.get("response_id") for e in record.received_of("response.cancel")] == [
            "resp_stray"
        ]
        assert [e["error"]["code"] for e in record.sent_of("error")] == [
            "response_cancel_not_active"  # the server never had it: harmless
        ]
    stalls = [r for r in caplog.records if "showed no activity" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in stalls] == [(logging.WARNING, (
        f"realtime #1: response resp_stray showed no activity for {STALL_S:g} s: taken as done"
    ))]  # fmt: skip


async def test_a_response_that_keeps_streaming_is_not_taken_for_stalled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connection_module, "RESPONSE_STALL_S", STALL_S)
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    # 3.9 s of greeting at 4x real time: ~1 s of deltas 25 ms apart, longer than the stall time
    async with realtime_rig(faults=Faults(audio_speed=4.0)) as rig:
        await rig.speak("sorry")
        created = await rig.next(ResponseCreated)
        done = await rig.next(ResponseDone, timeout_s=10.0)
        assert (done.response_id, done.status) == (created.response_id, "completed")
        assert np.array_equal(rig.audio(), prompt_pcm(rig.server, "greeting"))
        assert len(rig.of(ResponseDone)) == 1
    assert "showed no activity" not in caplog.text


async def test_a_hang_up_while_a_rotated_away_socket_closes_is_quick() -> None:
    """The old session's server stopped reading (its close reply never comes): its polite
    close may take `CLOSE_S`, but a hang-up in the meantime ends run() within about
    `HANGUP_CLOSE_S`. The session runs in a call nursery of the test's own, as in a call."""
    faults = Faults(audio_speed=50.0, stall_after_events=2, stall_s=10.0, first_connections=1)
    server = LocalRealtimeServer(faults=faults)
    async with trio.open_nursery() as outer:
        url = await outer.start(server.run)
        settings = RealtimeSettings(provider="local", rotate_after_s=0.3, url=url + "?model=t")
        frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](64)
        events_send, events_recv = trio.open_memory_channel[RealtimeEvent](1024)
        session = RealtimeSession(settings, None, frames_recv, events_send)
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as call:
                await call.start(session.run)
                for _ in range(10):  # appends the stalled server leaves unread: it backs up
                    await frames_send.send(np.zeros(FRAME_SAMPLES, np.int16))
                async for event in events_recv:
                    if isinstance(event, SessionConnected) and event.rotated:
                        break
                await trio.sleep(0.05)
                assert server.sessions[0].closed == ""  # closing politely, for up to CLOSE_S
                hung_up_at = trio.current_time()
                call.cancel_scope.cancel(reason="hung up")
            took_s = trio.current_time() - hung_up_at
        outer.cancel_scope.cancel()
    print(f"hang-up took {took_s * 1000:.0f} ms (bound 300 ms; a polite close may take "
          f"{connection_module.CLOSE_S:g} s)")  # fmt: skip
    assert took_s < 0.3


async def test_huge_transcripts_from_a_hostile_server_are_capped_in_the_carried_items(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    words = "word " * 60_000  # 300 KB a transcript, 40 of them: 12 MB of text
    transcribed = sample("conversation.item.input_audio_transcription.completed")
    caller = tuple(json.dumps({**transcribed, "item_id": f"item_hostile_{n:02d}",
                               "transcript": f"{n:02d} {words}"})
                   for n in range(40))  # fmt: skip
    agent = tuple(json.dumps({**sample("response.output_audio_transcript.delta"),
                              "item_id": "item_hostile_agent", "delta": words})
                  for _ in range(5))  # fmt: skip
    faults = Faults(audio_speed=50.0, inject=caller + agent, disconnect_after_s=1.0,
                    first_connections=1)  # fmt: skip
    async with realtime_rig(faults=faults) as rig:
        assert (await rig.next(SessionLost, timeout_s=10.0)).retrying
        await rig.next(SessionConnected)
        second = await rig.server_saw(1, lambda r: ("assistant", CUT_MARK) in [
            (role, text[-1:]) for role, text in r.item_texts()])  # fmt: skip
        carried = second.item_texts()
    sizes = [len(text) for _, text in carried]
    print(f"carried {len(carried)} items, {sum(sizes)} characters (of 12 MB sent)")
    assert max(sizes) <= MAX_ITEM_CHARS
    assert sum(sizes) <= MAX_LOG_CHARS
    firsts = [text[:2] for role, text in carried if role == "user"]
    assert firsts == [f"{n:02d}" for n in range(40 - len(firsts), 40)]  # the newest, in order
    assert carried[-1][0] == "assistant"  # the reply the drop cut off, cut to the cap
    assert len(carried) >= MAX_LOG_CHARS // MAX_ITEM_CHARS
    notes = [r.getMessage() for r in caplog.records if "for carrying over" in r.getMessage()]
    assert notes == [
        "realtime: a caller text of 300003 characters from the server is kept as its first "
        f"{MAX_ITEM_CHARS} for carrying over (further cuts are counted)"
    ]
    assert "the conversation log is past" in caplog.text
