"""A USB V.253 voice modem as tipring's line adapter: `VoiceModem`, one FXO `LinePort` (port 0).

`gateway.line` drives it like any port: it reads `events` and `frames`, calls `off_hook()` to
answer, `send_audio()` every 20 ms, `on_hook()` to hang up. The actor owns the serial port (a
device path such as `/dev/tipring-modem`, or any pyserial URL with a file descriptor), opens it
with `firmware_bridge.serial_io` (trio I/O on its descriptor, no threads), and reconnects by
itself.

Supported chipsets (`docs/voice-modem.md` has the detail and the sources):

- Conexant CX93001 (most "USB 56K V.92 voice" dongles, Zoom 3095): ATI3 `CX93001-...`, ATI0
  `56000`; full duplex `+VTR`, mu-law `+VSM=131`.
- Conexant CX93010 (Dell RD02-D400, StarTech USB56KEMH2): ATI3 or +GMM `CX93010...`, ATI0
  `56000`; full duplex `+VTR`, mu-law 131.
- USRobotics USR5637: ATI3 `U.S. Robotics ...`, ATI0 `5601`; mu-law 131; `+VTR` is documented
  but unverified on hardware, so it is expected to answer ERROR: half duplex `+VRX`/`+VTX`.

Any other modem that lists class 8 in `AT+FCLASS=?` and a mu-law or A-law format in `AT+VSM=?`
is used the same way (`identity.chipset` is then "conexant", "usr" or "unknown"). The format
code is always looked up by its quoted name, never assumed. Full duplex is probed by issuing
`+VTR` off-hook; ERROR gives half duplex (WARNING log, `full_duplex = False`).

What the modem gives (and `LinePort` events it becomes): RING -> `RingStarted`, with
`RingStopped` synthesised (modems report only the start of a ring; `modem_ring`);
DATE/TIME/NMBR/NAME lines -> one `CallerIdReported`; in a call, DLE codes
-> `DtmfReported` (one per keypress), `ToneReported` (busy, dial, ringback, sit, silence, fax,
modem), `LoopCurrentDropped` (duration unknown: 0.0), `PolarityReversed`. It gives no
`LineVoltageMeasured`, `HookChanged` or `HookFlashed`. The modem cancels no echo and its
receive AGC stays on: the call's echo canceller must run. `ring`, `stop_ring`, `flash` and
non-zero gains raise `PortUnsupported`. `dial` goes off-hook and plays the digits as in-band
DTMF through the audio stream (works mid-call too, and the modem stays in one voice state).

Connection life: open raw (no XON/XOFF, no RTS/CTS, `exclusive` on device paths) -> identify
(`modem_identity.probe`) -> `PortReady` -> serve. The device vanishing (read returns b'',
EIO), an unsolicited `<DLE><ETX>`, a stream silent for `RX_STALL_S` (firmware reset), a
command that gets no reply or a failed hang-up -> `PortLost` -> close -> back off
(`RECONNECT_MIN_S` doubling to `RECONNECT_MAX_S`) -> reopen -> identify -> `PortReady`.
Closing the port drops DTR (HUPCL; with `AT&D2` the modem hangs up); on a pty DTR does not
exist and the explicit drop is best-effort.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import serial
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_S, FRAME_SAMPLES, as_int16
from firmware_bridge.dle import DleEvent, dle_shield
from firmware_bridge.errors import (
    CommandFailed,
    LinkBroken,
    PortUnsupported,
    broken_reason,
    raise_broken,
)
from firmware_bridge.modem_at import AtChannel, drop_dtr
from firmware_bridge.modem_events import DTMF_DIGITS
from firmware_bridge.modem_identity import ModemIdentity, ask, ask_ok, probe
from firmware_bridge.modem_ring import RingReporter
from firmware_bridge.modem_stream import G711, CallStream, RxFramer, TxFrame
from firmware_bridge.port import (
    US_RING_CADENCE_MS,
    Codec,
    PortKind,
    PortLost,
    PortReady,
)
from firmware_bridge.port_base import PortChannels
from firmware_bridge.serial_io import open_serial

log = logging.getLogger(__name__)

BAUD_RATE = 115200  # ignored by CDC-ACM and ptys; a UART modem needs >= 80 kbit/s for 8 kHz
RECONNECT_MIN_S = 0.2  # first retry: a replugged USB modem re-enumerates in about a second
RECONNECT_MAX_S = 10.0  # an unplugged modem is polled this often at worst
IDLE_PROBE_S = 30.0  # note §4: an idle modem must answer AT this often, else reconnect
TX_QUEUE_FRAMES = 10  # 200 ms: playout paces one frame per 20 ms; deeper only adds latency
DIAL_ON_MS, DIAL_OFF_MS = 100.0, 100.0  # Q.23: >= 40 ms each; 100/100 is what phones send
DIAL_LEVEL_DBM0 = -8.0  # per tone, low group; GR-506 asks -8 dBm0 nominal at the line
DIAL_SLACK_S = 2.0  # beyond the digits' own length: the stream's queue and lead
HANGUP_COMMANDS = ("AT+VLS=0", "ATH", "AT+FCLASS=0", "AT+VCID=1")  # +VCID: some forget it


@dataclass
class ModemStats:
    """Counters over the modem's life (per-call ones are added when a call ends)."""

    tx_dropped: int = 0  # send_audio frames dropped: queue full or no call
    stray_audio_bytes: int = 0  # stream bytes with no call to take them (a resync)
    stray_events: int = 0
    frames_dropped: int = 0
    underruns: int = 0
    overruns: int = 0
    calls: int = 0


class VoiceModem(PortChannels):
    """The voice modem on `device` as FXO port `port` (module doc). Construction does no I/O;
    `run` retries an absent device forever and calls `started()` once the modem first answered
    the identify sequence; it raises `PortUnsupported` for a modem without voice."""

    def __init__(self, device: str, *, port: int = 0, baudrate: int = BAUD_RATE) -> None:
        super().__init__(device, port, PortKind.FXO)
        self.baudrate = baudrate
        self._tx_send, self._tx_recv = trio.open_memory_channel[TxFrame](TX_QUEUE_FRAMES)
        self._lock = trio.Lock()  # one command sequence at a time
        self._chan: AtChannel | None = None
        self._nursery: trio.Nursery | None = None
        self._stream: CallStream | None = None
        self._g711 = G711(Codec.ULAW)
        self._framer = RxFramer(port)
        self._rings: RingReporter | None = None  # while connected
        self._started = self._was_ready = False
        self._serial: serial.Serial | None = None
        self.identity: ModemIdentity | None = None
        self.full_duplex: bool | None = None  # None until +VTR was tried off-hook
        self.stats = ModemStats()

    # --- LinePort (port, kind, events, frames: PortChannels) ---------------------------------

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        """Queue 160 int16 samples for the line; dropped (counted) outside a call or when
        `TX_QUEUE_FRAMES` are already waiting."""
        pcm = as_int16(pcm, "VoiceModem.send_audio")
        if pcm.shape != (FRAME_SAMPLES,):
            raise ValueError(f"send_audio wants {FRAME_SAMPLES} samples, got {pcm.shape}")
        if self._stream is None:
            self.stats.tx_dropped += 1
            return
        try:
            self._tx_send.send_nowait(TxFrame(dle_shield(self._g711.encode(pcm))))
        except trio.WouldBlock:
            self.stats.tx_dropped += 1

    async def ring(
        self, cadence_ms: Sequence[int] = US_RING_CADENCE_MS, callerid: CallerId | None = None
    ) -> None:
        raise PortUnsupported(self._port, "ring", "a voice modem is FXO: it cannot ring a phone")

    async def stop_ring(self) -> None:
        raise PortUnsupported(self._port, "stop_ring", "a voice modem is FXO: it never rings")

    async def flash(self, duration_ms: float = 600.0) -> None:
        raise PortUnsupported(self._port, "flash", "V.253 voice mode has no hook flash")

    async def set_gains(self, tx_db: float, rx_db: float) -> None:
        if tx_db or rx_db:  # +VGT/+VGR units are vendor-defined; CX930xx +VGR is AGC only
            raise PortUnsupported(self._port, "set_gains", "modem gains: trim levels in DSP")

    async def off_hook(self) -> None:
        """Answer (or seize for dialling): voice mode, mu-law, off-hook, audio stream."""
        async with self._commanding("off_hook") as chan:
            if self._stream is not None:
                return
            if self._rings is not None:
                self._rings.end_ring()  # answered
            assert self.identity is not None
            await ask_ok(chan, "AT+FCLASS=8", self._port)
            await ask_ok(chan, f"AT+VSM={self.identity.voice_format.code},8000", self._port)
            for best_effort in ("AT+VSD=0,0", "AT+VIT=0"):  # silence and inactivity timers off
                await ask(chan, best_effort)
            await ask_ok(chan, "AT+VLS=1", self._port)
            await self._start_stream(chan)

    async def on_hook(self) -> None:
        """Leave the stream, go on-hook, back to class 0 with caller ID reporting re-armed.
        A step that fails restarts the connection (the modem resets on-hook) and raises."""
        async with self._commanding("on_hook") as chan:
            stream = self._stream
            if stream is not None:
                await stream.stop()
                self._retire(stream)
            failed = [c for c in HANGUP_COMMANDS if not (await ask(chan, c)).ok]
            if failed:
                if self._serial is not None:
                    drop_dtr(self._serial, self.device)
                self._fail_connection(f"hang-up refused: {', '.join(failed)}")
                raise CommandFailed(self._port, "on_hook", f"modem refused {failed}")

    async def dial(self, digits: str) -> None:
        """Off-hook if needed, then `digits` as in-band DTMF; returns once they were played."""
        if not digits or any(d not in DTMF_DIGITS for d in digits.upper()):
            raise ValueError(f"dial: {digits!r} is not a string of 0-9 * # A-D")
        if self._stream is None:
            await self.off_hook()
        pcm = dtmf_generate(digits, DIAL_ON_MS, DIAL_OFF_MS, DIAL_LEVEL_DBM0)
        pcm = np.concatenate([pcm, np.zeros(-pcm.size % FRAME_SAMPLES, np.int16)])
        frames = pcm.reshape(-1, FRAME_SAMPLES)
        played = trio.Event()
        try:
            with trio.fail_after(frames.shape[0] * FRAME_S + DIAL_SLACK_S):
                for i, frame in enumerate(frames):
                    done = played if i == frames.shape[0] - 1 else None
                    await self._tx_send.send(TxFrame(dle_shield(self._g711.encode(frame)), done))
                await played.wait()
        except trio.TooSlowError as exc:
            raise CommandFailed(self._port, "dial", "the digits were not played") from exc

    # --- the connection ----------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open, identify, serve; on loss report `PortLost`, back off and do it again."""
        for codec in (Codec.ULAW, Codec.ALAW):  # compile the codec kernels before the first call
            G711(codec).decode(np.frombuffer(G711(codec).encode(np.zeros(160, np.int16)), np.uint8))
        async with self._events_send, self._frames_send:
            delay = RECONNECT_MIN_S
            while True:
                self._was_ready = False
                try:
                    async with open_serial(self.device, self.baudrate) as stream:
                        self._serial = stream.serial
                        await self._serve(AtChannel(stream, self.device, self), task_status)
                except* LinkBroken as group:
                    self._lost(broken_reason(group), delay)
                finally:
                    self._serial = None
                delay = RECONNECT_MIN_S if self._was_ready else min(delay * 2, RECONNECT_MAX_S)
                await trio.sleep(delay)

    async def _serve(self, chan: AtChannel, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(chan.run_reader)
                self.identity = await _probe(chan, self._port, known=self._started)
                self._g711 = G711(self.identity.codec)
                self._chan, self._nursery, self._was_ready = chan, nursery, True
                self._rings = RingReporter(self._port, self._emit, nursery)
                ident = self.identity
                log.info(
                    "modem %s ready: %s %s (chipset %s, firmware %s), voice format %d %r",
                    self.device, ident.manufacturer, ident.model, ident.chipset,
                    ident.firmware, ident.voice_format.code, ident.voice_format.name,
                )  # fmt: skip
                self._emit(PortReady(self._port, PortKind.FXO, ident.codec))
                if not self._started:
                    self._started = True
                    task_status.started()
                nursery.start_soon(self._keepalive, chan)
        finally:
            if self._stream is not None:
                self._retire(self._stream)
            self._chan = self._nursery = self._stream = self._rings = None

    def _lost(self, reason: str, delay_s: float) -> None:
        if self._was_ready:
            log.warning("modem %s lost: %s; reconnecting", self.device, reason)
            self._emit(PortLost(self._port, reason))
        else:
            log.info("modem %s not usable: %s; retry in %.1f s", self.device, reason, delay_s)

    def _fail_connection(self, reason: str) -> None:
        """Restart the connection from a command's task (PortLost, reopen, re-identify)."""
        if self._nursery is not None:
            self._nursery.start_soon(raise_broken, self.device, reason)

    @asynccontextmanager
    async def _commanding(self, name: str) -> AsyncIterator[AtChannel]:
        async with self._lock:
            chan = self._chan
            if chan is None:
                raise LinkBroken(self.device, f"{name}: the modem is not connected")
            try:
                yield chan
            except LinkBroken as exc:
                if chan is self._chan:
                    self._fail_connection(exc.reason)
                raise

    async def _keepalive(self, chan: AtChannel) -> None:
        while True:
            await trio.sleep(IDLE_PROBE_S)
            if self._stream is None and not self._lock.locked():
                async with self._lock:
                    await ask(chan, "AT")  # no reply raises LinkBroken: reconnect

    async def _start_stream(self, chan: AtChannel) -> None:
        while True:  # stale audio from before the call must not be played
            try:
                self._tx_recv.receive_nowait()
            except trio.WouldBlock:
                break
        full = self.full_duplex is not False
        try:
            await self._open_stream(chan, full)
        except CommandFailed:
            if not full:
                raise
            assert self.identity is not None
            log.warning(
                "modem %s: chipset %s refuses +VTR (no full duplex): half duplex, the caller "
                "is not heard while audio plays", self.device, self.identity.chipset,
            )  # fmt: skip
            await self._open_stream(chan, False)
        self.stats.calls += 1

    async def _open_stream(self, chan: AtChannel, full_duplex: bool) -> None:
        assert self._nursery is not None
        stream = CallStream(
            chan, self._port, full_duplex, self._framer, self._g711, self._frames_send,
            self._tx_recv, self._emit,
        )  # fmt: skip
        self._stream = stream
        try:
            await self._nursery.start(stream.run)
        except BaseException:
            self._stream = None
            raise
        self.full_duplex = full_duplex

    def _retire(self, stream: CallStream) -> None:
        self._stream = None
        ev, stats = stream.events, self.stats
        stats.frames_dropped += stream.frames_dropped
        stats.underruns += ev.underruns
        stats.overruns += ev.overruns
        log.info(
            "modem %s: call audio ended: %d frames in, %d dropped, %d underruns, %d overruns",
            self.device, self._framer.seq, stream.frames_dropped, ev.underruns, ev.overruns,
        )  # fmt: skip

    # --- ModemSink: called by the channel's reader --------------------------------------------

    def on_line(self, text: str) -> None:
        if self._rings is not None:  # else identifying: a RING now is for nobody
            self._rings.on_line(text)

    def on_audio(self, data: bytes) -> None:
        if self._stream is not None:
            self._stream.on_audio(data)
        else:
            self.stats.stray_audio_bytes += len(data)

    def on_event(self, event: DleEvent) -> None:
        if self._stream is not None:
            self._stream.on_event(event)
        else:
            self.stats.stray_events += 1


async def _probe(chan: AtChannel, port: int, *, known: bool) -> ModemIdentity:
    """`probe`, where a refused set-up command means a confused modem: reconnect and retry.
    "No voice" ends `run` the first time; for a modem `known` to do voice (it did before
    this reconnect) it is a garbled reply, retried like any other failure."""
    try:
        return await probe(chan, port)
    except PortUnsupported as exc:
        if not known:
            raise
        raise LinkBroken(chan.device, f"identify failed: {exc}") from exc
    except CommandFailed as exc:
        raise LinkBroken(chan.device, f"identify failed: {exc}") from exc
