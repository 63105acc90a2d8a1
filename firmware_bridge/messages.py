"""The vocabulary of the tipring adapter protocol: type codes, messages, limits and timing.

Owns the message dataclasses of `docs/adapter-protocol.md` §3-§7 and the numbers the spec fixes
(field ranges, caps, timing, the device's line timing). `firmware_bridge.protocol` gives them
their msgpack form; the link actor and the simulated adapter build and match them. Pure: no
I/O.

Line events travel as `EventReported(seq, event)` holding the `firmware_bridge.port` event
itself (one wire type code per event class), so the link hands `msg.event` to `gateway.line`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from firmware_bridge.errors import ProtocolError
from firmware_bridge.port import (
    Codec,
    HookChanged,
    HookFlashed,
    LineEvent,
    LineVoltageMeasured,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    PortReady,
    RingStarted,
    RingStopped,
)

PROTOCOL_MINOR = 0  # HELLO/HELLO_ACK; both sides use the smaller minor of the two
MAX_PORTS = 16  # port index 0..15: enough for any board we plan, fits a msgpack fixint
# 20 ms at 8 kHz: one byte per G.711 sample, two per little-endian int16 sample
AUDIO_PAYLOAD_BYTES = {
    Codec.ULAW: FRAME_SAMPLES,
    Codec.ALAW: FRAME_SAMPLES,
    Codec.L16: 2 * FRAME_SAMPLES,
}
# L16 samples go on the wire XORed with 0x5555, as A-law inverts its even bits: silence and
# quiet audio are then free of 0x00 bytes, each of which costs a COBS block (measured on the
# host: 21 us to encode and 32 us to decode an all-zero L16 frame, 0.8 us for one without).
L16_XOR = 0x5555
MAX_ID_BYTES = 32  # firmware id and serial number, UTF-8
MAX_LOG_BYTES = 200  # LOG text, UTF-8: one console line; a LOG frame is then <= 210 bytes
MAX_CADENCE_ENTRIES = 8  # RING: up to 4 on/off pairs (distinctive rings use 3 bursts)
MAX_GAIN_DB = 30.0  # SET_GAINS range; the wire carries tenths of a dB
MAX_LINE_VOLTS = 250.0  # LINE_VOLTAGE range; ringing peaks near 150 V, the wire carries mV
MIN_PEER_FRAME_BYTES = 192  # smallest max_frame_bytes a peer may announce: a G.711 AUDIO fits

# Link timing (docs/adapter-protocol.md §4-§6). Any valid frame proves the peer alive. The
# link is down after 4 missed heartbeats, not the note's 3: a false "link down" makes the
# device hang up a live PSTN call, a late one costs a second of a call whose host is gone.
HEARTBEAT_INTERVAL_S = 0.25
LINK_TIMEOUT_S = 1.0
HELLO_RETRY_S = 0.25  # the host repeats HELLO until a HELLO_ACK echoes its nonce
ACK_DEADLINE_S = 0.005  # answer a reliable message this fast (note §4.3)
# Worst round trip at 921600 baud, answers going ahead of queued audio: an L16 frame already
# on the wire each way (3.7 ms each) + the 5 ms answer deadline = 13 ms (USB: +1 ms each way).
RETRANSMIT_S = 0.030
# A reliable message unanswered this long (about 33 sends) means the link is down. Not a
# count of 4 sends: under 1 % byte corruption a 16-byte command or its answer is lost one time
# in four, and go-back-N makes one loss cost every later message in the window a round, so 4
# sends brought working links down within a few dozen commands (tests/firmware_bridge/
# test_reliable.py); a dead peer is found by the heartbeat watchdog in the same 1 s anyway.
ANSWER_TIMEOUT_S = 1.0
RELIABLE_WINDOW = 8  # unanswered reliable messages per direction; the receiver remembers 8
STATS_INTERVAL_S = 5.0
LOG_MAX_PER_S = 10

# Device behaviour (spec §5.2, §7, §8), for firmware and the simulated adapter alike.
SAFE_STATE_S = 0.1  # on host loss: FXS ringing stopped and muted, FXO on-hook, within this
HOOK_DEBOUNCE_MS = 30  # FXS: loop closed this long = off-hook
FLASH_MIN_MS = 100  # FXS: shorter opens are bounce or rotary-dial pulses (~60 ms), ignored
FLASH_MAX_MS = 1000  # FXS: an open up to this long is a flash; longer is a hang-up
RING_ON_MS = 100  # FXO: ringing voltage present this long = RING_STARTED
RING_OFF_MS = 150  # FXO: absent this long = RING_STOPPED (UK double ring has 200 ms gaps)
LOOP_DROP_MAX_MS = 1000  # FXO: a loop current drop still going is reported at this length
LINE_VOLTAGE_STEP_V = 3.0  # FXO: report the line voltage when it moved this much (<= 1/s)
ONHOOK_LISTEN_MS = 6000  # FXO on-hook: stream audio this long after a ring or reversal
PLAYOUT_PREBUFFER_MS = 10  # device playout starts this long after a stream's first frame
PLAYOUT_FIFO_FRAMES = 4  # device playout FIFO, at least
CALLERID_DELAY_MS = 500  # host: FSK caller ID starts this long after the first ring burst


class MsgType(IntEnum):
    """Frame type codes (byte 1). 0x20-0x5F are reliable: their body starts with `seq`."""

    HELLO = 0x01
    HELLO_ACK = 0x02
    HEARTBEAT = 0x03
    ACK = 0x04
    NAK = 0x05
    STATS = 0x06
    LOG = 0x07
    AUDIO = 0x10
    RING = 0x20
    STOP_RING = 0x21
    GO_OFF_HOOK = 0x22
    GO_ON_HOOK = 0x23
    FLASH = 0x24
    SET_GAINS = 0x25
    SET_IMPEDANCE = 0x26
    SET_CODEC = 0x27
    RESET = 0x28
    HOOK_CHANGED = 0x40
    HOOK_FLASHED = 0x41
    RING_STARTED = 0x42
    RING_STOPPED = 0x43
    POLARITY_REVERSED = 0x44
    LOOP_CURRENT_DROPPED = 0x45
    LINE_VOLTAGE_MEASURED = 0x46


def is_reliable_type(type_code: int) -> bool:
    """True for the type codes answered with ACK/NAK (commands and line events)."""
    return 0x20 <= type_code < 0x60


class NakReason(IntEnum):
    """Why a reliable message was refused."""

    UNSUPPORTED = 1  # this port kind or firmware cannot do it (RING on an FXO port)
    BAD_ARGUMENT = 2  # a field is out of the device's range
    BUSY = 3  # not in this state (RING an off-hook phone, FLASH while on-hook)
    UNKNOWN_TYPE = 4  # a reliable type code this firmware does not know
    NO_SUCH_PORT = 5  # the port index is past the ports in HELLO_ACK
    FAULT = 6  # the port's hardware reports a fault (SLIC thermal shutdown, no line)


class Impedance(IntEnum):
    """AC termination of a port."""

    R600 = 0  # 600 ohm
    R900 = 1  # 900 ohm
    C900 = 2  # 900 ohm + 2.16 uF (North American complex)
    TBR21 = 3  # 270 ohm + (750 ohm || 150 nF), ETSI TBR 21 / CTR 21
    BT3 = 4  # 370 ohm + (620 ohm || 310 nF), UK


class LogLevel(IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One port in HELLO_ACK: its kind and the codecs it speaks, the default first."""

    kind: PortKind
    codecs: tuple[Codec, ...]


@dataclass(frozen=True, slots=True)
class PortStats:
    """Per-port counters in STATS (u32, wrapping, since boot)."""

    audio_rx: int  # AUDIO frames received from the host
    audio_tx: int  # AUDIO frames sent to the host
    underruns: int  # 20 ms of silence played because no host frame was due
    overruns: int  # host frames dropped because the playout FIFO was full
    audio_gaps: int  # host frames missing by seq


@dataclass(frozen=True, slots=True)
class Hello:
    """Host -> device: start (or restart) the link. Resets both reliable sequences to 0."""

    minor: int
    session_nonce: int  # 1..2^32-1, new for each bring-up attempt; HELLO_ACK echoes it
    max_frame_bytes: int  # largest frame the host accepts
    features: int  # u32 bit set; none defined in 1.0


@dataclass(frozen=True, slots=True)
class HelloAck:
    """Device -> host: the answer to HELLO, with what the board is."""

    minor: int
    host_nonce: int  # the HELLO's session_nonce
    boot_nonce: int  # 1..2^32-1 drawn at boot: a new one means the device reset
    max_frame_bytes: int  # largest frame the device accepts
    features: int
    firmware: str  # <= MAX_ID_BYTES
    serial: str  # <= MAX_ID_BYTES
    ports: tuple[PortInfo, ...]  # index in the tuple = port number


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Both ways, every HEARTBEAT_INTERVAL_S. `nonce` is the sender's own (the host's session
    nonce, the device's boot nonce), `peer_nonce` the one it is linked to, 0 when unlinked:
    a device that reset or dropped the link shows it here even if nothing else is sent."""

    nonce: int
    peer_nonce: int


@dataclass(frozen=True, slots=True)
class Ack:
    """The reliable message `seq` was accepted (so every earlier one was received)."""

    seq: int


@dataclass(frozen=True, slots=True)
class Nak:
    """The reliable message `seq` was received and refused."""

    seq: int
    reason: NakReason


@dataclass(frozen=True, slots=True)
class Stats:
    """Device -> host every STATS_INTERVAL_S: its deframer's counters (as `FrameDecoder`'s),
    reliable retransmits, and per-port audio counters. All u32, wrapping, since boot."""

    uptime_ms: int
    frames_ok: int
    crc_errors: int
    cobs_errors: int
    oversize: int
    bad_version: int
    malformed: int
    bytes_discarded: int
    retransmits: int
    ports: tuple[PortStats, ...]


@dataclass(frozen=True, slots=True)
class Log:
    """Device -> host: one log line (<= MAX_LOG_BYTES UTF-8), at most 10 per second."""

    level: LogLevel
    text: str


@dataclass(frozen=True, slots=True)
class Audio:
    """Both ways: 20 ms of one port's audio. `seq` (u16) counts frames, `timestamp` (u32)
    counts samples of the sender's 8 kHz clock; `payload` is 160 G.711 codes or, for L16,
    160 little-endian int16 samples XOR 0x5555 (`l16_payload`). Never retransmitted."""

    port: int
    seq: int
    timestamp: int
    codec: Codec
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ring:
    """FXS: ring with this cadence (on, off, ... in ms), repeating until STOP_RING or off-hook.
    Caller ID is not here: the host sends its FSK as AUDIO after the first burst."""

    seq: int
    port: int
    cadence_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StopRing:
    seq: int
    port: int


@dataclass(frozen=True, slots=True)
class GoOffHook:
    """FXO: seize the line."""

    seq: int
    port: int


@dataclass(frozen=True, slots=True)
class GoOnHook:
    """FXO: release the line."""

    seq: int
    port: int


@dataclass(frozen=True, slots=True)
class Flash:
    """FXO: go on-hook for `duration_ms`, then off-hook again."""

    seq: int
    port: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class SetGains:
    """Gains in dB (0.1 dB steps on the wire): `tx_db` towards the line, `rx_db` from it."""

    seq: int
    port: int
    tx_db: float
    rx_db: float


@dataclass(frozen=True, slots=True)
class SetImpedance:
    seq: int
    port: int
    impedance: Impedance


@dataclass(frozen=True, slots=True)
class SetCodec:
    """The codec of the AUDIO the device sends from this port (it plays any listed codec)."""

    seq: int
    port: int
    codec: Codec


@dataclass(frozen=True, slots=True)
class Reset:
    """Restart the adapter: it answers ACK, then reboots (a new boot nonce)."""

    seq: int


WireEvent = (
    HookChanged
    | HookFlashed
    | RingStarted
    | RingStopped
    | PolarityReversed
    | LoopCurrentDropped
    | LineVoltageMeasured
)
# The line events an adapter reports. Caller ID, DTMF and tones are not among them: the host
# finds those in the audio. PortLost and PortReady are the link's own.
WIRE_EVENTS = (
    HookChanged,
    HookFlashed,
    RingStarted,
    RingStopped,
    PolarityReversed,
    LoopCurrentDropped,
    LineVoltageMeasured,
)


@dataclass(frozen=True, slots=True)
class EventReported:
    """Device -> host, reliable: a line event, as `gateway.line` gets it."""

    seq: int
    event: WireEvent


Command = (
    Ring | StopRing | GoOffHook | GoOnHook | Flash | SetGains | SetImpedance | SetCodec | Reset
)
Reliable = Command | EventReported
Message = Hello | HelloAck | Heartbeat | Ack | Nak | Stats | Log | Audio | Reliable


def to_line_event(msg: EventReported) -> LineEvent:
    """The `firmware_bridge.port` event an event frame carries."""
    return msg.event


def from_line_event(seq: int, event: LineEvent) -> EventReported:
    """Wrap a line event for the wire (the simulated adapter's side). Raises `ProtocolError`
    for an event that is not in `WIRE_EVENTS`."""
    if not isinstance(event, WIRE_EVENTS):
        raise ProtocolError(f"{type(event).__name__} is not carried by the adapter protocol")
    return EventReported(seq, event)


def ports_ready(ack: HelloAck) -> list[PortReady]:
    """One `PortReady` per port of a HELLO_ACK, at its default codec (the first it lists)."""
    return [PortReady(port, info.kind, info.codecs[0]) for port, info in enumerate(ack.ports)]


def l16_payload(pcm: NDArray[np.int16]) -> bytes:
    """The L16 AUDIO payload of one frame of samples (FRAME_SAMPLES int16): little-endian,
    each sample XOR `L16_XOR`. Raises `ProtocolError` for another shape or dtype."""
    if pcm.dtype != np.int16 or pcm.shape != (FRAME_SAMPLES,):
        raise ProtocolError(f"L16 wants {FRAME_SAMPLES} int16 samples, got {pcm.dtype} {pcm.shape}")
    return (pcm.astype("<i2").view("<u2") ^ np.uint16(L16_XOR)).tobytes()


def l16_samples(payload: bytes) -> NDArray[np.int16]:
    """The int16 samples of an L16 AUDIO payload (a new array, owned by the caller)."""
    return (np.frombuffer(payload, "<u2") ^ np.uint16(L16_XOR)).view("<i2").astype(np.int16)


def audio_payload(codec: Codec, pcm: NDArray[np.int16]) -> bytes:
    """The AUDIO payload of one frame (FRAME_SAMPLES int16) in `codec`."""
    if codec is Codec.L16:
        return l16_payload(pcm)
    if pcm.dtype != np.int16 or pcm.shape != (FRAME_SAMPLES,):
        raise ProtocolError(
            f"AUDIO wants {FRAME_SAMPLES} int16 samples, got {pcm.dtype} {pcm.shape}"
        )
    return (ulaw_encode(pcm) if codec is Codec.ULAW else alaw_encode(pcm)).tobytes()


def audio_samples(codec: Codec, payload: bytes) -> NDArray[np.int16]:
    """The int16 samples of an AUDIO payload in `codec` (a new array, owned by the caller)."""
    if codec is Codec.L16:
        return l16_samples(payload)
    codes = np.frombuffer(payload, np.uint8)
    return ulaw_decode(codes) if codec is Codec.ULAW else alaw_decode(codes)
