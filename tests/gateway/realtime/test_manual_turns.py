"""Turns decided here, with the server's turn detection off (`turn_detection` None: push-to-talk,
a local VAD): `RealtimeSession.commit_input` and `clear_input` against the local server, whose
input buffer is committed and cleared by hand when its VAD is off. Every client event of these
sessions validates strictly against the `openai` package's client union, every server event
against its server union."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from gateway.realtime import (
    AgentAudio,
    RealtimeSettings,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    Transcription,
    TranscriptReceived,
)
from gateway.realtime.local import LocalRealtimeServer, SessionRecord
from tests.gateway.realtime.openai_schema import check_client, check_server
from tests.gateway.realtime.rig import (
    FAST,
    Rig,
    frames_of,
    prompt_pcm,
    raw_client,
    realtime_rig,
    speech_then_silence,
)

MANUAL = RealtimeSettings(provider="local", turn_detection=None,
                          transcription=Transcription("gpt-4o-mini-transcribe"))  # fmt: skip
INPUT_EVENTS = ("input_audio_buffer.commit", "input_audio_buffer.clear", "response.create")


def spoken_frames(server: LocalRealtimeServer, name: str, silence_ms: int = 300) -> int:
    pcm = np.concatenate([prompt_pcm(server, name), np.zeros(8 * silence_ms, np.int16)])
    return len(frames_of(pcm))


def control_events(record: SessionRecord) -> list[str]:
    return [e["type"] for e in record.received if e["type"] in INPUT_EVENTS]


def validate_both_ways(rig: Rig) -> None:
    for record in rig.server.sessions:
        for event in record.received:
            check_client(event)
        for event in record.sent:
            check_server(event)


async def test_a_turn_with_turn_detection_off_is_committed_here_and_answered() -> None:
    async with realtime_rig(MANUAL) as rig:
        await rig.speak("sorry", silence_ms=300)
        frames = spoken_frames(rig.server, "sorry")
        assert frames % 2 == 1  # an odd frame out: the commit sends the partial append first
        assert await rig.session.commit_input()
        created = await rig.next(ResponseCreated)
        done = await rig.next(ResponseDone)
        assert (done.response_id, done.status) == (created.response_id, "completed")
        assert np.array_equal(rig.audio(), prompt_pcm(rig.server, "greeting"))
        assert rig.of(SpeechStarted) == []  # no server VAD: the turn was ours
        record = rig.server.sessions[0]
        update = record.received_of("session.update")[0]["session"]
        assert update["audio"]["input"]["turn_detection"] is None
        assert control_events(record) == ["input_audio_buffer.commit", "response.create"]
        assert record.appended_ms == 20 * frames  # every frame spoken before the commit
        assert rig.session.stats.frames_sent == frames
        caller = [t for t in rig.of(TranscriptReceived) if t.speaker == "caller" and t.final]
        assert [t.text for t in caller] == [f"(caller speech, {frames * 0.02:.1f} s)"]
        assert record.sent_of("error") == []
        validate_both_ways(rig)


async def test_clear_input_forgets_the_audio_and_the_next_commit_holds_only_the_new_turn() -> None:
    async with realtime_rig(MANUAL) as rig:
        await rig.speak("goodbye", silence_ms=300)  # judged noise here: cleared
        await rig.session.clear_input()
        assert not await rig.session.commit_input()  # nothing left to commit: no reply either
        await rig.speak("sorry", silence_ms=300)
        assert await rig.session.commit_input()
        await rig.next(ResponseDone)
        caller = [t for t in rig.of(TranscriptReceived) if t.speaker == "caller" and t.final]
        seconds = spoken_frames(rig.server, "sorry") * 0.02
        assert [t.text for t in caller] == [f"(caller speech, {seconds:.1f} s)"]
        record = rig.server.sessions[0]
        assert control_events(record) == [
            "input_audio_buffer.clear", "input_audio_buffer.commit", "response.create"
        ]  # fmt: skip
        assert len(record.sent_of("input_audio_buffer.cleared")) == 1
        assert record.sent_of("error") == []
        validate_both_ways(rig)


async def test_commit_input_while_the_agent_speaks_waits_for_its_response_to_end() -> None:
    async with realtime_rig(MANUAL) as rig:
        await rig.speak("sorry", silence_ms=300)
        assert await rig.session.commit_input()
        await rig.next(AgentAudio)
        await rig.speak("goodbye", silence_ms=300)  # the caller talks over the reply
        assert await rig.session.commit_input()  # its response.create waits in the queue
        first = await rig.next(ResponseDone)
        second = await rig.next(ResponseDone)
        assert (first.status, second.status) == ("completed", "completed")
        record = rig.server.sessions[0]
        assert control_events(record) == ["input_audio_buffer.commit", "response.create"] * 2
        assert record.sent_of("error") == []  # never conversation_already_has_active_response


async def test_commit_input_without_respond_adds_the_turn_and_asks_nothing() -> None:
    async with realtime_rig(MANUAL) as rig:
        await rig.speak("sorry", silence_ms=300)
        assert await rig.session.commit_input(respond=False)
        record = await rig.server_saw(0, lambda r: bool(r.sent_of("conversation.item.done")))
        assert control_events(record) == ["input_audio_buffer.commit"]
        assert rig.of(ResponseCreated) == []


@pytest.mark.parametrize("turn_detection", [None, "server_vad"])
async def test_the_local_server_commits_and_clears_by_hand(turn_detection: str | None) -> None:
    """The local server's own answers to input_audio_buffer.commit and .clear, VAD off or on."""
    async with raw_client(faults=FAST) as raw:
        td = None if turn_detection is None else {"type": turn_detection, "create_response": False}
        await raw.configure()
        await raw.send({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": td}}}})  # fmt: skip
        updated = await raw.until("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] == td
        await raw.send({"type": "input_audio_buffer.commit", "event_id": "tr_1"})
        empty = await raw.until("error")
        assert (empty["error"]["code"], empty["error"]["event_id"]) == (
            "input_audio_buffer_commit_empty", "tr_1")  # fmt: skip
        audio = speech_then_silence(raw.server, "sorry", silence_ms=0)[:4000]  # 500 ms
        await raw.send({"type": "input_audio_buffer.append", "audio": _b64(audio)})
        await raw.send({"type": "input_audio_buffer.clear", "event_id": "tr_2"})
        await raw.until("input_audio_buffer.cleared")
        await raw.send({"type": "input_audio_buffer.commit", "event_id": "tr_3"})
        assert (await raw.until("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        await raw.send({"type": "input_audio_buffer.append", "audio": _b64(audio)})
        await raw.send({"type": "input_audio_buffer.commit", "event_id": "tr_4"})
        committed = await raw.until("input_audio_buffer.committed")
        added = await raw.until("conversation.item.added")
        assert added["item"]["id"] == committed["item_id"]
        assert added["item"]["role"] == "user"
        assert [e["type"] for e in raw.got if e["type"] == "response.created"] == []
        for event in raw.got:
            check_server(event)
        for event in raw.server.sessions[0].received:
            check_client(event)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
