"""A real `RealtimeSession` against a real `LocalRealtimeServer` on loopback, between memory
channels: the rig every session test drives. Sockets are real, so waits use the real clock
(kept short), each bounded by `trio.fail_after`.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import trio
from numpy.typing import NDArray
from trio_websocket import WebSocketConnection, open_websocket_url

from dsp.frame import FRAME_SAMPLES
from dsp.g711 import ulaw_decode
from gateway.realtime import (
    AgentAudio,
    ApiKey,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
)
from gateway.realtime.local import Faults, LocalRealtimeServer, Script, SessionRecord

E = TypeVar("E")
WAIT_S = 5.0  # any single expected event; the server streams at 50x real time by default
FAST = Faults(audio_speed=50.0)


def prompt_pcm(server: LocalRealtimeServer, name: str) -> NDArray[np.int16]:
    return ulaw_decode(np.frombuffer(server.prompts.ulaw[name], np.uint8))


def frames_of(pcm: NDArray[np.int16]) -> list[NDArray[np.int16]]:
    whole = pcm.size - pcm.size % FRAME_SAMPLES
    return [pcm[i : i + FRAME_SAMPLES].copy() for i in range(0, whole, FRAME_SAMPLES)]


@dataclass
class Rig:
    server: LocalRealtimeServer
    session: RealtimeSession
    frames_send: trio.MemorySendChannel[NDArray[np.int16]]
    events_recv: trio.MemoryReceiveChannel[RealtimeEvent]
    nursery: trio.Nursery
    seen: list[RealtimeEvent] = field(default_factory=list)

    async def speak(self, name: str = "sorry", silence_ms: int = 800) -> None:
        """The caller says a prompt, then is silent long enough for the VAD to end the turn.
        Sent as fast as the channel takes it: the server's VAD runs on the audio timeline."""
        pcm = np.concatenate([prompt_pcm(self.server, name),
                              np.zeros(8 * silence_ms, np.int16)])  # fmt: skip
        for frame in frames_of(pcm):
            await self.frames_send.send(frame)

    async def silence(self, ms: int) -> None:
        for frame in frames_of(np.zeros(8 * ms, np.int16)):
            await self.frames_send.send(frame)

    async def next(self, kind: type[E], timeout_s: float = WAIT_S, *,
                   where: Callable[[E], bool] | None = None) -> E:  # fmt: skip
        """Events until one of `kind` (for which `where` holds, if given); all kept in `seen`."""
        with trio.fail_after(timeout_s):
            async for event in self.events_recv:
                self.seen.append(event)
                if isinstance(event, kind) and (where is None or where(event)):
                    return event
        raise AssertionError(f"the session ended before a {kind.__name__}")

    async def server_saw(self, index: int, predicate: Callable[[SessionRecord], bool],
                         timeout_s: float = WAIT_S) -> SessionRecord:  # fmt: skip
        """The server's record of its `index`-th connection, once `predicate` holds for it:
        what the client sent is on the wire, not yet necessarily handled by the server."""
        with trio.fail_after(timeout_s):
            record = self.server.sessions[index]
            await record.wait_until(predicate)
        return record

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.seen if isinstance(e, kind)]

    def audio(self, item_id: str | None = None) -> NDArray[np.int16]:
        parts = [e.pcm for e in self.of(AgentAudio) if item_id in (None, e.item_id)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@asynccontextmanager
async def realtime_rig(settings: RealtimeSettings | None = None, *, key: ApiKey | None = None,
                       script: Script | None = None, faults: Faults | None = FAST,
                       query: str = "?model=test") -> AsyncIterator[Rig]:  # fmt: skip
    """A started session (its `started()` passed) against a fresh server. At the end the
    session is cancelled first (a hang-up: it closes its socket), then the server."""
    server = LocalRealtimeServer(script=script, faults=faults)
    async with trio.open_nursery() as outer:
        url = await outer.start(server.run)
        settings = replace(settings or RealtimeSettings(provider="local"), url=url + query)
        frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](64)
        events_send, events_recv = trio.open_memory_channel[RealtimeEvent](1024)
        session = RealtimeSession(settings, key, frames_recv, events_send)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(WAIT_S):
                await nursery.start(session.run)
            yield Rig(server, session, frames_send, events_recv, nursery)
            nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()


@asynccontextmanager
async def raw_client(server: LocalRealtimeServer | None = None, *, faults: Faults | None = None,
                     script: Script | None = None) -> AsyncIterator[RawClient]:  # fmt: skip
    """A bare websocket to a fresh local server: for testing the server's own answers."""
    server = server or LocalRealtimeServer(faults=faults or FAST, script=script)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        async with open_websocket_url(url + "?model=raw") as ws:
            yield RawClient(server, ws)
        nursery.cancel_scope.cancel()


@dataclass
class RawClient:
    server: LocalRealtimeServer
    ws: WebSocketConnection
    got: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(event))

    async def until(self, kind: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
        with trio.fail_after(timeout_s):
            while True:
                event = json.loads(await self.ws.get_message())
                self.got.append(event)
                if event["type"] == kind:
                    return event  # type: ignore[no-any-return]

    async def configure(self, fmt: str = "audio/pcmu", **session: Any) -> dict[str, Any]:
        formats: dict[str, Any] = {"type": fmt} if fmt != "audio/pcm" else {
            "type": fmt, "rate": 24000}  # fmt: skip
        await self.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": formats}, "output": {"format": formats}},
                    **session,
                },
            }
        )
        return await self.until("session.updated")


def speech_then_silence(server: LocalRealtimeServer, name: str = "sorry",
                        silence_ms: int = 800) -> bytes:  # fmt: skip
    """A caller turn as mu-law bytes (what a raw client appends)."""
    return server.prompts.ulaw[name] + b"\xff" * (8 * silence_ms)


def close_to(a: NDArray[np.int16], b: NDArray[np.int16]) -> float:
    """SNR in dB of `a` against `b` (over the shorter length)."""
    n = min(a.size, b.size)
    x, y = a[:n].astype(np.float64), b[:n].astype(np.float64)
    noise = np.sum((x - y) ** 2)
    return math.inf if noise == 0 else 10 * math.log10(np.sum(y**2) / noise)
