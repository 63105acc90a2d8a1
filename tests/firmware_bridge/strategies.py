"""Hypothesis strategies for the adapter protocol: every message with random in-range fields
(`adapter_messages()`), shared by the protocol tests and the link tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from firmware_bridge.messages import (
    AUDIO_PAYLOAD_BYTES,
    MAX_CADENCE_ENTRIES,
    MAX_ID_BYTES,
    MAX_LOG_BYTES,
    MAX_PORTS,
    MIN_PEER_FRAME_BYTES,
    Ack,
    Audio,
    EventReported,
    Flash,
    GoOffHook,
    GoOnHook,
    Heartbeat,
    Hello,
    HelloAck,
    Impedance,
    Log,
    LogLevel,
    Message,
    Nak,
    NakReason,
    PortInfo,
    PortStats,
    Reset,
    Ring,
    SetCodec,
    SetGains,
    SetImpedance,
    Stats,
    StopRing,
    WireEvent,
)
from firmware_bridge.port import (
    Codec,
    HookChanged,
    HookFlashed,
    LineVoltageMeasured,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    RingStarted,
    RingStopped,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
nonces = st.integers(1, 0xFFFF_FFFF)
ports = st.integers(0, MAX_PORTS - 1)
frame_caps = st.integers(MIN_PEER_FRAME_BYTES, 512)
# Durations and volts as port.py holds them: floats that are whole ms / whole mV on the wire.
durations_ms = st.integers(0, 0xFFFF).map(float)
tenths_db = st.integers(-300, 300).map(lambda k: k / 10)


def utf8_text(max_bytes: int) -> st.SearchStrategy[str]:
    """Any text (not only ASCII) of at most `max_bytes` UTF-8 bytes."""
    return st.text(max_size=max_bytes).map(
        lambda s: s.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    )


@st.composite
def audio(draw: st.DrawFn, codec: Codec | None = None) -> Audio:
    chosen = draw(st.sampled_from(Codec)) if codec is None else codec
    size = AUDIO_PAYLOAD_BYTES[chosen]
    payload = draw(st.binary(min_size=size, max_size=size))
    return Audio(draw(ports), draw(u16), draw(u32), chosen, payload)


def wire_events() -> st.SearchStrategy[WireEvent]:
    return st.one_of(
        st.builds(HookChanged, ports, st.booleans()),
        st.builds(HookFlashed, ports, durations_ms),
        st.builds(RingStarted, ports),
        st.builds(RingStopped, ports),
        st.builds(PolarityReversed, ports),
        st.builds(LoopCurrentDropped, ports, durations_ms),
        st.builds(
            LineVoltageMeasured, ports, st.integers(-250_000, 250_000).map(lambda mv: mv / 1000)
        ),
    )


port_infos = st.builds(
    PortInfo,
    st.sampled_from(PortKind),
    st.lists(st.sampled_from(Codec), min_size=1, max_size=3, unique=True).map(tuple),
)
# RING cadences: 1 to 4 (on, off) pairs, flattened.
cadences = st.lists(
    st.tuples(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF)),
    min_size=1,
    max_size=MAX_CADENCE_ENTRIES // 2,
).map(lambda pairs: tuple(ms for pair in pairs for ms in pair))

# One strategy per message class, so that tests can run each type on its own.
MESSAGE_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    Hello: st.builds(Hello, u8, nonces, frame_caps, u32),
    HelloAck: st.builds(
        HelloAck,
        u8,
        nonces,
        nonces,
        frame_caps,
        u32,
        utf8_text(MAX_ID_BYTES),
        utf8_text(MAX_ID_BYTES),
        st.lists(port_infos, min_size=1, max_size=MAX_PORTS).map(tuple),
    ),
    Heartbeat: st.builds(Heartbeat, nonces, u32),
    Ack: st.builds(Ack, u16),
    Nak: st.builds(Nak, u16, st.sampled_from(NakReason)),
    Stats: st.builds(
        Stats,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        u32,
        st.lists(st.builds(PortStats, u32, u32, u32, u32, u32), max_size=MAX_PORTS).map(tuple),
    ),
    Log: st.builds(Log, st.sampled_from(LogLevel), utf8_text(MAX_LOG_BYTES)),
    Audio: audio(),
    Ring: st.builds(Ring, u16, ports, cadences),
    StopRing: st.builds(StopRing, u16, ports),
    GoOffHook: st.builds(GoOffHook, u16, ports),
    GoOnHook: st.builds(GoOnHook, u16, ports),
    Flash: st.builds(Flash, u16, ports, st.integers(1, 0xFFFF)),
    SetGains: st.builds(SetGains, u16, ports, tenths_db, tenths_db),
    SetImpedance: st.builds(SetImpedance, u16, ports, st.sampled_from(Impedance)),
    SetCodec: st.builds(SetCodec, u16, ports, st.sampled_from(Codec)),
    Reset: st.builds(Reset, u16),
    EventReported: st.builds(EventReported, u16, wire_events()),
}


def adapter_messages() -> st.SearchStrategy[Message]:
    """Any adapter protocol message, every field random within its wire range."""
    return st.one_of(*MESSAGE_STRATEGIES.values())
