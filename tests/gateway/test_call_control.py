"""gateway.call's tools in a real call: a tool runs while the line gets a frame every tick and
the agent's audio plays on; `end_call` ends the call after the goodbye; `send_dtmf` plays its
digits on the line; `transfer_call` flashes and dials on FXO and is refused on FXS. The local
realtime server's script makes the agent call each tool. Real websocket, real clock."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import trio

from dsp.dtmf import DtmfDetector
from firmware_bridge.port import PortKind
from gateway.realtime.local import Script
from gateway.tools import CallContext, Tool, ToolRegistry
from gateway.tools_builtin import end_call_tool, send_dtmf_tool, transfer_call_tool
from tests.gateway.pipeline_rig import LOUD, PipelineRig, pcm_of, pipeline_rig

SHORT = slice(640, 4800)
ORDER = {"type": "object", "properties": {"order_id": {"type": "string"}},
         "required": ["order_id"], "additionalProperties": False}  # fmt: skip


def turn(
    call: str, arguments: dict[str, Any], say: str = "", then: str = "anything_else"
) -> Script:
    first: dict[str, Any] = {"turn": 1, "call": call, "arguments": arguments, "then_say": then}
    if say:
        first["say"] = say
    return Script.from_mapping({"turn": [first], "default": ["anything_else"]})


def outputs(rig: PipelineRig) -> list[dict[str, Any]]:
    items = rig.session.created_items()
    return [json.loads(i["output"]) for i in items if i["type"] == "function_call_output"]


def digits_in(pcm: np.ndarray) -> str:
    return "".join(key.digit for key in DtmfDetector().feed(pcm))


def exact_run(sent: np.ndarray, clip: np.ndarray, near: int) -> bool:
    """`clip` (past its first 100 ms) is in `sent` bit for bit, starting near `near`."""
    lead = int(np.flatnonzero(np.abs(clip) > LOUD)[0])
    piece = clip[lead + 800 :]
    return any(np.array_equal(sent[near + 800 + d : near + 800 + d + piece.size], piece)
               for d in range(-320, 321))  # fmt: skip


async def test_a_slow_tool_runs_while_the_line_gets_every_frame_and_the_agent_talks() -> None:
    ran: list[tuple[float, float]] = []

    async def lookup(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        start = trio.current_time()
        await trio.sleep(1.0)
        ran.append((start, trio.current_time()))
        return {"order_id": arguments["order_id"], "status": "shipped"}

    tools = ToolRegistry([Tool("lookup_order", "Find an order.", ORDER, lookup)])
    script = turn("lookup_order", {"order_id": "4592"}, say="goodbye")
    async with pipeline_rig(script, tools=tools) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        filler, answer = pcm_of("goodbye"), pcm_of("anything_else")
        await rig.until(lambda: len(rig.port.sent) * 160 > first + filler.size + 8000)
        sent, times = rig.port.sent_pcm(), np.array([t for t, _ in rig.port.sent])
    record = rig.record
    ((start, end),) = ran
    during = times[(times >= start) & (times <= end)]
    gaps_ms = np.diff(during) * 1e3
    print(f"tool ran {end - start:.2f} s: {during.size} frames sent, largest gap "
          f"{gaps_ms.max():.1f} ms; underruns {record.underruns}")  # fmt: skip
    assert during.size >= 45
    assert gaps_ms.max() < 60.0
    assert record.frames == len(rig.port.sent)
    # the agent's words played on, untouched, and its answer to the tool's result right after
    assert exact_run(sent, np.concatenate([filler, answer[:8000]]), first)
    assert record.underruns == 0
    assert [(t.name, t.outcome) for t in record.tool_calls] == [("lookup_order", "ok")]
    assert record.tool_calls[0].duration_s >= 1.0


async def test_end_call_lets_the_goodbye_play_then_ends_the_call() -> None:
    tools = ToolRegistry([end_call_tool()])
    script = turn("end_call", {"reason": "the caller is done"}, then="goodbye")
    async with pipeline_rig(script, tools=tools) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        await rig.until(rig.done.is_set)
        sent = rig.port.sent_pcm()
    record = rig.record
    goodbye = pcm_of("goodbye")
    lead = int(np.flatnonzero(np.abs(goodbye) > LOUD)[0])
    tail_ms = (sent.size - (first - lead + goodbye.size)) / 8
    print(f"end_call: the call ended {tail_ms:.0f} ms after the goodbye: {record.ended_by}")
    assert record.ended_by == "agent ended the call (the caller is done)"
    assert exact_run(sent, goodbye, first)  # all of it
    assert -20.0 < tail_ms < 200.0


async def test_send_dtmf_plays_the_digits_on_the_line() -> None:
    tools = ToolRegistry([send_dtmf_tool()])
    async with pipeline_rig(turn("send_dtmf", {"digits": "12#"}), tools=tools) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        await rig.until(lambda: len(rig.port.sent) * 160 > first + 8000)  # 3 x 200 ms and more
        sent = rig.port.sent_pcm()
    assert digits_in(sent[first - 160 : first + 8 * 700]) == "12#"  # before the agent's answer
    assert outputs(rig) == [{"ok": True, "sent": 3}]
    assert rig.record.dtmf == ""  # their echo is not the caller's keys


async def test_transfer_flashes_the_hook_dials_and_ends_the_call_on_fxo() -> None:
    tools = ToolRegistry([transfer_call_tool({"sales": "123"})])
    script = turn("transfer_call", {"target": "sales"}, say="anything_else")
    async with pipeline_rig(script, tools=tools, kind=PortKind.FXO) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        await rig.until(rig.done.is_set)
        sent = rig.port.sent_pcm()
        flashes = [c for c in rig.port.commands if c.name == "flash"]
    record = rig.record
    flashed = next(i for i, (t, _) in enumerate(rig.port.sent) if t >= flashes[0].at_s) * 160
    assert len(flashes) == 1
    announcement = pcm_of("anything_else")
    assert exact_run(sent, announcement, first)  # the agent announced it first
    assert flashed >= first + announcement.size - 1600
    assert digits_in(sent[flashed:]) == "123"
    assert digits_in(sent[:flashed]) == ""
    assert record.ended_by == "transferred to 123"


async def test_transfer_is_refused_on_an_fxs_port_and_the_agent_is_told() -> None:
    tools = ToolRegistry([transfer_call_tool({"sales": "123"})])
    async with pipeline_rig(turn("transfer_call", {"target": "sales"}), tools=tools) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        await rig.until(lambda: bool(outputs(rig)))
    [result] = outputs(rig)
    assert "FXS port" in result["error"]
    assert result["tool"] == "transfer_call"
    assert rig.record.ended_by == "caller hung up (phone on-hook)"


async def test_a_warm_transfer_says_the_summary_to_whoever_answers_then_hangs_up() -> None:
    tools = ToolRegistry([transfer_call_tool({"sales": "123"})])
    summary = "Alice Smith asks where her order 4592 is."
    script = turn("transfer_call", {"target": "sales", "summary": summary}, say="anything_else",
                  then="booked")  # fmt: skip
    async with pipeline_rig(script, tools=tools, kind=PortKind.FXO) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        await rig.until(lambda: any(c.name == "flash" for c in rig.port.commands))
        await rig.until(lambda: digits_in(rig.port.sent_pcm()) == "123")
        await trio.sleep(1.0)  # it rings at sales: the agent stays quiet
        dialled = rig.port.sent_pcm().size
        assert rig.loud_sent(dialled - 4000).size == 0
        rig.say(pcm_of("greeting"))  # someone at sales: "Hello, thanks for calling..."
        await rig.until(rig.done.is_set, 30.0)
        sent = rig.port.sent_pcm()
    [result] = outputs(rig)
    assert result["ok"] is True
    assert summary in result["now"]
    answered = dialled + pcm_of("greeting").size  # the agent waits until they stopped
    assert rig.loud_sent(dialled)[0] > answered
    assert exact_run(sent, pcm_of("booked"), int(rig.loud_sent(answered)[0]))  # the summary
    assert [e for e in rig.record.timeline if "barge-in" in e[1]] == []
    assert [c.name for c in rig.port.commands].count("flash") == 1
    assert rig.record.ended_by == "warm transfer to 123"


async def test_a_warm_transfer_nobody_answers_brings_the_caller_back() -> None:
    tools = ToolRegistry([transfer_call_tool({"sales": "123"}, answer_s=2.0)])
    script = turn("transfer_call", {"target": "sales", "summary": "A caller."},
                  say="anything_else", then="sorry")  # fmt: skip
    async with pipeline_rig(script, tools=tools, kind=PortKind.FXO) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        await rig.until(lambda: bool(outputs(rig)))
        flashes = [c for c in rig.port.commands if c.name == "flash"]
        back = rig.port.sent_pcm().size
        await rig.agent_talking(back)  # the agent, back with the caller, says so
    [result] = outputs(rig)
    assert "nobody answered at 123 within 2 s" in result["error"]
    assert len(flashes) == 2  # to the PBX's hold, and back
    assert rig.record.ended_by == "caller hung up (phone on-hook)"
