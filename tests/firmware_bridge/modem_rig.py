"""The rig of the voice-modem tests: `modem_rig` starts a `ModemSimulator` (fast clock) and a
`VoiceModem` on one real pty and yields a `Rig` that collects every event and frame; test
signals with DLE bytes in them (`with_dle_codes`) and their mu-law reference (`through_mulaw`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import FRAME_S
from dsp.g711 import ulaw_decode, ulaw_encode
from firmware_bridge.modem import VoiceModem
from firmware_bridge.port import (
    AudioFrame,
    CallerIdReported,
    LineEvent,
    PortKind,
    PortReady,
    RingStarted,
)
from firmware_bridge.sim.line import LineModel, LineState
from firmware_bridge.sim.modem import ModemSimulator
from firmware_bridge.sim.modem_profiles import CX93001, ModemProfile

READY_S = 5.0  # open + identify: ~0.15 s measured; first numba use may compile
WAIT_S = 8.0  # any one expected event or frame count (ring + caller ID: ~0.4 s at 10x)
RECOVER_S = 10.0  # PortLost -> PortReady: stall watchdog (0.5 s) + backoff + identify
FRAME = 160
MU_DLE = int(ulaw_decode(np.array([0x10], np.uint8))[0])  # the sample whose mu-law code is DLE
CID = CallerId(number="5551234567", name="ALICE SMITH", when="11251015")
E = TypeVar("E", bound=LineEvent)


def through_mulaw(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    return ulaw_decode(ulaw_encode(pcm))


def with_dle_codes(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    """`pcm` with samples that encode to 0x10 alone, in pairs and in threes (DLE DLE, DLE SUB)."""
    x = pcm.copy()
    x[0] = 1000  # a known first sample: alignment finds the signal by its first non-zero
    for start, run in ((7, 1), (40, 2), (101, 3), (159, 2)):
        for k in range(start, x.size - run, 320):
            x[k : k + run] = MU_DLE
    return x


def first_nonzero(x: NDArray[np.int16]) -> int:
    nz = np.flatnonzero(x)
    assert nz.size, "no signal at all"
    return int(nz[0])


@dataclass(eq=False)
class Rig:
    """A simulator and a driver on one pty, with every event and frame collected. Frames in
    `tx` are sent back one per received frame (after `send`'s `prefill` at once), as a
    playout clocked by the line would."""

    sim: ModemSimulator
    line: LineModel
    modem: VoiceModem
    events: list[LineEvent] = field(default_factory=list)
    frames: list[AudioFrame] = field(default_factory=list)
    tx: deque[NDArray[np.int16]] = field(default_factory=deque)
    _changed: trio.Event = field(default_factory=trio.Event)

    async def collect(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._events)
            nursery.start_soon(self._frames)

    async def _events(self) -> None:
        async for event in self.modem.events:
            self.events.append(event)
            self._changed.set()

    async def _frames(self) -> None:
        async for frame in self.modem.frames:
            self.frames.append(frame)
            if self.tx:
                self.modem.send_audio(self.tx.popleft())
            self._changed.set()

    def send(self, pcm: NDArray[np.int16], prefill: int = 5) -> None:
        """Queue `pcm` (whole frames) for the line: `prefill` frames now, then one per frame."""
        self.tx.extend(pcm.reshape(-1, FRAME))
        for _ in range(min(prefill, len(self.tx))):
            self.modem.send_audio(self.tx.popleft())

    async def send_on_clock(self, pcm: NDArray[np.int16], lead: int = 3) -> None:
        """Send `pcm` as a playout on its own 20 ms clock does (half duplex: while we talk the
        modem sends nothing to pace by): `lead` frames at once, then one per `FRAME_S`."""
        tick = trio.current_time()
        for i, frame in enumerate(pcm.reshape(-1, FRAME)):
            self.modem.send_audio(frame)
            if i >= lead - 1:
                tick += FRAME_S
                await trio.sleep_until(tick)

    async def until(self, done: Callable[[], bool], limit_s: float = WAIT_S) -> None:
        with trio.fail_after(limit_s):
            while not done():
                self._changed = trio.Event()
                await self._changed.wait()

    async def event(self, kind: type[E], after: int = 0, limit_s: float = WAIT_S) -> E:
        """The first `kind` event at or after index `after`."""
        await self.until(lambda: any(isinstance(e, kind) for e in self.events[after:]), limit_s)
        return next(e for e in self.events[after:] if isinstance(e, kind))

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def received(self) -> NDArray[np.int16]:
        return np.concatenate([f.pcm for f in self.frames])

    async def answer_call(self, callerid: CallerId | None = CID) -> None:
        """Ring with `callerid` and answer once it (or the first ring) was reported. Script
        the far party after this: between +VLS=1 (off-hook) and +VTR's CONNECT the modem
        hears the line but sends no audio, so what is said then is lost, as on hardware."""
        mark = len(self.events)
        self.line.incoming_call(callerid)
        await self.event(CallerIdReported if callerid else RingStarted, mark)
        await self.modem.off_hook()
        assert self.line.state is LineState.CONNECTED


def quiet_line() -> LineModel:
    """No echo, no noise: what the far party plays is exactly what the host receives."""
    return LineModel(PortKind.FXO, echo=None, noise_dbm0=None)


@asynccontextmanager
async def modem_rig(
    tmp_path: Path, profile: ModemProfile = CX93001, line: LineModel | None = None
) -> AsyncIterator[Rig]:
    line = line or quiet_line()
    link = tmp_path / "tipring-modem"
    sim = ModemSimulator(profile, line, link=link, fast=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        modem = VoiceModem(str(link))
        with trio.fail_after(READY_S):
            await nursery.start(modem.run)
        rig = Rig(sim, line, modem)
        nursery.start_soon(rig.collect)
        await rig.event(PortReady)
        yield rig
        nursery.cancel_scope.cancel()
