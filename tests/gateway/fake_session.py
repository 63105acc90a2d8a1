"""A fake realtime session for call pipeline tests on trio's MockClock (no sockets): `FakeSession`
records what the call asks of it (cancel, truncate, texts, outputs) and the caller frames it
gets; the test plays the cloud with `emit` (any `RealtimeEvent`) and `say` (a response's audio,
as the cloud sends it: deltas far faster than real time, then ResponseDone). `fake_rig` runs one
call of a real `CallPipeline` on a `LineSim` with it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from firmware_bridge.port import PortKind
from firmware_bridge.sim.echo_paths import EchoPath
from gateway.call import CallPipeline
from gateway.call_config import AgentProfile, CallConfig, SessionFactory
from gateway.call_fallback import PromptBank
from gateway.realtime import (
    AgentAudio,
    ApiKey,
    RealtimeEvent,
    RealtimeSettings,
    ResponseCreated,
    ResponseDone,
    SessionConnected,
    SessionFailed,
)
from gateway.realtime.client_events import Role
from gateway.tools import ToolRegistry
from tests.gateway.pipeline_rig import ECHO, PipelineRig, call_on_line, shipped_prompts

DELTA_SAMPLES = 800  # 100 ms per delta, as the local server sends them


@dataclass(eq=False)
class FakeSession:
    frames_recv: trio.MemoryReceiveChannel[NDArray[np.int16]]
    events_send: trio.MemorySendChannel[RealtimeEvent]
    calls: list[tuple[object, ...]] = field(default_factory=list)
    frames: int = 0
    fail: trio.Event = field(default_factory=trio.Event)  # set: run() raises SessionFailed
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.events_send, trio.open_nursery() as nursery:
            await self.events_send.send(SessionConnected("sess_fake", 1, False))
            nursery.start_soon(self._uplink)
            task_status.started()
            await self.fail.wait()
            nursery.cancel_scope.cancel()
        raise SessionFailed("the fake cloud is gone")

    async def _uplink(self) -> None:
        async with self.frames_recv:
            async for _ in self.frames_recv:
                self.frames += 1

    async def cancel_response(self) -> None:
        self.calls.append(("cancel",))

    async def truncate(self, item_id: str, audio_end_ms: float) -> None:
        self.calls.append(("truncate", item_id, audio_end_ms))

    async def send_function_output(self, call_id: str, output: str) -> None:
        self.calls.append(("output", call_id, output))

    async def send_text(self, text: str, role: Role = "user", *,
                        respond: bool | None = None) -> None:  # fmt: skip
        self.calls.append(("text", text, role))

    async def emit(self, event: RealtimeEvent) -> None:
        await self.events_send.send(event)

    async def say(self, pcm: NDArray[np.int16], done: bool = True) -> tuple[str, str]:
        """A response speaking `pcm`: (response id, item id)."""
        n = next(self._ids)
        rid, item = f"resp_{n}", f"item_{n}"
        await self.emit(ResponseCreated(rid))
        for at in range(0, pcm.size, DELTA_SAMPLES):
            await self.emit(AgentAudio(pcm[at : at + DELTA_SAMPLES].copy(), rid, item))
        if done:
            await self.emit(ResponseDone(rid, "completed", ""))
        return rid, item


@dataclass(eq=False)
class FakeRig:
    line: PipelineRig
    sessions: list[FakeSession]

    @property
    def cloud(self) -> FakeSession:
        assert self.sessions, "no session yet"
        return self.sessions[-1]


def fake_factory(sessions: list[FakeSession]) -> SessionFactory:
    """A `CallPipeline` session factory making `FakeSession`s, appended to `sessions`."""

    def factory(settings: RealtimeSettings, key: ApiKey | None,
                frames_recv: trio.MemoryReceiveChannel[NDArray[np.int16]],
                events_send: trio.MemorySendChannel[RealtimeEvent]) -> FakeSession:  # fmt: skip
        sessions.append(FakeSession(frames_recv, events_send))
        return sessions[-1]

    return factory


@asynccontextmanager
async def fake_rig(config: CallConfig | None = None, *, greeting: str | None = None,
                   prompts: PromptBank | None = None, kind: PortKind = PortKind.FXS,
                   callerid: CallerId | None = None, tools: ToolRegistry | None = None,
                   echo: EchoPath = ECHO) -> AsyncIterator[FakeRig]:  # fmt: skip
    sessions: list[FakeSession] = []
    settings = RealtimeSettings(provider="local")
    profile = AgentProfile(settings, None, tools or ToolRegistry(), greeting)
    prompts = prompts or shipped_prompts()  # read now: a worker thread would let MockClock jump
    pipeline = CallPipeline({"default": profile}, config or CallConfig(), prompts=prompts,
                            session_factory=fake_factory(sessions))  # fmt: skip
    async with call_on_line(pipeline, kind, echo, callerid=callerid) as line:
        with trio.fail_after(60.0):
            while not sessions:  # noqa: ASYNC110 (the call starts its session at once)
                await trio.sleep(0.01)
        yield FakeRig(line, sessions)
