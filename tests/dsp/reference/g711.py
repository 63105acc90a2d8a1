"""Plain references for `dsp.g711`.

Two independent ones:
- `ref_ulaw_compress`, `ref_ulaw_expand`, `ref_alaw_compress`, `ref_alaw_expand`: a
  line-by-line Python port of ITU-T G.191 (STL) `g711.c` 3.01, one sample at a time.
  Python's `~` and `>>` on ints behave as C's on the promoted `short` values there.
- `ULAW_TABLE`, `ALAW_TABLE`: the positive halves of G.711 Table 2 (mu-law) and Table 1
  (A-law) built from the standard's segment end points and 16 equal steps per segment, in
  the standard's own units (mu-law: 14-bit, overload at 8159; A-law: 13-bit, to 4096).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# --- G.191 g711.c, ported ---------------------------------------------------------------


def ref_alaw_compress(x: int) -> int:
    """G.191 `alaw_compress` of one int16 sample."""
    ix = (~x) >> 4 if x < 0 else x >> 4  # 1's complement for negative values
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(code: int) -> int:
    """G.191 `alaw_expand` of one code (0..255)."""
    ix = code ^ 0x0055
    ix &= 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant = mant + 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant = mant << (iexp - 1)
    return mant if code > 127 else -mant


def ref_ulaw_compress(x: int) -> int:
    """G.191 `ulaw_compress` of one int16 sample."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33  # 1's complement for negatives
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    if x >= 0:
        code |= 0x0080
    return code


def ref_ulaw_expand(code: int) -> int:
    """G.191 `ulaw_expand` of one code (0..255)."""
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa = mantissa & 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_encode_all(compress: object) -> NDArray[np.uint8]:
    """`compress` (one of the ports above) of every int16, in order -32768..32767."""
    assert callable(compress)
    return np.array([compress(x) for x in range(-32768, 32768)], np.uint8)


def ref_decode_all(expand: object) -> NDArray[np.int16]:
    """`expand` (one of the ports above) of every code 0..255."""
    assert callable(expand)
    return np.array([expand(c) for c in range(256)], np.int16)


# --- G.711 Tables 1 and 2 ---------------------------------------------------------------


@dataclass(frozen=True)
class G711Table:
    """Positive half of a G.711 table. Interval n (0..127) is [decision[n], decision[n+1]),
    decodes to output[n]; its character signal is `positive_code(n)` (negative: ^ 0x80)."""

    law: str
    decision: NDArray[np.int64]  # 129 decision values, standard units
    output: NDArray[np.int64]  # 128 decoder output values, standard units
    input_bits: int  # the encoder uses the top `input_bits` of an int16 (G.191)

    @property
    def scale(self) -> int:
        """int16 LSBs per standard unit."""
        return 1 << (16 - self.input_bits)

    def positive_code(self, n: NDArray[np.int64]) -> NDArray[np.int64]:
        if self.law == "ulaw":
            return 255 - n  # Table 2: interval n is sent as 255 - n
        return (0x80 | n) ^ 0x55  # Table 1: sign 1 for positive, then even bits inverted

    def index_of(self, codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """(interval number n, is-negative) of each code."""
        n = 0x7F - (codes & 0x7F) if self.law == "ulaw" else (codes ^ 0x55) & 0x7F
        return n, (codes & 0x80) == 0


def _table(law: str, segment_ends: tuple[int, ...], input_bits: int) -> G711Table:
    decision: list[int] = []
    output: list[int] = []
    for start, end in itertools.pairwise(segment_ends):
        step = (end - start) // 16  # each segment has 16 equal intervals
        assert step * 16 == end - start
        for j in range(16):
            lo = start + j * step
            decision.append(max(lo, 0))  # mu-law: only [0, 1) of (-1, 1) is positive
            output.append(lo + step // 2)
    decision.append(segment_ends[-1])
    return G711Table(law, np.array(decision), np.array(output), input_bits)


# G.711 Table 2 (mu-law): segment end points in 14-bit units, steps 2, 4, ... 256. Segment 1
# starts at -1: its first interval (-1, 1) is centred on 0, shared by the two zero codes.
ULAW_SEGMENT_ENDS = (-1, 31, 95, 223, 479, 991, 2015, 4063, 8159)
# G.711 Table 1 (A-law): 13-bit units, steps 2, 2, 4, ... 128 (the first two chords form
# the characteristic's one central segment).
ALAW_SEGMENT_ENDS = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096)
ULAW_TABLE = _table("ulaw", ULAW_SEGMENT_ENDS, 14)
ALAW_TABLE = _table("alaw", ALAW_SEGMENT_ENDS, 13)


def twice_cell_centre(pcm: NDArray[np.int16], table: G711Table) -> NDArray[np.int64]:
    """2 |v + 1/2| for v = pcm >> (16 - input_bits): G.191 keeps the top bits of each
    sample (floor), and its one's complement of negatives makes the encoder judge each
    truncated value v by the centre of its cell [v, v + 1), so -v-1 and v are mirrors."""
    v = pcm.astype(np.int64) >> (16 - table.input_bits)
    centre2: NDArray[np.int64] = np.abs(2 * v + 1)
    return centre2


def ref_table_decode(codes: NDArray[np.uint8], table: G711Table) -> NDArray[np.int16]:
    """The table's decoder output of each code, in int16 units."""
    n, negative = table.index_of(codes.astype(np.int64))
    y = table.output[n] * table.scale
    return np.where(negative, -y, y).astype(np.int16)
