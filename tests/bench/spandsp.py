"""ctypes bindings to Debian's spandsp 0.0.6 (libspandsp2): the reference detectors for the bench.

`tipring bench dsp` runs the same signals through our detectors and through spandsp's DTMF
receiver (`dtmf_rx`), FSK caller ID receiver (`adsi_rx`) and supervisory tone receiver
(`super_tone_rx`). Only the benchmark and its tests import this module; the appliance never
loads spandsp at run time. Each wrapper has the shape of ours: `feed(pcm_int16) -> list` of
events. The detectors run with the library's DEFAULT parameters (that is what users of
Asterisk/FreeSWITCH-era spandsp get): `dtmf_rx_parms` is never called, so the dial tone filter is
off, normal twist 8 dB, reverse twist 4 dB, threshold -42 dBm0 (spandsp 0.0.6 `dtmf.c`).

Callbacks run synchronously inside `dtmf_rx()`/`adsi_rx()`/`super_tone_rx()`; the CFUNCTYPE
objects are kept on the instance so they outlive the C state, which `close()` frees.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

RATE_HZ = 8000
SONAME = "libspandsp.so.2"
DEBIAN_PACKAGE = "libspandsp2"
# Samples per call into the library: callbacks are time-stamped at the end of the chunk they
# fire in, so this is the timing resolution of reported events (1 ms).
CHUNK_SAMPLES = 8

# adsi.h enum
ADSI_STANDARD_CLASS = 1  # Bellcore GR-30 CLASS, Bell 202 FSK
ADSI_STANDARD_CLIP = 2  # ETSI EN 300 659 CLIP, V.23 FSK
ADSI_STANDARD_CLIP_DTMF = 5  # ETSI CLIP by DTMF
STANDARDS = {
    "bell202": ADSI_STANDARD_CLASS,
    "v23": ADSI_STANDARD_CLIP,
    "dtmf": ADSI_STANDARD_CLIP_DTMF,
}

# void (*tone_report_func_t)(void *user_data, int code, int level, int delay)
_TONE_REPORT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int)
# void (*put_msg_func_t)(void *user_data, const uint8_t *msg, int len)
_PUT_MSG = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int)
_VP = ctypes.c_void_p
_INT = ctypes.c_int
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "dtmf_rx_init": (_VP, [_VP, _VP, _VP]),
    "dtmf_rx_set_realtime_callback": (None, [_VP, _TONE_REPORT, _VP]),
    "dtmf_rx": (_INT, [_VP, _VP, _INT]),
    "dtmf_rx_free": (_INT, [_VP]),
    "adsi_rx_init": (_VP, [_VP, _INT, _PUT_MSG, _VP]),
    "adsi_rx": (_INT, [_VP, _VP, _INT]),
    "adsi_rx_free": (_INT, [_VP]),
    "super_tone_rx_make_descriptor": (_VP, [_VP]),
    "super_tone_rx_add_tone": (_INT, [_VP]),
    "super_tone_rx_add_element": (_INT, [_VP, _INT, _INT, _INT, _INT, _INT]),
    "super_tone_rx_free_descriptor": (_INT, [_VP]),
    "super_tone_rx_init": (_VP, [_VP, _VP, _TONE_REPORT, _VP]),
    "super_tone_rx": (_INT, [_VP, _VP, _INT]),
    "super_tone_rx_free": (_INT, [_VP]),
}


class SpandspMissing(RuntimeError):
    """libspandsp is not installed, so the comparison cannot run."""


@functools.cache
def library() -> ctypes.CDLL:
    """Load libspandsp (find_library, else the soname) and declare the prototypes we call."""
    name = ctypes.util.find_library("spandsp") or SONAME
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SpandspMissing(
            f"cannot load spandsp ({name}): install the Debian package {DEBIAN_PACKAGE} "
            f"(apt-get install {DEBIAN_PACKAGE}; `make test` installs it)"
        ) from exc
    for fn_name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, fn_name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _pcm(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    arr = np.ascontiguousarray(pcm)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise ValueError(f"spandsp wants a 1-D int16 array, got {arr.dtype} {arr.shape}")
    return arr


class _Receiver:
    """Common part: owns one C state, feeds it in `CHUNK_SAMPLES` pieces and counts samples."""

    _rx_name: str
    _free_name: str

    def __init__(self) -> None:
        self._lib = library()
        self._state: int | None = None
        self._samples = 0  # samples fed so far, including the chunk being processed
        self._error: BaseException | None = None  # raised in a callback, re-raised by feed

    def _now_ms(self) -> float:
        return self._samples * 1000.0 / RATE_HZ

    def _feed_chunks(self, pcm: NDArray[np.int16]) -> None:
        if self._state is None:
            raise ValueError(f"{type(self).__name__} is closed")
        arr = _pcm(pcm)
        rx = getattr(self._lib, self._rx_name)
        base = arr.ctypes.data
        for start in range(0, arr.shape[0], CHUNK_SAMPLES):
            n = min(CHUNK_SAMPLES, arr.shape[0] - start)
            self._samples += n  # callbacks fired by this chunk are stamped at its end
            rx(self._state, base + 2 * start, n)
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    def _guard(self, handler: Callable[..., None]) -> Callable[..., None]:
        """Wrap a callback: ctypes would print and drop its exception; keep it for `feed`."""

        def call(*args: Any) -> None:
            try:
                handler(*args)
            except Exception as exc:
                self._error = exc

        return call

    def close(self) -> None:
        """Free the C state (idempotent)."""
        state = getattr(self, "_state", None)  # absent if __init__ failed early
        if state is not None:
            getattr(self._lib, self._free_name)(state)
            self._state = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class SpandspDigit:
    """One keypress as spandsp reported it: realtime on/off callbacks, 5 ms resolution."""

    digit: str
    start_ms: float
    duration_ms: float
    level_dbm0: int


class SpandspDtmfRx(_Receiver):
    """spandsp's `dtmf_rx` with library defaults; events are reported when the key ends."""

    _rx_name = "dtmf_rx"
    _free_name = "dtmf_rx_free"

    def __init__(self, sample_rate: int = RATE_HZ) -> None:
        if sample_rate != RATE_HZ:
            raise ValueError(f"spandsp DTMF runs at {RATE_HZ} Hz, not {sample_rate}")
        super().__init__()
        self._events: list[SpandspDigit] = []
        self._on: tuple[str, float, int] | None = None
        self._callback = _TONE_REPORT(self._guard(self._on_report))
        self._state = self._lib.dtmf_rx_init(None, None, None)
        # With a realtime callback 0.0.6 reports each confirmed change (digit code, or 0 for
        # "no tone") instead of buffering digits.
        self._lib.dtmf_rx_set_realtime_callback(self._state, self._callback, None)

    def _on_report(self, _user: int | None, code: int, level: int, _delay: int) -> None:
        now = self._now_ms()
        if self._on is not None:  # any change ends the current key (0, or straight to another)
            digit, start, on_level = self._on
            self._events.append(SpandspDigit(digit, start, now - start, on_level))
            self._on = None
        if code:
            self._on = (chr(code), now, level)

    def feed(self, pcm: NDArray[np.int16]) -> list[SpandspDigit]:
        """Process int16 samples of any length; returns keys that ended in them."""
        self._feed_chunks(pcm)
        out, self._events = self._events, []
        return out


@dataclass(frozen=True, slots=True)
class SpandspCallerId:
    """One caller ID message spandsp delivered (checksum already verified by spandsp)."""

    number: str | None
    name: str | None
    when: str | None
    number_reason: str | None
    name_reason: str | None
    raw: bytes
    at_ms: float


def _text(body: bytes) -> str:
    return body.decode("latin-1")


_REASONS = {"P": "private", "O": "unavailable"}


def parse_class_message(msg: bytes, at_ms: float = 0.0) -> SpandspCallerId | None:
    """Minimal SDMF (0x04) / MDMF (0x80) parser for what `adsi_rx` delivers in 0.0.6:
    message type, length and body, the checksum already stripped. None if not caller ID."""
    fields: dict[int, bytes] = {}
    if len(msg) >= 2 and msg[0] == 0x04 and len(msg) >= 10:
        rest = msg[10 : 2 + msg[1]]
        fields[0x01] = msg[2:10]
        fields[0x04 if rest in (b"O", b"P") else 0x02] = rest
    elif len(msg) >= 2 and msg[0] == 0x80:
        pos, end = 2, min(len(msg), 2 + msg[1])
        while pos + 2 <= end:
            kind, size = msg[pos], msg[pos + 1]
            fields[kind] = msg[pos + 2 : pos + 2 + size]
            pos += 2 + size
    else:
        return None
    get = {k: _text(v) for k, v in fields.items()}
    return SpandspCallerId(
        number=get.get(0x02),
        name=get.get(0x07),
        when=get.get(0x01),
        number_reason=_REASONS.get(get.get(0x04, ""), get.get(0x04)),
        name_reason=_REASONS.get(get.get(0x08, ""), get.get(0x08)),
        raw=bytes(msg),
        at_ms=at_ms,
    )


def parse_delivered(msg: bytes, at_ms: float = 0.0) -> SpandspCallerId | None:
    """Parse a message `adsi_rx` delivered with our `dsp.callerid.parse_message` (after putting
    back the checksum byte spandsp strips), or with `parse_class_message` while ours is absent.
    None if it is not a caller ID message."""
    try:
        from dsp.callerid import CallerIdFormatError, parse_message
    except ImportError:
        return parse_class_message(msg, at_ms)
    try:
        rec = parse_message(msg + bytes([-sum(msg) & 0xFF]))
    except CallerIdFormatError:
        return None
    reasons = (rec.number_reason, rec.name_reason)
    return SpandspCallerId(rec.number, rec.name, rec.when, *reasons, bytes(msg), at_ms)


class SpandspCallerIdRx(_Receiver):
    """spandsp's `adsi_rx` for "bell202" (CLASS), "v23" (ETSI CLIP) or "dtmf" (CLIP by DTMF).

    A message whose checksum fails is dropped inside spandsp (it only logs "Sumcheck failed"),
    so `feed` can never report a corrupt burst. DTMF messages are returned as raw digit strings
    in `raw` with no fields parsed.
    """

    _rx_name = "adsi_rx"
    _free_name = "adsi_rx_free"

    def __init__(self, standard: str = "bell202", sample_rate: int = RATE_HZ) -> None:
        if standard not in STANDARDS or sample_rate != RATE_HZ:
            raise ValueError(f"spandsp caller ID: standard {standard!r} at {sample_rate} Hz?")
        super().__init__()
        self.standard = standard
        self.raw_messages: list[bytes] = []
        self._events: list[SpandspCallerId] = []
        self._callback = _PUT_MSG(self._guard(self._on_message))
        self._state = self._lib.adsi_rx_init(None, STANDARDS[standard], self._callback, None)

    def _on_message(self, _user: int | None, msg: Any, length: int) -> None:
        raw = ctypes.string_at(msg, length)
        self.raw_messages.append(raw)
        if self.standard == "dtmf":
            record = SpandspCallerId(None, None, None, None, None, raw, self._now_ms())
        else:
            parsed = parse_delivered(raw, self._now_ms())
            if parsed is None:
                return
            record = parsed
        self._events.append(record)

    def feed(self, pcm: NDArray[np.int16]) -> list[SpandspCallerId]:
        """Process int16 samples of any length; returns messages completed in them."""
        self._feed_chunks(pcm)
        out, self._events = self._events, []
        return out


# Tone descriptors as FreeSWITCH's mod_spandsp ships them (conf/.../spandsp.conf.xml,
# descriptors "1" North America, "44" UK, "49" Germany): (f1_hz, f2_hz, min_ms, max_ms) per
# cadence element, 0 Hz for silence, max 0 for unbounded. Dial tone is not in FreeSWITCH's set:
# ours is continuous tone for >= 1.5 s (longer than any ringback burst). "etsi" follows the
# German descriptor with ES 201 970's 500/500 busy and 250/250 congestion cadences. Apart from
# FreeSWITCH's UK congestion element fixed below, the tolerances are FreeSWITCH's.
_Element = tuple[int, int, int, int]
_SIT = [(950, 0, 256, 400), (1400, 0, 256, 400), (1800, 0, 256, 400)]
TONE_DESCRIPTORS: dict[str, dict[str, list[_Element]]] = {
    "us": {
        "busy": [(480, 620, 464, 536), (0, 0, 464, 572), (480, 620, 464, 536)],
        "reorder": [(480, 620, 224, 316), (0, 0, 168, 352), (480, 620, 224, 316)],
        "ringback": [(440, 480, 1200, 0)],
        "sit": _SIT,
        "dial": [(350, 440, 1500, 0)],
    },
    "uk": {
        "busy": [(400, 0, 352, 384), (0, 0, 352, 384), (400, 0, 352, 384), (0, 0, 352, 384)],
        # FreeSWITCH has 256-288 ms for the short burst, which SIN 350's 225 ms never meets.
        "reorder": [(400, 0, 368, 416), (0, 0, 336, 368), (400, 0, 200, 250), (0, 0, 512, 544)],
        "ringback": [(400, 450, 350, 450), (0, 0, 150, 250), (400, 450, 350, 450)],
        "sit": _SIT,
        "dial": [(350, 450, 1500, 0)],
    },
    "de": {
        "busy": [(425, 0, 464, 516), (0, 0, 464, 516)],
        "reorder": [(425, 0, 224, 272), (0, 0, 224, 272)],
        "ringback": [(425, 0, 900, 1100), (0, 0, 3800, 4200)],
        "sit": [(900, 0, 256, 400), (1400, 0, 256, 400), (1800, 0, 256, 400)],
        "dial": [(425, 0, 1500, 0)],
    },
    "etsi": {
        "busy": [(425, 0, 464, 536), (0, 0, 464, 536)],
        "reorder": [(425, 0, 224, 276), (0, 0, 224, 276)],
        "ringback": [(425, 0, 900, 1100), (0, 0, 3800, 4200)],
        "sit": _SIT,
        "dial": [(425, 0, 1500, 0)],
    },
}


@dataclass(frozen=True, slots=True)
class SpandspTone:
    """A call-progress tone spandsp's `super_tone_rx` matched (reported when the match starts)."""

    tone: str
    at_ms: float


class SpandspToneRx(_Receiver):
    """spandsp's `super_tone_rx` with the plan's descriptor from `TONE_DESCRIPTORS`."""

    _rx_name = "super_tone_rx"
    _free_name = "super_tone_rx_free"

    def __init__(self, plan: str = "us", sample_rate: int = RATE_HZ) -> None:
        if plan not in TONE_DESCRIPTORS or sample_rate != RATE_HZ:
            raise ValueError(f"spandsp tones: plan {plan!r} at {sample_rate} Hz?")
        super().__init__()
        self._names: list[str] = []
        self._events: list[SpandspTone] = []
        self._desc = self._lib.super_tone_rx_make_descriptor(None)
        for name, elements in TONE_DESCRIPTORS[plan].items():
            tone_id = self._lib.super_tone_rx_add_tone(self._desc)
            assert tone_id == len(self._names), "spandsp numbers tones in the order added"
            self._names.append(name)
            for f1, f2, min_ms, max_ms in elements:
                self._lib.super_tone_rx_add_element(self._desc, tone_id, f1, f2, min_ms, max_ms)
        self._callback = _TONE_REPORT(self._guard(self._on_report))
        self._state = self._lib.super_tone_rx_init(None, self._desc, self._callback, None)

    def _on_report(self, _user: int | None, code: int, _level: int, _delay: int) -> None:
        if code >= 0:  # -1 reports that the detected tone stopped
            self._events.append(SpandspTone(self._names[code], self._now_ms()))

    def feed(self, pcm: NDArray[np.int16]) -> list[SpandspTone]:
        """Process int16 samples of any length; returns tones whose match started in them."""
        self._feed_chunks(pcm)
        out, self._events = self._events, []
        return out

    def close(self) -> None:
        """Free the detector, then the descriptor it points into (idempotent)."""
        super().close()
        if getattr(self, "_desc", None) is not None:
            self._lib.super_tone_rx_free_descriptor(self._desc)
            self._desc = None


def run(detector: Callable[[NDArray[np.int16]], list[Any]], pcm: NDArray[np.int16]) -> list[Any]:
    """Feed a whole signal plus 500 ms of silence (to flush keys and bursts in progress)."""
    return detector(pcm) + detector(np.zeros(RATE_HZ // 2, np.int16))
