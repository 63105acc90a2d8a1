"""The call rig the tools-in-session tests share (no tests here): the local realtime server on
loopback, a real `RealtimeSession`, `CallTools` with its `ToolRunner` in the call's nursery, a
caller talking at real time and a fake call (`CallControl`); and a small HTTP service (h11 on
trio) for HTTP tools. Real sockets: the real clock, short waits, each bounded.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import h11
import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid_message import CallerId
from dsp.frame import FRAME_S, FRAME_SAMPLES
from dsp.g711 import ulaw_decode
from gateway.call_tools import CallTools, open_call_tools, session_settings
from gateway.realtime import (
    AgentAudio,
    FunctionCallRequested,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
    ResponseDone,
    ServerVad,
)
from gateway.realtime.local import Faults, LocalRealtimeServer, Script
from gateway.realtime.local.record import SessionRecord
from gateway.tools import ToolRegistry

E = TypeVar("E")
WAIT_S = 5.0  # any one expected event
RIG_S = 30.0  # a whole test: a hang fails instead
CLOSE_WAIT_S = 1.0  # after the call: the server sees the socket close
POLL_S = 0.01
SETTINGS = RealtimeSettings(provider="local", turn_detection=ServerVad(silence_duration_ms=300))
FAST = Faults(audio_speed=20.0)


def prompt_pcm(server: LocalRealtimeServer, name: str) -> NDArray[np.int16]:
    return ulaw_decode(np.frombuffer(server.prompts.ulaw[name], np.uint8))


# --- the line side and the call -----------------------------------------------------------------


@dataclass(eq=False)
class Caller:
    """The line: one 20 ms frame per tick at real time, speech when told, else silence; sent
    with `send_nowait` as the line does (the line clock never waits on the cloud)."""

    frames_send: trio.MemorySendChannel[NDArray[np.int16]]
    speech: deque[NDArray[np.int16]] = field(default_factory=deque)
    sent_at: list[float] = field(default_factory=list)
    dropped: int = 0

    def say(self, pcm: NDArray[np.int16]) -> None:
        whole = pcm.size - pcm.size % FRAME_SAMPLES
        self.speech.extend(pcm[:whole].reshape(-1, FRAME_SAMPLES))

    def frames_between(self, t0: float, t1: float) -> int:
        return sum(t0 <= t <= t1 for t in self.sent_at)

    async def run(self) -> None:
        silence = np.zeros(FRAME_SAMPLES, np.int16)
        tick = trio.current_time()
        async with self.frames_send:
            while True:
                tick += FRAME_S
                await trio.sleep_until(tick)
                frame = self.speech.popleft() if self.speech else silence
                try:
                    self.frames_send.send_nowait(frame.copy())
                    self.sent_at.append(trio.current_time())
                except trio.WouldBlock:
                    self.dropped += 1


@dataclass(eq=False)
class FakeCall:
    """The call as a `CallControl`: records what tools ask; `hang_up` is noted for the rig,
    which ends the call once the agent's goodbye is done (as the call pipeline will)."""

    call_id: str = "call-7"
    line: int = 1
    caller_id: CallerId | None = None
    actions: list[tuple[str, str]] = field(default_factory=list)
    hang_up_requested: trio.Event = field(default_factory=trio.Event)

    async def hang_up(self, reason: str) -> None:
        self.actions.append(("hang_up", reason))
        self.hang_up_requested.set()

    async def transfer(self, target: str) -> None:
        self.actions.append(("transfer", target))

    async def warm_transfer(self, target: str, answer_s: float) -> None:
        self.actions.append(("warm_transfer", target))

    async def send_dtmf(self, digits: str) -> None:
        self.actions.append(("send_dtmf", digits))


@dataclass(eq=False)
class CallRig:
    server: LocalRealtimeServer
    session: RealtimeSession
    tools: CallTools
    call: FakeCall
    caller: Caller
    call_scope: trio.CancelScope
    seen: list[tuple[float, RealtimeEvent]] = field(default_factory=list)  # (trio time, event)
    hung_up_at: float = math.inf
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def record(self) -> SessionRecord:
        return self.server.sessions[0]

    async def listen(self, call_recv: trio.MemoryReceiveChannel[RealtimeEvent]) -> None:
        async for event in call_recv:
            self.seen.append((trio.current_time(), event))
            self._changed.set()
            self._changed = trio.Event()

    async def next(self, kind: type[E], after: int = 0,
                   where: Callable[[E], bool] = lambda _: True) -> tuple[int, E]:  # fmt: skip
        """The first event of `kind` at index >= `after` that `where` likes (waiting for it)."""
        with trio.fail_after(WAIT_S):
            while True:
                for index in range(after, len(self.seen)):
                    event = self.seen[index][1]
                    if isinstance(event, kind) and where(event):
                        return index, event
                await self._changed.wait()

    def of(self, kind: type[E]) -> list[tuple[float, E]]:
        return [(t, e) for t, e in self.seen if isinstance(e, kind)]

    def audio_of(self, response_id: str) -> NDArray[np.int16]:
        parts = [e.pcm for _, e in self.of(AgentAudio) if e.response_id == response_id]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def speak(self) -> None:
        """A short caller utterance: 320 ms of speech, then the line's silence ends the turn."""
        self.caller.say(prompt_pcm(self.server, "sorry")[640:3200])

    async def tool_turn(self, after: int = 0) -> tuple[FunctionCallRequested, ResponseDone]:
        """The caller speaks; the agent calls a tool, then answers its output: the call and
        that answer's ResponseDone."""
        self.speak()
        index, call = await self.next(FunctionCallRequested, after)
        _, done = await self.next(ResponseDone, index,
                                  lambda e: e.response_id != call.response_id)  # fmt: skip
        return call, done

    def outputs(self) -> list[dict[str, Any]]:
        """The function outputs the server received, parsed."""
        items = self.record.created_items()
        return [json.loads(i["output"]) for i in items if i["type"] == "function_call_output"]

    async def hang_up_after_goodbye(self) -> None:
        """On `hang_up`: let the response to the tool's output finish, then end the call."""
        await self.call.hang_up_requested.wait()
        index, call = await self.next(FunctionCallRequested, 0, lambda e: e.name == "end_call")
        await self.next(ResponseDone, index, lambda e: e.response_id != call.response_id)
        self.hung_up_at = trio.current_time()
        self.call_scope.cancel(reason="hung up")


@asynccontextmanager
async def call_rig(registry: ToolRegistry, script: Script,
                   faults: Faults = FAST) -> AsyncIterator[CallRig]:  # fmt: skip
    """A call in progress: server, session, CallTools and the caller in the call's nursery.
    The block may end the call itself (hang-up); else the call is cancelled at its end."""
    server = LocalRealtimeServer(script=script, faults=faults)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as outer:
            url = await outer.start(server.run)
            settings = replace(session_settings(SETTINGS, registry), url=f"{url}?model=test")
            frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](16)
            events_send, events_recv = trio.open_memory_channel[RealtimeEvent](64)
            session = RealtimeSession(settings, None, frames_recv, events_send)
            call = FakeCall()
            tools, call_recv = open_call_tools(registry, call, session, events_recv)
            async with trio.open_nursery() as call_nursery:  # the call's nursery
                with trio.fail_after(WAIT_S):
                    await call_nursery.start(session.run)
                await call_nursery.start(tools.run)
                rig = CallRig(server, session, tools, call, Caller(frames_send),
                              call_nursery.cancel_scope)  # fmt: skip
                call_nursery.start_soon(rig.listen, call_recv)
                call_nursery.start_soon(rig.caller.run)
                call_nursery.start_soon(rig.hang_up_after_goodbye)
                yield rig
                call_nursery.cancel_scope.cancel(reason="test over")
            for _ in range(int(CLOSE_WAIT_S / POLL_S)):  # the server sees the socket closed
                if server.sessions[0].closed:
                    break
                await trio.sleep(POLL_S)
            outer.cancel_scope.cancel()


def assert_clean(rig: CallRig) -> None:
    """One response at a time held: the server never refused a response.create (nor any
    other event), and every tool call got exactly one output."""
    assert rig.record.sent_of("error") == []
    calls = {e.call_id for _, e in rig.of(FunctionCallRequested)}
    answered = [i["call_id"] for i in rig.record.created_items()
                if i["type"] == "function_call_output"]  # fmt: skip
    assert sorted(answered) == sorted(calls)


# --- a local HTTP service for HTTP tools (h11 on trio: real sockets) ---------------------------


@dataclass
class Crm:
    port: int = 0
    seen: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)

    async def handle(self, stream: trio.SocketStream) -> None:
        """One request per connection: record it, answer with the order as JSON."""
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        assert request is not None
        headers = {k.decode(): v.decode() for k, v in request.headers}
        arguments = json.loads(body)
        self.seen.append((request.method.decode(), request.target.decode(), headers, arguments))
        payload = json.dumps({"order_id": arguments["order_id"], "status": "shipped"}).encode()
        response = h11.Response(status_code=200, headers=[
            ("content-type", "application/json"), ("content-length", str(len(payload))),
            ("connection", "close")])  # fmt: skip
        await stream.send_all(conn.send(response) + conn.send(h11.Data(data=payload)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        await stream.aclose()


@asynccontextmanager
async def crm_service() -> AsyncIterator[Crm]:
    crm = Crm()
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, crm.handle, 0, host="127.0.0.1")
        [listener] = await nursery.start(serve)
        crm.port = listener.socket.getsockname()[1]
        yield crm
        nursery.cancel_scope.cancel()
