"""Digits that never leave the premises (#8), end to end on the simulators: the agent (the
local realtime server's script) asks for a PIN and calls `collect_digits`; the caller types
4 3 2 1 # on the keypad; the PIN goes to the configured HTTP tool (a real HTTP server here)
and nowhere else: not in anything the cloud received (its events, and no DTMF tone in the
caller audio it got), not in the call record, not in the uplink capture."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import trio
from trio.testing import MockClock

from dsp.dtmf import DtmfDetector
from dsp.frame import FRAME_SAMPLES
from firmware_bridge.sim.caller import (
    CallerScript,
    HangUp,
    Pause,
    Press,
    Say,
    WaitForSilence,
    WaitForVoice,
)
from gateway.call_config import AgentProfile, CallConfig
from gateway.call_secure import GUARD_FRAMES, SecureDigits, UplinkGuard
from gateway.demo_services import PIN, pin_bank
from gateway.realtime.local import LocalRealtimeServer, Script
from gateway.simcall import demo_profile, run_sim_calls
from gateway.simcall_scenario import CallerVoice, ScriptedCaller, load_caller_voice
from gateway.tools_config import tools_from_config

SCRIPT = Script.from_mapping({
    "turn": [
        {"turn": 1, "say": "greeting"},
        {"turn": 2, "say": "one_moment", "call": "collect_digits",
         "arguments": {"purpose": "PIN"}, "then_say": "booked"},
    ],
    "default": ["anything_else"],
})  # fmt: skip


def _caller(voice: CallerVoice) -> ScriptedCaller:
    return ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
        WaitForVoice(200.0), WaitForSilence(600.0), Pause(300.0), Press(f"{PIN}#"),
        WaitForVoice(200.0), WaitForSilence(600.0), HangUp("loop_drop"),
    )))  # fmt: skip


def _profile(url: str, pin_url: str) -> AgentProfile:
    tools = tools_from_config({
        "builtin": {"collect_digits": {"deliver_to": "verify_pin", "field": "pin"}},
        "http": [{"name": "verify_pin", "description": "Check a PIN.", "url": pin_url,
                  "method": "POST", "parameters": {"type": "object", "properties": {
                      "pin": {"type": "string"}}}}],
    })  # fmt: skip
    assert tools.names() == ["collect_digits"]  # the model cannot call verify_pin itself
    return replace(demo_profile(url), tools=tools)


def _digits_in(frames: list[np.ndarray]) -> str:
    detector = DtmfDetector()
    return "".join(key.digit for f in frames for key in detector.feed(f.astype(np.int16)))


async def _a_pin_goes_to_its_tool_and_nowhere_else(
    pin_server: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    pin_url, bodies = pin_server
    voice = load_caller_voice()
    server = LocalRealtimeServer(script=SCRIPT, keep_audio=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        result = await run_sim_calls(
            [_caller(voice)], script=SCRIPT, realtime_url=url, timeout_s=45.0,
            profile=lambda u: _profile(u, pin_url), config=CallConfig(capture_dir=tmp_path),
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert not result.timed_out
    print(f"\nthe call took {result.elapsed_s:.1f} s")
    [record] = result.records
    assert record is not None
    assert bodies == [{"pin": PIN}]  # the tool got it
    [session] = server.sessions
    cloud_saw = json.dumps(session.received)
    assert PIN not in cloud_saw
    outputs = [e["item"]["output"] for e in session.received
               if e.get("type") == "conversation.item.create"
               and e["item"].get("type") == "function_call_output"]  # fmt: skip
    assert [json.loads(o) for o in outputs] == [
        {
            "digits_received": 4,
            "result": {"status": 200, "json": {"valid": True, "echo": "<digits>"}},
        }
    ]
    assert session.audio is not None
    assert _digits_in(session.audio) == ""  # no tone reached the cloud
    assert PIN not in record.dtmf
    assert record.dtmf == "*****"
    assert PIN not in json.dumps(record.as_json())
    uplink = np.frombuffer((await trio.Path(record.captures[0]).read_bytes())[44:], "<i2")
    frames = [uplink[i : i + FRAME_SAMPLES] for i in range(0, uplink.size, FRAME_SAMPLES)]
    assert _digits_in(frames) == ""
    assert [(t.name, t.outcome) for t in record.tool_calls] == [("collect_digits", "ok")]


def test_the_guard_holds_back_two_frames_and_replaces_a_tone_onset() -> None:
    secure = SecureDigits()
    guard = UplinkGuard(secure)
    loud = np.full(FRAME_SAMPLES, 8000, np.int16)
    assert guard.pass_frame(loud, False, -65.0) == [loud]  # off: no delay
    secure.active = True
    assert guard.pass_frame(loud, False, -65.0) == []
    assert guard.pass_frame(loud, False, -65.0) == []
    out = guard.pass_frame(loud, True, -65.0)  # the detector saw the tone now
    assert len(out) == 1
    assert np.abs(out[0]).max() < 200  # comfort noise, not the held-back tone onset
    assert guard.replaced == GUARD_FRAMES + 1
    secure.active = False
    assert len(guard.pass_frame(loud, False, -65.0)) == GUARD_FRAMES + 1  # drained


def _early_caller(voice: CallerVoice) -> ScriptedCaller:
    """Types the PIN right after asking, before the agent has called the tool."""
    return ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
        Press(f"{PIN}#"), WaitForVoice(200.0), WaitForSilence(600.0), WaitForVoice(200.0),
        WaitForSilence(600.0), HangUp("loop_drop"),
    )))  # fmt: skip


async def _a_pin_typed_before_the_agent_asks_still_goes_only_to_its_tool(
    pin_server: tuple[str, list[dict[str, object]]],
) -> None:
    pin_url, bodies = pin_server
    server = LocalRealtimeServer(script=SCRIPT, keep_audio=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        result = await run_sim_calls(
            [_early_caller(load_caller_voice())], script=SCRIPT, realtime_url=url,
            timeout_s=45.0, profile=lambda u: _profile(u, pin_url),
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert not result.timed_out
    [record] = result.records
    assert record is not None
    assert bodies == [{"pin": PIN}]
    [session] = server.sessions
    assert PIN not in json.dumps(session.received)
    texts = [i for i in session.created_items() if i.get("type") == "message"]
    assert any("[caller pressed 5 keys]" in json.dumps(t) for t in texts)
    assert session.audio is not None
    assert _digits_in(session.audio) == ""  # not even the tones' onsets
    assert record.dtmf == "*****"


async def test_keys_typed_ahead_start_a_collection_only_while_fresh(
    autojump_clock: MockClock,
) -> None:
    secure = SecureDigits()
    secure.sensitive = True
    secure.keep_ahead("12")
    async with trio.open_nursery() as nursery:
        got: list[str] = []

        async def collect() -> None:
            got.append(await secure.collect(8, "#", 5.0))

        nursery.start_soon(collect)
        await trio.sleep(0.1)
        secure.keep_ahead("34")  # the rest of the burst, after the tool asked
        for digit in "5#":
            assert secure.offer(digit)
    assert got == ["12345"]
    secure.keep_ahead("99#")
    assert await secure.collect(8, "#", 5.0) == "99"  # a whole PIN typed ahead: at once
    secure.keep_ahead("77")
    await trio.sleep(11.0)  # stale: not part of a later collection
    with trio.move_on_after(1.0):
        assert await secure.collect(8, "#", 0.5) == ""


async def test_a_pin_asked_for_and_a_pin_typed_ahead(tmp_path: Path) -> None:
    """The two calls at once, each with its own bank, simulated adapter and realtime server."""
    with pin_bank() as first, pin_bank() as second:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_a_pin_goes_to_its_tool_and_nowhere_else, first, tmp_path)
            nursery.start_soon(_a_pin_typed_before_the_agent_asks_still_goes_only_to_its_tool,
                               second)  # fmt: skip
