"""gateway.call on trio's MockClock with a fake realtime session (`fake_session`): what the
call does when the cloud says so, frame-exact and fast. The line is a `LineSim` (the caller,
the echo of what was sent, noise, mu-law); the cloud is the test."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import trio
from trio.testing import MockClock

from dsp.callerid import CallerId
from dsp.dtmf import DtmfDetector
from dsp.frame import RATE_HZ
from firmware_bridge.port import PortKind
from firmware_bridge.sim.echo_paths import EchoPath
from gateway.call import CallPipeline
from gateway.call_config import GREETING, AgentProfile, CallConfig
from gateway.realtime import (
    FunctionCallRequested,
    RealtimeSettings,
    SessionConnected,
    SessionLost,
    SpeechStarted,
)
from gateway.tools import ToolRegistry
from gateway.tools_builtin import send_dtmf_tool
from tests.gateway.fake_session import FakeSession, fake_factory, fake_rig
from tests.gateway.line_rig import line_rig
from tests.gateway.pipeline_rig import LOUD, loudest, pcm_of

SHORT = slice(640, 4800)


def lead_of(pcm: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(pcm) > LOUD)[0])


async def test_speech_started_from_the_cloud_alone_stops_the_agent_and_truncates(
    autojump_clock: MockClock,
) -> None:
    answer = pcm_of("order_shipped")
    async with fake_rig() as rig:
        _, item = await rig.cloud.say(answer)
        first = await rig.line.agent_talking()
        await rig.line.until(lambda: len(rig.line.port.sent) * 160 > first + 8000)
        told = len(rig.line.port.sent) * 160  # frames sent before the cloud spoke
        await rig.cloud.emit(SpeechStarted("item_caller", 1000))
        await trio.sleep(0.5)
        sent = rig.line.port.sent_pcm()
    record = rig.line.record
    loud = np.flatnonzero(np.abs(sent[told:]) > LOUD)
    assert loud.size == 0 or loud[-1] < 160 + 40  # the next frame fades out within 5 ms
    played_ms = (told + (loud[-1] + 1 if loud.size else 0) - first + lead_of(answer)) / 8
    assert rig.cloud.calls[-2] == ("cancel",)
    assert rig.cloud.calls[-1][:2] == ("truncate", item)
    at_ms = rig.cloud.calls[-1][2]
    assert isinstance(at_ms, int)
    assert abs(at_ms - played_ms) <= 10  # what the caller heard of it
    assert record.barge_ins["cloud_only"] == 1


async def test_an_unconfirmed_pause_resumes_where_the_agent_stopped(
    autojump_clock: MockClock,
) -> None:
    answer = pcm_of("order_shipped")
    async with fake_rig(CallConfig(confirm_window_s=1.0)) as rig:
        await rig.cloud.say(answer)
        first = await rig.line.agent_talking()
        target = first + loudest(answer, 1.2, 2.5) - lead_of(answer)
        rig.line.port.say_at(pcm_of("booked")[640:2240], target + 160)  # a 200 ms "hm"
        await rig.line.until(lambda: len(rig.line.port.sent) * 160 > target + 2 * RATE_HZ)
        sent = rig.line.port.sent_pcm()
    record = rig.line.record
    quiet = np.convolve(np.abs(sent[target:]) <= LOUD, np.ones(800), "valid") == 800
    start = int(np.flatnonzero(quiet)[0])  # the first 100 ms of quiet after the onset ...
    end = start + int(np.flatnonzero(~quiet[start:])[0])  # ... and where that quiet ends
    paused_at, resumed_at = target + start, target + end + 799
    print(f"paused {(resumed_at - paused_at) / 8:.0f} ms")
    assert record.barge_ins == {"paused": 1, "confirmed": 0, "resumed": 1, "cloud_only": 0}
    assert 950 <= (resumed_at - paused_at) / 8 <= 1100  # the window (1 s)
    # after the fade-in, the answer goes on from the sample after the last one played
    heard = paused_at - first + lead_of(answer)  # about where it paused
    piece = sent[resumed_at + 80 : resumed_at + 1680]
    found = [d for d in range(-400, 400) if np.array_equal(
        answer[heard + 80 + d : heard + 1680 + d], piece)]  # fmt: skip
    assert found, "the agent did not go on where it paused"
    assert rig.cloud.calls == []  # nothing cancelled or truncated


async def test_hold_beeps_while_the_cloud_reconnects_and_stop_when_it_is_back(
    autojump_clock: MockClock,
) -> None:
    async with fake_rig() as rig:
        await trio.sleep(0.2)
        lost = len(rig.line.port.sent) * 160
        await rig.cloud.emit(SessionLost("network", retrying=True))
        await trio.sleep(3.0)
        await rig.cloud.emit(SessionConnected("sess_2", 2, False))
        back = len(rig.line.port.sent) * 160
        await trio.sleep(3.0)
        sent = rig.line.port.sent_pcm()
    record = rig.line.record
    loud = np.flatnonzero(np.abs(sent[lost:back]) > LOUD) / 8
    starts = [ms for i, ms in enumerate(loud) if i == 0 or ms - loud[i - 1] > 100]
    assert [round(ms, -2) for ms in starts] == [500, 2500]  # after 0.5 s, then every 2 s
    assert np.abs(sent[back + 1600 :]).max() <= LOUD  # none once it is back
    assert record.reconnects == 1


async def test_a_failed_session_mid_call_leaves_a_voicemail_and_ends(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = CallConfig(voicemail_dir=tmp_path, voicemail_silence_s=2.0)
    async with fake_rig(config) as rig:
        await trio.sleep(0.5)
        rig.cloud.fail.set()
        await rig.line.agent_talking()  # the fallback prompt
        fallback = pcm_of("sorry").size / RATE_HZ
        start = len(rig.line.port.sent) * 160 + int((fallback + 0.6) * RATE_HZ)
        rig.line.port.say_at(pcm_of("booked"), start)  # after the prompt and the beep
        await rig.line.until(rig.line.done.is_set, limit_s=30.0)
    record = rig.line.record
    assert record.ended_by == "cloud unavailable"
    assert record.voicemail is not None
    with wave.open(record.voicemail, "rb") as wav:
        saved = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    message = pcm_of("booked").size / RATE_HZ
    assert message + 1.5 <= saved.size / RATE_HZ <= message + 2.5  # then 2 s of quiet ended it


async def test_a_hang_up_during_the_voicemail_keeps_what_was_said(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = CallConfig(voicemail_dir=tmp_path, hold_timeout_s=0.0)
    async with fake_rig(config) as rig:
        await rig.cloud.emit(SessionLost("network", retrying=True))  # gives up at once
        await rig.line.agent_talking()
        start = len(rig.line.port.sent) * 160 + int(
            (pcm_of("sorry").size / RATE_HZ + 0.6) * RATE_HZ
        )
        rig.line.port.say_at(pcm_of("booked"), start)
        await rig.line.until(lambda: len(rig.line.port.sent) * 160 > start + RATE_HZ)
        rig.line.hang_up()
    record = rig.line.record
    assert record.ended_by == "caller hung up (phone on-hook)"
    assert record.voicemail is not None
    with wave.open(record.voicemail, "rb") as wav:
        assert 0.8 <= wav.getnframes() / RATE_HZ <= 1.6


async def test_the_agent_gets_the_caller_id_then_asks_for_its_greeting(
    autojump_clock: MockClock,
) -> None:
    async with fake_rig(greeting=GREETING, callerid=CallerId("5550100", "ALICE")) as rig:
        await rig.line.until(lambda: len(rig.cloud.calls) >= 2)
    assert rig.cloud.calls == [("text", "Caller ID: ALICE 5550100", "system"),
                               ("text", GREETING, "system")]  # fmt: skip


async def test_the_line_actor_runs_the_call_and_ends_it_at_on_hook(
    autojump_clock: MockClock,
) -> None:
    sessions: list[FakeSession] = []
    profile = AgentProfile(RealtimeSettings(provider="local"))
    pipeline = CallPipeline({"default": profile}, session_factory=fake_factory(sessions))
    async with line_rig(PortKind.FXS, starter=pipeline) as rig:  # type: ignore[arg-type]
        rig.port.phone_off_hook()
        await rig.until(lambda: bool(sessions) and bool(sessions[0].calls))
        await trio.sleep(1.0)
        rig.port.phone_on_hook()
        await rig.until(lambda: bool(pipeline.records))
    [record] = pipeline.records
    assert record.ended_by == "caller hung up (phone on-hook)"
    assert record.frames >= 45  # the call had the line's audio for its second
    assert sessions[0].calls == [("text", GREETING, "system")]


async def test_the_echo_of_dtmf_the_agent_sends_is_not_taken_for_the_callers_keys(
    autojump_clock: MockClock,
) -> None:
    loud_echo = EchoPath.pure_delay(8.0, erl_db=6.0)  # a flat hybrid; no agent speech yet
    async with fake_rig(tools=ToolRegistry([send_dtmf_tool()]), echo=loud_echo) as rig:
        await rig.cloud.emit(FunctionCallRequested("call_1", "send_dtmf", '{"digits": "159#"}',
                                                   "item_1", "resp_1"))  # fmt: skip
        await rig.line.until(lambda: any(c[0] == "output" for c in rig.cloud.calls))
        await trio.sleep(1.5)
        sent = rig.line.port.sent_pcm()
        heard = np.concatenate(rig.line.port.received)
    assert "".join(k.digit for k in DtmfDetector().feed(sent)) == "159#"
    assert "".join(k.digit for k in DtmfDetector().feed(heard)) == "159#"  # its echo came back
    assert rig.line.record.dtmf == ""
    assert not any(c[0] == "text" for c in rig.cloud.calls)


async def barge_in_once(at_s: float, caller: np.ndarray, gain_db: float) -> float:
    """One call: the agent says a long answer; the caller starts `caller` (scaled by
    `gain_db`) at the loudest moment after `at_s`. Returns ms from the caller's onset to the
    agent's last loud sample on the line (inf: the agent went on)."""
    answer = pcm_of("order_shipped")
    speech = np.clip(caller * 10 ** (gain_db / 20), -32768, 32767).astype(np.int16)
    async with fake_rig() as rig:
        await rig.cloud.say(answer)
        first = await rig.line.agent_talking()
        target = first + loudest(answer, at_s, at_s + 0.4) - lead_of(answer)
        onset = rig.line.port.say_at(speech, target + 160)
        await rig.line.until(lambda: len(rig.line.port.sent) * 160 > onset + 4000)
        sent = rig.line.port.sent_pcm()
    at = onset - 160
    loud = np.flatnonzero(np.abs(sent[at : at + 4000]) > LOUD)
    return math.inf if loud.size and loud[-1] > 3000 else (loud[-1] / 8 if loud.size else 0.0)


async def test_barge_in_stops_the_agent_within_50_ms_wherever_the_caller_starts(
    autojump_clock: MockClock,
) -> None:
    stops: list[float] = []
    for caller in ("booked", "sorry", "greeting"):
        clip = pcm_of(caller)[640:]
        for at_s in (1.0, 1.6, 2.2, 2.8):
            for gain_db in (0.0, -6.0, -12.0):
                stops.append(await barge_in_once(at_s, clip, gain_db))
    finite = [s for s in stops if math.isfinite(s)]
    print(f"barge-in over {len(stops)} onsets: stop p50 {np.percentile(finite, 50):.1f} ms, "
          f"p95 {np.percentile(finite, 95):.1f} ms, max {max(finite):.1f} ms, "
          f"missed {len(stops) - len(finite)}")  # fmt: skip
    assert len(finite) == len(stops)
    assert max(finite) <= 50.0


async def test_capture_writes_both_directions_as_wav(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    async with fake_rig(CallConfig(capture_dir=tmp_path)) as rig:
        await rig.cloud.say(pcm_of("goodbye"))
        await rig.line.agent_talking()
        rig.line.port.say(pcm_of("booked"))
        await trio.sleep(4.0)
    record = rig.line.record
    assert sorted(Path(p).name for p in record.captures) == ["call-1-line.wav", "call-1-uplink.wav"]
    sent = rig.line.port.sent_pcm()
    for path in record.captures:
        with wave.open(path, "rb") as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        assert pcm.size == sent.size  # a frame each way per frame received
        if path.endswith("-line.wav"):
            assert np.array_equal(pcm, sent)
        else:  # the caller's words, the agent's echo cancelled
            assert np.abs(pcm).max() > 3000
