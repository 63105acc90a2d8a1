"""The line tests' rig: a real line actor between a `FakePort` and a `RecordingStarter` (a fake
call pipeline that records what each call got and saw), on trio's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import trio

from firmware_bridge.port import AudioFrame, PortKind
from gateway.line import CallLine, CallSignal, CallSpec, FxoLine, FxsLine, LineConfig, line_actor
from tests.gateway.fake_port import FakePort

T = TypeVar("T")
RIG_S = 600.0  # virtual seconds: a stuck test fails at once under the autojump clock
MONDAY_10AM = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


@dataclass(eq=False)
class FakeCall:
    """One call as the fake pipeline ran it. `end` makes it end itself; `hangup_reason` is
    what its cleanup read from the line's `HangupWatch`."""

    spec: CallSpec
    line: CallLine
    frames: list[AudioFrame] = field(default_factory=list)
    signals: list[CallSignal] = field(default_factory=list)
    end: trio.Event = field(default_factory=trio.Event)
    over: trio.Event = field(default_factory=trio.Event)
    hangup_reason: str | None = None
    read_frames: bool = True


@dataclass(eq=False)
class RecordingStarter:
    """A `CallStarter` that records its calls. `fail_with`: the next calls raise it (after
    `fail_after_s`); `read_frames`: False leaves `line.frames` unread (a stalled uplink)."""

    calls: list[FakeCall] = field(default_factory=list)
    fail_with: Exception | None = None
    fail_after_s: float = 1.0
    read_frames: bool = True

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        call = FakeCall(spec, line, read_frames=self.read_frames)
        self.calls.append(call)
        try:
            async with trio.open_nursery() as nursery:
                if call.read_frames:
                    nursery.start_soon(_collect, line.frames, call.frames)
                nursery.start_soon(_collect, line.signals, call.signals)
                if self.fail_with is not None:
                    await trio.sleep(self.fail_after_s)
                    raise self.fail_with
                await call.end.wait()
                nursery.cancel_scope.cancel()
        finally:
            call.hangup_reason = line.hangup.reason
            call.over.set()


async def _collect(recv: trio.MemoryReceiveChannel[T], into: list[T]) -> None:
    async for item in recv:
        into.append(item)


@dataclass(eq=False)
class Rig:
    port: FakePort
    line: FxoLine | FxsLine
    starter: RecordingStarter
    nursery: trio.Nursery

    @property
    def call(self) -> FakeCall:
        assert self.starter.calls, "no call was started"
        return self.starter.calls[-1]

    async def until(self, cond: Callable[[], bool], limit_s: float = 120.0) -> None:
        """Wait (virtual time) until `cond()`; fail after `limit_s`."""
        with trio.fail_after(limit_s):
            while not cond():  # noqa: ASYNC110
                await trio.sleep(0.01)

    async def call_started(self, limit_s: float = 120.0, *, answered: bool = True) -> FakeCall:
        """The next call; `answered`: once its line is off-hook (an FXO call may be prepared
        while the line rings, `line.fxo.pre_answer`)."""
        count = len(self.starter.calls)
        await self.until(lambda: len(self.starter.calls) > count, limit_s)
        if answered:
            await self.until(lambda: self.call.line.answered.is_set() or self.call.over.is_set(),
                             limit_s)  # fmt: skip
        return self.call


@asynccontextmanager
async def line_rig(
    kind: PortKind,
    config: LineConfig | None = None,
    *,
    wall_clock: Callable[[], datetime] = lambda: MONDAY_10AM,
    starter: RecordingStarter | None = None,
    noise_dbm0: float | None = -65.0,
    ready: bool = True,
) -> AsyncIterator[Rig]:
    """A running line actor on a `FakePort` of `kind` (made ready unless `ready` is False)."""
    port = FakePort(kind, noise_dbm0=noise_dbm0)
    starter = starter or RecordingStarter()
    line = line_actor(port, config or LineConfig(), starter, wall_clock=wall_clock)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(port.run)
            await nursery.start(line.run)
            rig = Rig(port, line, starter, nursery)
            if ready:
                port.ready()
                await rig.until(lambda: line.state != "down")
            yield rig
            nursery.cancel_scope.cancel()
