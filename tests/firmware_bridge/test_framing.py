"""firmware_bridge.framing: COBS against Cheshire & Baker's examples and any bytes, the frame
seal (header, CRC, caps) and the streaming deframer's cap on garbage without a 0x00."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tracemalloc
from binascii import crc32
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.errors import ProtocolError
from firmware_bridge.framing import (
    MAX_ENCODED_BYTES,
    MAX_FRAME_BYTES,
    PROTOCOL_MAJOR,
    Deframer,
    FrameRejected,
    cobs_decode,
    cobs_encode,
    seal,
    unseal,
)


def run(value: int, length: int) -> bytes:
    return bytes([value]) * length


# Cheshire & Baker 1999 / the Wikipedia COBS article's examples (data -> encoding, no 0x00).
KNOWN_COBS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),  # 254 non-zero bytes
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),  # 255 non-zero
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
    # Runs of 254, 255 and 508 non-zero bytes, alone and before a zero.
    (run(0x11, 254), b"\xff" + run(0x11, 254)),
    (run(0x11, 255), b"\xff" + run(0x11, 254) + b"\x02\x11"),
    (run(0x11, 508), (b"\xff" + run(0x11, 254)) * 2),
    (run(0x11, 508) + b"\x00", (b"\xff" + run(0x11, 254)) * 2 + b"\x01\x01"),
    (run(0x11, 253) + b"\x00", b"\xfe" + run(0x11, 253) + b"\x01"),
    (b"\x00" + run(0x11, 254) + b"\x00", b"\x01\xff" + run(0x11, 254) + b"\x01\x01"),
]


@pytest.mark.parametrize(("data", "encoded"), KNOWN_COBS)
def test_cobs_matches_known_encodings(data: bytes, encoded: bytes) -> None:
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


def test_cobs_decode_accepts_a_block_after_a_final_full_run() -> None:
    # FF + 254 bytes + 01 is not what we send, but it is a valid encoding of the same data.
    assert cobs_decode(b"\xff" + run(0x22, 254) + b"\x01") == run(0x22, 254)


@pytest.mark.parametrize(
    ("encoded", "what"),
    [
        (b"", "empty"),
        (b"\x03\x11\x00\x22", "0x00 at offset 2"),
        (b"\x05\x11\x22", "runs past the end"),
        (b"\x02\x11\xff" + run(0x11, 100), "runs past the end"),
    ],
)
def test_cobs_decode_rejects_malformed_input(encoded: bytes, what: str) -> None:
    with pytest.raises(ProtocolError, match=what):
        cobs_decode(encoded)


@st.composite
def zero_dense_bytes(draw: st.DrawFn) -> bytes:
    """0..1200 bytes at any density of zeros, including long runs without a zero."""
    size = draw(st.integers(0, 1200))
    zero_percent = draw(st.integers(0, 100))
    rnd = draw(st.randoms(use_true_random=False))
    return bytes(
        0 if rnd.random() * 100 < zero_percent else rnd.randint(1, 255) for _ in range(size)
    )


@given(data=st.one_of(st.binary(max_size=1200), zero_dense_bytes()))
def test_cobs_round_trips_any_bytes_without_zeros_and_bounded(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


def test_seal_layout_is_major_type_body_crc_in_cobs() -> None:
    wire = seal(0x03, b"\x91\x05")
    assert wire[-1] == 0
    inner = cobs_decode(wire[:-1])
    assert inner[:4] == bytes([PROTOCOL_MAJOR, 0x03, 0x91, 0x05])
    assert inner[4:] == crc32(inner[:4]).to_bytes(4, "little")
    assert unseal(wire[:-1]) == (0x03, b"\x91\x05")


def test_crc_is_ieee_crc32() -> None:
    # The CRC-32 (IEEE 802.3) check value, which a firmware author can reproduce.
    assert crc32(b"123456789") == 0xCBF43926


def test_seal_refuses_frames_over_the_cap() -> None:
    fits = MAX_FRAME_BYTES - 2 - 4
    assert len(cobs_decode(seal(0x07, run(0x41, fits))[:-1])) == MAX_FRAME_BYTES
    with pytest.raises(ProtocolError, match="over the 512-byte cap"):
        seal(0x07, run(0x41, fits + 1))


def sealed_raw(inner_without_crc: bytes) -> bytes:
    """COBS bytes of an arbitrary frame with a correct CRC: what a peer of any version sends."""
    return cobs_encode(inner_without_crc + crc32(inner_without_crc).to_bytes(4, "little"))


@pytest.mark.parametrize(
    ("encoded", "counter"),
    [
        (sealed_raw(bytes([2, 0x03, 0x91, 0x05])), "bad_version"),
        (cobs_encode(b"\x01\x03\x91\x05\x00\x00\x00\x00"), "crc_errors"),
        (sealed_raw(b"\x01\x03"), "malformed"),  # no body: under the minimum size
        (sealed_raw(b"\x01\x07" + run(0x41, MAX_FRAME_BYTES - 5)), "oversize"),  # decodes to 513
        (run(0x41, MAX_ENCODED_BYTES + 1), "oversize"),  # checked before decoding
        (b"\x09\x01", "cobs_errors"),
    ],
)
def test_unseal_names_the_counter_of_each_fault(encoded: bytes, counter: str) -> None:
    with pytest.raises(FrameRejected) as info:
        unseal(encoded)
    assert info.value.counter == counter
    assert info.value.version == (2 if counter == "bad_version" else None)


def test_deframer_skips_idle_delimiters_and_keeps_partial_frames() -> None:
    deframer = Deframer()
    assert deframer.split(b"\x00\x00\x03ab") == []
    assert deframer.split(b"c\x00\x00\x02x") == [b"\x03abc"]
    assert deframer.split(b"\x00") == [b"\x02x"]
    assert (deframer.oversize, deframer.bytes_discarded) == (0, 0)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_deframer_drops_a_run_without_zero_and_resyncs(chunk: int) -> None:
    deframer = Deframer()
    garbage = run(0x5A, 3 * MAX_ENCODED_BYTES + 11)
    stream = b"\x02a\x00" + garbage + b"\x00\x02b\x00"
    frames = [
        f for i in range(0, len(stream), chunk) for f in deframer.split(stream[i : i + chunk])
    ]
    assert frames == [b"\x02a", b"\x02b"]
    assert deframer.oversize == 1
    assert deframer.bytes_discarded == len(garbage)


def test_deframer_memory_stays_bounded_on_endless_garbage() -> None:
    deframer = Deframer()
    chunk = run(0x33, 65536)
    tracemalloc.start()
    try:
        for _ in range(160):  # 10 MiB without a 0x00
            assert deframer.split(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak allocation while dropping 10 MiB of garbage: {peak} bytes")
    assert peak < 4 * MAX_ENCODED_BYTES
    assert deframer.oversize == 1
    assert deframer.split(b"\x00\x02z\x00") == [b"\x02z"]


# ---- the C reference code of docs/adapter-protocol.md §12 ------------------------------

DOC = Path(__file__).parents[2] / "docs" / "adapter-protocol.md"


@pytest.fixture(scope="module")
def c_reference(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """The spec's C block, compiled into a shared library (gcc is a set-up prerequisite)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler (cc/gcc) to build the spec's reference code: install gcc")
    block = re.search(r"<!-- c-reference -->\s*```c\n(.*?)```", DOC.read_text(), re.S)
    assert block, "no C reference block in the spec"
    work = tmp_path_factory.mktemp("c_reference")
    (work / "ref.c").write_text(block.group(1))
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-shared", "-fPIC"]
    subprocess.run([compiler, *flags, "-o", str(work / "ref.so"), str(work / "ref.c")], check=True)
    lib = ctypes.CDLL(str(work / "ref.so"))
    lib.tr_crc32.restype = ctypes.c_uint32
    lib.tr_crc32.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.tr_cobs_encode.restype = ctypes.c_size_t
    out_buffer = ctypes.POINTER(ctypes.c_char)  # the caller's writable buffer
    lib.tr_cobs_encode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, out_buffer]
    lib.tr_cobs_decode.restype = ctypes.c_long
    lib.tr_cobs_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, out_buffer]
    return lib


def c_encode(lib: ctypes.CDLL, data: bytes) -> bytes:
    out = ctypes.create_string_buffer(len(data) + len(data) // 254 + 1)
    size: int = lib.tr_cobs_encode(data, len(data), out)  # before reading out.raw
    return out.raw[:size]


def c_decode(lib: ctypes.CDLL, encoded: bytes) -> bytes | None:
    out = ctypes.create_string_buffer(max(len(encoded), 1))
    size: int = lib.tr_cobs_decode(encoded, len(encoded), out)
    return None if size < 0 else out.raw[:size]


@given(data=st.one_of(st.binary(max_size=1200), zero_dense_bytes()))
def test_c_reference_matches_the_host(c_reference: ctypes.CDLL, data: bytes) -> None:
    assert c_encode(c_reference, data) == cobs_encode(data)
    assert c_decode(c_reference, cobs_encode(data)) == data
    assert c_reference.tr_crc32(data, len(data)) == crc32(data)


@pytest.mark.parametrize(("data", "encoded"), KNOWN_COBS)
def test_c_reference_matches_known_encodings(
    c_reference: ctypes.CDLL, data: bytes, encoded: bytes
) -> None:
    assert c_encode(c_reference, data) == encoded
    assert c_decode(c_reference, encoded) == data


@pytest.mark.parametrize("encoded", [b"", b"\x03\x11\x00\x22", b"\x05\x11\x22"])
def test_c_reference_rejects_malformed_frames(c_reference: ctypes.CDLL, encoded: bytes) -> None:
    assert c_decode(c_reference, encoded) is None
