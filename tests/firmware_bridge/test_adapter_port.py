"""firmware_bridge.adapter_port: an adapter port's audio, events and commands, on a fake link."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
import trio
from numpy.typing import NDArray
from trio.testing import MockClock

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.dtmf import DtmfDetector
from dsp.frame import FRAME_SAMPLES
from dsp.levels import tone
from firmware_bridge import messages as m
from firmware_bridge.adapter_port import MAX_CONCEAL_FRAMES, AdapterPort
from firmware_bridge.errors import CommandFailed, LinkBroken, PortUnsupported
from firmware_bridge.port import (
    AudioFrame,
    Codec,
    HookChanged,
    LineEvent,
    LineVoltageMeasured,
    PortKind,
    PortLost,
    PortReady,
)
from firmware_bridge.protocol import decode_frame

FRAME_S = 0.020


@dataclass
class FakeLink:
    """The link side of a port: records what the port queues and sends, answers commands."""

    nursery: trio.Nursery
    device: str = "fake"
    linked: bool = True
    accept_audio: bool = True
    answer: m.NakReason | None = None
    audio: list[tuple[float, m.Audio]] = field(default_factory=list)
    commands: list[m.Command] = field(default_factory=list)

    def queue_audio(self, wire: bytes) -> bool:
        if not self.accept_audio:
            return False
        msg = decode_frame(wire[:-1])  # without the 0x00 delimiter
        assert isinstance(msg, m.Audio)
        self.audio.append((trio.current_time(), msg))
        return True

    async def command(self, port: int, name: str, msg: m.Command) -> None:
        if not self.linked:
            raise LinkBroken(self.device, "down")
        self.commands.append(msg)
        if self.answer is not None:
            raise CommandFailed(port, name, self.answer.name)

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        self.nursery.start_soon(fn)

    def pcm_sent(self) -> NDArray[np.int16]:
        return np.concatenate([m.audio_samples(a.codec, a.payload) for _, a in self.audio])


@asynccontextmanager
async def port_rig(kind: PortKind, codec: Codec = Codec.L16) -> AsyncIterator[
    tuple[AdapterPort, FakeLink]
]:  # fmt: skip
    async with trio.open_nursery() as nursery:
        link = FakeLink(nursery)
        port = AdapterPort(link, 3, kind, (codec, Codec.ULAW))
        port.ready(codec)
        assert port.events.receive_nowait() == PortReady(3, kind, codec)
        yield port, link
        nursery.cancel_scope.cancel()


def audio(seq: int, pcm: NDArray[np.int16], codec: Codec = Codec.L16, ts: int | None = None) -> (
    m.Audio
):  # fmt: skip
    ts = seq * FRAME_SAMPLES if ts is None else ts
    return m.Audio(3, seq % 65536, ts % (1 << 32), codec, m.audio_payload(codec, pcm))


def sine_frames(count: int) -> list[NDArray[np.int16]]:
    x = tone((440.0,), count * 20.0, -12.0)
    return [x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(count)]


def drain(port: AdapterPort) -> list[AudioFrame]:
    out = []
    while True:
        try:
            out.append(port.frames.receive_nowait())
        except trio.WouldBlock:
            return out


def events(port: AdapterPort) -> list[LineEvent]:
    out = []
    while True:
        try:
            out.append(port.events.receive_nowait())
        except trio.WouldBlock:
            return out


# --- received audio --------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [Codec.L16, Codec.ULAW, Codec.ALAW])
async def test_received_frames_pass_through_unchanged_and_in_order(codec: Codec) -> None:
    async with port_rig(PortKind.FXO, codec) as (port, _):
        sent = sine_frames(10)
        for i, pcm in enumerate(sent):
            port.on_audio(audio(65530 + i, pcm, codec))  # across the seq wrap
        got = drain(port)
        assert [f.seq for f in got] == [(65530 + i) % 65536 for i in range(10)]
        want = [m.audio_samples(codec, m.audio_payload(codec, p)) for p in sent]
        assert all(np.array_equal(f.pcm, w) for f, w in zip(got, want, strict=True))
        assert not any(f.concealed for f in got)


async def test_lost_frames_are_concealed_and_the_stream_stays_continuous() -> None:
    async with port_rig(PortKind.FXO) as (port, _):
        frames = sine_frames(30)
        got = []
        for i, pcm in enumerate(frames):
            if i not in (10, 11, 20):
                port.on_audio(audio(i, pcm))
                got += drain(port)
        assert [f.seq for f in got] == list(range(30))
        assert [f.seq for f in got if f.concealed] == [10, 11, 20]
        assert [f.timestamp for f in got] == [i * FRAME_SAMPLES for i in range(30)]
        assert port.stats.concealed == 3
        # the concealment carries the sine on (no hole): within 6 dB of the signal's level
        rms = [float(np.sqrt(np.mean(got[i].pcm.astype(np.float64) ** 2))) for i in (9, 10, 11)]
        print(f"rms before and in the loss: {rms}")
        assert min(rms[1:]) > rms[0] / 2
        assert all(np.array_equal(got[i].pcm, frames[i]) for i in range(10))  # exact until then


async def test_a_long_gap_restarts_the_stream_instead_of_concealing() -> None:
    async with port_rig(PortKind.FXO) as (port, _):
        frames = sine_frames(3)
        port.on_audio(audio(0, frames[0]))
        port.on_audio(audio(MAX_CONCEAL_FRAMES + 2, frames[1]))
        got = drain(port)
        assert [(f.seq, f.concealed) for f in got] == [(0, False), (MAX_CONCEAL_FRAMES + 2, False)]
        assert np.array_equal(got[1].pcm, frames[1])
        assert port.stats.restarts == 1


async def test_a_pause_in_the_timestamps_is_not_a_loss() -> None:
    async with port_rig(PortKind.FXO) as (port, _):
        frames = sine_frames(2)
        port.on_audio(audio(0, frames[0], ts=0))
        port.on_audio(audio(1, frames[1], ts=8000))  # next seq, 1 s later: the path reopened
        got = drain(port)
        assert [f.concealed for f in got] == [False, False]
        assert port.stats.restarts == 1


async def test_late_and_repeated_frames_are_dropped() -> None:
    async with port_rig(PortKind.FXO) as (port, _):
        frames = sine_frames(4)
        for seq in (0, 1, 2, 1, 0, 3):
            port.on_audio(audio(seq, frames[seq]))
        assert [f.seq for f in drain(port)] == [0, 1, 2, 3]
        assert port.stats.late == 2


async def test_a_consumer_that_stalls_loses_frames_not_the_link() -> None:
    async with port_rig(PortKind.FXO) as (port, _):
        for i, pcm in enumerate(sine_frames(40)):
            port.on_audio(audio(i, pcm))
        assert len(drain(port)) == 16
        assert port.frames_dropped == 24


# --- sent audio ------------------------------------------------------------------------------


async def test_sent_frames_count_seq_and_timestamp_and_pause_moves_the_timestamp(
    autojump_clock: MockClock,
) -> None:
    async with port_rig(PortKind.FXS, Codec.ULAW) as (port, link):
        port.codec = Codec.ULAW
        for pcm in sine_frames(3):
            port.send_audio(pcm)
            await trio.sleep(FRAME_S)
        await trio.sleep(1.0)
        port.send_audio(sine_frames(1)[0])
        sent = [a for _, a in link.audio]
        assert [a.seq for a in sent] == [0, 1, 2, 3]
        assert [a.timestamp for a in sent][:3] == [0, 160, 320]
        assert sent[3].timestamp == pytest.approx(320 + 8000 + 160, abs=160)
        assert all(a.codec is Codec.ULAW and a.port == 3 for a in sent)


async def test_send_audio_drops_and_counts_when_the_link_cannot_take_it() -> None:
    async with port_rig(PortKind.FXS) as (port, link):
        link.accept_audio = False
        port.send_audio(np.zeros(FRAME_SAMPLES, np.int16))
        assert port.stats.tx_dropped == 1
        with pytest.raises(ValueError, match="send_audio wants 160 samples"):
            port.send_audio(np.zeros(80, np.int16))


# --- commands --------------------------------------------------------------------------------


async def test_commands_a_port_kind_cannot_do_never_reach_the_link() -> None:
    async with port_rig(PortKind.FXO) as (port, link):
        for call in (port.ring(), port.stop_ring()):
            with pytest.raises(PortUnsupported, match="not possible on an fxo port"):
                await call
    async with port_rig(PortKind.FXS) as (port, link):
        for call in (port.off_hook(), port.on_hook(), port.flash(), port.dial("1")):
            with pytest.raises(PortUnsupported, match="not possible on an fxs port"):
                await call
        assert link.commands == []


@pytest.mark.parametrize(
    ("cadence", "fails"),
    [((2000, 4000), False), ((400, 200, 400, 2000), False), ((2000,), True),
     ((0, 4000), True), ((1, 2) * 5, True), ((2000, 70000), True)],
)  # fmt: skip
async def test_ring_cadence_is_checked_before_it_is_sent(
    cadence: tuple[int, ...], fails: bool
) -> None:
    async with port_rig(PortKind.FXS) as (port, link):
        if fails:
            with pytest.raises(CommandFailed, match="cadence"):
                await port.ring(cadence)
            assert link.commands == []
        else:
            await port.ring(cadence)
            assert link.commands == [m.Ring(0, 3, cadence)]


async def test_ring_sends_caller_id_as_audio_in_the_first_silent_interval(
    autojump_clock: MockClock,
) -> None:
    who = CallerId("5551234567", "ALICE SMITH", "12061230")
    async with port_rig(PortKind.FXS, Codec.ULAW) as (port, link):
        port.codec = Codec.ULAW
        start = trio.current_time()
        await port.ring((2000, 4000), who)
        await trio.sleep(2.61)
        port.send_audio(np.zeros(FRAME_SAMPLES, np.int16))  # mid-burst: dropped, counted
        await trio.sleep(1.5)
        first_at = link.audio[0][0] - start
        print(f"caller ID starts {first_at * 1000:.0f} ms after RING (want 2500)")
        assert first_at == pytest.approx(2.5, abs=0.001)
        gaps = np.diff([t for t, _ in link.audio])
        assert np.allclose(gaps, FRAME_S)
        assert CallerIdDecoder("bell202").feed(link.pcm_sent()) == [who]
        assert port.stats.tx_displaced == 1


async def test_off_hook_stops_the_caller_id_being_sent(autojump_clock: MockClock) -> None:
    async with port_rig(PortKind.FXS) as (port, link):
        await port.ring((2000, 4000), CallerId("5551234567", None, "12061230"))
        await trio.sleep(2.6)
        port.on_event(HookChanged(3, True))  # the phone was picked up mid-burst
        sent = len(link.audio)
        await trio.sleep(1.0)
        assert 0 < sent == len(link.audio)


async def test_dial_goes_off_hook_and_sends_the_digits_as_dtmf(autojump_clock: MockClock) -> None:
    async with port_rig(PortKind.FXO) as (port, link):
        await port.dial("911*#")
        assert link.commands == [m.GoOffHook(0, 3)]
        keys = DtmfDetector().feed(link.pcm_sent())
        assert "".join(k.digit for k in keys) == "911*#"
        with pytest.raises(CommandFailed, match="not a string of 0-9"):
            await port.dial("12x")


async def test_a_refused_command_raises_with_the_reason() -> None:
    async with port_rig(PortKind.FXO) as (port, link):
        link.answer = m.NakReason.BUSY
        with pytest.raises(CommandFailed, match="flash failed: BUSY"):
            await port.flash(600)
        with pytest.raises(CommandFailed, match="want within"):
            await port.set_gains(40.0, 0.0)
        with pytest.raises(PortUnsupported, match="alaw is not one of"):
            await port.set_codec(Codec.ALAW)


# --- events ----------------------------------------------------------------------------------


async def test_events_before_ready_come_after_port_ready_and_lost_is_reported_once() -> None:
    async with trio.open_nursery() as nursery:
        port = AdapterPort(FakeLink(nursery), 0, PortKind.FXO, (Codec.ULAW,))
        port.on_event(LineVoltageMeasured(0, 48.0))
        assert events(port) == []
        port.ready(Codec.ULAW)
        assert events(port) == [PortReady(0, PortKind.FXO, Codec.ULAW),
                                LineVoltageMeasured(0, 48.0)]  # fmt: skip
        port.lost("unplugged")
        port.lost("unplugged")
        assert events(port) == [PortLost(0, "unplugged")]
