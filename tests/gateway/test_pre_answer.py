"""Deciding before the answer (#8 item 1), end to end on the simulated adapter and the local
realtime server (real clock). The scenario with a working CRM is `tipring demo --scenario
pre-answer` (tests/gateway/test_demo_scenarios.py); here what goes wrong: a caller who gives
up while it rings (the session opened for nothing is closed, and it never got the caller's
audio), and a pre-answer tool that fails (the call goes on without its result)."""

from __future__ import annotations

from dataclasses import replace

from firmware_bridge.sim.caller import CallerScript, HangUp, WaitForSilence, WaitForVoice
from firmware_bridge.sim.line import LineModel
from gateway.call_config import AgentProfile
from gateway.demo_scenarios import CRM_PARAMETERS
from gateway.realtime.local import Script
from gateway.simcall import LINE_CONFIG, demo_profile, run_sim_calls
from gateway.simcall_scenario import RING_CADENCE_MS, ScriptedCaller, caller_id
from gateway.tools_config import tools_from_config

UNREACHABLE = "http://127.0.0.1:9/callers"  # discard: nobody listens there
LINE = replace(LINE_CONFIG, fxo=replace(LINE_CONFIG.fxo, answer_after_rings=3))


class GivesUpAfterOneRing(ScriptedCaller):
    def dial_in(self, line: LineModel) -> None:
        line.incoming_call(caller_id(line.port), 1, RING_CADENCE_MS)


def _profile(url: str) -> AgentProfile:
    tools = tools_from_config({"http": [{
        "name": "crm_lookup", "description": "Look a caller up by phone number.",
        "url": UNREACHABLE, "method": "GET", "parameters": CRM_PARAMETERS, "timeout_s": 2.0,
    }]})  # fmt: skip
    return replace(demo_profile(url), tools=tools, pre_answer_tool="crm_lookup")


async def test_an_abandoned_call_and_a_failing_lookup() -> None:
    talks = ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), HangUp("loop_drop"),
    )))  # fmt: skip
    result = await run_sim_calls([GivesUpAfterOneRing(CallerScript(())), talks],
                                 script=Script(), profile=_profile, line_config=LINE,
                                 timeout_s=50.0)  # fmt: skip
    assert not result.timed_out
    gave_up, answered = result.records
    assert result.server is not None
    sessions = {s.received[0].get("session", {}).get("instructions", ""): s
                for s in result.server.sessions}  # fmt: skip
    assert len(result.server.sessions) == 2  # both opened while their lines rang

    assert gave_up is not None
    assert gave_up.hangup_signal == "unanswered"
    assert gave_up.ended_by == "line ended the call (the caller gave up while it rang)"
    assert gave_up.pre_answer_ms is None
    assert gave_up.frames == 0
    for session in result.server.sessions:
        assert session.closed_s < float("inf")

    assert answered is not None
    assert answered.ended_by.startswith("caller hung up"), answered.ended_by
    assert answered.pre_answer_ms is not None
    assert answered.pre_answer_ms > 1000.0
    assert answered.answer_to_audio_ms is not None
    assert answered.answer_to_audio_ms < 300.0
    [lookup] = answered.tool_calls
    assert (lookup.name, lookup.outcome) == ("crm_lookup", "error")
    assert any("pre-answer tool crm_lookup: error" in what for _, what in answered.timeline)
    # Neither session's instructions got a lookup result; the caller who gave up sent no audio.
    assert not any("Looked up" in str(key) for key in sessions)
    appended = [[e for e in s.received if e.get("type") == "input_audio_buffer.append"]
                for s in result.server.sessions]  # fmt: skip
    assert sorted(len(a) > 0 for a in appended) == [False, True]
