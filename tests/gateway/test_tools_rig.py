"""The fakes the gateway.tools tests share (no tests here): the realtime session as a tool output
sink, the call as a `CallControl`, function call events, and a rig running a real `ToolRunner`
in a nursery standing in for the call's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from dsp.callerid_message import CallerId
from gateway.errors import GatewayError
from gateway.tools import (
    CallContext,
    Tool,
    ToolCallRequest,
    ToolRegistry,
    ToolRunner,
    open_tool_runner,
)

RIG_S = 60.0  # no rig lives this long (on the mock clock or the real one): a hang fails instead
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The shape of `gateway.realtime.events.FunctionCallRequested`."""

    call_id: str
    name: str
    arguments: str
    item_id: str | None = None
    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class Output:
    at_s: float  # trio clock
    call_id: str
    text: str

    @property
    def value(self) -> Any:
        return json.loads(self.text)


@dataclass(eq=False)
class FakeSession:
    """The session's `send_function_output`: records each output, or fails as told."""

    fail_with: GatewayError | None = None
    hang: bool = False
    outputs: list[Output] = field(default_factory=list)
    _arrived: trio.Event = field(default_factory=trio.Event)

    async def send_function_output(self, call_id: str, output: str) -> None:
        if self.hang:
            await trio.sleep_forever()
        if self.fail_with is not None:
            raise self.fail_with
        self.outputs.append(Output(trio.current_time(), call_id, output))
        self._arrived.set()
        self._arrived = trio.Event()

    async def output(self, call_id: str) -> Output:
        """The output for `call_id`, waiting for it."""
        while True:
            for output in self.outputs:
                if output.call_id == call_id:
                    return output
            await self._arrived.wait()


@dataclass(eq=False)
class FakeCall:
    """A `CallControl` that records what tools asked of it; `transfer` fails as told."""

    call_id: str = "call-1"
    line: int = 2
    caller_id: CallerId | None = field(default_factory=lambda: CallerId("5551234567", "ALICE"))
    transfer_error: GatewayError | None = None
    actions: list[tuple[str, str]] = field(default_factory=list)

    async def hang_up(self, reason: str) -> None:
        self.actions.append(("hang_up", reason))

    async def transfer(self, target: str) -> None:
        if self.transfer_error is not None:
            raise self.transfer_error
        self.actions.append(("transfer", target))

    async def warm_transfer(self, target: str, answer_s: float) -> None:
        if self.transfer_error is not None:
            raise self.transfer_error
        self.actions.append(("warm_transfer", target))

    async def send_dtmf(self, digits: str) -> None:
        self.actions.append(("send_dtmf", digits))


def tool(
    name: str,
    function: Callable[[dict[str, Any], CallContext], Awaitable[object]],
    parameters: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Tool:
    return Tool(name, f"The {name} tool.", parameters or NO_PARAMETERS, function, **kwargs)


@dataclass
class Rig:
    runner: ToolRunner
    requests_send: trio.MemorySendChannel[ToolCallRequest]
    session: FakeSession
    control: FakeCall
    call_scope: trio.CancelScope  # the call's nursery: cancel it = hang-up

    async def call(self, name: str, arguments: str = "{}", call_id: str | None = None) -> str:
        """Send a function call as the session would; its call_id."""
        call_id = call_id or f"fc-{name}-{len(self.runner.records)}-{trio.current_time()}"
        await self.requests_send.send(FunctionCall(call_id, name, arguments, "item-1", "resp-1"))
        return call_id

    async def result(self, name: str, arguments: str = "{}") -> Any:
        """Call and wait for the output, parsed."""
        return (await self.session.output(await self.call(name, arguments))).value


@asynccontextmanager
async def runner_rig(
    registry: ToolRegistry, session: FakeSession | None = None, control: FakeCall | None = None
) -> AsyncIterator[Rig]:
    """A started `ToolRunner` in a nursery (the call's); cancelled when the block ends."""
    session = session or FakeSession()
    control = control or FakeCall()
    runner, requests_send = open_tool_runner(registry, control, session)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.run)
            yield Rig(runner, requests_send, session, control, nursery.cancel_scope)
            nursery.cancel_scope.cancel(reason="test over")
