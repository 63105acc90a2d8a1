"""G.711 mu-law and A-law companding, bit-exact with ITU-T G.191 (STL) `g711.c`.

Owns the two encoder lookup tables and the encode/decode kernels. The line path
(adapter frames <-> agent audio) calls `ulaw_encode`/`ulaw_decode` (or the A-law pair,
or a `G711Codec`) once per 20 ms frame; the `*_into` forms fill a caller's array.

Conventions (G.191 `g711.c` 3.01, which the tests compare on every input and code):
- Encoders take 16-bit PCM and use its top 14 (mu) / 13 (A) bits. A negative sample's
  magnitude is its one's complement (`~x`), so the characteristic is odd-symmetric about
  -1/2: `encode(~x) == encode(x) ^ 0x80` for every x. `audioop.lin2ulaw` negates instead
  (two's complement) and differs on 508 negative inputs; we follow G.191 on purpose.
- Decoders return 16-bit PCM: mu-law peaks at +-32124 (G.711 Table 2: 8031 x 4),
  A-law at +-32256 (Table 1: 4032 x 8). Both mu-law zero codes (0x7F, 0xFF) give 0.
- Encoding uses a 65 536-entry table (built at import from the G.191 formulas, vectorised,
  indexed by the sample's uint16 bit pattern); decoding computes G.191's formula per code,
  branch-free, which vectorises and runs several times faster than a 256-entry table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import as_int16, as_uint8

Law = Literal["ulaw", "alaw"]
ULAW_PEAK = 32124  # G.711 Table 2: largest decoder output 8031, in 14-bit units, x 4
ALAW_PEAK = 32256  # G.711 Table 1: largest decoder output 4032, in 13-bit units, x 8
ULAW_SILENCE_CODE = 0xFF  # encode(0): positive zero, all bits inverted on the line
ALAW_SILENCE_CODE = 0xD5  # encode(0): sign bit 1, even bits inverted (0x80 ^ 0x55)

_I16 = np.dtype(np.int16)
_U8 = np.dtype(np.uint8)
_POW2 = 1 << np.arange(16, dtype=np.int32)  # for a vectorised bit length


def _all_inputs() -> NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern (the encoder tables' index)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


def _bit_length(v: NDArray[np.int32]) -> NDArray[np.int32]:
    return np.searchsorted(_POW2, v, side="right").astype(np.int32)


def _ulaw_encode_table() -> NDArray[np.uint8]:
    """G.191 `ulaw_compress` applied to every int16 input."""
    x = _all_inputs()
    # G.191: 14-bit magnitude, one's complement for negatives, +33 (the mu-law bias).
    absno = np.minimum((np.where(x < 0, ~x, x) >> 2) + 33, 0x1FFF)
    segno = 1 + _bit_length(absno >> 6)  # G.711 Table 2 segment, 1..8
    low_nibble = 0x0F - ((absno >> segno) & 0x0F)
    codes: NDArray[np.int32] = ((8 - segno) << 4) | low_nibble | np.where(x >= 0, 0x80, 0)
    return codes.astype(np.uint8)


def _alaw_encode_table() -> NDArray[np.uint8]:
    """G.191 `alaw_compress` applied to every int16 input."""
    x = _all_inputs()
    ix = np.where(x < 0, ~x, x) >> 4  # G.191: 12-bit magnitude, one's complement for negatives
    iexp = np.maximum(_bit_length(ix) - 4, 0)  # chord 0 for ix <= 15, else 1..7
    mantissa = (ix >> np.maximum(iexp - 1, 0)) & 0x0F
    sign = np.where(x >= 0, 0x80, 0)
    codes: NDArray[np.int32] = ((iexp << 4) | mantissa | sign) ^ 0x55  # G.711: even bits inverted
    return codes.astype(np.uint8)


# Read by the encode kernels as compile-time constants; never written after import.
_ULAW_TABLE = _ulaw_encode_table()
_ALAW_TABLE = _alaw_encode_table()


# Explicit signatures for C-contiguous 1-D arrays: compiled (or loaded from the cache) at
# import, and each gets a direct entry point (see `_entry`).
_ENCODE_SIG = "void(int16[::1], uint8[::1])"
_DECODE_SIG = "void(uint8[::1], int16[::1])"


# numba freezes a global array into the compiled code as a constant.
@njit(_ENCODE_SIG, cache=True, nogil=True)
def _ulaw_encode_kernel(pcm: np.ndarray, codes: np.ndarray) -> None:
    for i in range(pcm.shape[0]):
        codes[i] = _ULAW_TABLE[np.uint16(pcm[i])]  # the sample's bit pattern indexes the table


@njit(_ENCODE_SIG, cache=True, nogil=True)
def _alaw_encode_kernel(pcm: np.ndarray, codes: np.ndarray) -> None:
    for i in range(pcm.shape[0]):
        codes[i] = _ALAW_TABLE[np.uint16(pcm[i])]


@njit(_DECODE_SIG, cache=True, nogil=True)
def _ulaw_decode_kernel(codes: np.ndarray, pcm: np.ndarray) -> None:
    for i in range(codes.shape[0]):
        c = np.int32(codes[i]) ^ 0xFF  # G.711 Table 2: interval n is sent as 255 - n
        # G.191 ulaw_expand: (0x80 << e) + step * m + step / 2 - 4 * 33, step = 8 << e
        magnitude = ((((c & 0x0F) << 3) + 0x84) << ((c >> 4) & 0x07)) - 0x84
        pcm[i] = -magnitude if c & 0x80 else magnitude


@njit(_DECODE_SIG, cache=True, nogil=True)
def _alaw_decode_kernel(codes: np.ndarray, pcm: np.ndarray) -> None:
    for i in range(codes.shape[0]):
        c = np.int32(codes[i]) ^ 0x55  # G.711 Table 1: even bits are inverted on the line
        e = (c >> 4) & 0x07
        above = (e + 7) >> 3  # 1 for chords 1..7; arithmetic, not `e > 0`: a compare here
        # kept the loop from vectorising (measured 3x slower).
        # G.191 alaw_expand: chord 0 gives (m << 4) + 8; chord e adds the leading 1 and
        # shifts: ((m + 16) << 4 + 8) << (e - 1) == (2m + 1) << (e + 2) + 1 << (e + 7).
        magnitude = ((((c & 0x0F) << 1) | 1) << (e + 3 - above)) + (above << (e + 7))
        pcm[i] = magnitude if c & 0x80 else -magnitude


def _entry(kernel: Callable[..., None]) -> Callable[..., None]:
    """The compiled entry point of a kernel with one explicit signature, called without
    numba's dispatcher: on a 160-sample frame the dispatcher's type resolution costs about
    as much as the whole loop (~100 ns of ~250, measured). The entry point checks each
    array's dtype (TypeError) but not its ndim, layout or writeability: the wrappers below
    only pass it 1-D C-contiguous arrays they checked. Falls back to the dispatcher."""
    overloads = getattr(kernel, "overloads", {})
    compiled = next(iter(overloads.values()), None)
    entry = getattr(compiled, "entry_point", None)
    return entry if callable(entry) else kernel


_ULAW_ENCODE = _entry(_ulaw_encode_kernel)
_ALAW_ENCODE = _entry(_alaw_encode_kernel)
_ULAW_DECODE = _entry(_ulaw_decode_kernel)
_ALAW_DECODE = _entry(_alaw_decode_kernel)


def _check_out(out: object, n: int, dtype: np.dtype[np.generic], what: str) -> np.ndarray:
    """The slow path for an `*_into` output: any writeable 1-D array of `dtype` and length `n`."""
    if not isinstance(out, np.ndarray):
        raise DspInputError(f"{what} wants a 1-D {dtype} output array, got {type(out).__name__}")
    if out.dtype != dtype or out.shape != (n,):
        raise DspInputError(
            f"{what} wants a 1-D {dtype} output of length {n}, got {out.dtype} {out.shape}"
        )
    if not out.flags.writeable:
        raise DspInputError(f"{what} wants a writeable output array, got a read-only one")
    return out.view(np.ndarray)


Encoder = Callable[[NDArray[np.int16]], NDArray[np.uint8]]
Decoder = Callable[[NDArray[np.uint8]], NDArray[np.int16]]
EncoderInto = Callable[[NDArray[np.int16], NDArray[np.uint8]], NDArray[np.uint8]]
DecoderInto = Callable[[NDArray[np.uint8], NDArray[np.int16]], NDArray[np.int16]]


def _operation(
    kernel: Callable[..., None], encoder: bool, what: str, doc: str
) -> tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]:
    """One operation's allocating and `_into` forms around its entry point. The fast path
    tests only what the entry point does not check: the type, dtype (by identity: numpy's
    built-in dtypes are singletons), ndim and layout; anything else goes through
    `as_int16`/`as_uint8`, which convert or raise."""
    in_dtype, out_dtype = (_I16, _U8) if encoder else (_U8, _I16)
    convert = as_int16 if encoder else as_uint8
    nd, empty = np.ndarray, np.empty
    name = f"{what}_into"

    def plain(src: Any) -> Any:
        if (
            type(src) is not nd or src.dtype is not in_dtype or src.ndim != 1
            or not src.flags.c_contiguous
        ):  # fmt: skip
            src = convert(src, what)
        out = empty(src.shape[0], out_dtype)
        kernel(src, out)
        return out

    def into(src: Any, out: Any) -> Any:
        if (
            type(src) is not nd or src.dtype is not in_dtype or src.ndim != 1
            or not src.flags.c_contiguous
        ):  # fmt: skip
            src = convert(src, name)
        flags = out.flags if type(out) is nd else None
        if (
            flags is None or out.dtype is not out_dtype or out.ndim != 1
            or out.shape[0] != src.shape[0] or not (flags.c_contiguous and flags.writeable)
        ):  # fmt: skip
            checked = _check_out(out, src.shape[0], out_dtype, name)
            tmp = empty(checked.shape[0], out_dtype)  # any layout: through a contiguous copy
            kernel(src, tmp)
            checked[:] = tmp
        else:
            kernel(src, out)
        return out

    plain.__name__ = plain.__qualname__ = what
    into.__name__ = into.__qualname__ = name
    plain.__doc__ = doc
    into.__doc__ = f"`{what}` into a given writeable 1-D array of the same length (any layout)."
    return plain, into


ulaw_encode: Encoder
ulaw_encode_into: EncoderInto
ulaw_encode, ulaw_encode_into = _operation(
    _ULAW_ENCODE, True, "ulaw_encode",
    "mu-law codes of int16 samples (1-D, any length) as a new uint8 array (G.191).",
)  # fmt: skip
alaw_encode: Encoder
alaw_encode_into: EncoderInto
alaw_encode, alaw_encode_into = _operation(
    _ALAW_ENCODE, True, "alaw_encode",
    "A-law codes of int16 samples (1-D, any length) as a new uint8 array (G.191).",
)  # fmt: skip
ulaw_decode: Decoder
ulaw_decode_into: DecoderInto
ulaw_decode, ulaw_decode_into = _operation(
    _ULAW_DECODE, False, "ulaw_decode",
    "int16 samples (peak +-32124) of mu-law codes (1-D uint8, any length), a new array.",
)  # fmt: skip
alaw_decode: Decoder
alaw_decode_into: DecoderInto
alaw_decode, alaw_decode_into = _operation(
    _ALAW_DECODE, False, "alaw_decode",
    "int16 samples (peak +-32256) of A-law codes (1-D uint8, any length), a new array.",
)  # fmt: skip


class G711Codec:
    """One G.711 law picked by name; its methods are that law's module functions (no extra layer).

    `encode(pcm)`: int16 -> uint8, `decode(codes)`: uint8 -> int16, and the `*_into` forms.
    `silence_code` is the code of a zero sample (what an idle line carries).
    """

    law: Law
    silence_code: int
    encode: Encoder
    decode: Decoder
    encode_into: EncoderInto
    decode_into: DecoderInto

    def __init__(self, law: Law = "ulaw") -> None:
        if law == "ulaw":
            self.encode, self.decode = ulaw_encode, ulaw_decode
            self.encode_into, self.decode_into = ulaw_encode_into, ulaw_decode_into
            self.silence_code = ULAW_SILENCE_CODE
        elif law == "alaw":
            self.encode, self.decode = alaw_encode, alaw_decode
            self.encode_into, self.decode_into = alaw_encode_into, alaw_decode_into
            self.silence_code = ALAW_SILENCE_CODE
        else:
            raise DspInputError(f"G711Codec: law {law!r} is not one of ulaw, alaw")
        self.law = law

    def __repr__(self) -> str:
        return f"G711Codec(law={self.law!r})"
