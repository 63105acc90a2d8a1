"""The msgpack schema of the tipring adapter protocol: `encode`, `decode_frame`, `FrameDecoder`.

Owns the body of a frame (`docs/adapter-protocol.md` §3): each message is one msgpack array,
its fields in a fixed order, integers, booleans, UTF-8 strings and bytes only (no floats, maps
or ext types), checked for type and range both ways. The link actor (`firmware_bridge.link`)
and the simulated adapter (`firmware_bridge.sim`) use it; the messages themselves live in
`firmware_bridge.messages` and the bytes in `firmware_bridge.framing`.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from firmware_bridge import messages as m
from firmware_bridge import port as p
from firmware_bridge.framing import Deframer, FrameRejected, seal, unseal
from firmware_bridge.messages import (
    AUDIO_PAYLOAD_BYTES,
    MAX_PORTS,
    Audio,
    EventReported,
    Message,
    MsgType,
)
from firmware_bridge.port import Codec, PortKind


def _bad(text: str) -> FrameRejected:
    return FrameRejected("malformed", text)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Field(Protocol):
    """One array element: `pack` checks a dataclass value and returns its wire value, `unpack`
    checks a wire value and returns the dataclass value; both raise `FrameRejected`."""

    def pack(self, value: Any, where: str) -> Any: ...

    def unpack(self, wire: Any, where: str) -> Any: ...


class _Same:
    """A field whose wire value is the dataclass value: packing checks it like unpacking."""

    __slots__ = ()

    def pack(self, value: Any, where: str) -> Any:
        return self.unpack(value, where)

    def unpack(self, wire: Any, where: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Int(_Same):
    lo: int
    hi: int

    def unpack(self, wire: Any, where: str) -> int:
        if type(wire) is int and self.lo <= wire <= self.hi:
            return wire
        raise _bad(f"{where}: want an integer {self.lo}..{self.hi}, got {_show(wire)}")


@dataclass(frozen=True, slots=True)
class _Bool(_Same):
    def unpack(self, wire: Any, where: str) -> bool:
        if type(wire) is bool:
            return wire
        raise _bad(f"{where}: want a boolean, got {_show(wire)}")


@dataclass(frozen=True, slots=True)
class _Text(_Same):
    max_bytes: int

    def unpack(self, wire: Any, where: str) -> str:
        if type(wire) is str:
            data = wire.encode("utf-8", "replace")  # a lone surrogate turns into "?"
            if len(data) <= self.max_bytes and data.decode("utf-8") == wire:
                return wire
        raise _bad(f"{where}: want text of <= {self.max_bytes} UTF-8 bytes, got {_show(wire)}")


@dataclass(frozen=True, slots=True)
class _Scaled:
    """A float on our side, `round(value * scale)` in `lo..hi` on the wire."""

    lo: int
    hi: int
    scale: int

    def pack(self, value: Any, where: str) -> int:
        if type(value) in (int, float) and math.isfinite(value):
            wire = round(float(value) * self.scale)
            if self.lo <= wire <= self.hi:
                return wire
        lo, hi = self.lo / self.scale, self.hi / self.scale
        raise _bad(f"{where}: want a number {lo}..{hi}, got {_show(value)}")

    def unpack(self, wire: Any, where: str) -> float:
        if type(wire) is int and self.lo <= wire <= self.hi:
            return wire / self.scale
        raise _bad(f"{where}: want an integer {self.lo}..{self.hi}, got {_show(wire)}")


@dataclass(frozen=True, slots=True)
class _Enum:
    codes: dict[Any, int]  # our value -> its wire code

    def pack(self, value: Any, where: str) -> int:
        if type(value) is not bool and isinstance(value, (int, str)) and value in self.codes:
            return self.codes[value]
        raise _bad(f"{where}: want one of {sorted(map(str, self.codes))}, got {_show(value)}")

    def unpack(self, wire: Any, where: str) -> Any:
        if type(wire) is int:
            for value, code in self.codes.items():
                if code == wire:
                    return value
        raise _bad(f"{where}: want a code in {sorted(self.codes.values())}, got {_show(wire)}")


@dataclass(frozen=True, slots=True)
class _Array:
    item: _Field
    lo: int
    hi: int
    even: bool = False  # RING cadences come in on/off pairs
    unique: bool = False

    def pack(self, value: Any, where: str) -> list[Any]:
        items = [
            self.item.pack(v, f"{where}[{i}]") for i, v in enumerate(self._sized(value, where))
        ]
        return self._distinct(items, value, where)

    def unpack(self, wire: Any, where: str) -> tuple[Any, ...]:
        items = [
            self.item.unpack(v, f"{where}[{i}]") for i, v in enumerate(self._sized(wire, where))
        ]
        return tuple(self._distinct(items, wire, where))

    def _sized(self, items: Any, where: str) -> tuple[Any, ...]:
        if (
            type(items) is tuple
            and self.lo <= len(items) <= self.hi
            and not (self.even and len(items) % 2)
        ):
            return items
        even = " (an even count)" if self.even else ""
        raise _bad(f"{where}: want an array of {self.lo}..{self.hi}{even}, got {_show(items)}")

    def _distinct(self, items: list[Any], raw: Any, where: str) -> list[Any]:
        if self.unique and len(set(items)) != len(items):
            raise _bad(f"{where}: want distinct values, got {_show(raw)}")
        return items


@dataclass(frozen=True, slots=True)
class _Struct:
    """A nested array holding the fields of dataclass `cls` in declaration order."""

    cls: type[Any]
    items: tuple[_Field, ...]

    def pack(self, value: Any, where: str) -> list[Any]:
        if type(value) is not self.cls:
            raise _bad(f"{where}: want a {self.cls.__name__}, got {_show(value)}")
        named = zip(self.items, dataclasses.fields(self.cls), strict=True)
        return [f.pack(getattr(value, d.name), f"{where}.{d.name}") for f, d in named]

    def unpack(self, wire: Any, where: str) -> Any:
        if type(wire) is not tuple or len(wire) < len(self.items):
            raise _bad(f"{where}: want an array of {len(self.items)}, got {_show(wire)}")
        named = zip(self.items, wire[: len(self.items)], dataclasses.fields(self.cls), strict=True)
        return self.cls(*(f.unpack(v, f"{where}.{d.name}") for f, v, d in named))


@dataclass(frozen=True, slots=True)
class _Schema:
    """One message type: its code, and its fields as (name, wire field). For an event the
    first field is EventReported.seq and the rest are attributes of the port.py event."""

    code: int
    cls: type[Any]
    fields: tuple[tuple[str, _Field], ...]
    event: bool = False

    def body(self, msg: Any) -> list[Any]:
        source = msg.event if self.event else msg
        values = [getattr(source, name) for name, _ in self.fields[self.event :]]
        if self.event:
            values.insert(0, msg.seq)
        name = self.cls.__name__
        return [f.pack(v, f"{name}.{n}") for v, (n, f) in zip(values, self.fields, strict=True)]

    def build(self, wire: tuple[Any, ...]) -> Message:
        name = self.cls.__name__
        named = zip(wire[: len(self.fields)], self.fields, strict=True)
        values = [f.unpack(v, f"{name}.{n}") for v, (n, f) in named]
        if self.event:
            return EventReported(values[0], self.cls(*values[1:]))
        message: Message = self.cls(*values)
        return message


U16 = _Int(0, 0xFFFF)
U32 = _Int(0, 0xFFFF_FFFF)
NONCE = _Int(1, 0xFFFF_FFFF)  # 0 stands for "no peer" in HEARTBEAT.peer_nonce
PORT = _Int(0, MAX_PORTS - 1)
FRAME_CAP = _Int(m.MIN_PEER_FRAME_BYTES, 512)
CODEC_CODES = {Codec.ULAW: 0, Codec.ALAW: 1, Codec.L16: 2}
CODEC = _Enum(CODEC_CODES)
_DB = _Scaled(round(-m.MAX_GAIN_DB * 10), round(m.MAX_GAIN_DB * 10), 10)
_MV = _Scaled(round(-m.MAX_LINE_VOLTS * 1000), round(m.MAX_LINE_VOLTS * 1000), 1000)
_MS = _Scaled(0, 0xFFFF, 1)  # an event's duration: whole ms on the wire, float in port.py
_SEQ_PORT: tuple[tuple[str, _Field], ...] = (("seq", U16), ("port", PORT))
_PORT_INFO = _Struct(m.PortInfo, (_Enum({PortKind.FXS: 0, PortKind.FXO: 1}),
                                _Array(CODEC, 1, len(CODEC_CODES), unique=True)))  # fmt: skip
_STATS_COUNTERS = ("uptime_ms", "frames_ok", "crc_errors", "cobs_errors", "oversize",
                   "bad_version", "malformed", "bytes_discarded", "retransmits")  # fmt: skip


def _enum_of(cls: type[Any]) -> _Enum:
    return _Enum({member: member.value for member in cls})


def _event(code: MsgType, cls: type[Any], *fields: tuple[str, _Field]) -> _Schema:
    return _Schema(code, cls, (*_SEQ_PORT, *fields), event=True)


_SCHEMAS: dict[type[Any], _Schema] = {s.cls: s for s in (
    _Schema(MsgType.HELLO, m.Hello, (("minor", _Int(0, 255)), ("session_nonce", NONCE),
            ("max_frame_bytes", FRAME_CAP), ("features", U32))),
    _Schema(MsgType.HELLO_ACK, m.HelloAck, (("minor", _Int(0, 255)), ("host_nonce", NONCE),
            ("boot_nonce", NONCE), ("max_frame_bytes", FRAME_CAP), ("features", U32),
            ("firmware", _Text(m.MAX_ID_BYTES)), ("serial", _Text(m.MAX_ID_BYTES)),
            ("ports", _Array(_PORT_INFO, 1, MAX_PORTS)))),
    _Schema(MsgType.HEARTBEAT, m.Heartbeat, (("nonce", NONCE), ("peer_nonce", U32))),
    _Schema(MsgType.ACK, m.Ack, (("seq", U16),)),
    _Schema(MsgType.NAK, m.Nak, (("seq", U16), ("reason", _enum_of(m.NakReason)))),
    _Schema(MsgType.STATS, m.Stats, (*((name, U32) for name in _STATS_COUNTERS),
            ("ports", _Array(_Struct(m.PortStats, (U32,) * 5), 0, MAX_PORTS)))),
    _Schema(MsgType.LOG, m.Log, (("level", _enum_of(m.LogLevel)),
            ("text", _Text(m.MAX_LOG_BYTES)))),
    _Schema(MsgType.RING, m.Ring, (*_SEQ_PORT, ("cadence_ms",
            _Array(_Int(1, 0xFFFF), 2, m.MAX_CADENCE_ENTRIES, even=True)))),
    _Schema(MsgType.STOP_RING, m.StopRing, _SEQ_PORT),
    _Schema(MsgType.GO_OFF_HOOK, m.GoOffHook, _SEQ_PORT),
    _Schema(MsgType.GO_ON_HOOK, m.GoOnHook, _SEQ_PORT),
    _Schema(MsgType.FLASH, m.Flash, (*_SEQ_PORT, ("duration_ms", _Int(1, 0xFFFF)))),
    _Schema(MsgType.SET_GAINS, m.SetGains, (*_SEQ_PORT, ("tx_db", _DB), ("rx_db", _DB))),
    _Schema(MsgType.SET_IMPEDANCE, m.SetImpedance, (*_SEQ_PORT,
            ("impedance", _enum_of(m.Impedance)))),
    _Schema(MsgType.SET_CODEC, m.SetCodec, (*_SEQ_PORT, ("codec", CODEC))),
    _Schema(MsgType.RESET, m.Reset, (("seq", U16),)),
)}  # fmt: skip
_EVENT_SCHEMAS: dict[type[Any], _Schema] = {s.cls: s for s in (
    _event(MsgType.HOOK_CHANGED, p.HookChanged, ("off_hook", _Bool())),
    _event(MsgType.HOOK_FLASHED, p.HookFlashed, ("duration_ms", _MS)),
    _event(MsgType.RING_STARTED, p.RingStarted),
    _event(MsgType.RING_STOPPED, p.RingStopped),
    _event(MsgType.POLARITY_REVERSED, p.PolarityReversed),
    _event(MsgType.LOOP_CURRENT_DROPPED, p.LoopCurrentDropped, ("duration_ms", _MS)),
    _event(MsgType.LINE_VOLTAGE_MEASURED, p.LineVoltageMeasured, ("volts", _MV)),
)}  # fmt: skip
_BY_CODE = {s.code: s for s in (*_SCHEMAS.values(), *_EVENT_SCHEMAS.values())}
_PAYLOAD_BY_CODE = {code: AUDIO_PAYLOAD_BYTES[codec] for codec, code in CODEC_CODES.items()}
_CODEC_BY_CODE = {code: codec for codec, code in CODEC_CODES.items()}
# What msgpack raises on a bad body: ValueError covers ExtraData, FormatError, StackError,
# truncation and bad UTF-8; TypeError an unhashable map key.
_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException)


def _schema_of(msg: object) -> _Schema:
    if isinstance(msg, EventReported):
        key: type[Any] = type(msg.event)
        schema = _EVENT_SCHEMAS.get(key)
    else:
        key = type(msg)
        schema = _SCHEMAS.get(key)
    if schema is None:
        raise _bad(f"{key.__name__} has no wire encoding")
    return schema


def type_code(msg: Message) -> int:
    """The frame type code (`MsgType`) `msg` is sent with."""
    return MsgType.AUDIO if isinstance(msg, Audio) else _schema_of(msg).code


def encode(msg: Message) -> bytes:
    """The complete wire frame of `msg`: header, msgpack body and CRC, COBS-encoded, with the
    trailing 0x00. Raises `ProtocolError` for a field out of range or of the wrong type."""
    if isinstance(msg, Audio):
        body = (msg.port, msg.seq, msg.timestamp, CODEC.pack(msg.codec, "Audio.codec"),
                msg.payload)  # fmt: skip
        _check_audio(body)
        return seal(MsgType.AUDIO, msgpack.packb(body))
    schema = _schema_of(msg)
    return seal(schema.code, msgpack.packb(schema.body(msg)))


def decode_frame(frame: bytes) -> Message:
    """Decode one frame (its COBS bytes, without the 0x00). Raises `ProtocolError` (a
    `framing.FrameRejected`) saying what is wrong: size, COBS, CRC, version, type, field."""
    code, body = unseal(frame)
    try:
        wire = msgpack.unpackb(body, use_list=False, raw=False, strict_map_key=True)
    except _UNPACK_ERRORS as exc:
        raise _bad(f"type 0x{code:02x}: the body is not one msgpack object: {exc}") from exc
    if code == MsgType.AUDIO:
        return _audio(wire)
    schema = _BY_CODE.get(code)
    if schema is None:
        raise _bad(f"unknown message type 0x{code:02x}")
    if type(wire) is not tuple or len(wire) < len(schema.fields):
        want = len(schema.fields)
        raise _bad(f"{schema.cls.__name__}: want an array of {want}, got {_show(wire)}")
    return schema.build(wire)  # extra trailing fields (a later minor version) are ignored


def _check_audio(body: tuple[Any, ...]) -> None:
    """Range checks of an AUDIO array, cheap because they run 100 times a second per port."""
    port, seq, timestamp, code, payload = body
    if not (
        type(port) is int
        and 0 <= port < MAX_PORTS
        and type(seq) is int
        and 0 <= seq <= 0xFFFF
        and type(timestamp) is int
        and 0 <= timestamp <= 0xFFFF_FFFF
        and type(payload) is bytes
        and len(payload) == _PAYLOAD_BY_CODE.get(code)
    ):
        PORT.unpack(port, "Audio.port")  # the first failing check names the field
        U16.unpack(seq, "Audio.seq")
        U32.unpack(timestamp, "Audio.timestamp")
        CODEC.unpack(code, "Audio.codec")
        size = _PAYLOAD_BY_CODE[code]
        raise _bad(f"Audio.payload: want {size} bytes for codec {code}, got {_show(payload)}")


def _audio(wire: Any) -> Audio:
    if type(wire) is not tuple or len(wire) < 5:
        raise _bad(f"Audio: want an array of 5, got {_show(wire)}")
    body = wire[:5]
    _check_audio(body)
    port, seq, timestamp, code, payload = body
    return Audio(port, seq, timestamp, _CODEC_BY_CODE[code], payload)


@dataclass(frozen=True, slots=True)
class RefusedReliable:
    """A reliable frame (good CRC and major, type 0x20-0x5F) whose body is bad but whose
    `seq` could be read: spec §6.2 answers it with NAK(seq, `reason`) like a new message
    (UNKNOWN_TYPE for an unknown type code, BAD_ARGUMENT otherwise). `text` says what was
    wrong."""

    type_code: int
    seq: int
    reason: m.NakReason
    text: str


def _refused(frame: bytes, exc: FrameRejected) -> RefusedReliable | None:
    """The `RefusedReliable` of a malformed frame whose seq is readable, else None."""
    if exc.counter != "malformed":
        return None
    try:
        code, body = unseal(frame)
        wire = msgpack.unpackb(body, use_list=False, raw=False, strict_map_key=True)
    except (FrameRejected, *_UNPACK_ERRORS):
        return None
    if not m.is_reliable_type(code) or type(wire) is not tuple or not wire:
        return None
    seq = wire[0]
    if type(seq) is not int or not 0 <= seq <= 0xFFFF:
        return None
    reason = m.NakReason.BAD_ARGUMENT if code in _BY_CODE else m.NakReason.UNKNOWN_TYPE
    return RefusedReliable(code, seq, reason, str(exc))


class FrameDecoder(Deframer):
    """Turns the received byte stream into messages. Never raises on wire garbage: a bad frame
    is dropped and counted under one of `cobs_errors`, `crc_errors`, `oversize`, `bad_version`,
    `malformed` (its bytes under `bytes_discarded`), and decoding resumes after the next 0x00.
    `last_bad_version` is the major of the last frame from a peer of another version.
    `feed_all` also hands back, in order, the malformed reliable frames to NAK."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_ok = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.bad_version = 0
        self.malformed = 0
        self.last_bad_version: int | None = None

    def feed(self, data: bytes) -> list[Message]:
        """The messages `data` completes (any chunk size), in order."""
        return [msg for msg in self.feed_all(data) if not isinstance(msg, RefusedReliable)]

    def feed_all(self, data: bytes) -> list[Message | RefusedReliable]:
        """As `feed`, with a `RefusedReliable` in its place for each malformed reliable frame
        whose seq is readable (still counted as `malformed`)."""
        messages: list[Message | RefusedReliable] = []
        for frame in self.split(data):
            try:
                messages.append(decode_frame(frame))
            except FrameRejected as exc:
                self._count(exc)
                self.bytes_discarded += len(frame)
                refused = _refused(frame, exc)
                if refused is not None:
                    messages.append(refused)
            else:
                self.frames_ok += 1
        return messages

    def _count(self, exc: FrameRejected) -> None:
        # exc.counter is one of the five counter attributes named in the class docstring
        setattr(self, exc.counter, getattr(self, exc.counter) + 1)
        if exc.counter == "bad_version":
            self.last_bad_version = exc.version
