"""The cost and privacy gate (#8), end to end on the simulators: a fax machine calls (its CNG
calling tone, 1100 Hz, 0.5 s on / 3 s off, from the moment the line is answered). The box
hangs up on it and the record says "fax"; with `call.cloud_delay_s` (the gate, covered by a
local greeting) no cloud session is ever opened. A person calling through the same gate gets
the agent once the delay is over."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import trio

from dsp.levels import sine_amplitude
from firmware_bridge.sim.caller import (
    CallerScript,
    HangUp,
    Pause,
    Say,
    WaitForSilence,
    WaitForVoice,
)
from gateway.call_config import CallConfig
from gateway.call_fallback import load_prompts
from gateway.realtime.local import LocalRealtimeServer, Script
from gateway.simcall import demo_profile, run_sim_calls
from gateway.simcall_scenario import ScriptedCaller, load_caller_voice

RATE = 8000
GREETING = "Hello, thanks for calling. How can I help you today?"
GATE_S = 4.0  # CNG repeats every 3.5 s: a fax is heard within this, whatever its phase


def cng_cycle(level_dbm0: float = -15.0) -> np.ndarray:
    t = np.arange(int(0.5 * RATE)) / RATE
    burst = sine_amplitude(level_dbm0) * np.sin(2 * np.pi * 1100.0 * t)
    return np.concatenate([burst, np.zeros(3 * RATE)]).astype(np.int16)


def fax_machine() -> ScriptedCaller:
    cycle = cng_cycle()
    return ScriptedCaller(CallerScript((
        Pause(200.0), *(Say(cycle, f"cng {i}") for i in range(4)), HangUp("loop_drop"),
    )))  # fmt: skip


async def _run(callers: list[ScriptedCaller], config: CallConfig, cached: bool
               ) -> tuple[object, LocalRealtimeServer]:  # fmt: skip
    server = LocalRealtimeServer(script=Script())
    greeting = load_prompts()["greeting"]

    def profile(url: str) -> object:
        base = demo_profile(url)
        if not cached:
            return base
        return replace(base, greeting=None, greeting_audio=greeting, greeting_text=GREETING)

    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        result = await run_sim_calls(callers, script=Script(), realtime_url=url, config=config,
                                     profile=profile, timeout_s=40.0)  # type: ignore[arg-type]  # fmt: skip
        nursery.cancel_scope.cancel()
    return result, server


async def test_a_fax_is_hung_up_on_and_with_the_gate_never_reaches_the_cloud() -> None:
    result, server = await _run([fax_machine()], CallConfig(), cached=False)
    [record] = result.records  # type: ignore[attr-defined]
    assert record.hangup_signal == "fax"
    assert record.ended_by == "fax tone (CNG): declined"
    assert record.duration_s < 2.5  # the first burst, recognised 0.83 s after its onset
    gated, gated_server = await _run([fax_machine()], CallConfig(cloud_delay_s=GATE_S),
                                     cached=True)  # fmt: skip
    [gated_record] = gated.records  # type: ignore[attr-defined]
    assert gated_record.hangup_signal == "fax"
    assert gated_server.sessions == []  # the cloud never heard of it
    assert len(server.sessions) == 1  # without the gate, a session was opened (and closed)


async def test_a_person_through_the_gate_reaches_the_agent() -> None:
    voice = load_caller_voice()
    person = ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), Pause(GATE_S * 1000.0),
        Say(voice.request, "request"), WaitForVoice(200.0), WaitForSilence(600.0),
        HangUp("loop_drop"),
    )))  # fmt: skip
    result, server = await _run([person], CallConfig(cloud_delay_s=GATE_S), cached=True)
    [record] = result.records  # type: ignore[attr-defined]
    assert record.hangup_signal == "loop_drop"
    assert record.answer_to_audio_ms is not None
    assert record.answer_to_audio_ms < 300.0  # the cached greeting, at once
    assert len(server.sessions) == 1
    assert [t.who for t in record.transcript][:2] == ["caller", "agent"]


class _Session:
    def __init__(self) -> None:
        self.texts: list[tuple[str, str, bool | None]] = []

    async def send_text(self, text: str, role: str = "user", *,
                        respond: bool | None = None) -> None:  # fmt: skip
        self.texts.append((text, role, respond))


class _Call:
    """What `on_line_signal` reads of a call."""

    def __init__(self, direction: str) -> None:
        from types import SimpleNamespace

        from firmware_bridge.port import PortKind
        from gateway.call_cwid import CallWaitingId
        from gateway.call_metrics import Timeline
        from gateway.line_call import CallSpec

        self.spec = CallSpec("c-1", 0, PortKind.FXO, direction, "default")  # type: ignore[arg-type]
        self.config = CallConfig()
        self.session = _Session()
        self.timeline = Timeline(0.0)
        self.audio = SimpleNamespace(cwid=CallWaitingId(False, self.timeline))  # no caller ID
        self.ended: list[str] = []
        self.end_signal: str | None = None

    def end(self, reason: str) -> None:
        self.ended.append(reason)


def _heard(signal: str, variant: str = "") -> object:
    from dsp.line_signals import LineSignal

    return LineSignal(signal, variant, 1000, 500.0, 300.0, (440.0,), -20.0)


async def test_call_waiting_and_a_beep_are_told_to_the_agent_a_fax_ends_the_call() -> None:
    from gateway.call_signals import BEEP_NOTE, CALL_WAITING_NOTE, on_line_signal

    inbound, outbound = _Call("inbound"), _Call("outbound")
    await on_line_signal(inbound, _heard("call_waiting", "sas"), 1.0)  # type: ignore[arg-type]
    await on_line_signal(inbound, _heard("am_beep"), 2.0)  # type: ignore[arg-type]
    await on_line_signal(outbound, _heard("am_beep"), 2.0)  # type: ignore[arg-type]
    assert inbound.session.texts == [(CALL_WAITING_NOTE, "system", False)]  # a beep: noted only
    assert outbound.session.texts == [(BEEP_NOTE, "system", True)]
    await on_line_signal(inbound, _heard("ced"), 3.0)  # type: ignore[arg-type]
    assert inbound.ended == ["modem tone (CED): declined"]
    assert inbound.end_signal == "modem"
    assert [e for _, e in inbound.timeline.events][:2] == [
        "line signal: call_waiting (sas), -20 dBm0",
        "line signal: am_beep, -20 dBm0",
    ]
