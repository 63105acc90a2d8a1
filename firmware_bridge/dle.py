"""DLE shielding of V.253 voice-modem streams: `DleDecoder` (streaming unshield) and `dle_shield`.

Pure: no I/O. The voice-modem driver (`firmware_bridge.modem_at`) feeds every byte it reads
through one `DleDecoder`; the modem simulator (`firmware_bridge.sim.modem`) decodes the host's
bytes with another. The same rules hold both ways (V.253 §4.3.2, CX930xx Table 5-2):

- `<DLE><DLE>` is one 0x10 sample byte, `<DLE><SUB>` (0x1A) two of them;
- `<DLE><ETX>` ends a stream (`END_OF_STREAM`);
- `<DLE>x` for any other x is an event (modem to host: DTMF digit, busy, loop drop, ...) or a
  command (host to modem: `^` leave duplex, `!` receive abort, ...): a `DleEvent` holding x.

A DLE may end one read and its code start the next: the decoder keeps that state. Events come
out in place, between the audio before and after them, so a digit's position in the audio is
known. The decoder never raises: every byte sequence is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DLE",
    "END_OF_STREAM",
    "ETX",
    "SUB",
    "DleDecoder",
    "DleEvent",
    "DleItem",
    "dle_code",
    "dle_shield",
]

DLE = 0x10
ETX = 0x03
SUB = 0x1A
_DLE_BYTE = b"\x10"
_DOUBLED = b"\x10\x10"


@dataclass(frozen=True, slots=True)
class DleEvent:
    """`<DLE>` + `code`: one character, the byte after the DLE read as latin-1 ("b", "1", "^")."""

    code: str


END_OF_STREAM = DleEvent(chr(ETX))

DleItem = bytes | DleEvent  # unshielded audio bytes (never empty) or an event, in stream order


def dle_shield(audio: bytes) -> bytes:
    """Shield sample bytes for the wire: every 0x10 doubled (worst case twice the length)."""
    return audio.replace(_DLE_BYTE, _DOUBLED)


def dle_code(code: str) -> bytes:
    """The two wire bytes of `<DLE>code` (code: one latin-1 character, not DLE or SUB)."""
    if len(code) != 1 or ord(code) > 0xFF or ord(code) in (DLE, SUB):
        raise ValueError(f"dle_code wants one latin-1 character but DLE and SUB, got {code!r}")
    return bytes((DLE, ord(code)))


class DleDecoder:
    """Unshields one direction of a DLE-shielded stream, any split of the bytes."""

    def __init__(self) -> None:
        self._pending = False  # the last byte fed was a DLE whose code has not arrived

    @property
    def pending(self) -> bool:
        """True when the last byte fed was an unpaired DLE."""
        return self._pending

    def reset(self) -> None:
        """Forget an unpaired DLE (a new stream starts)."""
        self._pending = False

    def feed(self, data: bytes) -> list[DleItem]:
        """Unshield `data`; return audio runs and events in stream order (adjacent audio merged
        within one call)."""
        out: list[DleItem] = []
        audio = bytearray()
        i, n = 0, len(data)
        if self._pending and n:
            self._pending = False
            self._code(data[0], audio, out)
            i = 1
        while i < n:
            j = data.find(_DLE_BYTE, i)
            if j < 0:
                audio += data[i:]
                break
            audio += data[i:j]
            if j + 1 == n:
                self._pending = True
                break
            self._code(data[j + 1], audio, out)
            i = j + 2
        if audio:
            out.append(bytes(audio))
        return out

    @staticmethod
    def _code(code: int, audio: bytearray, out: list[DleItem]) -> None:
        if code == DLE:
            audio.append(DLE)
        elif code == SUB:
            audio += _DOUBLED
        else:
            if audio:
                out.append(bytes(audio))
                audio.clear()
            out.append(DleEvent(chr(code)))
