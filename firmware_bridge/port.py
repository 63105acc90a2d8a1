"""The `LinePort` interface: one telephone port of an adapter, as `gateway.line` sees it.

Both hardware paths implement it: the tipring adapter (`firmware_bridge.link`, FXS and FXO
ports) and a V.253 voice modem (`firmware_bridge.modem`, one FXO port). A port hands out
line events and received audio on two trio channels and takes audio and commands. Audio
is decoded 16-bit linear at 8 kHz in fixed 20 ms frames; the port encodes to and decodes
from the wire codec, and fills receive gaps with `dsp.plc` so the consumer always gets a
steady frame stream. Commands return when the device acknowledged them, or raise
`CommandFailed` / `PortUnsupported` / `LinkBroken`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId


class PortKind(StrEnum):
    """FXS: a phone plugs into the box (we ring it, it goes off-hook). FXO: the box plugs into
    a PSTN line (it rings us, we go off-hook)."""

    FXS = "fxs"
    FXO = "fxo"


class Codec(StrEnum):
    """Wire codec between adapter and host: G.711 mu-law, A-law, or 16-bit linear."""

    ULAW = "ulaw"
    ALAW = "alaw"
    L16 = "l16"


# US ring cadence, 2 s on 4 s off (GR-506); the default for `ring()`.
US_RING_CADENCE_MS = (2000, 4000)


@dataclass(frozen=True, slots=True)
class HookChanged:
    """FXS: the phone went off-hook (picked up) or on-hook (hung up)."""

    port: int
    off_hook: bool


@dataclass(frozen=True, slots=True)
class HookFlashed:
    """FXS: a short on-hook (flash), telling hook-flash from hang-up is the adapter's job."""

    port: int
    duration_ms: float


@dataclass(frozen=True, slots=True)
class RingStarted:
    """FXO: ringing voltage appeared on the line."""

    port: int


@dataclass(frozen=True, slots=True)
class RingStopped:
    """FXO: ringing voltage went away (end of one ring burst)."""

    port: int


@dataclass(frozen=True, slots=True)
class PolarityReversed:
    """FXO: the line's polarity flipped (answer or disconnect supervision on some networks)."""

    port: int


@dataclass(frozen=True, slots=True)
class LoopCurrentDropped:
    """FXO, off-hook: loop current stopped for `duration_ms` (the exchange's disconnect signal)."""

    port: int
    duration_ms: float


@dataclass(frozen=True, slots=True)
class LineVoltageMeasured:
    """FXO: the line's DC voltage (on-hook: ~48 V idle, ~0 V dead line; off-hook: loop volts)."""

    port: int
    volts: float


@dataclass(frozen=True, slots=True)
class CallerIdReported:
    """Caller ID decoded by the device itself (a voice modem's +VCID lines). The tipring
    adapter passes the FSK burst through as audio instead; `gateway.line` decodes that."""

    port: int
    callerid: CallerId


@dataclass(frozen=True, slots=True)
class DtmfReported:
    """A DTMF digit detected by the device itself (a voice modem's DLE digit codes)."""

    port: int
    digit: str


@dataclass(frozen=True, slots=True)
class ToneReported:
    """A tone detected by the device itself: "busy", "dial", "ringback", "sit", "silence",
    "fax", "modem" (a voice modem's DLE event codes)."""

    port: int
    tone: str


@dataclass(frozen=True, slots=True)
class PortLost:
    """The link to the device is down (unplugged, reset, silent): no events until `PortReady`."""

    port: int
    reason: str


@dataclass(frozen=True, slots=True)
class PortReady:
    """The port is (again) usable: after start-up or a reconnect. Any call state was lost: the
    device restarted on-hook, not ringing."""

    port: int
    kind: PortKind
    codec: Codec


LineEvent = (
    HookChanged
    | HookFlashed
    | RingStarted
    | RingStopped
    | PolarityReversed
    | LoopCurrentDropped
    | LineVoltageMeasured
    | CallerIdReported
    | DtmfReported
    | ToneReported
    | PortLost
    | PortReady
)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of received line audio. `pcm` (160 int16 samples) belongs to the receiver.
    `timestamp` counts samples on the device's 8 kHz clock; `concealed` marks a frame the
    port synthesised with `dsp.plc` because the real one was lost on the link."""

    port: int
    seq: int
    timestamp: int
    pcm: NDArray[np.int16]
    concealed: bool = False


class LinePort(Protocol):
    """One telephone port. `events` and `frames` are the port's receive channels (iterate them
    with `async for`); they outlive reconnects. One task may send audio; commands may come
    from any task and are serialised by the port."""

    @property
    def port(self) -> int: ...

    @property
    def kind(self) -> PortKind: ...

    @property
    def events(self) -> trio.MemoryReceiveChannel[LineEvent]: ...

    @property
    def frames(self) -> trio.MemoryReceiveChannel[AudioFrame]: ...

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        """Queue one 20 ms frame (160 int16 samples) for the line. Never blocks the caller's
        frame clock: when the link is backed up the frame is dropped and counted."""

    async def ring(
        self, cadence_ms: Sequence[int] = US_RING_CADENCE_MS, callerid: CallerId | None = None
    ) -> None:
        """FXS: ring the phone with this on/off cadence, sending caller ID after the first ring."""

    async def stop_ring(self) -> None:
        """FXS: stop ringing."""

    async def off_hook(self) -> None:
        """FXO: seize the line (answer a ringing call, or start an outgoing one)."""

    async def on_hook(self) -> None:
        """FXO: release the line (hang up)."""

    async def flash(self, duration_ms: float = 600.0) -> None:
        """FXO: a hook flash of `duration_ms` (call waiting, transfer on a PBX)."""

    async def dial(self, digits: str) -> None:
        """FXO, off-hook: dial `digits` as DTMF; returns when the digits were sent."""

    async def set_gains(self, tx_db: float, rx_db: float) -> None:
        """Set the codec's transmit and receive gains in dB (0 = nominal)."""
