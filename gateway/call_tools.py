"""Tools inside a call: the glue between the call's `RealtimeSession` and its `ToolRunner`.

The session reports everything on one channel. `CallTools`, an actor in the call's nursery,
sits on it: each `FunctionCallRequested` goes to a `ToolRunner` (`gateway.tools`: every call
its own task with its tool's timeout; the result, or a JSON error result on failure, timeout,
unknown tool or bad arguments, goes back through `RealtimeSession.send_function_output`, which
adds the `function_call_output` item and queues one `response.create` behind any response in
progress). Every event, function calls included (the call may note them, play a filler), then
passes on to the call, in order. Nothing waits on a tool, so audio keeps flowing both ways
while tools run. Hang-up cancels the call's nursery and with it
the running tools (`records` keeps them, as `cancelled`).

`session_settings` puts the registry's tools into the session's `session.update`: the `[tools]`
table is their one declaration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import trio

from gateway.realtime.errors import RealtimeConfigError
from gateway.realtime.messages import AgentAudio, FunctionCallRequested, RealtimeEvent
from gateway.realtime.settings import RealtimeSettings, ToolSchema
from gateway.tools import (
    CallControl,
    ToolCallRecord,
    ToolCallRequest,
    ToolOutputSink,
    ToolRegistry,
    open_tool_runner,
)

log = logging.getLogger(__name__)

EVENTS_BUFFER = 256  # CallTools -> the call: a reply's burst of deltas (the server sends
# seconds of audio at several times real time) plus its transcript events


def session_settings(settings: RealtimeSettings, registry: ToolRegistry) -> RealtimeSettings:
    """`settings` with `registry`'s tools as the session's functions. `RealtimeConfigError`
    if `settings` already has tools: a function without an implementation would only ever
    answer "unknown tool"."""
    if settings.tools:
        names = ", ".join(t.name for t in settings.tools)
        raise RealtimeConfigError(
            f"realtime.tools declares {names}: declare tools in [tools] (gateway.tools_config),"
            " which gives them an implementation"
        )
    schemas = tuple(ToolSchema(t.name, t.description, dict(t.parameters)) for t in registry)
    return replace(settings, tools=schemas)


def open_call_tools(
    registry: ToolRegistry,
    control: CallControl,
    session: ToolOutputSink,
    events_recv: trio.MemoryReceiveChannel[RealtimeEvent],
) -> tuple[CallTools, trio.MemoryReceiveChannel[RealtimeEvent]]:
    """A `CallTools` on the session's `events_recv`, and the channel the rest of the call
    reads the session's events from (all of them; function calls are answered already)."""
    events_send, call_recv = trio.open_memory_channel[RealtimeEvent](EVENTS_BUFFER)
    return CallTools(registry, control, session, events_recv, events_send), call_recv


@dataclass(eq=False)
class CallTools:
    """Runs the session's function calls; forwards every event to `events_send`. Agent
    audio goes on with `send_nowait` (a full channel drops it, counted in `audio_dropped`:
    the session's socket never waits on the call); other events wait for room. Ends when the
    session's channel closes and the running tools are done, or with the call."""

    registry: ToolRegistry
    control: CallControl
    session: ToolOutputSink
    events_recv: trio.MemoryReceiveChannel[RealtimeEvent]
    events_send: trio.MemorySendChannel[RealtimeEvent]
    audio_dropped: int = field(init=False, default=0)
    records: list[ToolCallRecord] = field(init=False, default_factory=list)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runner, requests_send = open_tool_runner(self.registry, self.control, self.session)
        self.records = runner.records  # the runner appends; the call record reads them here
        async with self.events_recv, self.events_send, trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            task_status.started()
            async with requests_send:
                async for event in self.events_recv:
                    await self._route(event, requests_send)

    async def _route(
        self, event: RealtimeEvent, requests_send: trio.MemorySendChannel[ToolCallRequest]
    ) -> None:
        if isinstance(event, FunctionCallRequested):
            await requests_send.send(event)  # the runner only starts a task: no real wait
        if isinstance(event, AgentAudio):
            try:
                self.events_send.send_nowait(event)
            except trio.WouldBlock:
                self.audio_dropped += 1
                if self.audio_dropped == 1:
                    log.warning("call %s: the call is not taking agent audio; dropping "
                                "(counted)", self.control.call_id)  # fmt: skip
        else:
            await self.events_send.send(event)
