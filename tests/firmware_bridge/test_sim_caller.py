"""firmware_bridge.sim.caller: `tipring demo`'s scripted caller against a fake agent that
answers on the line's own clock with known latencies (the turn latencies and the barge-in
stop time it reports must be exactly those), and a caller scripted through
`AdapterSimulator.line` on a real pty, with the host answering over `AdapterLink`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.errors import DspInputError
from firmware_bridge.link import AdapterLink
from firmware_bridge.port import LineEvent, LoopCurrentDropped, PortKind, PortReady, RingStarted
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.caller import (
    CALLER_STARTS,
    CallerScript,
    Exchange,
    HangUp,
    Mark,
    Pause,
    Press,
    Say,
    WaitForSilence,
    WaitForVoice,
    demo_caller,
)
from firmware_bridge.sim.host_voice import voiced_ms
from firmware_bridge.sim.line import LineModel, LineState
from tests.signals import white_noise

FRAME = 160
FRAME_MS = 20.0
CID = CallerId("5551234567", "ALICE SMITH", "03031000")
ANSWER_AT_MS = 1000  # the fake host answers during the first ring
GREET_AFTER_MS = 200  # and greets this long after
REPLY_MS = 700  # the fake agent answers this long after the caller's last voiced ms
END_OF_SPEECH_MS = 300  # the fake agent's end-of-speech rule (< REPLY_MS: it is in time)
STOP_MS = 30  # the fake agent stops this long after the caller starts talking over it
CALL_S = 40.0  # line time: the whole scenario with room to spare
FAST_TICK_S = 0.005  # the simulator's lines run 4x real time
RIG_S = 30.0


def agent_speech(ms: int, seed: int) -> NDArray[np.int16]:
    """Talk in 430 ms words with 90 ms pauses, voiced from the first sample."""
    x = white_noise(ms / 1000.0, -20.0, seed=seed)
    t_ms = np.arange(x.size) // 8
    x[t_ms % 520 >= 430] = 0
    return x


def caller_speech(seed: int) -> NDArray[np.int16]:
    """1.3 s: 50 ms of lead-in, 1100 ms of talk (300 ms words, 100 ms pauses), 150 ms out."""
    x = np.zeros(1300 * 8, np.int16)
    x[50 * 8 : 1150 * 8] = agent_speech(1100, seed)
    t_ms = np.arange(x.size) // 8
    x[(t_ms - 50) % 400 >= 300] = 0
    return x


@dataclass
class FakeAgent:
    """The host side: answers the ring, greets, answers each caller utterance REPLY_MS after
    its last voiced ms, and stops STOP_MS after the caller talks over it. It hears the line's
    audio (no echo, no noise) and decides per ms, as a box with a perfect VAD would."""

    line: LineModel
    replies: list[NDArray[np.int16]]
    clips: list[tuple[int, NDArray[np.int16]]] = field(default_factory=list)  # (sample, pcm)
    started_ms: list[int] = field(default_factory=list)
    caller_on: bool = False
    last_voice_ms: int = 0

    def send(self) -> NDArray[np.int16]:
        now = int(self.line.now_ms * 8)
        out = np.zeros(FRAME, np.int16)
        for start, pcm in self.clips:
            lo, hi = max(start, now), min(start + pcm.size, now + FRAME)
            if lo < hi:
                out[lo - now : hi - now] = pcm[lo - start : hi - start]
        return out

    def hear(self, rx: NDArray[np.int16], start_ms: int) -> None:
        if self.line.now_ms == ANSWER_AT_MS:
            self.line.host_off_hook()
            self._say(ANSWER_AT_MS + GREET_AFTER_MS)
        for i, voiced in enumerate(voiced_ms(rx).tolist()):
            t = start_ms + i
            if voiced and not self.caller_on:
                self.caller_on = True
                if self._talking(t):
                    self._stop_at((t + STOP_MS) * 8)
            if voiced:
                self.last_voice_ms = t
            elif self.caller_on and t - self.last_voice_ms >= END_OF_SPEECH_MS:
                self.caller_on = False
                self._say(self.last_voice_ms + 1 + REPLY_MS)

    def _say(self, at_ms: int) -> None:
        if self.replies:
            self.clips.append((at_ms * 8, self.replies.pop(0)))
            self.started_ms.append(at_ms)

    def _talking(self, t_ms: int) -> bool:
        return any(s <= t_ms * 8 < s + p.size for s, p in self.clips)

    def _stop_at(self, sample: int) -> None:
        self.clips = [(s, p[: max(0, sample - s)]) for s, p in self.clips]


def run_call(line: LineModel, agent: FakeAgent, seconds: float) -> list[tuple[float, LineEvent]]:
    timed = []
    for _ in range(round(seconds * 50)):
        at = line.now_ms
        rx, events = line.step(agent.send())
        agent.hear(rx, int(at))
        timed += [(at, e) for e in events]
    return timed


def test_demo_caller_against_a_fake_agent_reports_its_exact_latencies() -> None:
    line = LineModel(PortKind.FXO, echo=None, noise_dbm0=None)
    replies = [agent_speech(ms, seed) for seed, ms in enumerate((1400, 5000, 1400, 1400))]
    agent = FakeAgent(line, replies)
    caller = demo_caller(caller_speech(11), caller_speech(12), digit="7")
    caller.dial_in(line, CID)
    timed = run_call(line, agent, CALL_S)
    greet, answer, after_barge, after_key = agent.started_ms
    print(f"agent started talking at {agent.started_ms}; marks {line.marks}")
    print(f"played {line.played}")
    report = caller.measure(line)
    print(f"turn latency {report.turn_latency_ms} ms, barge-in stop {report.barge_in_stop_ms} ms")
    assert report.turn_latency_ms == [REPLY_MS, REPLY_MS]
    assert report.barge_in_stop_ms == [STOP_MS]
    request, interruption, key = line.played
    assert (request.label, interruption.label, key.label) == ("request", "interruption", "press 7")
    assert request.start_ms == greet + 1400 + 600  # the greeting heard out: 600 ms of quiet
    assert (request.voice_end_ms, key.voice_end_ms) == (answer - REPLY_MS, after_key - REPLY_MS)
    # 700 ms of voice into the answer is 430 + 90 (a pause) + 270 ms = 790 ms of talk
    assert interruption.start_ms == math.ceil((answer + 790) / FRAME_MS) * FRAME_MS
    assert [name for name, _ in line.marks] == [
        CALLER_STARTS, "greeted", "answering", "replied", "key answered"
    ]  # fmt: skip
    assert dict(line.marks)["answering"] == interruption.start_ms
    assert all(w.outcome == "met" for w in line.host_waits)
    assert len(line.host_waits) == 7
    assert [e for _, e in timed if isinstance(e, LoopCurrentDropped)] == [
        LoopCurrentDropped(0, 600.0)
    ]
    assert line.state is LineState.FAR_HUNG_UP
    assert after_barge > interruption.end_ms


def test_a_barge_in_while_the_agent_is_quiet_and_a_turn_never_answered_are_not_measured() -> None:
    line = LineModel(PortKind.FXS, echo=None, noise_dbm0=None)
    line.phone_off_hook()
    caller = CallerScript((Say(caller_speech(1), "hi", barge_in=True), Pause(100.0),
                           Say(caller_speech(2), "hello?"), WaitForVoice(200.0, 500.0),
                           WaitForSilence(), Mark("end"), HangUp()))  # fmt: skip
    caller.load(line)
    for _ in range(200):
        line.step()
    report = caller.measure(line)
    assert report.exchanges == (
        Exchange("hi", True, 50.0, 1150.0, None),
        Exchange("hello?", False, 1450.0, 2550.0, None),
    )
    assert (report.turn_latency_ms, report.barge_in_stop_ms) == ([], [])
    assert [w.outcome for w in line.host_waits] == ["timed_out", "met"]
    assert line.state is LineState.IDLE  # the phone hung up


def test_measure_matches_utterances_by_label_in_order_and_stops_where_the_call_did() -> None:
    line = LineModel(PortKind.FXS, echo=None, noise_dbm0=None)
    line.phone_off_hook()
    line.play(caller_speech(3), "say")  # not the caller's: it came first
    caller = CallerScript((Say(caller_speech(4)), Press("12"), Say(caller_speech(5))))
    caller.load(line)
    for _ in range(150):  # 3 s: the caller's first Say and the keys, not the last Say
        line.step()
    labels = [e.label for e in caller.measure(line).exchanges]
    assert labels == ["say", "press 12"]
    assert caller.measure(line).exchanges[0].voice_start_ms == 1300.0 + 50.0


def test_steps_are_checked() -> None:
    with pytest.raises(DspInputError, match="Say\\('x'\\) wants a 1-D int16"):
        Say(np.zeros(8, np.float64), "x")
    line = LineModel(PortKind.FXO)
    with pytest.raises(ValueError, match="wait_for_silence wants min_ms"):
        CallerScript((WaitForSilence(0.0),)).load(line)


async def test_a_caller_scripted_through_the_adapter_simulator_over_a_pty() -> None:
    model = LineModel(PortKind.FXO, port=0, echo=None, noise_dbm0=None)
    sim = AdapterSimulator([model], tick_s=FAST_TICK_S)
    assert sim.line(0) is model
    with pytest.raises(ValueError, match="no port 1; it has ports 0"):
        sim.line(1)
    hello = caller_speech(6)
    caller = CallerScript((WaitForVoice(100.0), Mark("heard"), Say(hello, "hello"), HangUp()))
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(sim.run)
            link = AdapterLink(path)
            await nursery.start(link.run)
            port = link.ports[0]
            caller.dial_in(sim.line(0), CID)
            talk = agent_speech(400, seed=9)
            async for event in port.events:  # PortReady, the line voltage, then the ring
                if isinstance(event, RingStarted):
                    break
                assert not isinstance(event, PortReady) or event.port == 0
            await port.off_hook()
            sent = 0
            async for frame in port.frames:  # one frame out per frame in (spec §7)
                del frame
                chunk = talk[sent * FRAME : (sent + 1) * FRAME]
                port.send_audio(chunk if chunk.size == FRAME else np.zeros(FRAME, np.int16))
                sent += 1
                if sim.line(0).state is LineState.FAR_HUNG_UP:
                    break
            nursery.cancel_scope.cancel()
    line = sim.line(0)
    (wait,) = line.host_waits
    onset = line.host_voice_after(wait.start_ms)
    print(f"host voice at the line from {onset} ms; wait {wait}; marks {line.marks}")
    assert onset is not None
    assert wait.outcome == "met"
    assert wait.met_ms == onset + 100.0  # the agent's words are voiced from the first sample
    assert line.marks[1:] == [("heard", wait.end_ms)]
    assert [(p.label, p.start_ms) for p in line.played] == [("hello", wait.end_ms)]
    assert caller.measure(line).exchanges[0].voice_start_ms == wait.end_ms + 50.0
