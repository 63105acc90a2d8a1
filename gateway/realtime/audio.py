"""Audio between the line (int16, 8 kHz, 20 ms frames of 160 samples) and the realtime wire
(base64 inside JSON, in the session's format): `UplinkEncoder` and `DownlinkDecoder`, one of
each per connection (they keep resampler state).

Wire formats (GA `audio.{input,output}.format`): `audio/pcmu` and `audio/pcma` are G.711 at
8 kHz, one byte per sample, passed through with no resampling; `audio/pcm` is 16-bit little-
endian mono at 24 kHz, through `dsp.resample` both ways.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from dsp.frame import RATE_HZ
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.resample import Resampler
from gateway.realtime.errors import MalformedEvent

WireFormat = Literal["audio/pcmu", "audio/pcma", "audio/pcm"]
WIRE_FORMATS: Final[tuple[WireFormat, ...]] = get_args(WireFormat)
PCM_RATE_HZ = 24000  # GA: `audio/pcm` is 24 kHz only
# Deltas past this are dropped, not decoded: a minute of audio in one event is a broken or
# hostile server (real deltas carry 20-200 ms), and decoding it would stall the call's loop.
MAX_DELTA_MS = 60_000
# Beta-era and lenient-server names (Inworld's examples send the beta strings).
_ALIASES: Final[dict[str, WireFormat]] = {
    "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma", "pcm16": "audio/pcm",
}  # fmt: skip


def bytes_per_ms(fmt: WireFormat) -> int:
    """Wire bytes per millisecond of audio: 8 for G.711, 48 for 24 kHz PCM16."""
    return 48 if fmt == "audio/pcm" else 8


def format_param(fmt: WireFormat) -> dict[str, Any]:
    """The GA format object for `fmt`."""
    return {"type": fmt, "rate": PCM_RATE_HZ} if fmt == "audio/pcm" else {"type": fmt}


def describe_format(value: object) -> str:
    """What a server said a format was, for an error message (`"audio/pcm" 24000 Hz`)."""
    if isinstance(value, dict):
        rate = value.get("rate")
        return f"{value.get('type')!r}" + (f" {rate} Hz" if rate is not None else "")
    return "nothing" if value is None else repr(value)


def parse_format(value: object) -> WireFormat | None:
    """The wire format a server's session object names, or None if it names none we know.
    Accepts the GA object and the beta strings; `audio/pcm` must be 24 kHz (or say no rate)."""
    if isinstance(value, str):
        value = {"type": _ALIASES.get(value, value)}
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "audio/pcm":
        return "audio/pcm" if value.get("rate", PCM_RATE_HZ) == PCM_RATE_HZ else None
    return kind if kind in ("audio/pcmu", "audio/pcma") else None


def decode_base64(text: str, event_type: str) -> bytes:
    """Strict base64 (no stray characters); `MalformedEvent` otherwise."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent(event_type, f"audio is not valid base64 ({exc})") from None


class UplinkEncoder:
    """Line audio -> base64 wire audio. `encode` takes whole 20 ms frames joined (int16, 8 kHz)."""

    def __init__(self, fmt: WireFormat) -> None:
        self.fmt = fmt
        self._up = Resampler(RATE_HZ, PCM_RATE_HZ) if fmt == "audio/pcm" else None

    def encode(self, pcm: NDArray[np.int16]) -> str:
        if self.fmt == "audio/pcmu":
            wire = ulaw_encode(pcm).tobytes()
        elif self.fmt == "audio/pcma":
            wire = alaw_encode(pcm).tobytes()
        else:
            assert self._up is not None
            wire = self._up.process(pcm).astype("<i2", copy=False).tobytes()
        return base64.b64encode(wire).decode("ascii")


class DownlinkDecoder:
    """Base64 wire audio -> int16 at 8 kHz. Keeps the resampler and an odd trailing PCM byte per
    item: a new item id starts a fresh stream (no tail of the last reply bleeds into it)."""

    def __init__(self, fmt: WireFormat) -> None:
        self.fmt = fmt
        self._item = ""
        self._down = Resampler(PCM_RATE_HZ, RATE_HZ) if fmt == "audio/pcm" else None
        self._odd = b""

    def wire_ms(self, n_bytes: int) -> float:
        return n_bytes / bytes_per_ms(self.fmt)

    def decode(self, item_id: str, wire: bytes) -> NDArray[np.int16]:
        """Samples for the `wire` bytes of `item_id` (may be empty for a 1-byte PCM delta)."""
        codes = np.frombuffer(wire, np.uint8)
        if self.fmt == "audio/pcmu":
            return ulaw_decode(codes)
        if self.fmt == "audio/pcma":
            return alaw_decode(codes)
        assert self._down is not None
        if item_id != self._item:
            self._item, self._odd = item_id, b""
            self._down.reset()
        data = self._odd + wire
        whole = len(data) & ~1
        self._odd = data[whole:]
        pcm24 = np.frombuffer(data[:whole], "<i2").astype(np.int16)
        return self._down.process(pcm24)
