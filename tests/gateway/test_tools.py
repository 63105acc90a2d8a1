"""gateway.tools: the runner of function calls, on the mock clock, between a fake session and a
fake call: concurrency with audio, timeouts, failures, bad arguments, redaction, hang-up."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from gateway.errors import GatewayError
from gateway.tools import (
    SEND_OUTPUT_S,
    CallContext,
    ToolError,
    ToolRegistry,
    open_tool_runner,
    redact,
)
from tests.gateway.test_tools_rig import (
    RIG_S,
    FakeCall,
    FakeSession,
    FunctionCall,
    runner_rig,
    tool,
)

FRAME_S = 0.020
PIN = "4711-2342"  # a sensitive argument value: must never reach the log

PIN_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "account": {"type": "string"},
        "pin": {"type": "string"},
        "color": {"type": "string", "enum": ["red", "green"]},
        "count": {"type": "integer"},
        "nested": {
            "type": "object",
            "properties": {"pin": {"type": "string"}, "tags": {"type": "array"}},
        },
    },
    "required": ["account"],
    "additionalProperties": False,
}


def sleeper(seconds: float) -> Any:
    async def function(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        await trio.sleep(seconds)
        return {"slept_s": seconds}

    return function


async def echo(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    return {"got": arguments, "caller": context.control.caller_id.number}  # type: ignore[union-attr]


async def test_slow_tool_blocks_neither_a_fast_tool_nor_audio(autojump_clock: MockClock) -> None:
    registry = ToolRegistry([tool("slow", sleeper(3.0)), tool("fast", sleeper(0.1))])
    late_s: list[float] = []

    async def audio(start_s: float) -> None:  # the call's 20 ms frame clock
        for n in range(1, 251):
            await trio.sleep_until(start_s + n * FRAME_S)
            late_s.append(trio.current_time() - (start_s + n * FRAME_S))

    async with runner_rig(registry) as rig, trio.open_nursery() as nursery:
        t0 = trio.current_time()
        nursery.start_soon(audio, t0)
        slow_id = await rig.call("slow")
        fast_id = await rig.call("fast")
        fast = await rig.session.output(fast_id)
        slow = await rig.session.output(slow_id)
    assert [o.call_id for o in rig.session.outputs] == [fast_id, slow_id]
    assert fast.at_s - t0 == pytest.approx(0.1)
    assert slow.at_s - t0 == pytest.approx(3.0)
    assert [fast.value, slow.value] == [{"slept_s": 0.1}, {"slept_s": 3.0}]
    assert len(late_s) == 250  # 5 s of frames: none missed
    assert max(late_s) == 0.0  # none late
    outcomes = [(r.name, r.outcome, round(r.duration_s, 3)) for r in rig.runner.records]
    assert outcomes == [("fast", "ok", 0.1), ("slow", "ok", 3.0)]


async def test_tool_past_its_timeout_gets_an_error_result(autojump_clock: MockClock) -> None:
    registry = ToolRegistry([tool("stuck", sleeper(3600), timeout_s=2.5)])
    async with runner_rig(registry) as rig:
        t0 = trio.current_time()
        output = await rig.session.output(await rig.call("stuck"))
    assert output.at_s - t0 == pytest.approx(2.5)
    assert output.value == {"error": "stuck did not answer within 2.5 s", "tool": "stuck"}
    record = rig.runner.records[0]
    assert (record.outcome, record.duration_s, record.delivered) == ("timeout", 2.5, True)


async def test_tool_turning_the_timeout_into_its_own_error_is_a_timeout(
    autojump_clock: MockClock,
) -> None:
    async def careless(arguments: dict[str, Any], context: CallContext) -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise RuntimeError("interrupted")  # what a careless library does with Cancelled

    async with runner_rig(ToolRegistry([tool("careless", careless, timeout_s=1.0)])) as rig:
        value = await rig.result("careless")
    assert value == {"error": "careless did not answer within 1 s", "tool": "careless"}
    assert rig.runner.records[0].outcome == "timeout"


async def test_failing_tools_give_error_results_and_the_call_goes_on(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def explains(arguments: dict[str, Any], context: CallContext) -> None:
        raise ToolError("no such customer", status=404)

    async def breaks(arguments: dict[str, Any], context: CallContext) -> None:
        raise ValueError(f"bad row {PIN}")  # a foreign text may hold anything

    async def ours(arguments: dict[str, Any], context: CallContext) -> None:
        raise GatewayError("line 2: not off-hook")

    async def weird(arguments: dict[str, Any], context: CallContext) -> object:
        return {"when": object()}

    async def nothing(arguments: dict[str, Any], context: CallContext) -> None:
        return None

    tools = [("explains", explains), ("breaks", breaks), ("ours", ours), ("weird", weird)]
    registry = ToolRegistry([tool(n, f) for n, f in [*tools, ("nothing", nothing)]])
    async with runner_rig(registry) as rig:
        values = [await rig.result(name) for name, _ in tools]
        assert await rig.result("nothing") == {"ok": True}
    assert values[0] == {"error": "no such customer", "tool": "explains", "status": 404}
    assert values[1] == {"error": "breaks failed (ValueError)", "tool": "breaks"}
    assert values[2] == {"error": "ours failed: line 2: not off-hook", "tool": "ours"}
    assert values[3]["error"].startswith("weird returned a result that is not JSON")
    assert [r.outcome for r in rig.runner.records] == ["error"] * 4 + ["ok"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5  # one per failed call, and the traceback of `breaks`
    [traceback] = [r for r in warnings if r.exc_info]
    assert traceback.getMessage() == "call call-1: tool breaks raised ValueError"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ('{"account": ', "bad arguments: arguments are not valid JSON (Expecting value: "),
        ('["acc"]', "bad arguments: arguments must be a JSON object, got array"),
        ('{"account": "a", "count": NaN}', "bad arguments: arguments are not valid JSON (NaN "),
        ('{"pin": "1"}', "bad arguments: arguments: missing required property 'account'"),
        ('{"account": 7}', "bad arguments: arguments.account: expected string, got integer"),
        ('{"account": "a", "count": true}', "bad arguments: arguments.count: expected integer"),
        ('{"account": "a", "color": "blue"}', 'arguments.color: must be one of "red", "green"'),
        ('{"account": "a", "x": 1}', "arguments: unexpected property 'x' (allowed: account, pin"),
        ('{"account": "a", "nested": {"tags": 1}}', "arguments.nested.tags: expected array"),
        ('{"count": 1.5, "y": 2}', "missing required property 'account'; arguments.count: "),
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "bad arguments: arguments are nested more than 32"),
        ('{"a": ' + "[" * 9000 + "]" * 9000 + "}", "bad arguments: arguments are nested more "),
    ],
)
async def test_bad_arguments_get_an_error_naming_the_problem(
    autojump_clock: MockClock, arguments: str, error: str
) -> None:
    called: list[dict[str, Any]] = []

    async def record(arguments: dict[str, Any], context: CallContext) -> None:
        called.append(arguments)

    async with runner_rig(ToolRegistry([tool("lookup", record, PIN_PARAMETERS)])) as rig:
        value = await rig.result("lookup", arguments)
    assert error in value["error"]
    assert value["tool"] == "lookup"
    assert called == []
    assert rig.runner.records[0].outcome == "error"


async def test_empty_arguments_are_an_empty_object(autojump_clock: MockClock) -> None:
    async with runner_rig(ToolRegistry([tool("echo", echo)])) as rig:
        assert await rig.result("echo", "") == {"got": {}, "caller": "5551234567"}


async def test_unknown_tool_gets_an_error_listing_the_tools(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with runner_rig(ToolRegistry([tool("echo", echo), tool("other", echo)])) as rig:
        value = await rig.result("hang_up", f'{{"pin": "{PIN}"}}')
    assert value == {
        "error": "unknown tool 'hang_up'; the tools are: echo, other",
        "tool": "hang_up",
    }
    assert rig.runner.records[0].outcome == "error"
    assert PIN not in caplog.text
    assert 'arguments {"pin": "***"}' in caplog.text


async def test_sensitive_arguments_are_redacted_in_the_log(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails(arguments: dict[str, Any], context: CallContext) -> None:
        raise ToolError("account locked")

    registry = ToolRegistry(
        [
            tool("lookup", echo, PIN_PARAMETERS, sensitive=frozenset({"pin"})),
            tool("fails", fails, PIN_PARAMETERS, sensitive=frozenset({"pin"})),
        ]
    )
    caplog.set_level(logging.DEBUG)
    async with runner_rig(registry) as rig:
        await rig.result("lookup", f'{{"account": "A1", "pin": "{PIN}", "bad": 1}}')
        await rig.result("fails", f'{{"account": "A1", "nested": {{"pin": "{PIN}"}}}}')
        await rig.result("lookup", f'{{"account": "A1", "pin": "{PIN}"')  # malformed
        await rig.result("lookup", f'{{"account": "A1", "pin": "{PIN}"}}')  # ok: logs no args
    assert PIN not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines[0].endswith('; arguments {"account": "A1", "pin": "***", "bad": 1}')
    assert lines[1].endswith('; arguments {"account": "A1", "nested": {"pin": "***"}}')
    assert lines[2].endswith("; arguments <36 characters, not a JSON object>")
    assert len(lines) == 3


def test_redact_replaces_sensitive_keys_at_any_depth() -> None:
    value = {"pin": 1, "a": [{"pin": "x", "b": 2}], "c": {"d": {"pin": None}}}
    assert redact(value, frozenset({"pin"})) == {
        "pin": "***",
        "a": [{"pin": "***", "b": 2}],
        "c": {"d": {"pin": "***"}},
    }


async def test_hang_up_cancels_running_tools_cleanly(autojump_clock: MockClock) -> None:
    cancelled: list[str] = []

    async def long(arguments: dict[str, Any], context: CallContext) -> None:
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            cancelled.append("long")
            raise

    registry = ToolRegistry([tool("long", long, timeout_s=60), tool("fast", sleeper(0.5))])
    async with runner_rig(registry) as rig:
        long_id = await rig.call("long")
        await rig.session.output(await rig.call("fast"))
        await trio.sleep(1.0)
        hung_up_at = trio.current_time()
        rig.call_scope.cancel(reason="hung up")
    assert trio.current_time() == hung_up_at  # nothing lingers past the hang-up
    assert cancelled == ["long"]
    assert long_id not in [o.call_id for o in rig.session.outputs]
    records = {r.name: r for r in rig.runner.records}
    assert (records["long"].outcome, records["long"].duration_s) == ("cancelled", 1.5)
    assert (records["long"].delivered, records["fast"].outcome) == (False, "ok")


async def test_runner_ends_when_the_session_closes_after_running_calls(
    autojump_clock: MockClock,
) -> None:
    session = FakeSession()
    runner, requests_send = open_tool_runner(
        ToolRegistry([tool("slow", sleeper(2.0))]), FakeCall(), session
    )
    t0 = trio.current_time()
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            await requests_send.send(FunctionCall("fc-1", "slow", "{}"))
            await requests_send.aclose()
    assert trio.current_time() - t0 == pytest.approx(2.0)  # run() returned when slow was done
    assert [(o.call_id, o.value) for o in session.outputs] == [("fc-1", {"slept_s": 2.0})]


async def test_a_replayed_function_call_is_answered_once(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with runner_rig(ToolRegistry([tool("slow", sleeper(1.0))])) as rig:
        await rig.call("slow", call_id="fc-1")
        await rig.call("slow", call_id="fc-1")
        await trio.sleep(5)
    assert [o.call_id for o in rig.session.outputs] == ["fc-1"]
    assert "function call fc-1 (slow) seen twice; ignored" in caplog.text


@pytest.mark.parametrize("hang", [False, True])
async def test_an_output_the_session_cannot_take_is_recorded_not_raised(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture, hang: bool
) -> None:
    session = FakeSession(fail_with=GatewayError("session closed"), hang=hang)
    async with runner_rig(ToolRegistry([tool("echo", echo)]), session) as rig:
        await rig.call("echo")
        await trio.sleep(SEND_OUTPUT_S + 1)
    record = rig.runner.records[0]
    assert (record.outcome, record.delivered) == ("ok", False)
    expected = f"not sent within {SEND_OUTPUT_S:g} s" if hang else "not sent: session closed"
    assert expected in caplog.text
