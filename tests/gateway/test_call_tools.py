"""gateway.call_tools between memory channels (mock clock): the session's events routed to the
runner and the call, audio never held up by a slow call, the registry's tools in the session
config."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from gateway.call_tools import CallTools, session_settings
from gateway.realtime import (
    AgentAudio,
    FunctionCallRequested,
    RealtimeConfigError,
    RealtimeEvent,
    RealtimeSettings,
    ResponseDone,
    SpeechStarted,
    ToolSchema,
)
from gateway.realtime.client_events import session_update
from gateway.tools import CallContext, ToolRegistry
from gateway.tools_builtin import end_call_tool, get_time_tool
from tests.gateway.test_tools_rig import FakeCall, FakeSession, tool

PCM = np.zeros(160, np.int16)


async def slept(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    await trio.sleep(1.0)
    return {"slept": True}


def test_the_session_offers_exactly_the_registry_tools() -> None:
    registry = ToolRegistry([end_call_tool(), get_time_tool("Europe/Berlin")])
    settings = session_settings(RealtimeSettings(provider="local"), registry)
    tools = session_update(settings, "e1")["session"]["tools"]
    assert tools == registry.schemas()
    assert [t["name"] for t in tools] == ["end_call", "get_time"]
    with pytest.raises(RealtimeConfigError, match=r"realtime.tools declares hang_up: declare"):
        session_settings(RealtimeSettings(tools=(ToolSchema("hang_up"),)), registry)


async def test_function_calls_are_answered_and_every_event_reaches_the_call_in_order(
    autojump_clock: MockClock,
) -> None:
    session = FakeSession()
    events_send, events_recv = trio.open_memory_channel[RealtimeEvent](16)
    call_send, call_recv = trio.open_memory_channel[RealtimeEvent](16)
    tools = CallTools(ToolRegistry([tool("slow", slept)]), FakeCall(), session, events_recv,
                      call_send)  # fmt: skip
    events: list[RealtimeEvent] = [
        SpeechStarted("item-1", 0),
        FunctionCallRequested("fc-1", "slow", "{}", "item-2", "resp-1"),
        AgentAudio(PCM, "resp-1", "item-3"),
        ResponseDone("resp-1", "completed", ""),
    ]
    async with trio.open_nursery() as nursery:
        await nursery.start(tools.run)
        async with events_send:
            for event in events:
                await events_send.send(event)
            t0 = trio.current_time()
            got = [await call_recv.receive() for _ in events]
            assert trio.current_time() == t0  # nothing waited for the tool
        output = await session.output("fc-1")
    assert got == events
    assert output.value == {"slept": True}
    assert output.at_s - t0 == pytest.approx(1.0)
    assert [(r.call_id, r.outcome, r.delivered) for r in tools.records] == [("fc-1", "ok", True)]
    assert [e async for e in call_recv] == []  # the session's end closed the call's channel


async def test_a_call_not_taking_audio_loses_audio_not_events(autojump_clock: MockClock) -> None:
    events_send, events_recv = trio.open_memory_channel[RealtimeEvent](64)
    call_send, call_recv = trio.open_memory_channel[RealtimeEvent](4)
    tools = CallTools(ToolRegistry(), FakeCall(), FakeSession(), events_recv, call_send)
    async with trio.open_nursery() as nursery:
        await nursery.start(tools.run)
        for n in range(10):
            events_send.send_nowait(AgentAudio(PCM, "resp-1", f"item-{n}"))
        events_send.send_nowait(ResponseDone("resp-1", "completed", ""))
        await trio.sleep(1.0)  # the call is busy elsewhere
        got = [await call_recv.receive() for _ in range(5)]
        nursery.cancel_scope.cancel()
    assert tools.audio_dropped == 6
    assert [type(e) for e in got] == [AgentAudio] * 4 + [ResponseDone]
