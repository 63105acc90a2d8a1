"""Caller ID: the streaming decoder and the encoder, for Bell 202 FSK, V.23 FSK and DTMF.

Owns `CallerIdDecoder`: the line actor feeds it the audio between the first and second ring
(any chunk sizes; ringing shows as silence or clipped noise) and gets one `CallerId` per burst
back, or a `CallerIdError` for a burst that was heard but failed (bad checksum, truncated,
bad length, ...). It never raises on audio and never drops a burst it recognised. `encode`
makes bursts for tests and the line simulator. Records and message formats live in
`dsp.callerid_message` and are re-exported here; the modem is `dsp.fsk`, DTMF is `dsp.dtmf`.

FSK burst (GR-30-CORE; ETSI EN 300 659-1 on-hook with ringing): a channel seizure of 300 bits
alternating 0 and 1, a mark signal of 180 bits of 1 (EN 300 659-1: 180 +/- 25), then the
message bytes, each a start bit 0, 8 data bits LSB first and a stop bit 1. A burst opens on
32 bits of seizure (or, without one, 50 marks and a known message type byte) and closes when
type + length + body + checksum have arrived, or with "truncated burst" when the carrier goes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dsp import fsk
from dsp.callerid_message import (
    KNOWN_TYPES,
    MDMF_TYPE,
    PARAM_DATE,
    PARAM_NAME,
    PARAM_NAME_ABSENT,
    PARAM_NUMBER,
    PARAM_NUMBER_ABSENT,
    SDMF_TYPE,
    CallerId,
    CallerIdError,
    CallerIdFormatError,
    Reason,
    build_dtmf,
    build_mdmf,
    build_sdmf,
    checksum,
    parse_dtmf,
    parse_message,
)
from dsp.dtmf import DtmfDetector
from dsp.dtmf import generate as dtmf_generate
from dsp.errors import DspInputError
from dsp.frame import as_int16
from dsp.fsk_framer import EV_COMPLETE, EV_LOST, EV_MARK_BURST, EV_SEIZURE

__all__ = [
    "MDMF_TYPE",
    "PARAM_DATE",
    "PARAM_NAME",
    "PARAM_NAME_ABSENT",
    "PARAM_NUMBER",
    "PARAM_NUMBER_ABSENT",
    "SDMF_TYPE",
    "CallerId",
    "CallerIdDecoder",
    "CallerIdError",
    "CallerIdFormatError",
    "Reason",
    "build_dtmf",
    "build_mdmf",
    "build_sdmf",
    "checksum",
    "encode",
    "message_bits",
    "modulate_message",
    "parse_dtmf",
    "parse_message",
]

Standard = Literal["bell202", "v23", "dtmf"]
Result = CallerId | CallerIdError
SEIZURE_BITS = 300  # GR-30-CORE; EN 300 659-1
MARK_BITS = 180  # GR-30-CORE; EN 300 659-1 (180 +/- 25)
TRAILING_MARK_BITS = 2  # marks after the checksum's stop bit (spandsp's GR-30 notes: >= 2)
DEFAULT_LEVEL_DBM0 = -13.5  # a typical send level, not a limit
DTMF_TIMEOUT_MS = 500.0  # silence after a digit that ends an unterminated DTMF string
MAX_DTMF_DIGITS = 48  # longest string kept: A + 20 digits + D + 20 digits + B + 2 + C is 46


def message_bits(
    message: bytes,
    seizure_bits: int = SEIZURE_BITS,
    mark_bits: int = MARK_BITS,
    trailing_bits: int = TRAILING_MARK_BITS,
) -> list[int]:
    """The bits of a burst: seizure (0, 1, 0, ...), marks, UART-framed bytes, trailing marks."""
    bits = [i % 2 for i in range(seizure_bits)] + [1] * mark_bits
    for byte in message:
        bits += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
    return bits + [1] * trailing_bits


def modulate_message(
    message: bytes,
    standard: Literal["bell202", "v23"] = "bell202",
    sample_rate: int = 8000,
    *,
    level_dbm0: float = DEFAULT_LEVEL_DBM0,
    twist_db: float = 0.0,
    seizure_bits: int = SEIZURE_BITS,
    mark_bits: int = MARK_BITS,
    trailing_bits: int = TRAILING_MARK_BITS,
    baud_offset_pct: float = 0.0,
    freq_offset_pct: float = 0.0,
) -> NDArray[np.int16]:
    """The FSK burst of any byte string (tests use it for corrupt messages). Levels, twist
    and offsets as in `dsp.fsk.modulate`."""
    if standard not in fsk.STANDARDS:
        raise DspInputError(f"caller ID FSK standard {standard!r} is not bell202 or v23")
    return fsk.modulate(
        message_bits(message, seizure_bits, mark_bits, trailing_bits),
        fsk.STANDARDS[standard],
        sample_rate,
        level_dbm0=level_dbm0,
        twist_db=twist_db,
        baud_offset_pct=baud_offset_pct,
        freq_offset_pct=freq_offset_pct,
    )


def encode(
    callerid: CallerId,
    standard: Standard = "bell202",
    sample_rate: int = 8000,
    *,
    format: Literal["sdmf", "mdmf"] = "mdmf",
    level_dbm0: float = DEFAULT_LEVEL_DBM0,
    twist_db: float = 0.0,
    seizure_bits: int = SEIZURE_BITS,
    mark_bits: int = MARK_BITS,
    baud_offset_pct: float = 0.0,
    freq_offset_pct: float = 0.0,
    dtmf_start: str = "A",
    dtmf_end: str = "C",
    on_ms: float = 70.0,
    off_ms: float = 70.0,
) -> NDArray[np.int16]:
    """The int16 burst that carries `callerid`: FSK with seizure and mark signals, or DTMF.

    FSK: `format` picks SDMF (needs `when`, no name) or MDMF; `level_dbm0` is the mean of the
    mark and space levels and `twist_db` mark minus space. DTMF: the `build_dtmf` string at
    `on_ms` / `off_ms` per digit, `level_dbm0` per tone; the FSK options are ignored.
    """
    if standard == "dtmf":
        digits = build_dtmf(callerid, start=dtmf_start, end=dtmf_end)
        return dtmf_generate(digits, on_ms, off_ms, level_dbm0, sample_rate)
    if format not in ("sdmf", "mdmf"):
        raise DspInputError(f"caller ID format {format!r} is not sdmf or mdmf")
    message = build_sdmf(callerid) if format == "sdmf" else build_mdmf(callerid)
    return modulate_message(
        message,
        standard,
        sample_rate,
        level_dbm0=level_dbm0,
        twist_db=twist_db,
        seizure_bits=seizure_bits,
        mark_bits=mark_bits,
        baud_offset_pct=baud_offset_pct,
        freq_offset_pct=freq_offset_pct,
    )


def _parsed(raw: bytes) -> Result:
    try:
        return parse_message(raw)
    except CallerIdFormatError as exc:
        return exc.as_record()


class _FskBursts:
    """Byte events of `dsp.fsk.FskReceiver` -> one record per burst. A framing error alone
    does not reject a message: noise on a stop bit often leaves the data intact, and the
    checksum and field checks decide."""

    def __init__(self, standard: fsk.FskStandard, sample_rate: int) -> None:
        self._rx = fsk.FskReceiver(standard, sample_rate, KNOWN_TYPES)
        self._raw: bytearray | None = None  # the open burst's bytes

    def reset(self) -> None:
        self._rx.reset()
        self._raw = None

    def feed(self, pcm: NDArray[np.int16]) -> list[Result]:
        results: list[Result] = []
        for ev in self._rx.feed(pcm):
            if ev < 256:
                if self._raw is not None:
                    self._raw.append(ev)
            elif ev in (EV_SEIZURE, EV_MARK_BURST):
                if self._raw is not None:  # the receiver closes every burst; be safe anyway
                    results.append(CallerIdError("truncated burst", bytes(self._raw)))
                self._raw = bytearray()
            elif ev in (EV_COMPLETE, EV_LOST) and self._raw is not None:
                raw, self._raw = bytes(self._raw), None
                if ev == EV_COMPLETE:
                    results.append(_parsed(raw))
                else:
                    results.append(CallerIdError("truncated burst", raw))
        return results


class _DtmfStrings:
    """DTMF keypresses -> one record per caller ID string."""

    def __init__(self, sample_rate: int) -> None:
        self._detector = DtmfDetector(sample_rate)
        self._ms_per_sample = 1000.0 / sample_rate
        self.reset()

    def reset(self) -> None:
        self._detector.reset()
        self._digits = ""
        self._last_ms = 0.0  # end of the last digit kept
        self._now_ms = 0.0  # end of the audio fed so far, on the detector's clock

    def feed(self, pcm: NDArray[np.int16]) -> list[Result]:
        results: list[Result] = []
        for ev in self._detector.feed(pcm):
            results += self._key(ev.digit, ev.start_ms, ev.start_ms + ev.duration_ms)
        self._now_ms += pcm.shape[0] * self._ms_per_sample
        if self._digits and self._now_ms - self._last_ms > DTMF_TIMEOUT_MS:
            results.append(self._close("truncated burst"))
        return results

    def _key(self, digit: str, start_ms: float, end_ms: float) -> list[Result]:
        results: list[Result] = []
        if self._digits and start_ms - self._last_ms > DTMF_TIMEOUT_MS:
            results.append(self._close("truncated burst"))
        if not self._digits and digit not in "ABD0123456789":
            return results  # a stray C, # or * is not the start of a caller ID string
        self._digits += digit
        self._last_ms = end_ms
        if digit in "C#":
            raw, self._digits = self._digits, ""
            try:
                results.append(parse_dtmf(raw))
            except CallerIdFormatError as exc:
                results.append(exc.as_record())
        elif len(self._digits) > MAX_DTMF_DIGITS:
            results.append(self._close("bad length"))
        return results

    def _close(self, reason: str) -> CallerIdError:
        raw, self._digits = self._digits, ""
        return CallerIdError(reason, raw.encode("ascii"))


class CallerIdDecoder:
    """Streaming caller ID decoder for one line.

    `standard` is "bell202" (GR-30-CORE), "v23" (ETSI EN 300 659) or "dtmf" (ETSI DTMF
    caller ID). `feed(pcm)` takes int16 audio of any length and returns the `CallerId` and
    `CallerIdError` records of the bursts that ended in it, oldest first.
    """

    def __init__(self, standard: Standard = "bell202", sample_rate: int = 8000) -> None:
        self.standard = standard
        self._impl: _FskBursts | _DtmfStrings
        if standard == "dtmf":
            self._impl = _DtmfStrings(sample_rate)
        elif standard in fsk.STANDARDS:
            self._impl = _FskBursts(fsk.STANDARDS[standard], sample_rate)
        else:
            raise DspInputError(f"caller ID standard {standard!r} is not bell202, v23 or dtmf")

    def feed(self, pcm: NDArray[np.int16]) -> list[Result]:
        """Process int16 samples (1-D, any length); return the records of bursts that ended."""
        return self._impl.feed(as_int16(pcm, "CallerIdDecoder.feed"))

    def reset(self) -> None:
        """Forget everything, including a burst in progress (e.g. after going off hook)."""
        self._impl.reset()
