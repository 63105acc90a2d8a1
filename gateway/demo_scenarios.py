"""`tipring demo --scenario NAME`: the edge features (#8) shown on one simulated call each,
beside the default `order` call (`gateway.demo`):

- `greeting`: the cloud answers 1.5 s late (a slow WAN, a busy model); the box's cached
  greeting is on the line 20 ms after the answer all the same, and the agent carries on.
- `pin`: the agent asks for a PIN and calls `collect_digits`; the caller types 4321#; the PIN
  goes to a local HTTP "bank" and nowhere else (not the cloud's audio or events, not the record).
- `pre-answer`: the caller ID decides before the answer; the agent's session opens and a CRM
  lookup (a local HTTP service) runs while the line rings, so the agent's first words are
  personal and on the line at the answer, with the cloud 1.5 s slow.
- `fax`: a fax machine calls; its CNG tone is heard behind the local greeting and the call is
  declined before any cloud session is opened (`call.cloud_delay_s`).
- `wan-down`: the internet goes away mid-call: hold beeps while the box reconnects, then the
  fallback prompt and a voicemail recorded on the box, and a goodbye.

Each returns the `SimResult` and a few facts that make its point (`facts` in the report).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.levels import sine_amplitude
from firmware_bridge.sim.caller import (
    CallerScript,
    HangUp,
    Pause,
    Press,
    Say,
    Step,
    WaitForSilence,
    WaitForVoice,
)
from gateway.call_config import AgentProfile, CallConfig
from gateway.call_fallback import load_prompts
from gateway.demo_services import PIN, crm, pin_bank
from gateway.realtime.local import Faults, LocalRealtimeServer, Script
from gateway.simcall import SimResult, demo_profile, run_sim_calls
from gateway.simcall_scenario import CallerVoice, ScriptedCaller
from gateway.tools_config import tools_from_config

GREETING_TEXT = "Hello, thanks for calling. How can I help you today?"
SLOW_S = 1.5
GATE_S = 4.0
WAN_DOWN_AFTER_S = 15.0  # from the server's start: ~11 s into the call, after the agent's reply
TIMEOUT_S = 55.0
# Turn 1 is the cached greeting (told to the server as the agent's item): the request is turn 2.
PIN_SCRIPT = {"turn": [{"turn": 2, "say": "one_moment", "call": "collect_digits",
                        "arguments": {"purpose": "PIN"}, "then_say": "booked"}],
              "default": ["anything_else"]}  # fmt: skip

CRM_PARAMETERS = {"type": "object", "properties": {"number": {"type": "string"},
                                                  "name": {"type": "string"}},
                  "required": ["number"]}  # fmt: skip
Facts = dict[str, Any]
Runner = Callable[[CallerVoice, Path], Awaitable[tuple[SimResult, Facts]]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    run: Runner
    ends: str = "caller hung up"  # how its call's `ended_by` starts when it went as it should


def _caller(*steps: Step) -> ScriptedCaller:
    return ScriptedCaller(CallerScript(steps))


def _cached(profile: AgentProfile) -> AgentProfile:
    greeting = load_prompts()["greeting"]
    return replace(profile, greeting=None, greeting_audio=greeting, greeting_text=GREETING_TEXT)


async def _with_server(server: LocalRealtimeServer, callers: list[ScriptedCaller],
                       config: CallConfig, profile: Callable[[str], AgentProfile],
                       cut_after_s: float | None = None) -> SimResult:  # fmt: skip
    """The calls against `server` (stopped after `cut_after_s` from the start: the WAN goes)."""
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[str]) -> None:
            with scope:
                await server.run(task_status)

        url = await nursery.start(serve)
        if cut_after_s is not None:
            scope.deadline = trio.current_time() + cut_after_s
        result = await run_sim_calls(callers, script=server.script, realtime_url=url,
                                     config=config, profile=profile, timeout_s=TIMEOUT_S,
                                     watch=True)  # fmt: skip
        nursery.cancel_scope.cancel()
    return result


async def greeting(voice: CallerVoice, out: Path) -> tuple[SimResult, Facts]:
    server = LocalRealtimeServer(script=Script(), faults=Faults(latency_s=SLOW_S))
    caller = _caller(WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
                     WaitForVoice(200.0), WaitForSilence(600.0), HangUp("loop_drop"))  # fmt: skip
    result = await _with_server(server, [caller], CallConfig(capture_dir=out),
                                lambda url: _cached(demo_profile(url)))  # fmt: skip
    record = result.records[0]
    return result, {
        "cloud_think_s": SLOW_S,
        "answer_to_audio_ms": record.answer_to_audio_ms if record else None,
    }


async def pin(voice: CallerVoice, out: Path) -> tuple[SimResult, Facts]:
    server = LocalRealtimeServer(script=Script.from_mapping(PIN_SCRIPT), keep_audio=True)
    caller = _caller(WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
                     WaitForVoice(200.0), WaitForSilence(600.0), Pause(300.0), Press(f"{PIN}#"),
                     WaitForVoice(200.0), WaitForSilence(600.0), HangUp("loop_drop"))  # fmt: skip
    with pin_bank() as (url, seen):

        def profile(realtime: str) -> AgentProfile:
            tools = tools_from_config({
                "builtin": {"collect_digits": {"deliver_to": "verify_pin", "field": "pin"}},
                "http": [{"name": "verify_pin", "description": "Check a PIN.", "url": url,
                          "method": "POST"}],
            })  # fmt: skip
            return replace(_cached(demo_profile(realtime)), tools=tools)

        result = await _with_server(server, [caller], CallConfig(capture_dir=out), profile)
    cloud = json.dumps([s.received for s in server.sessions])
    record = result.records[0]
    return result, {
        "the bank got": seen,
        "pin_in_cloud_events": PIN in cloud,
        "record_dtmf": record.dtmf if record else None,
    }


async def pre_answer(voice: CallerVoice, out: Path) -> tuple[SimResult, Facts]:
    server = LocalRealtimeServer(script=Script(), faults=Faults(latency_s=SLOW_S))
    caller = _caller(WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
                     WaitForVoice(200.0), WaitForSilence(600.0), HangUp("loop_drop"))  # fmt: skip
    with crm() as (url, seen):

        def profile(realtime: str) -> AgentProfile:
            tools = tools_from_config({"http": [{
                "name": "crm_lookup", "description": "Look a caller up by phone number.",
                "url": url, "method": "GET", "parameters": CRM_PARAMETERS,
            }]})  # fmt: skip
            return replace(demo_profile(realtime), tools=tools, pre_answer_tool="crm_lookup")

        result = await _with_server(server, [caller], CallConfig(capture_dir=out), profile)
    record = result.records[0]
    updates = [e for s in server.sessions for e in s.received if e.get("type") == "session.update"]
    instructions = str(updates[0]["session"].get("instructions", "")) if updates else ""
    return result, {
        "cloud_think_s": SLOW_S,
        "crm_got": seen,
        "instructions_name_the_caller": "Alice Smith" in instructions,
        "pre_answer_ms": record.pre_answer_ms if record else None,
        "answer_to_audio_ms": record.answer_to_audio_ms if record else None,
    }


async def fax(voice: CallerVoice, out: Path) -> tuple[SimResult, Facts]:
    server = LocalRealtimeServer(script=Script())
    cycle = cng_cycle()
    caller = _caller(Pause(200.0), *(Say(cycle, f"CNG {i + 1}") for i in range(3)),
                     HangUp("loop_drop"))  # fmt: skip
    config = CallConfig(capture_dir=out, cloud_delay_s=GATE_S)
    result = await _with_server(server, [caller], config,
                                lambda url: _cached(demo_profile(url)))  # fmt: skip
    return result, {"cloud_sessions_opened": len(server.sessions), "gate_s": GATE_S}


async def wan_down(voice: CallerVoice, out: Path) -> tuple[SimResult, Facts]:
    server = LocalRealtimeServer(script=Script())
    message = voice.request
    # Hold beeps are 250 ms: waiting for 900 ms of voice waits for the fallback prompt.
    caller = _caller(WaitForVoice(200.0), WaitForSilence(600.0), Say(voice.request, "request"),
                     WaitForVoice(200.0), WaitForSilence(600.0), WaitForVoice(900.0),
                     WaitForSilence(1200.0), Say(message, "message"), WaitForVoice(900.0),
                     WaitForSilence(600.0), HangUp("loop_drop"))  # fmt: skip
    config = CallConfig(capture_dir=out, voicemail_dir=out, hold_timeout_s=6.0)
    result = await _with_server(server, [caller], config,
                                lambda url: _cached(demo_profile(url)),
                                cut_after_s=WAN_DOWN_AFTER_S)  # fmt: skip
    record = result.records[0]
    return result, {
        "wan_down_after_s": WAN_DOWN_AFTER_S,
        "voicemail": record.voicemail if record else None,
    }


def cng_cycle(level_dbm0: float = -15.0) -> NDArray[np.int16]:
    """One T.30 CNG cycle: 1100 Hz for 0.5 s, 3 s of silence."""
    t = np.arange(4000) / 8000.0
    burst = sine_amplitude(level_dbm0) * np.sin(2.0 * np.pi * 1100.0 * t)
    return np.concatenate([burst, np.zeros(24000)]).astype(np.int16)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("greeting", "the cached greeting with the cloud 1.5 s slow", greeting),
    Scenario("pin", "a PIN typed on the keypad goes to its tool, never to the cloud", pin),
    Scenario("pre-answer", "the caller looked up and the agent ready while it rings",
             pre_answer),
    Scenario("fax", "a fax calls: declined before any cloud session", fax, "fax tone"),
    Scenario("wan-down", "the internet goes mid-call: hold, fallback, voicemail", wan_down,
             "cloud unavailable"),
)}  # fmt: skip
