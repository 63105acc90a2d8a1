"""The simulated voice modem's chip, minus the serial port: sample formats (`encode`, `decode`,
`silence`), the transmit FIFO (`TxFifo`), what its detectors hear on the line
(`LineListener` -> DLE event codes) and how it prints caller ID (`callerid_lines`). Pure: no
I/O, no trio. `firmware_bridge.sim.modem.ModemSimulator` runs one of each per modem.

The detectors are tipring's own (`dsp.dtmf.DtmfDetector`, `dsp.tones.ToneDetector`) run on the
received line audio, as a chip runs its own on the line: they hear our echo too, so talk-off
is possible as on hardware. A held key is reported the way the profile's chip does it:
`/` digit, the digit again every `DTMF_REPEAT_MS`, `~` at release (CX930xx), or the bare
repeated digit (no framing). Silence (`s`/`q`, +VSD) is a level threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.dtmf import DtmfDetector
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.levels import rms_to_dbm0
from dsp.tone_plans import TonePlan
from dsp.tones import ToneDetector
from firmware_bridge.port import LineEvent, LoopCurrentDropped, PolarityReversed
from firmware_bridge.sim.modem_profiles import Encoding

DTMF_REPEAT_MS = 60  # a held key's code repeats (vgetty: about every 70 ms; 3 frames here)
_REPEAT_FRAMES = DTMF_REPEAT_MS // 20
SILENCE_DBM0 = -43.0  # +VSD: below this a frame is silent (V.253 leaves the level to the DCE)
TONE_CODES = {"dial": "d", "busy": "b", "reorder": "b", "ringback": "r", "sit": "J"}
_REASON_CODES = {"private": "P", "unavailable": "O"}


def encode(pcm: NDArray[np.int16], encoding: Encoding) -> bytes:
    """int16 samples as the format's bytes on the wire (before DLE shielding)."""
    match encoding:
        case "ulaw":
            return ulaw_encode(pcm).tobytes()
        case "alaw":
            return alaw_encode(pcm).tobytes()
        case "s8":
            return (pcm >> 8).astype(np.int8).tobytes()
        case "u8":
            return ((pcm >> 8) + 128).astype(np.uint8).tobytes()
        case "s16le":
            return pcm.astype("<i2").tobytes()
        case "s14le":  # CX930xx 133: 14 bits left-justified in a little-endian word
            return (pcm & ~3).astype("<i2").tobytes()
    raise ValueError(f"the simulator does not model {encoding} audio")


def decode(data: bytes, encoding: Encoding) -> NDArray[np.int16]:
    """The format's bytes as int16 samples (an odd trailing byte of 16-bit audio is dropped)."""
    match encoding:
        case "ulaw" | "alaw":
            codes = np.frombuffer(data, np.uint8).copy()
            return ulaw_decode(codes) if encoding == "ulaw" else alaw_decode(codes)
        case "s8":
            return np.frombuffer(data, np.int8).astype(np.int16) << 8
        case "u8":
            return (np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8
        case "s16le" | "s14le":
            return np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.int16)
    raise ValueError(f"the simulator does not model {encoding} audio")


def silence(encoding: Encoding, samples: int) -> bytes:
    """`samples` of digital silence in the format."""
    return encode(np.zeros(samples, np.int16), encoding)


class TxFifo:
    """The modem's transmit buffer: bytes from the host in, one frame to the line per tick."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def space(self) -> int:
        return self.capacity - len(self._buf)

    def push(self, data: bytes) -> int:
        """Append what fits; returns the bytes dropped (the host overfilled it)."""
        room = self.space
        self._buf += data[:room]
        return max(0, len(data) - room)

    def pop(self, count: int) -> bytes:
        """Up to `count` bytes, oldest first."""
        out = bytes(self._buf[:count])
        del self._buf[:count]
        return out

    def clear(self) -> None:
        self._buf.clear()


class LineListener:
    """The chip's detectors on the received line audio: `frame(rx)` -> DLE event codes."""

    def __init__(self, plan: TonePlan, dtmf_framing: bool) -> None:
        self._framing = dtmf_framing
        self._dtmf = DtmfDetector()
        self._tones = ToneDetector(plan)
        self.reset()

    def reset(self) -> None:
        """Off-hook again: forget what was heard."""
        self._dtmf.reset()
        self._tones.reset()
        self._key: str | None = None
        self._held_frames = 0
        self._reported = False  # the current keypress was reported while it sounded
        self._quiet_frames = 0
        self._voice_heard = self._silence_sent = False

    def frame(self, rx: NDArray[np.int16]) -> str:
        """The event codes one 20 ms frame of line audio gives (DTMF, call-progress tones)."""
        codes = self._keys(rx) + "".join(TONE_CODES.get(t.tone, "") for t in self._tones.feed(rx))
        return codes

    def _keys(self, rx: NDArray[np.int16]) -> str:
        ended = self._dtmf.feed(rx)
        active, codes = self._dtmf.active_digit, ""
        if active != self._key:
            if self._key is not None and self._framing:
                codes += "~"
            if active is not None:
                codes += ("/" if self._framing else "") + active
                self._reported, self._held_frames = True, 0
            self._key = active
        elif active is not None:
            self._held_frames += 1
            if self._held_frames % _REPEAT_FRAMES == 0:
                codes += active
        for event in ended:  # a press too short to be seen while it sounded
            if not self._reported:
                codes += f"/{event.digit}~" if self._framing else event.digit
            self._reported = False
        return codes

    def silence(self, rx: NDArray[np.int16], after_frames: int) -> str:
        """+VSD: `s` (nothing heard yet) or `q` (after voice) once `after_frames` quiet
        frames passed; once per quiet spell. `after_frames` 0: off."""
        level = rms_to_dbm0(float(np.sqrt(np.mean(np.square(rx, dtype=np.float64)))) + 1e-9)
        if level >= SILENCE_DBM0:
            self._quiet_frames, self._silence_sent, self._voice_heard = 0, False, True
            return ""
        self._quiet_frames += 1
        if after_frames <= 0 or self._silence_sent or self._quiet_frames < after_frames:
            return ""
        self._silence_sent = True
        return "q" if self._voice_heard else "s"


def line_event_code(event: LineEvent) -> str:
    """The DLE code a line event gives: loop-current drop `l`, polarity reversal `L`."""
    if isinstance(event, LoopCurrentDropped):
        return "l"
    if isinstance(event, PolarityReversed):
        return "L"
    return ""


def callerid_lines(callerid: CallerId, separator: str) -> list[str]:
    """The `+VCID=1` lines for one delivery: DATE, TIME, NMBR, NAME (those present)."""
    lines = []
    if callerid.when and len(callerid.when) == 8:
        lines += [f"DATE{separator}{callerid.when[:4]}", f"TIME{separator}{callerid.when[4:]}"]
    number = callerid.number or _REASON_CODES.get(callerid.number_reason or "")
    name = callerid.name or _REASON_CODES.get(callerid.name_reason or "")
    if number:
        lines.append(f"NMBR{separator}{number}")
    if name:
        lines.append(f"NAME{separator}{name}")
    return lines


__all__ = [
    "LineListener",
    "TxFifo",
    "callerid_lines",
    "decode",
    "encode",
    "line_event_code",
    "silence",
]
