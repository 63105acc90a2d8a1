"""A USB V.253 voice modem on a pseudo-terminal: `ModemSimulator`, the device side.

The host (`firmware_bridge.modem.VoiceModem`, or a person with picocom) opens `path` (or the
stable `link`) as it would `/dev/ttyACM0`. Behind it: an AT interpreter per chipset profile
(`sim.modem_at`, `sim.modem_profiles`), the chip (`sim.modem_audio`: formats, transmit FIFO,
DTMF/tone/silence detectors, caller ID printing) and one `LineModel` (the analog line, owned
and scripted by the caller).

Every tick the simulator steps the line with what the host sent (the FIFO's next frame,
decoded from the selected +VSM format; silence and an underrun count if the host sent too
little), then writes what the chip reports: in command state RING and the caller ID lines it
decoded from the line's FSK (`dsp.callerid.CallerIdDecoder`, when +VCID=1), or DLE events
off-hook; in a stream the DLE events and the received frame, encoded and shielded. Line
events map to DLE codes: loop-current drop `l`, polarity `L`; detectors give DTMF, `b` busy,
`d` dial tone, `r` ringback, `J` SIT, `s`/`q` silence (+VSD, where the profile applies it).

The chip's limits: a finite FIFO (`profile.tx_fifo_bytes`; when full the simulator stops
reading and the host's writes block), and a throughput cap shared by both directions
(`profile.throughput_bytes_s`, per tick: received bytes first, the rest for the host), so
16-bit duplex underruns on a CX93001 as measured. `<DLE>u` when the FIFO runs dry (once per
dry spell), `<DLE>o` after output the host did not read in time (dropped).

Clock: `fast=False` ticks every 20 ms of trio's clock (for people and the demo). `fast=True`
(tests) runs command state and +VRX at `FAST_SPEED` times real time, and in +VTR/+VTX steps as
soon as the host's next frame is in the FIFO (lock-step with the host's writes, at most
`FAST_GRACE_S` later with an underrun): a whole call takes milliseconds and stays bit-exact.

Faults: `inject` (raw bytes: garbage), `drop_bytes`/`corrupt_bytes` (the next n output bytes),
`vanish`/`reappear` (the pty closes; a new one comes up behind the same `link`),
`firmware_reset` (the stream stops, factory defaults, echo on, caller ID off, some garbage;
echo starts at an `AT` prefix, as V.250 allows, so the host's audio is swallowed, not echoed),
`leave_stream` (an unsolicited `<DLE><ETX>` + OK, as on +VIT expiry).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_S, FRAME_SAMPLES
from firmware_bridge.dle import ETX, DleDecoder, dle_code, dle_shield
from firmware_bridge.port import LineEvent, RingStarted
from firmware_bridge.sim.line import LineModel, LineState
from firmware_bridge.sim.modem_at import AtInterpreter, StreamKind, command_echo, split_lines
from firmware_bridge.sim.modem_audio import (
    LineListener,
    TxFifo,
    callerid_lines,
    decode,
    encode,
    line_event_code,
    silence,
)
from firmware_bridge.sim.modem_profiles import ModemProfile, SimFormat
from firmware_bridge.sim.modem_state import STREAM_MODES, SimMode, SimStats, WireFaults
from firmware_bridge.sim.pty import RawPty, point_link, remove_link

log = logging.getLogger(__name__)

READ_BYTES = 4096
FAST_SPEED = 10.0  # fast mode: command state runs 10x real time (a 6 s ring cycle in 0.6 s)
# Fast mode, stream: wait this long for the host's next frame, then underrun. A host that
# paces by what it receives writes within a millisecond; a loaded test machine can deschedule
# it for tens of ms, which must not turn into an underrun that breaks bit-exact tests.
FAST_GRACE_S = 0.2
MAX_LAG_S = 0.2  # real-time mode: a clock this far behind restarts instead of bursting
BOOT_GARBAGE = b"\x00\xf0\xff\xfe\x80\x10\r\n"  # what a restarting firmware leaves on the wire
_HOST_NOOPS = frozenset("udpr\x00")  # <DLE>u/d gain, p/r pause/resume, NUL: accepted, no effect


class ModemSimulator:
    """The device side of a voice modem of `profile` in front of `line` (module doc). `link`:
    a symlink kept pointing at the current pty. `run` reports the pty path to `started()`."""

    def __init__(
        self,
        profile: ModemProfile,
        line: LineModel,
        *,
        link: str | Path | None = None,
        fast: bool = False,
    ) -> None:
        self.profile, self.line, self.link, self.fast = profile, line, link, fast
        self.at = AtInterpreter(profile, self)
        self.stats = SimStats()
        self.path: str | None = None
        self.mode = SimMode.COMMAND
        self._pty: RawPty | None = None
        self._scope = trio.CancelScope()
        self._back = trio.Event()
        self._fifo = TxFifo(profile.tx_fifo_bytes)
        self._host_dle = DleDecoder()
        self._listener = LineListener(line.plan, profile.dtmf_framing)
        self._cid = CallerIdDecoder(line.callerid_standard)
        self._fifo_changed = self._room = trio.Event()
        self._cmd = bytearray()
        self._dial_pcm = np.zeros(0, np.int16)
        self._credit = 0
        self._ending = self._dry = self._overrun = False
        self._faults = WireFaults()

    @property
    def commands(self) -> list[str]:
        """Every AT command line the modem received, in order."""
        return self.at.commands

    # --- the device's life ---------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the host until cancelled; a `vanish` closes the pty, `reappear` opens anew."""
        self._listener.frame(np.zeros(FRAME_SAMPLES, np.int16))  # compile the detectors now,
        self._listener.reset()  # not in the first off-hook tick
        first = True
        while True:
            with RawPty.open() as pty:
                self._attach(pty)
                try:
                    async with trio.open_nursery() as nursery:
                        self._scope = nursery.cancel_scope
                        nursery.start_soon(self._reader, pty.master_fd)
                        nursery.start_soon(self._ticker)
                        if first:
                            first = False
                            task_status.started(pty.slave_path)
                finally:
                    self._detach()
            await self._back.wait()

    def _attach(self, pty: RawPty) -> None:
        self._pty, self.path = pty, pty.slave_path
        if self.link is not None:
            point_link(self.link, pty.slave_path)
        log.info("modem simulator %s on %s (link %s)", self.profile.name, self.path, self.link)

    def _detach(self) -> None:
        if self.link is not None:
            remove_link(self.link)
        self._pty = None

    def vanish(self) -> None:
        """Unplug: the pty closes (the host reads b''/EIO), the link goes, the line drops."""
        log.info("modem simulator %s: unplugged", self.profile.name)
        self._back = trio.Event()
        self._power_on()
        self._scope.cancel()

    def reappear(self) -> None:
        """Plug back in: a new pty behind the same link, factory defaults."""
        self._back.set()

    def firmware_reset(self) -> None:
        """The firmware restarts: the stream just stops, on-hook, factory defaults (echo on,
        +VCID=0), a little garbage on the wire."""
        log.info("modem simulator %s: firmware reset", self.profile.name)
        self._power_on()
        self._send(BOOT_GARBAGE)

    def leave_stream(self) -> None:
        """End the stream on the modem's own account (+VIT expiry): `<DLE><ETX>` + OK."""
        if self.mode is not SimMode.COMMAND:
            self._end_stream()

    def inject(self, data: bytes) -> None:
        """Write `data` to the host now, as if the modem sent it."""
        self._send(data)

    def drop_bytes(self, count: int) -> None:
        """Lose the next `count` bytes the modem sends."""
        self._faults.drop += count

    def corrupt_bytes(self, count: int) -> None:
        """Flip bits in the next `count` bytes the modem sends."""
        self._faults.corrupt += count

    def _power_on(self) -> None:
        self.line.host_on_hook()
        self.at.power_on()
        self.mode = SimMode.COMMAND
        self._fifo.clear()
        self._host_dle.reset()
        self._cmd.clear()
        self._cid.reset()
        self._dial_pcm = np.zeros(0, np.int16)
        self._ending = False

    # --- ModemHooks ------------------------------------------------------------------------------

    def go_off_hook(self) -> None:
        self.line.host_off_hook()
        self._listener.reset()

    def go_on_hook(self) -> None:
        self.line.host_on_hook()

    def dial(self, digits: str) -> None:
        self._dial_pcm = np.concatenate([self._dial_pcm, dtmf_generate(digits)])

    # --- from the host ---------------------------------------------------------------------------

    async def _reader(self, fd: int) -> None:
        while True:
            await trio.lowlevel.wait_readable(fd)
            limit = self._read_limit()
            if limit <= 0:
                self._room = trio.Event()
                await self._room.wait()  # the next tick makes room
                continue
            try:
                data = os.read(fd, limit)
            except BlockingIOError:
                continue
            self.stats.host_bytes += len(data)
            self._from_host(data)
            self._fifo_changed.set()

    def _read_limit(self) -> int:
        if self.mode in (SimMode.DUPLEX, SimMode.TRANSMIT) and not self._ending:
            return min(self._credit, self._fifo.space)
        return READ_BYTES

    def _from_host(self, data: bytes) -> None:
        if self.mode is SimMode.COMMAND:
            self._command_bytes(data)
            return
        self._credit -= len(data)
        for item in self._host_dle.feed(data):
            if not self._streaming():  # the stream ended earlier in this read
                if isinstance(item, bytes):
                    self._command_bytes(item)
            elif not isinstance(item, bytes):
                self._host_code(item.code)
            elif self.mode is not SimMode.RECEIVE and not self._ending:
                self.stats.fifo_dropped += self._fifo.push(item)

    def _streaming(self) -> bool:
        return self.mode is not SimMode.COMMAND

    def _host_code(self, code: str) -> None:
        self.stats.host_codes[code] = self.stats.host_codes.get(code, 0) + 1
        if code == chr(0x18):  # <DLE><CAN>: clear the transmit buffer
            self._fifo.clear()
        elif code not in self.profile.dte_exit_codes or code in _HOST_NOOPS:
            return  # unknown to this chip (a lone DLE in unshielded audio eats a byte)
        elif self.mode is SimMode.TRANSMIT and code == chr(ETX):
            self._ending = True  # play out the FIFO, then OK
        else:
            self._end_stream()

    def _end_stream(self) -> None:
        self.mode, self._ending = SimMode.COMMAND, False
        self._fifo.clear()
        self._send(dle_code(chr(ETX)) + self.at.unsolicited("OK"))

    def _command_bytes(self, data: bytes) -> None:
        for piece in split_lines(data):
            if self.at.state.echo:
                self._send(command_echo(bytes(self._cmd), piece))
            self._cmd += piece
            if not piece.endswith(b"\r"):
                del self._cmd[:-READ_BYTES]
                return
            line = self._cmd[:-1].decode("latin-1")
            self._cmd.clear()
            reply = self.at.execute(line.replace("\n", ""))
            self._send(reply.text)
            if reply.stream is not None:
                self._start_stream(reply.stream)
                return  # what follows CONNECT in this read is stream data: none expected

    def _start_stream(self, kind: StreamKind) -> None:
        self.mode = STREAM_MODES[kind]
        self._fifo.clear()
        self._host_dle.reset()
        self._credit = int(self.profile.throughput_bytes_s * FRAME_S)
        self._dry = True  # no underrun report before the host's first write
        self._ending = False

    # --- the clock -------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        next_t = trio.current_time()
        while True:
            if self.fast and self.mode in (SimMode.DUPLEX, SimMode.TRANSMIT):
                await self._wait_for_host()
                next_t = trio.current_time()
            else:
                next_t += FRAME_S / (FAST_SPEED if self.fast else 1.0)
                if next_t < trio.current_time() - MAX_LAG_S:
                    self.stats.late_ticks += 1
                    next_t = trio.current_time()
                await trio.sleep_until(next_t)
            self._tick()
            self._room.set()

    async def _wait_for_host(self) -> None:
        need = FRAME_SAMPLES * self._format().bytes_per_sample
        with trio.move_on_after(FAST_GRACE_S):
            while len(self._fifo) < need and not self._ending and self.mode is not SimMode.COMMAND:
                self._fifo_changed = trio.Event()
                await self._fifo_changed.wait()

    def _format(self) -> SimFormat:
        fmt = self.profile.format(self.at.state.vsm)
        assert fmt is not None  # +VSM accepts listed codes only
        return fmt

    # --- one tick --------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.stats.ticks += 1
        fmt = self._format()
        frame_bytes = FRAME_SAMPLES * fmt.bytes_per_sample
        codes, tx = "", None
        if self.mode in (SimMode.DUPLEX, SimMode.TRANSMIT):
            tx, codes = self._from_fifo(fmt, frame_bytes)
        elif self._dial_pcm.size:
            tx = np.zeros(FRAME_SAMPLES, np.int16)
            part = self._dial_pcm[:FRAME_SAMPLES]
            tx[: part.size], self._dial_pcm = part, self._dial_pcm[FRAME_SAMPLES:]
        rx, events = self.line.step(tx)
        receiving = self.mode in (SimMode.DUPLEX, SimMode.RECEIVE)
        self._credit = int(self.profile.throughput_bytes_s * FRAME_S) - receiving * frame_bytes
        codes += "".join(line_event_code(e) for e in events)
        if self.at.state.vls == 1:
            codes += self._listener.frame(rx)
        if self.mode is SimMode.RECEIVE and self.profile.vsd_applied:
            codes += self._listener.silence(rx, self.at.state.vsd[1] * 5)  # sdi: 0.1 s units
        if self.mode is SimMode.COMMAND:
            self._command_output(rx, events, codes)
        else:
            self._stream_output(rx, codes, fmt)

    def _from_fifo(self, fmt: SimFormat, frame_bytes: int) -> tuple[NDArray[np.int16], str]:
        raw, codes = self._fifo.pop(frame_bytes), ""
        if len(raw) < frame_bytes:
            if not self._ending:
                self.stats.underrun_frames += 1
                codes = "" if self._dry else "u"
                self._dry = True
            raw += silence(fmt.encoding, (frame_bytes - len(raw)) // fmt.bytes_per_sample)
        else:
            self._dry = False
        return decode(raw, fmt.encoding), codes

    def _command_output(self, rx: NDArray[np.int16], events: list[LineEvent], codes: str) -> None:
        out = bytearray()
        class0 = self.at.state.fclass == "0"
        for event in events:
            if isinstance(event, RingStarted):
                out += self.at.unsolicited("RING") if class0 else dle_code("R")
        if self.line.state is LineState.RINGING:
            for result in self._cid.feed(rx):
                if not isinstance(result, CallerId):
                    self.stats.callerid_errors += 1
                elif self.at.state.vcid == 1 and class0:
                    sep = self.profile.cid_separator
                    out += b"".join(self.at.unsolicited(t) for t in callerid_lines(result, sep))
        else:
            self._cid.reset()
        if self.at.state.vls == 1:
            out += b"".join(dle_code(c) for c in codes)
        self._send(bytes(out))

    def _stream_output(self, rx: NDArray[np.int16], codes: str, fmt: SimFormat) -> None:
        out = bytearray(b"".join(dle_code(c) for c in codes))
        if self._overrun:
            out += dle_code("o")
            self._overrun = False
        if self.mode is not SimMode.TRANSMIT:
            out += dle_shield(encode(rx, fmt.encoding))
        self._send(bytes(out))
        if self.mode is SimMode.TRANSMIT and self._ending and not len(self._fifo):
            self.mode, self._ending = SimMode.COMMAND, False
            self._send(self.at.unsolicited("OK"))

    def _send(self, data: bytes) -> None:
        if not data or self._pty is None:
            return
        data = self._faults.apply(data)
        try:
            written = os.write(self._pty.master_fd, data)
        except BlockingIOError:
            written = 0
        if written < len(data):  # the host is not reading: the chip's buffer overflows
            self.stats.overrun_bytes += len(data) - written
            self._overrun = True
