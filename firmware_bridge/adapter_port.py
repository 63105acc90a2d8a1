"""One port of a tipring adapter as a `LinePort`: `AdapterPort`.

`firmware_bridge.link.AdapterLink` makes one per port in HELLO_ACK and keeps it across
reconnects; `gateway.line` reads its `events` and `frames` and calls its commands. The port
turns received AUDIO into steady 20 ms `AudioFrame`s (decoding the wire codec, concealing
link losses with `dsp.plc`), encodes what `send_audio` gets into AUDIO frames, and turns each
command into its protocol message, sent on the link's reliable channel. Caller ID for an FXS
ring and FXO dialling are audio from the host (spec §8.1, §8.2): the port plays them itself,
paced at 20 ms, in place of `send_audio` frames meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import trio
from numpy.typing import NDArray

from dsp import callerid as cid
from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_S, FRAME_SAMPLES, as_int16
from dsp.plc import Concealer
from firmware_bridge.errors import CommandFailed, LinkBroken, PortUnsupported
from firmware_bridge.messages import (
    CALLERID_DELAY_MS,
    MAX_CADENCE_ENTRIES,
    MAX_GAIN_DB,
    Audio,
    Command,
    Flash,
    GoOffHook,
    GoOnHook,
    Impedance,
    Ring,
    SetCodec,
    SetGains,
    SetImpedance,
    StopRing,
    audio_payload,
    audio_samples,
)
from firmware_bridge.port import (
    US_RING_CADENCE_MS,
    AudioFrame,
    Codec,
    HookChanged,
    LineEvent,
    PortKind,
    PortLost,
    PortReady,
)
from firmware_bridge.port_base import PortChannels
from firmware_bridge.protocol import encode

log = logging.getLogger(__name__)

# A gap of up to this many frames is concealed (dsp.plc fades to silence at 200 ms); a
# longer one is a new stream, whose first frame is passed on as it is.
MAX_CONCEAL_FRAMES = 10
LATE_SEQ_WINDOW = 64  # a seq this far behind the last is a stale or repeated frame: dropped
DIAL_ON_MS, DIAL_OFF_MS = 100.0, 100.0  # Q.23: >= 40 ms each; 100/100 is what phones send
DIAL_LEVEL_DBM0 = -8.0  # per tone; GR-506 asks -8 dBm0 nominal at the line
CALLERID_LEVEL_DBM0 = -13.0  # GR-30-CORE: FSK at -13.5 dBm0 nominal into the line
SEQ_MOD, TS_MOD = 1 << 16, 1 << 32


class LinkSide(Protocol):
    """What a port needs of its link."""

    device: str

    @property
    def linked(self) -> bool: ...

    def queue_audio(self, wire: bytes) -> bool:
        """Queue an encoded AUDIO frame; False if dropped (link down or backed up)."""

    async def command(self, port: int, name: str, msg: Command) -> None:
        """Send `msg` reliably; returns on ACK, raises CommandFailed / PortUnsupported on NAK
        and LinkBroken if the link is or goes down."""

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run the async function `fn` in the link's session (cancelled when it ends)."""


@dataclass
class PortStats:
    """Counters over the port's life."""

    frames_in: int = 0  # AUDIO frames received
    frames_out: int = 0  # AUDIO frames sent
    concealed: int = 0  # frames made by dsp.plc for frames lost on the link
    restarts: int = 0  # gaps too long to conceal, and pauses: a new stream
    late: int = 0  # stale or repeated frames dropped
    tx_dropped: int = 0  # send_audio frames the link could not take (down or backed up)
    tx_displaced: int = 0  # send_audio frames dropped while caller ID or digits played


class AdapterPort(PortChannels):
    """Port `port` of the adapter on `link`, of `kind`; see the module docstring."""

    def __init__(self, link: LinkSide, port: int, kind: PortKind, codecs: Sequence[Codec],
                 callerid_standard: cid.Standard = "bell202") -> None:  # fmt: skip
        super().__init__(link.device, port, kind)
        self._link = link
        self.codecs = tuple(codecs)
        self.codec = self.codecs[0]  # what we send; the device names its own in each frame
        self.callerid_standard: cid.Standard = callerid_standard
        self._ready = False
        self._early: list[LineEvent] = []  # events before PortReady (state after bring-up)
        self._plc = Concealer(FRAME_SAMPLES)
        self._delayed = False  # out of dsp.plc (3.75 ms later) since the stream's first loss
        self._rx_seq: int | None = None
        self._rx_ts = 0
        self._tx_seq = self._tx_ts = 0
        self._tx_last_s = -math.inf
        self._play_gen = 0  # bumped to stop caller ID or digits being played
        self._playing = False
        self.off_hook_state = False  # FXO: what we last had acknowledged
        self.stats = PortStats()

    # --- LinePort (port, kind, events, frames: PortChannels) --------------------------------

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        """Queue one 20 ms frame (160 int16) for the line; dropped and counted when the link is
        down or backed up, or while the port plays caller ID or digits."""
        pcm = as_int16(pcm, "AdapterPort.send_audio")
        if pcm.shape != (FRAME_SAMPLES,):
            raise ValueError(f"send_audio wants {FRAME_SAMPLES} samples, got {pcm.shape}")
        if self._playing:
            self.stats.tx_displaced += 1
            return
        self._send_frame(pcm)

    async def ring(
        self, cadence_ms: Sequence[int] = US_RING_CADENCE_MS, callerid: cid.CallerId | None = None
    ) -> None:
        """FXS: ring with `cadence_ms` (on, off, ... ms); `callerid` goes out as FSK (or DTMF)
        audio `CALLERID_DELAY_MS` after the first burst (GR-30-CORE)."""
        self._need(PortKind.FXS, "ring")
        cadence = tuple(int(ms) for ms in cadence_ms)
        if not (2 <= len(cadence) <= MAX_CADENCE_ENTRIES and len(cadence) % 2 == 0
                and all(1 <= ms <= 0xFFFF for ms in cadence)):  # fmt: skip
            raise CommandFailed(self._port, "ring", f"cadence {cadence_ms!r}: want 1-4 on/off "
                                "pairs of 1..65535 ms")  # fmt: skip
        burst = None
        if callerid is not None:
            burst = cid.encode(callerid, self.callerid_standard, level_dbm0=CALLERID_LEVEL_DBM0)
        self._stop_playing()
        await self._link.command(self._port, "ring", Ring(0, self._port, cadence))
        if burst is not None:
            start_s = trio.current_time() + (cadence[0] + CALLERID_DELAY_MS) / 1000.0
            gen = self._play_gen
            self._link.spawn(lambda: self._play(burst, start_s, gen))

    async def stop_ring(self) -> None:
        self._need(PortKind.FXS, "stop_ring")
        self._stop_playing()
        await self._link.command(self._port, "stop_ring", StopRing(0, self._port))

    async def off_hook(self) -> None:
        self._need(PortKind.FXO, "off_hook")
        await self._link.command(self._port, "off_hook", GoOffHook(0, self._port))
        self.off_hook_state = True

    async def on_hook(self) -> None:
        self._need(PortKind.FXO, "on_hook")
        self._stop_playing()
        await self._link.command(self._port, "on_hook", GoOnHook(0, self._port))
        self.off_hook_state = False

    async def flash(self, duration_ms: float = 600.0) -> None:
        self._need(PortKind.FXO, "flash")
        ms = round(duration_ms)
        if not 1 <= ms <= 0xFFFF:
            raise CommandFailed(self._port, "flash", f"{duration_ms} ms: want 1..65535 ms")
        await self._link.command(self._port, "flash", Flash(0, self._port, ms))

    async def dial(self, digits: str) -> None:
        """FXO: off-hook if need be, then `digits` as DTMF audio; returns once all were sent."""
        self._need(PortKind.FXO, "dial")
        if not digits or any(d not in "0123456789*#ABCD" for d in digits.upper()):
            raise CommandFailed(self._port, "dial", f"{digits!r} is not a string of 0-9 * # A-D")
        if not self.off_hook_state:
            await self.off_hook()
        self._stop_playing()
        pcm = dtmf_generate(digits.upper(), DIAL_ON_MS, DIAL_OFF_MS, DIAL_LEVEL_DBM0)
        await self._play(pcm, trio.current_time(), self._play_gen)
        if not self._link.linked:
            raise LinkBroken(self._link.device, f"port {self._port}: link lost while dialling")

    async def set_gains(self, tx_db: float, rx_db: float) -> None:
        for name, db in (("tx", tx_db), ("rx", rx_db)):
            if not (math.isfinite(db) and abs(db) <= MAX_GAIN_DB):
                raise CommandFailed(self._port, "set_gains", f"{name} {db} dB: want within "
                                    f"+-{MAX_GAIN_DB:g} dB")  # fmt: skip
        await self._link.command(self._port, "set_gains", SetGains(0, self._port, tx_db, rx_db))

    async def set_impedance(self, impedance: Impedance) -> None:
        msg = SetImpedance(0, self._port, Impedance(impedance))
        await self._link.command(self._port, "set_impedance", msg)

    async def set_codec(self, codec: Codec) -> None:
        """The codec both ways: the device's AUDIO to us, and ours to it."""
        if codec not in self.codecs:
            raise PortUnsupported(self._port, "set_codec", f"{codec} is not one of {self.codecs}")
        await self._link.command(self._port, "set_codec", SetCodec(0, self._port, codec))
        self.codec = codec

    # --- from the link ----------------------------------------------------------------------

    def on_audio(self, msg: Audio) -> None:
        """An AUDIO frame for this port arrived."""
        self.stats.frames_in += 1
        pcm = audio_samples(msg.codec, msg.payload)
        if self._rx_seq is not None:
            gap = (msg.seq - self._rx_seq - 1) % SEQ_MOD
            if gap >= SEQ_MOD - LATE_SEQ_WINDOW:
                self.stats.late += 1
                return
            paused = gap == 0 and (msg.timestamp - self._rx_ts) % TS_MOD != FRAME_SAMPLES
            if gap > MAX_CONCEAL_FRAMES or paused:
                self._restart_stream()
            elif gap:
                self._conceal(gap)
        self._rx_seq, self._rx_ts = msg.seq, msg.timestamp
        played = self._plc.good(pcm)
        self._deliver(
            AudioFrame(self._port, msg.seq, msg.timestamp, played if self._delayed else pcm)
        )

    def on_event(self, event: LineEvent) -> None:
        """A line event for this port arrived (held back until the port is ready)."""
        if isinstance(event, HookChanged) and event.off_hook:
            self._stop_playing()  # ring trip: caller ID stops with the ringing
        if not self._ready:
            self._early.append(event)
            return
        self._emit(event)

    def ready(self, codec: Codec) -> None:
        """The link is up (again) and this port configured; any call on it was lost."""
        self.codec, self.off_hook_state, self._ready = codec, False, True
        self._emit(PortReady(self._port, self._kind, codec))
        early, self._early = self._early, []
        for event in early:
            self._emit(event)

    def lost(self, reason: str) -> None:
        """The link is down: `PortLost` (once), and forget the stream's state."""
        self._stop_playing()
        self._early.clear()
        self._restart_stream()
        self._rx_seq = None
        self._tx_last_s = -math.inf
        if self._ready:
            self._ready = False
            self._emit(PortLost(self._port, reason))

    def close(self) -> None:
        """The link actor is ending: the receive channels see end of stream."""
        self._close_channels()

    # --- inside -----------------------------------------------------------------------------

    def _need(self, kind: PortKind, command: str) -> None:
        if self._kind is not kind:
            raise PortUnsupported(self._port, command, f"not possible on an {self._kind} port")

    def _send_frame(self, pcm: NDArray[np.int16]) -> None:
        now = trio.current_time()
        if math.isfinite(self._tx_last_s):
            skipped = round((now - self._tx_last_s) / FRAME_S) - 1
            if skipped > 1:  # a pause in what we send: the timestamp jumps with it
                self._tx_ts = (self._tx_ts + skipped * FRAME_SAMPLES) % TS_MOD
        self._tx_last_s = now
        msg = Audio(self._port, self._tx_seq, self._tx_ts, self.codec,
                    audio_payload(self.codec, pcm))  # fmt: skip
        if self._link.queue_audio(encode(msg)):
            self.stats.frames_out += 1
            self._tx_seq = (self._tx_seq + 1) % SEQ_MOD
            self._tx_ts = (self._tx_ts + FRAME_SAMPLES) % TS_MOD
        else:
            self.stats.tx_dropped += 1

    async def _play(self, pcm: NDArray[np.int16], start_s: float, gen: int) -> None:
        """Send `pcm` (zero-padded to whole frames) one frame per 20 ms from `start_s`,
        unless `_stop_playing` (a newer generation) or the link's end comes first."""
        pcm = np.concatenate([pcm, np.zeros(-pcm.size % FRAME_SAMPLES, np.int16)])
        await trio.sleep_until(start_s)
        if gen != self._play_gen:
            return
        self._playing = True
        try:
            for k, frame in enumerate(pcm.reshape(-1, FRAME_SAMPLES)):
                if gen != self._play_gen or not self._link.linked:
                    return
                self._send_frame(frame.copy())
                await trio.sleep_until(start_s + (k + 1) * FRAME_S)
        finally:
            if gen == self._play_gen:
                self._playing = False

    def _stop_playing(self) -> None:
        self._play_gen += 1
        self._playing = False

    def _conceal(self, missing: int) -> None:
        if not self._delayed:
            log.debug("port %d: first loss on the link: audio now via dsp.plc", self._port)
        self._delayed = True
        assert self._rx_seq is not None
        for k in range(1, missing + 1):
            self.stats.concealed += 1
            seq, ts = (self._rx_seq + k) % SEQ_MOD, (self._rx_ts + k * FRAME_SAMPLES) % TS_MOD
            self._deliver(AudioFrame(self._port, seq, ts, self._plc.lost(), concealed=True))

    def _restart_stream(self) -> None:
        if self._rx_seq is not None:
            self.stats.restarts += 1
        self._plc.reset()
        self._delayed = False


def warm_port_kernels() -> None:
    """Compile (or load from numba's cache) the kernels a port runs per frame, so the link
    never stalls its event loop compiling once audio flows."""
    pcm = np.zeros(FRAME_SAMPLES, np.int16)
    for codec in Codec:
        audio_samples(codec, audio_payload(codec, pcm))
    plc = Concealer(FRAME_SAMPLES)
    plc.good(pcm)
    plc.lost()
