"""firmware_bridge.link against the simulated adapter, over a real pseudo-terminal.

Each test runs `AdapterSimulator` (the board, in front of `LineModel`s) on a pty and
`AdapterLink` on its slave end, as on a Pi with `/dev/tipring-adapter`. The simulator ticks
4x faster than real time (`FAST_TICK_S`) unless a test needs the host's own real-time
pacing (caller ID to a phone); protocol timers (heartbeats, the 1 s watchdog) stay real.
"""

from __future__ import annotations

import contextlib
import os
import time
from binascii import crc32
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.frame import FRAME_SAMPLES
from dsp.levels import dbm0_to_rms
from dsp.tones import ToneDetector
from firmware_bridge import messages as m
from firmware_bridge.adapter_port import AdapterPort
from firmware_bridge.errors import CommandFailed, PortUnsupported
from firmware_bridge.framing import CRC_BYTES, cobs_encode
from firmware_bridge.link import AdapterLink, PortSettings
from firmware_bridge.port import (
    AudioFrame,
    Codec,
    HookChanged,
    HookFlashed,
    LineEvent,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    PortLost,
    PortReady,
    RingStarted,
)
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.faults import Faults
from firmware_bridge.sim.line import LineModel, LineState
from firmware_bridge.sim.pty import RawPty

FAST_TICK_S = 0.005  # the lines run 4x real time
RIG_S = 30.0  # no test takes this long; a hang fails instead of blocking CI
CALLERID = CallerId("5551234567", "ALICE SMITH", "12061230")
E = TypeVar("E", bound=LineEvent)


@dataclass
class Rig:
    sim: AdapterSimulator
    link: AdapterLink
    lines: list[LineModel]

    def port(self, index: int) -> AdapterPort:
        return self.link.ports[index]


@asynccontextmanager
async def adapter_rig(
    kinds: Sequence[PortKind],
    *,
    tick_s: float = FAST_TICK_S,
    settings: dict[int, PortSettings] | None = None,
    faults: Faults | None = None,
    link_name: str | None = None,
    codecs: list[tuple[Codec, ...]] | None = None,
) -> AsyncIterator[Rig]:
    lines = [LineModel(k, port=i, echo=None, noise_dbm0=None) for i, k in enumerate(kinds)]
    sim = AdapterSimulator(lines, tick_s=tick_s, faults=faults, link=link_name, codecs=codecs)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(sim.run)
            link = AdapterLink(link_name or path, settings=settings)
            await nursery.start(link.run)
            rig = Rig(sim, link, lines)
            for port in link.ports:
                await next_event(port, PortReady)
            yield rig
            nursery.cancel_scope.cancel()


async def next_event(port: AdapterPort, kind: type[E], limit_s: float = 5.0) -> E:
    """The next event of `kind` on `port` (others are skipped)."""
    with trio.fail_after(limit_s):
        async for event in port.events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"port {port.port}: events ended before a {kind.__name__}")


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll `cond` (state of the simulator, which has no events to wait on) every 5 ms."""
    with trio.fail_after(limit_s):
        while not cond():  # noqa: ASYNC110
            await trio.sleep(0.005)


def noise_frames(count: int, seed: int, level_dbm0: float = -20.0) -> list[NDArray[np.int16]]:
    x = np.random.default_rng(seed).standard_normal((count, FRAME_SAMPLES))
    pcm = np.clip(np.round(x * dbm0_to_rms(level_dbm0)), -32767, 32767).astype(np.int16)
    pcm[pcm == 0] = 1  # every frame non-zero: silence in the logs is never ours
    return list(pcm)


async def exchange(port: AdapterPort, send: list[NDArray[np.int16]]) -> list[AudioFrame]:
    """Talk on `port` paced by what it receives (spec §7: one frame out per frame in), with
    two frames of lead; returns the frames received meanwhile (and 20 more). Frames queued
    before the call are dropped first: a backlog would pace nothing."""
    with contextlib.suppress(trio.WouldBlock):
        while True:
            port.frames.receive_nowait()
    got: list[AudioFrame] = []
    queue = list(send)
    for frame in queue[:2]:
        port.send_audio(frame)
    del queue[:2]
    async for frame in port.frames:
        got.append(frame)
        if queue:
            port.send_audio(queue.pop(0))
        elif len(got) >= len(send) + 20:
            return got
    return got


def nonzero_frames(log: NDArray[np.int16]) -> list[NDArray[np.int16]]:
    frames = log.reshape(-1, FRAME_SAMPLES)
    return [f for f in frames if f.any()]


# --- a call on each kind of port -------------------------------------------------------------


async def test_fxo_call_ring_callerid_answer_audio_bit_exact_both_ways_and_far_hangup() -> None:
    settings = {0: PortSettings(codec=Codec.L16)}
    async with adapter_rig([PortKind.FXO], settings=settings) as rig:
        line, port = rig.lines[0], rig.port(0)
        assert port.codec is Codec.L16
        line.incoming_call(CALLERID, rings=4, cadence_ms=(400, 2000))
        far = np.concatenate(noise_frames(100, seed=1))
        line.play(far)
        line.hang_up("loop_drop")
        await next_event(port, RingStarted)
        decoder, found = CallerIdDecoder("bell202"), []
        with trio.fail_after(5):  # the FSK burst between the rings, heard on-hook
            while not found:
                found = decoder.feed((await port.frames.receive()).pcm)
        assert found == [CALLERID]
        await next_event(port, RingStarted)
        await port.off_hook()
        assert line.state is LineState.CONNECTED
        sent = noise_frames(150, seed=2)
        got = await exchange(port, sent)
        # line -> host: every frame exactly what the board sent, the far party's audio in it
        board = dict(rig.sim.ports[0].sent)
        assert all(np.array_equal(f.pcm, board[f.seq]) for f in got if not f.concealed)
        heard = np.concatenate([f.pcm for f in got])
        at = int(np.flatnonzero(heard)[0])
        assert np.array_equal(heard[at : at + far.size], far)
        # host -> line: exactly what we sent, in order (the board plays silence around it)
        assert all(np.array_equal(a, b) for a, b in zip(
            nonzero_frames(line.tx_log), sent, strict=True))  # fmt: skip
        drop = await next_event(port, LoopCurrentDropped)
        assert drop.duration_ms == pytest.approx(600.0)
        await port.on_hook()
        assert line.state is LineState.IDLE
        print(f"port stats: {port.stats}; board: {rig.sim.ports[0].counters}")


@pytest.mark.parametrize("method", ["polarity", "busy"])
async def test_fxo_far_end_hangup_signals_reach_the_host(method: str) -> None:
    async with adapter_rig([PortKind.FXO]) as rig:
        line, port = rig.lines[0], rig.port(0)
        line.incoming_call(rings=3, cadence_ms=(400, 800))
        line.silence(300.0)
        line.hang_up(method)  # type: ignore[arg-type]
        await next_event(port, RingStarted)
        await port.off_hook()
        if method == "polarity":
            await next_event(port, PolarityReversed)
            return
        detector = ToneDetector("us")
        with trio.fail_after(10):
            while not (tones := detector.feed((await port.frames.receive()).pcm)):
                pass
        assert tones[0].tone == "busy"


async def test_fxs_phone_off_hook_audio_flash_and_on_hook() -> None:
    async with adapter_rig([PortKind.FXS, PortKind.FXS], settings={1: PortSettings(Codec.L16)}) \
            as rig:  # fmt: skip
        line, port = rig.lines[1], rig.port(1)
        line.phone_off_hook()
        assert await next_event(port, HookChanged) == HookChanged(1, True)
        speech = np.concatenate(noise_frames(50, seed=3))
        line.play(speech)
        sent = noise_frames(60, seed=4)
        got = await exchange(port, sent)
        heard = np.concatenate([f.pcm for f in got])
        at = int(np.flatnonzero(heard)[0])
        assert np.array_equal(heard[at : at + speech.size], speech)
        assert all(np.array_equal(a, b) for a, b in zip(
            nonzero_frames(line.tx_log), sent, strict=True))  # fmt: skip
        line.phone_flash(400.0)
        flash = await next_event(port, HookFlashed)
        assert flash.duration_ms == pytest.approx(400.0)
        line.phone_on_hook()
        t0 = time.monotonic()
        assert await next_event(port, HookChanged) == HookChanged(1, False)
        waited_line_ms = (time.monotonic() - t0) * 1000 * 0.020 / FAST_TICK_S
        print(f"on-hook reported {waited_line_ms:.0f} ms of line time after the phone hung up")
        assert waited_line_ms >= m.FLASH_MAX_MS * 0.9
        assert rig.port(0).stats.frames_in == 0  # the other phone stayed on-hook: no audio


async def test_fxs_ring_sends_callerid_between_the_rings_and_the_phone_answers() -> None:
    async with adapter_rig([PortKind.FXS], tick_s=0.020) as rig:  # the host paces caller ID
        line, port = rig.lines[0], rig.port(0)
        line.answer_when_rung(2)
        await port.ring((300, 1800), CALLERID)
        assert line.state is LineState.RINGING
        assert await next_event(port, HookChanged, limit_s=6.0) == HookChanged(0, True)
        print(f"the phone displayed {line.received_callerid}")
        assert line.received_callerid == [CALLERID]
        assert not line.ring_on


# --- commands and their answers ---------------------------------------------------------------


async def test_refusals_from_the_board_map_to_typed_errors() -> None:
    codecs = [(Codec.ULAW, Codec.ALAW), (Codec.ULAW,)]
    async with adapter_rig([PortKind.FXO, PortKind.FXS], codecs=codecs) as rig:
        fxo = rig.port(0)
        with pytest.raises(CommandFailed, match="flash failed: the adapter says BUSY"):
            await fxo.flash(500)  # on-hook
        with pytest.raises(CommandFailed, match="the adapter says BAD_ARGUMENT"):
            await fxo.set_gains(15.0, 0.0)  # the board's range is -20..+12 dB
        with pytest.raises(PortUnsupported, match="the adapter says UNSUPPORTED"):
            await rig.link.command(0, "ring", m.Ring(0, 0, (100, 100)))
        with pytest.raises(PortUnsupported, match="the adapter says NO_SUCH_PORT"):
            await rig.link.command(7, "off_hook", m.GoOffHook(0, 7))
        with pytest.raises(PortUnsupported, match="l16 is not one of"):
            await rig.port(1).set_codec(Codec.L16)
        await fxo.set_codec(Codec.ALAW)
        await fxo.set_gains(-6.0, 3.5)
        assert (rig.sim.ports[0].codec, rig.sim.ports[0].tx_db, rig.sim.ports[0].rx_db) == (
            Codec.ALAW, -6.0, 3.5)  # fmt: skip


async def test_commands_get_through_one_percent_byte_corruption_exactly_once() -> None:
    faults = Faults(seed=7)
    async with adapter_rig([PortKind.FXO], faults=faults) as rig, trio.open_nursery() as talk:
        line, port = rig.lines[0], rig.port(0)
        line.incoming_call(rings=2, cadence_ms=(200, 400))
        await next_event(port, RingStarted)
        await port.off_hook()
        talk.start_soon(exchange, port, noise_frames(10_000, seed=5))  # audio both ways
        faults.corrupt_rate = 0.01
        gains = [round(0.1 * i - 10.0, 1) for i in range(150)]
        for db in gains:
            await port.set_gains(db, 0.0)
        faults.corrupt_rate = 0.0
        talk.cancel_scope.cancel()
        done = [c.tx_db for c in rig.sim.ports[0].executed if isinstance(c, m.SetGains)]
        resent, losses = rig.link._sender.retransmits, rig.link.stats.losses
        print(
            f"150 commands at 1 % byte corruption, audio flowing: {faults.corrupted} bytes "
            f"hit, {resent} resent, {rig.sim.stats.duplicates} answered again, "
            f"{port.stats.concealed} audio frames concealed, {losses} link losses"
        )
        assert done == gains  # each once, in order
        assert losses == 0
        assert resent > 0
        assert rig.sim.stats.duplicates > 0  # lost answers were repeated, not acted on again


async def test_garbage_on_the_wire_is_dropped_and_counted_and_the_call_goes_on() -> None:
    async with adapter_rig([PortKind.FXO]) as rig:
        line, port = rig.lines[0], rig.port(0)
        line.incoming_call(rings=2, cadence_ms=(200, 400))
        await next_event(port, RingStarted)
        await port.off_hook()
        rng = np.random.default_rng(3)
        before = port.stats.frames_in
        for _ in range(50):
            rig.sim.inject(rng.integers(0, 256, int(rng.integers(1, 700)), np.uint8).tobytes())
            await trio.sleep(0.01)
        await until(lambda: port.stats.frames_in > before + 100)
        decoder = rig.link._decoder
        bad = decoder.crc_errors + decoder.cobs_errors + decoder.oversize + decoder.malformed
        print(f"after 50 bursts of garbage: {bad} bad frames dropped, {decoder.frames_ok} good")
        assert bad > 0
        assert rig.link.stats.losses == 0
        await port.on_hook()


# --- losing the adapter, and the adapter losing us ---------------------------------------------


async def test_firmware_reset_mid_call_is_seen_within_a_second_and_the_port_comes_back() -> None:
    async with adapter_rig([PortKind.FXO]) as rig:
        line, port = rig.lines[0], rig.port(0)
        line.incoming_call(rings=2, cadence_ms=(200, 400))
        await next_event(port, RingStarted)
        await port.off_hook()
        await port.frames.receive()
        t0 = trio.current_time()
        rig.sim.reset_firmware()
        lost = await next_event(port, PortLost)
        seen_s = trio.current_time() - t0
        print(f"firmware reset seen after {seen_s * 1000:.0f} ms: {lost.reason}")
        assert seen_s < 1.0
        assert "restarted" in lost.reason
        assert line.state is not LineState.CONNECTED  # the board's safe state hung up
        await next_event(port, PortReady)
        line.incoming_call(rings=2, cadence_ms=(200, 400))
        await next_event(port, RingStarted)
        await port.off_hook()
        assert line.state is LineState.CONNECTED


async def test_unplugged_adapter_comes_back_behind_its_link_and_works(tmp_path: Path) -> None:
    name = str(tmp_path / "tipring-adapter")
    async with adapter_rig([PortKind.FXS], link_name=name) as rig:
        port = rig.port(0)
        rig.sim.unplug()
        lost = await next_event(port, PortLost)
        print(f"unplugged: {lost.reason}")
        assert not await trio.Path(name).exists()
        await trio.sleep(0.5)
        rig.sim.plug_in()
        await next_event(port, PortReady, limit_s=8.0)
        assert rig.link.stats.opens >= 2
        rig.lines[0].phone_off_hook()
        assert await next_event(port, HookChanged) == HookChanged(0, True)
        await port.frames.receive()


async def test_a_hung_adapter_is_declared_lost_within_the_link_timeout() -> None:
    async with adapter_rig([PortKind.FXO]) as rig:
        t0 = trio.current_time()
        rig.sim.hang()
        await next_event(rig.port(0), PortLost)
        seen_s = trio.current_time() - t0
        print(f"hung adapter declared lost after {seen_s * 1000:.0f} ms")
        assert seen_s < m.LINK_TIMEOUT_S + 0.3
        rig.sim.hang(False)
        await next_event(rig.port(0), PortReady, limit_s=8.0)


async def test_when_the_host_goes_away_the_board_hangs_up_and_stops_ringing() -> None:
    lines = [LineModel(PortKind.FXO, port=0), LineModel(PortKind.FXS, port=1)]
    sim = AdapterSimulator(lines, tick_s=FAST_TICK_S)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(sim.run)
            host = trio.CancelScope()  # the host process's lifetime
            link = AdapterLink(path)
            nursery.start_soon(_run_until_cancelled, link, host)
            await until(lambda: link.linked)
            lines[0].incoming_call(rings=3, cadence_ms=(200, 400))
            await next_event(link.ports[0], RingStarted)
            await link.ports[0].off_hook()
            await link.ports[1].ring((2000, 4000))
            host.cancel()  # the host process dies
            t0 = trio.current_time()
            await until(lambda: not sim.linked, limit_s=3.0)
            print(f"board noticed the host gone after {(trio.current_time() - t0) * 1000:.0f} ms")
            assert lines[0].state is LineState.IDLE
            assert lines[1].state is LineState.IDLE
            nursery.cancel_scope.cancel()


async def _run_until_cancelled(link: AdapterLink, scope: trio.CancelScope) -> None:
    with scope:
        await link.run()


async def test_an_adapter_of_another_major_version_is_named_not_timed_out() -> None:
    with RawPty.open() as pty, trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer_as_major_2, pty)
            link = AdapterLink(pty.slave_path)
            nursery.start_soon(link.run)
            await until(lambda: "major 2" in link.last_error, limit_s=8.0)
            print(f"link says: {link.last_error}")
            assert not link.linked
            nursery.cancel_scope.cancel()


async def _answer_as_major_2(pty: RawPty) -> None:
    """A board of protocol 2.x: answers everything with a HELLO_ACK framed as major 2."""
    inner = bytes((2, m.MsgType.HELLO_ACK)) + b"\x91\x00"
    frame = cobs_encode(inner + crc32(inner).to_bytes(CRC_BYTES, "little")) + b"\0"
    while True:
        await trio.lowlevel.wait_readable(pty.master_fd)
        os.read(pty.master_fd, 4096)
        os.write(pty.master_fd, frame)
