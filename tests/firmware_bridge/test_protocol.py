"""firmware_bridge.protocol: every message round-trips, the stream decoder gives the same
messages for any split and survives any corruption (never raises, counts every bad frame,
decodes every frame the corruption missed), field checks, caps, and the spec's worked examples
and type code table (parsed from docs/adapter-protocol.md, so the document cannot drift)."""

from __future__ import annotations

import re
from binascii import crc32
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import framing, messages
from firmware_bridge.errors import ProtocolError
from firmware_bridge.framing import MAX_FRAME_BYTES, cobs_decode, cobs_encode
from firmware_bridge.messages import (
    AUDIO_PAYLOAD_BYTES,
    MAX_PORTS,
    WIRE_EVENTS,
    Audio,
    EventReported,
    Hello,
    HelloAck,
    Log,
    LogLevel,
    Message,
    MsgType,
    Nak,
    NakReason,
    PortInfo,
    PortStats,
    Ring,
    SetGains,
    Stats,
    from_line_event,
    is_reliable_type,
    l16_payload,
    l16_samples,
    ports_ready,
    to_line_event,
)
from firmware_bridge.port import (
    CallerIdReported,
    Codec,
    DtmfReported,
    HookChanged,
    LineVoltageMeasured,
    PortKind,
    PortReady,
)
from firmware_bridge.protocol import FrameDecoder, decode_frame, encode, type_code
from tests.firmware_bridge.strategies import MESSAGE_STRATEGIES, adapter_messages

DOC = Path(__file__).parents[2] / "docs" / "adapter-protocol.md"
DECODER_COUNTERS = ("crc_errors", "cobs_errors", "oversize", "bad_version", "malformed")
DIGITAL_MILLIWATT_ULAW = bytes.fromhex("1e0b0b1e9e8b8b9e")  # G.711 Table 5: 1 kHz, 0 dBm0
HELLO_EXAMPLE = Hello(minor=0, session_nonce=0x7A1B2C3D, max_frame_bytes=512, features=0)
AUDIO_EXAMPLE = Audio(
    port=1, seq=256, timestamp=40960, codec=Codec.ULAW, payload=DIGITAL_MILLIWATT_ULAW * 20
)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def inner(msg: Message) -> bytes:
    return cobs_decode(encode(msg)[:-1])


def reseal(frame_inner_without_crc: bytes) -> bytes:
    """COBS bytes of a frame with a good CRC around whatever header and body we like."""
    body = frame_inner_without_crc
    return cobs_encode(body + crc32(body).to_bytes(4, "little"))


def custom(code: int, body: Any) -> bytes:
    return reseal(bytes([1, code]) + msgpack.packb(body))


# ---- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_message_type_round_trips(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(MESSAGE_STRATEGIES[cls])
    wire = encode(msg)
    assert wire.endswith(b"\x00")
    assert b"\x00" not in wire[:-1]
    assert len(inner(msg)) <= MAX_FRAME_BYTES
    assert decode_frame(wire[:-1]) == msg


def test_type_codes_match_the_table_in_the_spec() -> None:
    table = dict(re.findall(r"^\| `(0x[0-9a-f]{2})` \| ([A-Z_]+) \|", DOC.read_text(), re.M))
    assert {int(code, 16): name for code, name in table.items()} == {
        int(t): t.name for t in MsgType
    }


def test_reliable_types_are_commands_and_events() -> None:
    reliable = {t.name for t in MsgType if is_reliable_type(t)}
    assert reliable == {t.name for t in MsgType if t >= MsgType.RING}
    assert all(is_reliable_type(type_code(EventReported(0, e(0)))) for e in WIRE_EVENTS[2:5])


@given(msgs=st.lists(adapter_messages(), max_size=6), cuts=st.lists(st.integers(0, 2048)))
def test_decoder_returns_same_messages_for_any_split(msgs: list[Message], cuts: list[int]) -> None:
    decoder = FrameDecoder()
    parts = split_at(b"".join(encode(m) for m in msgs), cuts)
    assert [m for part in parts for m in decoder.feed(part)] == msgs
    assert decoder.frames_ok == len(msgs)
    assert all(getattr(decoder, c) == 0 for c in DECODER_COUNTERS)


# ---- corruption -------------------------------------------------------------------------

Mutation = tuple[str, int, int]  # (kind, position, byte)
mutations = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate"]),
    st.integers(0, 10**6),
    st.integers(1, 255),
)


def mutate(frame: bytes, mutation: Mutation) -> bytes:
    """`frame` (COBS bytes, no delimiter) changed in one place; never the same bytes."""
    kind, where, value = mutation
    kind = kind if frame else "insert"  # an earlier truncation may have left nothing
    at = where % (len(frame) + (kind == "insert"))
    match kind:
        case "flip":
            return frame[:at] + bytes([frame[at] ^ value]) + frame[at + 1 :]
        case "insert":
            return frame[:at] + bytes([value % 256 if at % 3 else 0]) + frame[at:]
        case "delete":
            return frame[:at] + frame[at + 1 :]
        case _:
            return frame[:at]


@st.composite
def corrupted_streams(draw: st.DrawFn) -> tuple[list[Message], list[bytes], list[bool]]:
    """Frames, some mutated, some preceded by garbage, some losing their delimiter; returns
    the messages, the segments as sent, and which segments must still decode."""
    msgs = draw(st.lists(adapter_messages(), min_size=1, max_size=8))
    segments: list[bytes] = []
    intact: list[bool] = []
    for msg in msgs:
        frame = encode(msg)[:-1]
        garbage = draw(st.binary(min_size=1, max_size=40)) if draw(st.integers(0, 3)) == 0 else b""
        hits = draw(st.lists(mutations, min_size=1, max_size=2)) if draw(st.booleans()) else []
        for mutation in hits:
            frame = mutate(frame, mutation)
        delimiter = b"" if draw(st.integers(0, 9)) == 0 else b"\x00"
        segments.append(garbage + frame + delimiter)
        after_delimiter = len(segments) == 1 or segments[-2].endswith(b"\x00")
        intact.append(not garbage and not hits and bool(delimiter) and after_delimiter)
    if draw(st.booleans()):  # a long burst without 0x00 (own delimiters on both sides)
        segments.insert(draw(st.integers(0, len(segments))), b"\x00" + b"\x5a" * 3000 + b"\x00")
    return msgs, segments, intact


@given(case=corrupted_streams(), cuts=st.lists(st.integers(0, 8192), max_size=6))
def test_decoder_survives_corruption_counts_it_and_resyncs(
    case: tuple[list[Message], list[bytes], list[bool]], cuts: list[int]
) -> None:
    msgs, segments, intact = case
    stream = b"".join(segments) + b"\x00"  # a final delimiter flushes the last frame
    decoder = FrameDecoder()
    got = [m for part in split_at(stream, cuts) for m in decoder.feed(part)]
    must = [m for m, ok in zip(msgs, intact, strict=True) if ok]
    assert is_subsequence(must, got)
    assert is_subsequence(got, msgs)  # nothing invented, nothing reordered
    pieces = [p for p in stream.split(b"\x00")[:-1] if p]
    bad = sum(getattr(decoder, c) for c in DECODER_COUNTERS)
    assert decoder.frames_ok == len(got)
    assert decoder.frames_ok + bad == len(pieces), "each frame is decoded or counted once"
    good_bytes = sum(len(encode(m)) - 1 for m in got)
    assert decoder.bytes_discarded == sum(map(len, pieces)) - good_bytes


def is_subsequence(small: list[Message], big: list[Message]) -> bool:
    rest = iter(big)
    return all(any(m == b for b in rest) for m in small)


@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_decoder_never_raises_on_garbage(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    for part in split_at(data, cuts):
        decoder.feed(part)
    pieces = [p for p in data.split(b"\x00")[:-1] if p]
    assert decoder.frames_ok + sum(getattr(decoder, c) for c in DECODER_COUNTERS) == len(pieces)


@given(msg=adapter_messages(), mutation=mutations)
def test_decode_frame_raises_protocol_error_for_any_mutation(
    msg: Message, mutation: Mutation
) -> None:
    frame = encode(msg)[:-1]
    bad = mutate(frame, mutation)
    if bad.rstrip(b"\x00").lstrip(b"\x00") == frame:
        return  # a 0x00 added at an end: the same frame between two delimiters
    with pytest.raises(ProtocolError):
        decode_frame(bad)


@given(msg=adapter_messages(), data=st.data())
def test_any_body_with_a_good_crc_decodes_or_raises_protocol_error(
    msg: Message, data: st.DataObject
) -> None:
    raw = bytearray(inner(msg)[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(1, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_frame(reseal(bytes(raw)))
    except ProtocolError:
        return
    assert decode_frame(encode(decoded)[:-1]) == decoded


@given(code=st.integers(0, 255), body=st.binary(max_size=300))
def test_random_bodies_decode_or_raise_protocol_error(code: int, body: bytes) -> None:
    try:
        decoded = decode_frame(reseal(bytes([1, code]) + body))
    except ProtocolError:
        return
    assert decode_frame(encode(decoded)[:-1]) == decoded


# ---- caps, versions, fields -------------------------------------------------------------


def largest(cls: type[Any]) -> Message:
    big = 0xFFFF_FFFF
    if cls is Stats:
        ports = tuple(PortStats(big, big, big, big, big) for _ in range(MAX_PORTS))
        return Stats(big, big, big, big, big, big, big, big, big, ports)
    if cls is Log:
        return Log(LogLevel.ERROR, "x" * 200)
    info = PortInfo(PortKind.FXS, (Codec.ULAW, Codec.ALAW, Codec.L16))
    return HelloAck(255, big, big, 512, big, "f" * 32, "s" * 32, (info,) * MAX_PORTS)


@pytest.mark.parametrize(("cls", "size"), [(Stats, 471), (HelloAck, 194), (Log, 210)])
def test_largest_messages_fit_the_frame_cap(cls: type[Any], size: int) -> None:
    assert len(inner(largest(cls))) == size <= MAX_FRAME_BYTES


@pytest.mark.parametrize(("codec", "frame_bytes", "wire_bytes"), [
    (Codec.ULAW, 179, 181), (Codec.ALAW, 179, 181), (Codec.L16, 340, 343)
])  # fmt: skip
def test_audio_frame_sizes_quoted_in_the_spec(
    codec: Codec, frame_bytes: int, wire_bytes: int
) -> None:
    payload = b"\x7e" * AUDIO_PAYLOAD_BYTES[codec]  # no zeros, full-size fields: the worst case
    msg = Audio(15, 0xFFFF, 0xFFFF_FFFF, codec, payload)
    assert (len(inner(msg)), len(encode(msg))) == (frame_bytes, wire_bytes)
    per_s = f"{wire_bytes * 50:,} B/s"  # 50 frames a second
    assert (
        f"| {codec.value} | {len(payload)} | {frame_bytes} | {wire_bytes} | {per_s} |"
        in DOC.read_text()
    )


def test_unknown_version_is_counted_with_its_number() -> None:
    decoder = FrameDecoder()
    frame = reseal(b"\x02" + inner(HELLO_EXAMPLE)[1:-4])
    assert decoder.feed(frame + b"\x00" + encode(HELLO_EXAMPLE)) == [HELLO_EXAMPLE]
    assert (decoder.bad_version, decoder.last_bad_version, decoder.frames_ok) == (1, 2, 1)
    with pytest.raises(ProtocolError, match="protocol major 2, this host speaks 1"):
        decode_frame(frame)


def test_oversize_frames_are_rejected_and_counted() -> None:
    decoder = FrameDecoder()
    huge = custom(MsgType.LOG, [1, "x" * 600])
    assert decoder.feed(huge + b"\x00") == []
    assert (decoder.oversize, decoder.bytes_discarded) == (1, len(huge))


@pytest.mark.parametrize(
    ("code", "body", "what"),
    [
        (0x33, [1], "unknown message type 0x33"),
        (MsgType.AUDIO, [16, 0, 0, 0, bytes(160)], r"Audio.port: want an integer 0..15"),
        (MsgType.AUDIO, [0, 65536, 0, 0, bytes(160)], r"Audio.seq"),
        (MsgType.AUDIO, [0, 0, -1, 0, bytes(160)], r"Audio.timestamp"),
        (MsgType.AUDIO, [0, 0, 0, 3, bytes(160)], r"Audio.codec"),
        (MsgType.AUDIO, [0, 0, 0, 2, bytes(160)], r"Audio.payload: want 320 bytes"),
        (MsgType.AUDIO, [0, 0, 0, 0, "x" * 160], r"Audio.payload"),
        (MsgType.AUDIO, [0, 0, 0, 0], r"Audio: want an array of 5"),
        (MsgType.ACK, {"seq": 1}, r"Ack: want an array of 1"),
        (MsgType.ACK, [True], r"Ack.seq: want an integer"),
        (MsgType.NAK, [1, 9], r"Nak.reason: want a code in \[1, 2, 3, 4, 5, 6\]"),
        (MsgType.RING, [1, 0, [2000]], r"Ring.cadence_ms: want an array of 2..8 \(an even"),
        (MsgType.RING, [1, 0, [2000, 0]], r"Ring.cadence_ms\[1\]: want an integer 1..65535"),
        (MsgType.HOOK_CHANGED, [1, 0, 1], r"HookChanged.off_hook: want a boolean"),
        (MsgType.HELLO, [0, 1, 100, 0], r"Hello.max_frame_bytes: want an integer 192..512"),
        (MsgType.LOG, [1, b"bytes"], r"Log.text: want text"),
        (MsgType.HELLO_ACK, [0, 1, 1, 512, 0, "f", "s", [[0, [0, 0]]]], r"ports\[0\].codecs"),
        (MsgType.HEARTBEAT, b"", r"HEARTBEAT|Heartbeat"),
    ],
)
def test_fields_are_checked_on_decode(code: int, body: Any, what: str) -> None:
    with pytest.raises(ProtocolError, match=what):
        decode_frame(custom(code, body))


def test_bad_msgpack_bodies_are_protocol_errors() -> None:
    for body in (b"\xc1", b"\x92\x01", b"\x91\x01\x02", b"\xd9\x02\xff\xfe", b"\x91" * 300):
        with pytest.raises(ProtocolError):
            decode_frame(reseal(b"\x01\x04" + body))


def test_a_later_minor_may_append_fields() -> None:
    assert decode_frame(custom(MsgType.ACK, [7, "new", [1, 2]])) == decode_frame(
        custom(MsgType.ACK, [7])
    )


@pytest.mark.parametrize(
    "msg",
    [
        Audio(0, 0, 0, Codec.ULAW, bytes(159)),
        Audio(0, 0, 0, Codec.L16, bytes(160)),
        Ring(0, 16, (2000, 4000)),
        Ring(0, 0, (2000,)),
        SetGains(0, 0, 30.1, 0.0),
        SetGains(0, 0, float("nan"), 0.0),
        Nak(0, 7),  # type: ignore[arg-type]
        EventReported(0, HookChanged(0, 1)),  # type: ignore[arg-type]
        Log(LogLevel.INFO, "é" * 101),  # 202 UTF-8 bytes
        Log(LogLevel.INFO, "\ud800"),  # a lone surrogate has no UTF-8 form
        EventReported(0, CallerIdReported(0, None)),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_out_of_range_fields(msg: Message) -> None:
    with pytest.raises(ProtocolError):
        encode(msg)


# ---- mapping to port.py and the L16 payload ---------------------------------------------


def test_line_events_map_both_ways() -> None:
    event = LineVoltageMeasured(port=3, volts=-48.25)
    msg = from_line_event(9, event)
    assert to_line_event(decode_frame(encode(msg)[:-1])) == event  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="DtmfReported is not carried"):
        from_line_event(1, DtmfReported(0, "5"))


def test_hello_ack_gives_port_ready_events_at_the_default_codec() -> None:
    ack = HelloAck(0, 1, 2, 512, 0, "fw", "sn", (
        PortInfo(PortKind.FXS, (Codec.L16, Codec.ULAW)), PortInfo(PortKind.FXO, (Codec.ALAW,))
    ))  # fmt: skip
    assert ports_ready(ack) == [
        PortReady(0, PortKind.FXS, Codec.L16),
        PortReady(1, PortKind.FXO, Codec.ALAW),
    ]


def test_l16_payload_is_little_endian_xor_5555() -> None:
    pcm = np.zeros(160, np.int16)
    pcm[:3] = [0, 1, -1]
    payload = l16_payload(pcm)
    assert payload[:6] == bytes.fromhex("5555 5455 aaaa")
    assert payload.count(0) == 0
    samples = l16_samples(payload)
    assert samples.dtype == np.int16
    assert np.array_equal(samples, pcm)
    with pytest.raises(ProtocolError):
        l16_payload(np.zeros(80, np.int16))


@given(pcm=st.lists(st.integers(-32768, 32767), min_size=160, max_size=160))
def test_l16_payload_round_trips(pcm: list[int]) -> None:
    samples = np.array(pcm, np.int16)
    assert np.array_equal(l16_samples(l16_payload(samples)), samples)


# ---- the worked examples of docs/adapter-protocol.md §9 --------------------------------


def doc_example(name: str) -> dict[str, bytes]:
    """The hex dumps under `<!-- example NAME -->`: {"body": ..., "frame": ..., "wire": ...}."""
    block = re.search(rf"<!-- example {name} -->\s*```text\n(.*?)```", DOC.read_text(), re.S)
    assert block, f"no example {name} in {DOC}"
    dumps: dict[str, bytes] = {}
    label = ""
    for line in block.group(1).splitlines():
        if m := re.match(r"^(\w+)\b.*:$", line):
            label = m.group(1)
            dumps[label] = b""
        elif re.fullmatch(r"(\s*[0-9a-f]{2})+\s*", line):
            dumps[label] += bytes.fromhex(line)
    return dumps


@pytest.mark.parametrize(("name", "msg"), [("hello", HELLO_EXAMPLE), ("audio", AUDIO_EXAMPLE)])
def test_worked_examples_in_the_spec_are_what_we_send(name: str, msg: Message) -> None:
    dumps = doc_example(name)
    frame = inner(msg)
    assert dumps["body"] == frame[2:-4]
    assert dumps["frame"] == frame
    assert dumps["wire"] == encode(msg)
    assert decode_frame(dumps["wire"][:-1]) == msg


def test_named_constants_in_the_spec_match_the_code() -> None:
    quoted = re.findall(r"`([A-Z][A-Z0-9_]+)`(?: = | \| )([0-9][0-9.]*)", DOC.read_text())
    assert len({name for name, _ in quoted}) >= 20
    for name, value in quoted:
        module = messages if hasattr(messages, name) else framing
        assert float(value) == getattr(module, name), f"the spec says {name} = {value}"


def test_nak_reasons_in_the_spec() -> None:
    text = DOC.read_text()
    for reason in NakReason:
        assert f"| {reason.value} | {reason.name} |" in text
