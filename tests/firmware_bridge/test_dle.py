"""firmware_bridge.dle: shield/unshield round trip for any bytes and any split, events kept in
place, DLE SUB, a DLE at the end of a read, and every byte sequence decodes without raising."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.dle import (
    DLE,
    END_OF_STREAM,
    SUB,
    DleDecoder,
    DleEvent,
    DleItem,
    dle_code,
    dle_shield,
)

# Event codes: any byte but DLE and SUB (those two are sample escapes, not events).
event_codes = st.integers(0, 255).filter(lambda b: b not in (DLE, SUB)).map(chr)
stream_items = st.lists(
    st.one_of(st.binary(min_size=1, max_size=40), event_codes.map(DleEvent)), max_size=12
)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def merged(items: list[DleItem]) -> list[DleItem]:
    """Adjacent audio runs joined: the decoder's output is unique only up to that."""
    out: list[DleItem] = []
    for item in items:
        if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += item
        else:
            out.append(item)
    return out


def encode(items: list[DleItem]) -> bytes:
    return b"".join(dle_shield(i) if isinstance(i, bytes) else dle_code(i.code) for i in items)


def decode_parts(parts: list[bytes]) -> list[DleItem]:
    decoder = DleDecoder()
    return [item for part in parts for item in decoder.feed(part)]


@given(audio=st.binary(max_size=600), cuts=st.lists(st.integers(0, 1200), max_size=10))
def test_audio_round_trips_for_any_bytes_and_any_split(audio: bytes, cuts: list[int]) -> None:
    parts = split_at(dle_shield(audio), cuts)
    assert b"".join(i for i in decode_parts(parts) if isinstance(i, bytes)) == audio
    assert not [i for i in decode_parts(parts) if isinstance(i, DleEvent)]


@given(items=stream_items, cuts=st.lists(st.integers(0, 600), max_size=10))
def test_events_keep_their_place_in_the_audio_for_any_split(
    items: list[DleItem], cuts: list[int]
) -> None:
    assert merged(decode_parts(split_at(encode(items), cuts))) == merged(items)


@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_any_bytes_decode_without_raising_and_split_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    whole = merged(DleDecoder().feed(data))
    assert merged(decode_parts(split_at(data, cuts))) == whole
    assert all(i for i in whole if isinstance(i, bytes))  # no empty audio runs


def test_dle_sub_is_two_dle_samples_and_dle_dle_one() -> None:
    assert DleDecoder().feed(b"a\x10\x1ab\x10\x10c") == [b"a\x10\x10b\x10c"]


def test_dle_at_the_end_of_a_read_pairs_with_the_next_read() -> None:
    decoder = DleDecoder()
    assert decoder.feed(b"\x01\x02\x10") == [b"\x01\x02"]
    assert decoder.pending
    assert decoder.feed(b"b\x05") == [DleEvent("b"), b"\x05"]
    assert decoder.feed(b"\x10") == []
    assert decoder.feed(b"\x10") == [b"\x10"]
    assert not decoder.pending


def test_end_of_stream_and_events_come_out_in_order() -> None:
    got = DleDecoder().feed(b"\x7f\x10/\x10" + b"1\x10~\xff\xff\x10\x03\r\nOK\r\n")
    assert got == [
        b"\x7f", DleEvent("/"), DleEvent("1"), DleEvent("~"), b"\xff\xff", END_OF_STREAM,
        b"\r\nOK\r\n",
    ]  # fmt: skip


def test_reset_forgets_an_unpaired_dle() -> None:
    decoder = DleDecoder()
    decoder.feed(b"\x10")
    decoder.reset()
    assert decoder.feed(b"b") == [b"b"]


def test_shield_doubles_every_dle() -> None:
    assert dle_shield(b"\x10\x10x\x10") == b"\x10\x10\x10\x10x\x10\x10"
    assert dle_shield(b"") == b""


@pytest.mark.parametrize("bad", ["\x10", "\x1a", "", "ab", "\u20ac"])
def test_dle_code_refuses_what_is_not_an_event(bad: str) -> None:
    with pytest.raises(ValueError, match="dle_code"):
        dle_code(bad)
