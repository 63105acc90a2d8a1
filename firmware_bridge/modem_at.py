"""The AT layer of the voice-modem driver: `ModemParser` (pure), `AtChannel` (commands and
audio over the port `firmware_bridge.serial_io.open_serial` opened), and `drop_dtr`.

`firmware_bridge.modem.VoiceModem` opens one `AtChannel` per connection and runs its reader.
Everything the modem sends goes through one `ModemParser`, because commands, result codes,
caller ID lines, DLE events and audio share one byte stream and only the order of the bytes
says which is which:

- every byte is DLE-unshielded first (`firmware_bridge.dle`): the modem reports events as DLE
  codes in voice command state as well as in a stream;
- in text state the remaining bytes are split into lines (CR or LF), decoded as latin-1 (a
  modem may send anything: non-UTF-8 bytes never raise) and stripped;
- a `CONNECT` line after `arm()` (the driver sent `+VTR`/`+VRX`) switches to audio state: the
  bytes after it are samples, until `<DLE><ETX>` switches back to text.

Lines are routed by `AtChannel`: RING and caller ID lines (`is_unsolicited`) go to the sink at
any time, other lines answer the command in flight (or are counted as stray). Audio and DLE
events go to the sink. Writes (commands and audio) are serialised by one lock.
"""

from __future__ import annotations

import errno
import logging
import re
from dataclasses import dataclass
from typing import Protocol

import serial
import trio

from firmware_bridge.dle import END_OF_STREAM, DleDecoder, DleEvent
from firmware_bridge.errors import LinkBroken
from firmware_bridge.serial_io import SerialStream

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 256  # AT answers are < 100 characters (+VSM=? lines); longer is a stream
LINES_BUFFER = 64  # reply lines of one command: ATI/+VSM=?/+VLS=? give < 20
RESYNC_QUIET_S = 0.1  # a modem that left its stream is quiet this long (12 USB packets)
FINAL_RESULTS = frozenset(
    {"OK", "ERROR", "NO CARRIER", "BUSY", "NO DIALTONE", "NO DIAL TONE", "NO ANSWER", "VCON"}
)
# RING (also "RING A", distinctive ring) and the caller ID tags (mgetty cnd.c, CX930xx +VCID).
_UNSOLICITED = re.compile(r"^(?:RING\b|(?:DATE|TIME|NMBR|NAME|MESG|DDN_NMBR|NDID)\s*=)")
_EOL = re.compile(rb"[\r\n]")
# Wake a modem in any state (research note §1.1): end a stream every way there is, then CR.
WAKE_BYTES = b"\x10\x03\x10^\x10!\r"


@dataclass(frozen=True, slots=True)
class AtLine:
    """One non-empty text line from the modem, stripped."""

    text: str


ParsedItem = AtLine | bytes | DleEvent


def is_unsolicited(line: str) -> bool:
    """True for lines the modem sends on its own: RING and caller ID (DATE/TIME/NMBR/NAME...)."""
    return _UNSOLICITED.match(line) is not None


def is_final(line: str) -> bool:
    """True for a final result code (OK, ERROR, CONNECT..., VCON, NO CARRIER, ...)."""
    return line in FINAL_RESULTS or line.startswith("CONNECT")


class ModemParser:
    """Splits the modem's byte stream into lines, audio and DLE events (see the module doc)."""

    def __init__(self) -> None:
        self._dle = DleDecoder()
        self._line = bytearray()
        self._audio = False
        self._armed = False
        self._skip_lf = False  # CONNECT ended on CR: a LF first thing in the stream is its pair
        self.dropped_bytes = 0  # over-long line bytes discarded

    @property
    def in_audio(self) -> bool:
        """True between CONNECT and `<DLE><ETX>`."""
        return self._audio

    def arm(self) -> None:
        """The next CONNECT line starts an audio stream."""
        self._armed = True

    def disarm(self) -> None:
        self._armed = False

    def reset(self) -> None:
        """Back to text state, nothing pending (after a resync)."""
        self._dle.reset()
        self._line.clear()
        self._audio = self._armed = self._skip_lf = False

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Parse the next bytes read; return lines, audio and events in stream order."""
        out: list[ParsedItem] = []
        for item in self._dle.feed(data):
            if isinstance(item, DleEvent):
                out.append(item)
                if item == END_OF_STREAM and self._audio:
                    self._audio = self._skip_lf = False
            elif self._audio:
                self._audio_bytes(item, out)
            else:
                self._text(item, out)
        return out

    def _audio_bytes(self, data: bytes, out: list[ParsedItem]) -> None:
        if self._skip_lf:
            self._skip_lf = False
            data = data[1:] if data[:1] == b"\n" else data
        if data:
            out.append(data)

    def _text(self, data: bytes, out: list[ParsedItem]) -> None:
        i = 0
        while (m := _EOL.search(data, i)) is not None:
            self._keep(data[i : m.start()])
            text = self._line.decode("latin-1").strip()
            self._line.clear()
            i = m.end()
            if not text:
                continue
            out.append(AtLine(text))
            if self._armed and text.startswith("CONNECT"):
                self._armed, self._audio = False, True
                self._skip_lf = m.group() == b"\r"
                self._audio_bytes(data[i:], out)
                return
        self._keep(data[i:])

    def _keep(self, part: bytes) -> None:
        room = MAX_LINE_BYTES - len(self._line)
        self._line += part[:room]
        self.dropped_bytes += max(0, len(part) - room)


class ModemSink(Protocol):
    """Where an `AtChannel` delivers what is not a command reply. Called from the reader task:
    must not block. May raise `LinkBroken` to end the connection."""

    def on_line(self, text: str) -> None: ...

    def on_audio(self, data: bytes) -> None: ...

    def on_event(self, event: DleEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class AtReply:
    """The lines a command got back (echo removed) and its final result code."""

    command: str
    lines: tuple[str, ...]
    result: str

    @property
    def ok(self) -> bool:
        """OK, or VCON (some firmwares' answer to +VLS=1), or CONNECT."""
        return self.result in ("OK", "VCON") or self.result.startswith("CONNECT")


class AtChannel:
    """One open connection to a modem: `stream` reads and writes the port. `run_reader` must
    run for replies to arrive. Commands are serialised; every write takes one lock."""

    def __init__(self, stream: SerialStream, device: str, sink: ModemSink) -> None:
        self.device = device
        self.parser = ModemParser()
        self._stream, self._sink = stream, sink
        self._lines_send, self._lines_recv = trio.open_memory_channel[str](LINES_BUFFER)
        self._awaiting = False
        self._write_lock = trio.Lock()
        self._command_lock = trio.Lock()
        self._quiet = trio.CancelScope()  # resync: pushed on by every read
        self.stray_lines = 0

    async def run_reader(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read until the device goes away (raises `LinkBroken`)."""
        async with self._lines_send:
            task_status.started()
            while True:
                data = await self._receive()
                self._quiet.deadline = trio.current_time() + RESYNC_QUIET_S
                for item in self.parser.feed(data):
                    self._dispatch(item)

    async def _receive(self) -> bytes:
        return bytes(await self._stream.receive())  # LinkBroken when the device is gone

    def _dispatch(self, item: ParsedItem) -> None:
        if isinstance(item, DleEvent):
            self._sink.on_event(item)
        elif isinstance(item, bytes):
            self._sink.on_audio(item)
        elif is_unsolicited(item.text):
            self._sink.on_line(item.text)
        elif self._awaiting:
            try:
                self._lines_send.send_nowait(item.text)
            except trio.WouldBlock:
                self.stray_lines += 1
        else:
            self.stray_lines += 1
            log.debug("modem %s: stray line %r", self.device, item.text)

    async def write(self, data: bytes) -> None:
        """Write `data` (commands or shielded audio) whole; `LinkBroken` if the device is gone."""
        async with self._write_lock:
            await self._stream.send(data)

    async def command(self, command: str, *, stream: bool = False) -> AtReply:
        """Send `command` + CR and return its reply. `stream`: a CONNECT reply starts audio.
        The caller bounds the wait (`trio.fail_after`)."""
        return await self.transact(command, command.encode("latin-1") + b"\r", stream=stream)

    async def transact(self, label: str, raw: bytes, *, stream: bool = False) -> AtReply:
        """Write `raw` (a command, or a DLE code that ends a stream) and collect lines up to a
        final result code. `label` names it in the reply and logs, and is the echo to skip."""
        async with self._command_lock:
            while True:  # drop what a timed-out command got late
                try:
                    self._lines_recv.receive_nowait()
                except trio.WouldBlock:
                    break
            if stream:
                self.parser.arm()
            self._awaiting = True
            try:
                await self.write(raw)
                return await self._collect(label)
            finally:
                self._awaiting = False
                self.parser.disarm()

    async def _collect(self, label: str) -> AtReply:
        lines: list[str] = []
        while True:
            try:
                line = await self._lines_recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
                raise LinkBroken(self.device, f"connection lost waiting for {label}") from exc
            if line.upper() == label.upper():
                continue  # the modem's echo (echo is on after a reset)
            if is_final(line):
                log.debug("modem %s: %s -> %s %r", self.device, label, line, lines)
                return AtReply(label, tuple(lines), line)
            lines.append(line)

    async def resync(self) -> None:
        """End any stream the modem was left in and wait until it has been quiet for
        `RESYNC_QUIET_S`; the parser restarts in text state. The caller bounds the wait."""
        self._quiet = trio.CancelScope(deadline=trio.current_time() + RESYNC_QUIET_S)
        await self.write(WAKE_BYTES)
        with self._quiet:
            await trio.sleep_forever()
        self.parser.reset()


def drop_dtr(ser: serial.Serial, device: str) -> None:
    """Best effort: DTR low hangs up under `AT&D2`; ptys have no DTR (ENOTTY, logged DEBUG)."""
    try:
        ser.dtr = False
    except (OSError, serial.SerialException) as exc:
        level = logging.DEBUG if getattr(exc, "errno", 0) == errno.ENOTTY else logging.WARNING
        log.log(level, "modem %s: DTR drop failed: %s", device, exc)
