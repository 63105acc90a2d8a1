"""dsp.g711: bit-exact with G.191 and G.711's own tables on every input and code, the
differences from audioop pinned, round-trip properties, any length and layout, bad input."""

from __future__ import annotations

import audioop
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from dsp import g711
from dsp.errors import DspInputError
from tests.dsp.reference.g711 import (
    ALAW_TABLE,
    ULAW_TABLE,
    G711Table,
    ref_alaw_compress,
    ref_alaw_expand,
    ref_decode_all,
    ref_encode_all,
    ref_table_decode,
    ref_ulaw_compress,
    ref_ulaw_expand,
    twice_cell_centre,
)

ALL_PCM = np.arange(-32768, 32768).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


@dataclass(frozen=True)
class Law:
    name: str
    encode: Callable[[NDArray[np.int16]], NDArray[np.uint8]]
    decode: Callable[[NDArray[np.uint8]], NDArray[np.int16]]
    encode_into: Callable[[NDArray[np.int16], NDArray[np.uint8]], NDArray[np.uint8]]
    decode_into: Callable[[NDArray[np.uint8], NDArray[np.int16]], NDArray[np.int16]]
    ref_compress: Callable[[int], int]
    ref_expand: Callable[[int], int]
    table: G711Table
    audioop_encode: Callable[[bytes, int], bytes]
    audioop_decode: Callable[[bytes, int], bytes]
    peak: int
    silence_code: int
    silence_decoded: int  # A-law has no zero output: its smallest magnitude is 8


ULAW = Law("ulaw", g711.ulaw_encode, g711.ulaw_decode, g711.ulaw_encode_into,
           g711.ulaw_decode_into, ref_ulaw_compress, ref_ulaw_expand, ULAW_TABLE,
           audioop.lin2ulaw, audioop.ulaw2lin, 32124, 0xFF, 0)  # fmt: skip
ALAW = Law("alaw", g711.alaw_encode, g711.alaw_decode, g711.alaw_encode_into,
           g711.alaw_decode_into, ref_alaw_compress, ref_alaw_expand, ALAW_TABLE,
           audioop.lin2alaw, audioop.alaw2lin, 32256, 0xD5, 8)  # fmt: skip
LAWS = pytest.mark.parametrize("law", [ULAW, ALAW], ids=lambda law: law.name)


def g191_codes(law: Law) -> NDArray[np.uint8]:
    """The G.191 port's code for every int16, indexed by sample + 32768."""
    return _g191_codes(law.ref_compress)


@functools.cache
def _g191_codes(compress: Callable[[int], int]) -> NDArray[np.uint8]:
    return ref_encode_all(compress)


def audioop_encode(law: Law, pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    return np.frombuffer(law.audioop_encode(pcm.tobytes(), 2), np.uint8)


# --- G.191 ------------------------------------------------------------------------------


@LAWS
def test_encode_matches_g191_on_every_input(law: Law) -> None:
    np.testing.assert_array_equal(law.encode(ALL_PCM), g191_codes(law))


@LAWS
def test_decode_matches_g191_on_every_code(law: Law) -> None:
    np.testing.assert_array_equal(law.decode(ALL_CODES), ref_decode_all(law.ref_expand))


# --- G.711 Tables 1 and 2 ---------------------------------------------------------------


def test_tables_have_the_values_printed_in_g711() -> None:
    mu, a = ULAW_TABLE, ALAW_TABLE
    assert mu.decision[:4].tolist() == [0, 1, 3, 5]
    assert mu.decision[16::16].tolist() == [31, 95, 223, 479, 991, 2015, 4063, 8159]
    assert mu.output[[0, 1, 15, 16, 17, 126, 127]].tolist() == [0, 2, 30, 33, 37, 7775, 8031]
    assert a.decision[:3].tolist() == [0, 2, 4]
    assert a.decision[16::16].tolist() == [32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert a.output[[0, 1, 31, 32, 33, 127]].tolist() == [1, 3, 63, 66, 70, 4032]
    for table in (mu, a):
        assert len(table.decision) == 129
        assert len(table.output) == 128
        assert np.all(np.diff(table.decision) > 0)
        assert np.all((table.decision[:-1] <= table.output) & (table.output < table.decision[1:]))


@LAWS
def test_every_input_encodes_to_the_code_whose_decision_interval_contains_it(law: Law) -> None:
    table = law.table
    n, negative = table.index_of(law.encode(ALL_PCM).astype(np.int64))
    centre2 = twice_cell_centre(ALL_PCM, table)  # 2 |v + 1/2|, v the top 14 / 13 bits
    assert np.array_equal(negative, ALL_PCM < 0)
    assert np.all(2 * table.decision[n] <= centre2)
    beyond = centre2 >= 2 * table.decision[n + 1]
    # Only mu-law has overload: |v + 1/2| >= 8159 takes the top interval (v >= 8159 or
    # v <= -8160: 33 values of v on each side, 4 int16 inputs each).
    expected_beyond = centre2 >= 2 * 8159 if law is ULAW else np.zeros_like(beyond)
    assert np.array_equal(beyond, expected_beyond)
    assert np.all(n[beyond] == 127)
    assert int(beyond.sum()) == (264 if law is ULAW else 0)


@LAWS
def test_every_code_decodes_to_the_table_output(law: Law) -> None:
    np.testing.assert_array_equal(law.decode(ALL_CODES), ref_table_decode(ALL_CODES, law.table))


@LAWS
def test_peak_and_silence(law: Law) -> None:
    decoded = law.decode(ALL_CODES)
    assert int(decoded.max()) == law.peak == -int(decoded.min())
    assert law.encode(np.zeros(3, np.int16)).tolist() == [law.silence_code] * 3
    assert law.decode(np.array([law.silence_code], np.uint8)).tolist() == [law.silence_decoded]
    assert (g711.ULAW_PEAK, g711.ALAW_PEAK) == (32124, 32256)
    assert g711.G711Codec(law.name).silence_code == law.silence_code  # type: ignore[arg-type]


@LAWS
def test_quantiser_is_odd_symmetric_about_minus_half(law: Law) -> None:
    # G.191's one's complement: x and ~x = -x - 1 are mirror images, so they differ only
    # in the sign bit; decoded values are exactly symmetric.
    np.testing.assert_array_equal(law.encode(~ALL_PCM), law.encode(ALL_PCM) ^ 0x80)
    mirrored = ALL_CODES ^ np.uint8(0x80)
    np.testing.assert_array_equal(law.decode(mirrored), -law.decode(ALL_CODES))


# --- audioop ----------------------------------------------------------------------------


def test_ulaw_encode_differs_from_audioop_on_exactly_508_negative_boundary_inputs() -> None:
    # audioop.lin2ulaw takes v = x >> 2 and negates it (two's complement): a negative v has
    # magnitude -v. G.191 takes the one's complement, magnitude -v - 1, i.e. it judges v by
    # the centre of its cell, |v + 1/2| (see the symmetry test). The two disagree exactly
    # when -v is itself a G.711 Table 2 decision value x_n, n = 1..127: audioop puts v in
    # interval n, G.191 in n - 1 (at x_128 = 8159 both are in overload, on the top code).
    # That is 127 values of v, each the top 14 bits of 4 int16 inputs: 508 inputs, from
    # -4 x_127 = -31612 to -1 (audioop sends -1 as 0x7E, which decodes to -8; G.191 sends
    # 0x7F, which decodes to 0). We follow G.191, the ITU-T reference implementation, which
    # keeps the quantiser symmetric. Deliberate: do not "fix" this to match audioop.
    ours, theirs = ULAW.encode(ALL_PCM), audioop_encode(ULAW, ALL_PCM)
    differs = ours != theirs
    x = ALL_PCM[differs].astype(np.int64)
    assert x.size == 508
    assert x.min() == -31612
    assert x.max() == -1
    assert np.array_equal(np.unique(-(x >> 2)), ULAW_TABLE.decision[1:128])
    n_ours, neg_ours = ULAW_TABLE.index_of(ours[differs].astype(np.int64))
    n_theirs, neg_theirs = ULAW_TABLE.index_of(theirs[differs].astype(np.int64))
    assert neg_ours.all()
    assert neg_theirs.all()
    assert np.all(n_theirs == n_ours + 1)
    assert (int(ours[32768 - 1]), int(theirs[32768 - 1])) == (0x7F, 0x7E)  # x = -1


def test_alaw_encode_and_both_decoders_match_audioop_exactly() -> None:
    # audioop's A-law encoder already uses the one's complement (-x - 1) for negatives, and
    # both decoders are the same tables as G.191 (peaks 32124 and 32256): identical.
    np.testing.assert_array_equal(ALAW.encode(ALL_PCM), audioop_encode(ALAW, ALL_PCM))
    for law in (ULAW, ALAW):
        theirs = np.frombuffer(law.audioop_decode(ALL_CODES.tobytes(), 2), np.int16)
        np.testing.assert_array_equal(law.decode(ALL_CODES), theirs)


# --- Properties -------------------------------------------------------------------------


def pcm_arrays(max_size: int = 400) -> st.SearchStrategy[NDArray[np.int16]]:
    return hnp.arrays(np.int16, st.integers(0, max_size))


def half_step_int16(law: Law, codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Half the width of each code's decision interval, in int16 units. The mu-law zero
    codes share one interval (-1, 1) around their output 0, so theirs is 1 unit too."""
    n, _ = law.table.index_of(codes.astype(np.int64))
    return (law.table.decision[n + 1] - law.table.output[n]) * law.table.scale


@LAWS
@given(pcm=pcm_arrays())
def test_decode_of_encode_is_within_half_a_step_of_the_input(
    law: Law, pcm: NDArray[np.int16]
) -> None:
    codes = law.encode(pcm)
    top = int(law.table.decision[-1]) * law.table.scale  # mu-law overload at 8159 x 4
    centre2 = 2 * np.clip(pcm.astype(np.int64), -top, top - 1) + 1  # 2 (x + 1/2)
    error2 = np.abs(2 * law.decode(codes).astype(np.int64) - centre2)
    assert np.all(error2 < 2 * half_step_int16(law, codes))


@LAWS
@given(codes=hnp.arrays(np.uint8, st.integers(0, 400)))
def test_encode_of_decode_gives_the_code_back_except_mu_law_negative_zero(
    law: Law, codes: NDArray[np.uint8]
) -> None:
    # Both mu-law zero codes decode to 0, which encodes to 0xFF: 0x7F is the one code that
    # does not come back. Every A-law code comes back.
    expected = np.where(codes == 0x7F, 0xFF, codes) if law is ULAW else codes
    np.testing.assert_array_equal(law.encode(law.decode(codes)), expected)


def test_round_trip_exceptions_over_all_codes() -> None:
    for law, exceptions in ((ULAW, [0x7F]), (ALAW, [])):
        back = law.encode(law.decode(ALL_CODES))
        assert ALL_CODES[back != ALL_CODES].tolist() == exceptions


@LAWS
@given(pcm=pcm_arrays(), step=st.integers(1, 3), read_only=st.booleans())
def test_any_length_stride_and_read_only_input(
    law: Law, pcm: NDArray[np.int16], step: int, read_only: bool
) -> None:
    view = pcm[::step]
    view.setflags(write=not read_only)
    expected = g191_codes(law)[view.astype(np.int64) + 32768]
    codes = law.encode(view)
    np.testing.assert_array_equal(codes, expected)
    codes_view = np.repeat(codes, 2)[::2]  # equal to codes, strided; read-only when asked
    codes_view.setflags(write=not read_only)
    expected_pcm = np.array([law.ref_expand(int(c)) for c in codes], np.int16)
    np.testing.assert_array_equal(law.decode(codes_view), expected_pcm)


@LAWS
@given(pcm=pcm_arrays(), step=st.integers(1, 3))
def test_into_fills_the_given_arrays_in_place(law: Law, pcm: NDArray[np.int16], step: int) -> None:
    code_buf = np.full((len(pcm), step), 7, np.uint8)
    column = code_buf[:, 0]  # a strided output when step > 1
    assert law.encode_into(pcm, column) is column
    np.testing.assert_array_equal(code_buf[:, 0], law.encode(pcm))
    assert np.all(code_buf[:, 1:] == 7)
    pcm_buf = np.zeros(len(pcm), np.int16)
    assert law.decode_into(column, pcm_buf) is pcm_buf
    np.testing.assert_array_equal(pcm_buf, law.decode(law.encode(pcm)))


def test_codec_object_uses_the_module_functions() -> None:
    mu, a = g711.G711Codec("ulaw"), g711.G711Codec("alaw")
    assert (mu.encode, mu.decode, mu.encode_into, mu.decode_into) == (
        g711.ulaw_encode, g711.ulaw_decode, g711.ulaw_encode_into, g711.ulaw_decode_into
    )  # fmt: skip
    assert (a.encode, a.decode, a.encode_into, a.decode_into) == (
        g711.alaw_encode, g711.alaw_decode, g711.alaw_encode_into, g711.alaw_decode_into
    )  # fmt: skip
    assert g711.G711Codec().law == "ulaw"
    assert repr(a) == "G711Codec(law='alaw')"
    with pytest.raises(DspInputError, match=r"G711Codec: law 'xlaw' is not one of ulaw, alaw"):
        g711.G711Codec("xlaw")  # type: ignore[arg-type]


# --- Bad input --------------------------------------------------------------------------

BAD_PCM: list[Any] = [
    np.zeros(4, np.int32), np.zeros(4, np.uint16), np.zeros(4, np.float32),
    np.zeros(4, ">i2"), np.zeros((2, 80), np.int16), np.int16(3), [1, 2, 3], b"\x00\x01", None,
]  # fmt: skip
BAD_CODES: list[Any] = [
    np.zeros(4, np.int8), np.zeros(4, np.int16), np.zeros((2, 80), np.uint8), np.uint8(3),
    [1, 2, 3], b"\x00\x01", None,
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_PCM, ids=repr)
@pytest.mark.parametrize(
    "func", ["ulaw_encode", "alaw_encode", "ulaw_encode_into", "alaw_encode_into"]
)
def test_encoders_reject_non_int16_vectors(func: str, bad: Any) -> None:
    args = (bad, np.zeros(4, np.uint8)) if func.endswith("into") else (bad,)
    with pytest.raises(DspInputError, match=rf"^{func} wants a 1-D int16 array, got "):
        getattr(g711, func)(*args)


@pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
@pytest.mark.parametrize(
    "func", ["ulaw_decode", "alaw_decode", "ulaw_decode_into", "alaw_decode_into"]
)
def test_decoders_reject_non_uint8_vectors(func: str, bad: Any) -> None:
    args = (bad, np.zeros(4, np.int16)) if func.endswith("into") else (bad,)
    with pytest.raises(DspInputError, match=rf"^{func} wants a 1-D uint8 array, got "):
        getattr(g711, func)(*args)


def read_only(arr: NDArray[Any]) -> NDArray[Any]:
    arr.setflags(write=False)
    return arr


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (np.zeros(5, np.uint8), r"1-D uint8 output of length 4, got uint8 \(5,\)"),
        (np.zeros(4, np.int8), r"1-D uint8 output of length 4, got int8 \(4,\)"),
        (np.zeros((4, 1), np.uint8), r"1-D uint8 output of length 4, got uint8 \(4, 1\)"),
        (read_only(np.zeros(4, np.uint8)), r"writeable output array, got a read-only one"),
        (bytearray(4), r"1-D uint8 output array, got bytearray"),
    ],
)
@pytest.mark.parametrize("func", ["ulaw_encode_into", "alaw_encode_into"])
def test_encode_into_rejects_a_bad_output(func: str, out: Any, message: str) -> None:
    with pytest.raises(DspInputError, match=rf"^{func} wants a {message}$"):
        getattr(g711, func)(np.zeros(4, np.int16), out)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (np.zeros(3, np.int16), r"1-D int16 output of length 4, got int16 \(3,\)"),
        (np.zeros(4, np.uint16), r"1-D int16 output of length 4, got uint16 \(4,\)"),
        (read_only(np.zeros(4, np.int16)), r"writeable output array, got a read-only one"),
        (None, r"1-D int16 output array, got NoneType"),
    ],
)
@pytest.mark.parametrize("func", ["ulaw_decode_into", "alaw_decode_into"])
def test_decode_into_rejects_a_bad_output(func: str, out: Any, message: str) -> None:
    with pytest.raises(DspInputError, match=rf"^{func} wants a {message}$"):
        getattr(g711, func)(np.zeros(4, np.uint8), out)
