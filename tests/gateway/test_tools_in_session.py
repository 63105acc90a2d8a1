"""Tools inside a real call's session: the local realtime server over a real websocket, a real
`RealtimeSession`, `CallTools` with its `ToolRunner`, a caller talking at real time (one 20 ms
frame per tick, whatever else happens) and a fake call (`CallControl`), from `call_rig`. The
server's script makes the agent call a tool; the tool's result, or its error result, goes back
as `function_call_output` + `response.create` and the agent answers it. Real sockets: the real
clock, with short waits, each bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from dsp.frame import FRAME_S, FRAME_SAMPLES
from gateway.realtime import AgentAudio, FunctionCallRequested, ResponseCreated, ResponseDone
from gateway.realtime.local import Faults, Script
from gateway.tools import CallContext, Tool, ToolError, ToolRegistry
from gateway.tools_builtin import end_call_tool
from gateway.tools_config import tools_from_config
from tests.gateway.call_rig import WAIT_S, CallRig, assert_clean, call_rig, crm_service, prompt_pcm

PIN = "7311-0042"  # a sensitive argument: never in a log line
TOKEN = "crm-t0ken-5f1e2d"  # the HTTP tool's credential
ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "pin": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
LOOKUP_TURN: dict[str, Any] = {
    "turn": 1, "call": "lookup_order", "arguments": {"order_id": "4592", "pin": PIN},
    "then_say": "order_shipped",
}  # fmt: skip
LOOKUP = Script.from_mapping({"turn": [LOOKUP_TURN], "default": ["anything_else"]})

ToolFn = Callable[[dict[str, Any], CallContext], Any]


def lookup_order(function: ToolFn, timeout_s: float = 10.0) -> Tool:
    return Tool("lookup_order", "Find an order.", ORDER, function, timeout_s, frozenset({"pin"}))


# --- the tests ---------------------------------------------------------------------------------


async def test_a_fast_tool_answers_and_the_agent_speaks_its_result() -> None:
    got: list[dict[str, Any]] = []

    async def lookup(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        got.append(arguments)
        return {"order_id": arguments["order_id"], "status": "shipped"}

    script = Script.from_mapping({"turn": [{**LOOKUP_TURN, "say": "one_moment"}]})
    async with call_rig(ToolRegistry([lookup_order(lookup)]), script) as rig:
        call, done = await rig.tool_turn()
        [record] = rig.tools.records
        update = rig.record.received_of("session.update")[0]["session"]
        assert [t["name"] for t in update["tools"]] == ["lookup_order"]
        assert update["tools"][0]["parameters"] == ORDER
        assert (call.name, got) == ("lookup_order", [{"order_id": "4592", "pin": PIN}])
        assert (record.outcome, record.delivered, record.call_id) == ("ok", True, call.call_id)
        assert rig.outputs() == [{"order_id": "4592", "status": "shipped"}]
        # the preamble in the call's own response, then the answer, whole, in a new one
        assert np.array_equal(rig.audio_of(call.response_id), prompt_pcm(rig.server, "one_moment"))
        assert np.array_equal(rig.audio_of(done.response_id),
                              prompt_pcm(rig.server, "order_shipped"))  # fmt: skip
        assert done.status == "completed"
        # the output came while the call's response was still open: its response.create
        # waited for that response's end (else the server would have refused it)
        assert len(rig.record.received_of("response.create")) == 1
        assert_clean(rig)


async def test_audio_flows_both_ways_while_a_slow_tool_runs() -> None:
    """The tool returns only once the agent is answering the caller's next words: caller
    audio reaches the server and agent audio arrives all through it, and its output,
    arriving mid-reply, gets its response after that reply."""
    window: dict[str, float] = {}
    rig_box: list[CallRig] = []

    async def slow(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        rig = rig_box[0]
        window.update(t0=trio.current_time(), up0=rig.record.appended_ms)
        rig.speak()  # the caller talks on while the agent looks it up
        start = len(rig.seen)
        await rig.next(ResponseCreated, start)
        await rig.next(AgentAudio, start)
        await trio.sleep(0.3)  # into the reply: the output arrives while it streams
        window.update(t1=trio.current_time(), up1=rig.record.appended_ms)
        return {"status": "shipped"}

    registry = ToolRegistry([lookup_order(slow)])
    async with call_rig(registry, LOOKUP, Faults(audio_speed=3.0)) as rig:
        rig_box.append(rig)
        rig.speak()
        index, _ = await rig.next(FunctionCallRequested)
        # the reply to the caller's words during the tool, then the answer to the tool
        reply_index, reply = await rig.next(ResponseCreated, index)
        answer_index, answer = await rig.next(ResponseCreated, reply_index + 1)
        _, done = await rig.next(ResponseDone, answer_index,
                                 lambda e: e.response_id == answer.response_id)  # fmt: skip
        t0, t1 = window["t0"], window["t1"]
        [record] = rig.tools.records
        reply_t = rig.seen[reply_index][0]
        reply_done_t = next(t for t, e in rig.of(ResponseDone)
                            if e.response_id == reply.response_id)  # fmt: skip
        answer_t = next(t for t, e in rig.of(ResponseCreated)
                        if e.response_id == done.response_id)  # fmt: skip
        delivered_t = record.started_s + record.duration_s
        agent_frames = [e.pcm.size / FRAME_SAMPLES for t, e in rig.of(AgentAudio) if t0 <= t <= t1]
        expected_frames = (t1 - t0) / FRAME_S
        print(f"tool ran {t1 - t0:.3f} s: caller frames {rig.caller.frames_between(t0, t1)} "
              f"of {expected_frames:.0f}, at the server {window['up1'] - window['up0']:.0f} ms, "
              f"agent deltas {len(agent_frames)} ({sum(agent_frames):.0f} frames)")  # fmt: skip
        assert rig.caller.frames_between(t0, t1) >= 0.8 * expected_frames
        assert window["up1"] - window["up0"] >= 0.6 * (t1 - t0) * 1000
        assert len(agent_frames) >= 3
        assert rig.caller.dropped == 0
        assert (record.outcome, record.delivered) == ("ok", True)
        assert reply_t < delivered_t < reply_done_t <= answer_t
        assert np.array_equal(rig.audio_of(done.response_id),
                              prompt_pcm(rig.server, "order_shipped"))  # fmt: skip
        assert rig.outputs() == [{"status": "shipped"}]
        assert_clean(rig)


async def failing_with_tool_error(arguments: dict[str, Any], context: CallContext) -> None:
    raise ToolError("order 4592 is not in the system", order_id=arguments["order_id"])


async def failing_with_a_bug(arguments: dict[str, Any], context: CallContext) -> None:
    raise KeyError("customer")


@pytest.mark.parametrize(("function", "output"), [
    (failing_with_tool_error, {"error": "order 4592 is not in the system",
                               "tool": "lookup_order", "order_id": "4592"}),
    (failing_with_a_bug, {"error": "lookup_order failed (KeyError)", "tool": "lookup_order"}),
])  # fmt: skip
async def test_a_failing_tool_sends_an_error_result_and_the_conversation_goes_on(
    function: ToolFn, output: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with call_rig(ToolRegistry([lookup_order(function)]), LOOKUP) as rig:
        _, done = await rig.tool_turn()
        assert rig.outputs() == [output]
        assert rig.tools.records[0].outcome == "error"
        assert done.status == "completed"  # the agent talks about the failure
        assert rig.audio_of(done.response_id).size > 0
        # the next caller turn gets an ordinary reply
        rig.speak()
        _, created = await rig.next(ResponseCreated, len(rig.seen))
        _, after = await rig.next(ResponseDone, 0, lambda e: e.response_id == created.response_id)
        assert after.status == "completed"
        assert np.array_equal(rig.audio_of(after.response_id),
                              prompt_pcm(rig.server, "anything_else"))  # fmt: skip
        assert_clean(rig)
    failed = [r for r in caplog.records if "lookup_order" in r.getMessage()
              and "error after" in r.getMessage()]  # fmt: skip
    assert len(failed) == 1
    assert '"pin": "***"' in failed[0].getMessage()
    assert PIN not in caplog.text  # the whole session's log, DEBUG and up


async def test_a_tool_past_its_timeout_sends_a_timeout_result() -> None:
    cancelled: list[bool] = []

    async def stuck(arguments: dict[str, Any], context: CallContext) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(True)

    registry = ToolRegistry([lookup_order(stuck, timeout_s=0.3)])
    async with call_rig(registry, LOOKUP) as rig:
        _, done = await rig.tool_turn()
        [record] = rig.tools.records
        assert rig.outputs() == [
            {"error": "lookup_order did not answer within 0.3 s", "tool": "lookup_order"}
        ]
        assert (record.outcome, record.delivered, cancelled) == ("timeout", True, [True])
        assert 0.3 <= record.duration_s < 0.3 + WAIT_S
        assert done.status == "completed"
        assert_clean(rig)


async def test_unknown_tools_and_bad_arguments_get_error_results() -> None:
    ran: list[dict[str, Any]] = []

    async def lookup(arguments: dict[str, Any], context: CallContext) -> None:
        ran.append(arguments)

    script = Script.from_mapping({"turn": [
        {"turn": 1, "call": "lookup_order", "arguments": {"order_id": 4592},
         "then_say": "sorry"},
        {"turn": 2, "call": "cancel_order", "arguments": {"order_id": "4592"},
         "then_say": "sorry"},
    ]})  # fmt: skip
    async with call_rig(ToolRegistry([lookup_order(lookup)]), script) as rig:
        await rig.tool_turn()
        await rig.tool_turn(after=len(rig.seen))
        assert rig.outputs() == [
            {"error": "bad arguments: arguments.order_id: expected string, got integer",
             "tool": "lookup_order"},
            {"error": "unknown tool 'cancel_order'; the tools are: lookup_order",
             "tool": "cancel_order"},
        ]  # fmt: skip
        assert ran == []
        assert [r.outcome for r in rig.tools.records] == ["error", "error"]
        assert_clean(rig)


async def test_end_call_lets_the_goodbye_finish_then_ends_the_call() -> None:
    script = Script.from_mapping({"turn": [
        {"turn": 1, "call": "end_call", "arguments": {"reason": "caller is done"},
         "then_say": "goodbye"},
    ]})  # fmt: skip
    async with call_rig(ToolRegistry([end_call_tool()]), script) as rig:
        rig.speak()
        await trio.sleep(WAIT_S)  # the hang-up cancels this: the call is over
        pytest.fail("end_call did not end the call")
    [(_, call)] = rig.of(FunctionCallRequested)
    [(_, created)] = [(t, e) for t, e in rig.of(ResponseCreated)
                      if e.response_id != call.response_id]  # fmt: skip
    done_t, done = next((t, e) for t, e in rig.of(ResponseDone)
                        if e.response_id == created.response_id)  # fmt: skip
    assert rig.call.actions == [("hang_up", "caller is done")]
    assert rig.outputs()[0]["ok"] is True
    assert np.array_equal(rig.audio_of(done.response_id), prompt_pcm(rig.server, "goodbye"))
    assert done_t <= rig.hung_up_at
    assert [(r.outcome, r.delivered) for r in rig.tools.records] == [("ok", True)]
    assert rig.record.closed.startswith("client"), rig.record.closed  # we closed the socket


async def test_an_http_tool_calls_its_service_and_the_agent_reads_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "crm-token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    async with crm_service() as crm:
        registry = tools_from_config({"http": [{
            "name": "lookup_order", "description": "Find an order in the CRM.",
            "url": f"http://127.0.0.1:{crm.port}/orders", "method": "POST", "parameters": ORDER,
            "timeout_s": 5.0, "auth_header": "Authorization", "auth_scheme": "Bearer",
            "auth_secret_file": str(secret), "sensitive": ["pin"],
        }]})  # fmt: skip
        async with call_rig(registry, LOOKUP) as rig:
            _, done = await rig.tool_turn()
            assert rig.outputs() == [
                {"status": 200, "json": {"order_id": "4592", "status": "shipped"}}
            ]
            assert np.array_equal(rig.audio_of(done.response_id),
                                  prompt_pcm(rig.server, "order_shipped"))  # fmt: skip
            assert_clean(rig)
    [(method, target, headers, body)] = crm.seen
    assert (method, target, body) == ("POST", "/orders", {"order_id": "4592", "pin": PIN})
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text
    assert PIN not in caplog.text
