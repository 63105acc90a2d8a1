"""`PortBridge`: two ports' calls talking to each other through the box, frame by frame (the
adapter has no cross-connect). `gateway.emergency` puts an FXS phone through to an FXO line
with it.

Each side is a call's `CallLine`: the bridge reads its received frames and, per frame
received (spec §7 pacing), sends it one frame: the other side's oldest waiting frame, or
silence when none waits. The ports run on one adapter clock but their frames arrive apart,
so each direction queues up to `MAX_QUEUED_FRAMES`; beyond that the oldest goes (latency
stays bounded). Side `b` may come later (`attach`): until then `a` hears silence. The bridge
ends when either side's frames end (its line hung up the call). No echo canceller: each
party hears its own echo through the other port's hybrid, as on a plain line.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from gateway.line_call import CallLine

log = logging.getLogger(__name__)

MAX_QUEUED_FRAMES = 4  # 80 ms: covers the link's delivery jitter between two ports' frames
SILENCE = np.zeros(FRAME_SAMPLES, np.int16)
SILENCE.flags.writeable = False
Tap = Callable[[NDArray[np.int16]], None]  # sees each frame one side received (no awaiting)


@dataclass
class BridgeStats:
    relayed: int = 0  # frames passed from one side to the other
    filled: int = 0  # a side got silence: nothing of the other side waited
    dropped: int = 0  # frames dropped from a full queue


@dataclass(eq=False)
class PortBridge:
    """Relays audio between `a` and (once attached) `b`; see the module docstring. `tap_b`
    sees every frame `b` received (a dialler listening for dial tone)."""

    a: CallLine
    tap_b: Tap | None = None
    stats: BridgeStats = field(default_factory=BridgeStats)
    done: trio.Event = field(default_factory=trio.Event)  # set when the bridge ended
    _to_a: deque[NDArray[np.int16]] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED_FRAMES))
    _to_b: deque[NDArray[np.int16]] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED_FRAMES))
    _b: CallLine | None = None
    _nursery: trio.Nursery | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay until a side's frames end; `attach` works once this started."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._relay, self.a, self._to_b, self._to_a, None)
                task_status.started()
        finally:
            self._nursery = None
            self.done.set()
            log.info("bridge on line %d: %d frames relayed, %d silence filled, %d dropped",
                     self.a.port.port, self.stats.relayed, self.stats.filled,
                     self.stats.dropped)  # fmt: skip

    def attach(self, b: CallLine) -> None:
        """Connect side `b`: from its next frame on, the two hear each other."""
        assert self._nursery is not None, "attach before run started"
        self._b = b
        self._nursery.start_soon(self._relay, b, self._to_a, self._to_b, self.tap_b)

    async def _relay(self, side: CallLine, outbox: deque[NDArray[np.int16]],
                     inbox: deque[NDArray[np.int16]], tap: Tap | None) -> None:  # fmt: skip
        async for frame in side.frames:
            if tap is not None:
                tap(frame.pcm)
            if side is not self.a or self._b is not None:  # else nobody hears it yet
                self.stats.dropped += len(outbox) == MAX_QUEUED_FRAMES  # the oldest goes
                outbox.append(frame.pcm)
            if inbox:
                side.port.send_audio(inbox.popleft())
                self.stats.relayed += 1
            else:
                side.port.send_audio(SILENCE)
                self.stats.filled += 1
        assert self._nursery is not None
        log.info("bridge on line %d: line %d ended", self.a.port.port, side.port.port)
        self._nursery.cancel_scope.cancel(reason=f"line {side.port.port} ended")


async def bridge_lines(a: CallLine, b: CallLine) -> None:
    """Relay between `a` and `b` until one of them ends (a warm transfer's caller and the
    phone that took it)."""
    bridge = PortBridge(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run)
        bridge.attach(b)
        await bridge.done.wait()
