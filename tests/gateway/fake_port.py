"""A fake `LinePort` for line and call tests, on trio's clock (use it with `autojump_clock`).

`FakePort` records every command (`commands`, `names()`) and every frame sent (`sent`), and
lets the test play the line's side: `emit(event)` puts an event on `events`, `play(pcm)`
queues audio the port then receives, and the phone/exchange helpers (`phone_off_hook`,
`phone_on_hook`, `ready`) emit the events a real device would. `run()` streams received
frames every 20 ms while the audio path is open, as the adapter does (spec §7): FXS while the
phone is off-hook; FXO while off-hook, and for `ONHOOK_LISTEN_S` after a ring or a polarity
reversal (caller ID). Queued audio goes out first, then `noise_dbm0` noise (or zeros).
`fail[name] = error` makes that command raise it (every time, until removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import FRAME_S, FRAME_SAMPLES
from dsp.levels import dbm0_to_rms
from firmware_bridge.errors import BridgeError, CommandFailed, PortUnsupported
from firmware_bridge.port import (
    US_RING_CADENCE_MS,
    AudioFrame,
    Codec,
    HookChanged,
    LineEvent,
    PolarityReversed,
    PortKind,
    PortLost,
    PortReady,
    RingStarted,
)

ONHOOK_LISTEN_S = 6.0  # spec §7 ONHOOK_LISTEN_MS
DIAL_DIGIT_S = 0.2  # 100 ms tone + 100 ms gap per digit, as AdapterPort.dial sends them


@dataclass(frozen=True)
class Command:
    at_s: float
    name: str
    args: tuple[object, ...] = ()


class FakePort:
    """See the module docstring. `reports` is informational (what a test's device would
    detect itself); the fake never detects anything from audio."""

    def __init__(self, kind: PortKind, port: int = 0, *, noise_dbm0: float | None = None,
                 seed: int = 0) -> None:  # fmt: skip
        self._port, self._kind = port, kind
        self._events_send, self._events_recv = trio.open_memory_channel[LineEvent](64)
        self._frames_send, self._frames_recv = trio.open_memory_channel[AudioFrame](16)
        self.commands: list[Command] = []
        self.sent: list[tuple[float, NDArray[np.int16]]] = []
        self.fail: dict[str, BridgeError] = {}
        self.off_hook_state = False  # FXO: our hook; FXS: the phone's
        self.ringing = False
        self.noise_dbm0 = noise_dbm0
        self.frames_delivered = self.frames_dropped = 0
        self._rng = np.random.default_rng(seed)
        self._rx = np.zeros(0, np.int16)
        self._listen_until = -np.inf
        self._seq = 0

    # --- LinePort -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def kind(self) -> PortKind:
        return self._kind

    @property
    def events(self) -> trio.MemoryReceiveChannel[LineEvent]:
        return self._events_recv

    @property
    def frames(self) -> trio.MemoryReceiveChannel[AudioFrame]:
        return self._frames_recv

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        assert pcm.shape == (FRAME_SAMPLES,), pcm.shape
        assert pcm.dtype == np.int16, pcm.dtype
        self.sent.append((trio.current_time(), pcm.copy()))

    async def ring(
        self, cadence_ms: Sequence[int] = US_RING_CADENCE_MS, callerid: CallerId | None = None
    ) -> None:
        await self._command("ring", PortKind.FXS, tuple(cadence_ms), callerid)
        if self.off_hook_state:
            raise CommandFailed(self._port, "ring", "BUSY: the phone is off-hook")
        self.ringing = True

    async def stop_ring(self) -> None:
        await self._command("stop_ring", PortKind.FXS)
        self.ringing = False

    async def off_hook(self) -> None:
        await self._command("off_hook", PortKind.FXO)
        self.off_hook_state = True

    async def on_hook(self) -> None:
        await self._command("on_hook", PortKind.FXO)
        self.off_hook_state = False

    async def flash(self, duration_ms: float = 600.0) -> None:
        await self._command("flash", PortKind.FXO, duration_ms)

    async def dial(self, digits: str) -> None:
        await self._command("dial", PortKind.FXO, digits)
        self.off_hook_state = True
        await trio.sleep(DIAL_DIGIT_S * len(digits))

    async def set_gains(self, tx_db: float, rx_db: float) -> None:
        await self._command("set_gains", None, tx_db, rx_db)

    # --- the test's side ------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The commands' names, in order."""
        return [c.name for c in self.commands]

    def emit(self, event: LineEvent) -> None:
        if isinstance(event, RingStarted | PolarityReversed):
            self._listen_until = trio.current_time() + ONHOOK_LISTEN_S
        if isinstance(event, HookChanged):
            self.off_hook_state = event.off_hook
            self.ringing = self.ringing and not event.off_hook  # ring trip
        self._events_send.send_nowait(event)

    def ready(self) -> None:
        self.emit(PortReady(self._port, self._kind, Codec.ULAW))

    def lost(self, reason: str = "unplugged") -> None:
        self.off_hook_state = self.ringing = False
        self._rx = np.zeros(0, np.int16)
        self.emit(PortLost(self._port, reason))

    def phone_off_hook(self) -> None:
        self.emit(HookChanged(self._port, off_hook=True))

    def phone_on_hook(self) -> None:
        self.emit(HookChanged(self._port, off_hook=False))

    def play(self, pcm: NDArray[np.int16]) -> None:
        """Queue `pcm` to be received (after what is queued already)."""
        self._rx = np.concatenate([self._rx, pcm.astype(np.int16)])

    def clear_audio(self) -> None:
        self._rx = np.zeros(0, np.int16)

    def close(self) -> None:
        """The device's actor ended: both channels see end of stream."""
        self._events_send.close()
        self._frames_send.close()

    @property
    def audio_open(self) -> bool:
        return self.off_hook_state or trio.current_time() < self._listen_until

    def sent_audio(self, since_s: float = -np.inf) -> NDArray[np.int16]:
        """Everything sent since `since_s`, as one array."""
        parts = [pcm for at, pcm in self.sent if at >= since_s]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver a frame every 20 ms while the audio path is open."""
        task_status.started()
        tick = trio.current_time()
        while True:
            tick += FRAME_S
            await trio.sleep_until(tick)
            if self.audio_open:
                self._deliver(self._next_frame())

    # --- inside ---------------------------------------------------------------------------------

    async def _command(self, name: str, kind: PortKind | None, *args: object) -> None:
        self.commands.append(Command(trio.current_time(), name, args))
        if kind is not None and kind is not self._kind:
            raise PortUnsupported(self._port, name, f"not possible on an {self._kind} port")
        if name in self.fail:
            raise self.fail[name]
        await trio.lowlevel.checkpoint()

    def _next_frame(self) -> NDArray[np.int16]:
        frame = np.zeros(FRAME_SAMPLES, np.int16)
        if self.noise_dbm0 is not None:
            noise = self._rng.standard_normal(FRAME_SAMPLES) * dbm0_to_rms(self.noise_dbm0)
            frame[:] = np.clip(np.round(noise), -32768, 32767).astype(np.int16)
        n = min(FRAME_SAMPLES, self._rx.shape[0])
        if n:
            frame[:n] = self._rx[:n]
            self._rx = self._rx[n:]
        return frame

    def _deliver(self, pcm: NDArray[np.int16]) -> None:
        frame = AudioFrame(self._port, self._seq, self._seq * FRAME_SAMPLES, pcm)
        self._seq += 1
        try:
            self._frames_send.send_nowait(frame)
            self.frames_delivered += 1
        except trio.WouldBlock:
            self.frames_dropped += 1
