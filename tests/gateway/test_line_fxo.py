"""gateway.line_fxo, incoming calls: ring counting, caller ID (reported or decoded from the
audio), the answer rules, and every way the far end hangs up; a real `FxoLine` on a
`FakePort`, on the autojump clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from dsp.callerid import CallerId, encode
from dsp.tones import generate
from firmware_bridge.port import (
    CallerIdReported,
    DtmfReported,
    LineEvent,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    RingStarted,
    RingStopped,
    ToneReported,
)
from gateway.line import CallerRule, FxoConfig, FxoLine, FxoState, LineConfig
from gateway.line_rules import parse_window
from tests.gateway.fake_port import FakePort
from tests.gateway.line_rig import RecordingStarter, Rig, line_rig
from tests.signals import scale_to_dbm0, speech

CALLER = CallerId("5551234567", "ALICE SMITH", "03031000")
FXO = PortKind.FXO


def fxo(**settings: object) -> LineConfig:
    return LineConfig(fxo=FxoConfig(**settings))  # type: ignore[arg-type]


async def ring(port: FakePort, rings: int, callerid: CallerId | None = CALLER, *,
               as_audio: bool = False, on_s: float = 2.0, off_s: float = 4.0) -> None:  # fmt: skip
    """The exchange rings `rings` times (US cadence) with caller ID 0.5 s after ring 1 (a
    port event, or FSK audio as the tipring adapter passes it), until the line answers."""
    for k in range(rings):
        port.emit(RingStarted(port.port))
        await trio.sleep(on_s)
        port.emit(RingStopped(port.port))
        if k == 0 and callerid is not None:
            await trio.sleep(0.5)
            if as_audio:
                port.play(encode(callerid))
            else:
                port.emit(CallerIdReported(port.port, callerid))
            await trio.sleep(off_s - 0.5)
        else:
            await trio.sleep(off_s)
        if port.off_hook_state:
            return


async def answered_call(rig: Rig) -> None:
    rig.nursery.start_soon(ring, rig.port, 6)
    await rig.call_started()


@pytest.mark.parametrize("rings", [2, 4])
async def test_answers_after_n_rings_with_the_caller_id(
    autojump_clock: MockClock, rings: int
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=rings)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(ring, rig.port, 6)
        call = await rig.call_started()
        answered_at = rig.port.commands[0].at_s - start
        assert rig.port.names() == ["off_hook"]
        assert answered_at == pytest.approx(6.0 * (rings - 1) + 2.0, abs=0.05)  # ring N ended
        assert (call.spec.direction, call.spec.profile, call.spec.callerid) == (
            "inbound", "default", CALLER)  # fmt: skip
        assert call.spec.kind is PortKind.FXO
        assert rig.line.state is FxoState.CONNECTED


async def test_decodes_fsk_caller_id_from_the_audio(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=2)) as rig:
        rig.nursery.start_soon(lambda: ring(rig.port, 6, as_audio=True))
        call = await rig.call_started()
        assert call.spec.callerid == CALLER


async def test_answering_on_ring_one_waits_for_the_caller_id(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=1)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(ring, rig.port, 6)
        call = await rig.call_started()
        assert rig.port.commands[0].at_s - start == pytest.approx(2.5, abs=0.05)
        assert call.spec.callerid == CALLER


async def test_answering_on_ring_one_without_caller_id_answers_at_ring_two(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=1)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(lambda: ring(rig.port, 6, callerid=None))
        call = await rig.call_started()
        assert rig.port.commands[0].at_s - start == pytest.approx(6.0, abs=0.05)
        assert call.spec.callerid is None


@pytest.mark.parametrize(
    ("settings", "callerid"),
    [
        ({"deny": ("555123*",)}, CALLER),
        ({"allow": ("+49*", "5550000")}, CALLER),
        ({"deny": ("anonymous",)}, CallerId(number_reason="private")),
        ({"deny": ("anonymous",)}, None),
        ({"default_profile": "", "rules": (CallerRule(numbers=("999*",), profile="x"),)}, CALLER),
    ],
)
async def test_lets_ring_when_the_rules_say_no(
    autojump_clock: MockClock, settings: dict[str, object], callerid: CallerId | None
) -> None:
    async with line_rig(FXO, fxo(**settings)) as rig:
        await ring(rig.port, 5, callerid)
        assert rig.line.state is FxoState.LETTING_RING
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.commands == []
        assert rig.starter.calls == []


OFFICE = CallerRule(hours=(parse_window("mon-fri 09:00-17:00", "t"),), profile="office")
VIP = CallerRule(numbers=("555 123-4567",), profile="vip")
CLOSED = CallerRule(answer=False)


@pytest.mark.parametrize(
    ("now_utc", "callerid", "profile"),
    [
        (datetime(2025, 3, 3, 8, 30, tzinfo=UTC), None, "office"),  # Mon 09:30 in Berlin
        (datetime(2025, 3, 3, 16, 30, tzinfo=UTC), None, None),  # Mon 17:30 in Berlin
        (datetime(2025, 3, 8, 10, 0, tzinfo=UTC), None, None),  # Saturday
        (datetime(2025, 3, 8, 10, 0, tzinfo=UTC), CALLER, "vip"),  # a VIP, any time
    ],
)
async def test_business_hours_pick_the_agent_in_the_line_time_zone(
    autojump_clock: MockClock, now_utc: datetime, callerid: CallerId | None, profile: str | None
) -> None:
    config = fxo(rules=(VIP, OFFICE, CLOSED), timezone="Europe/Berlin")
    async with line_rig(FXO, config, wall_clock=lambda: now_utc) as rig:
        rig.nursery.start_soon(ring, rig.port, 3, callerid)
        await trio.sleep(20.0)
        assert [c.spec.profile for c in rig.starter.calls] == ([profile] if profile else [])


async def test_a_new_ringing_call_after_the_caller_gave_up_is_counted_afresh(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=3)) as rig:
        await ring(rig.port, 2)  # gives up after 2 rings
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        rig.nursery.start_soon(lambda: ring(rig.port, 6, CallerId("5559999")))
        call = await rig.call_started()
        assert call.spec.callerid == CallerId("5559999")
        assert isinstance(rig.line, FxoLine)
        assert rig.line.rings == 3


# --- the far end hangs up ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (LoopCurrentDropped(0, 600.0), "far end: loop current dropped for 600 ms"),
        (LoopCurrentDropped(0, 0.0), "far end: loop current dropped for 0 ms"),  # a modem
        (PolarityReversed(0), "far end: polarity reversed"),
        (ToneReported(0, "busy"), "far end: busy tone"),
        (ToneReported(0, "reorder"), "far end: reorder tone"),
        (ToneReported(0, "dial"), "far end: dial tone"),
    ],
)
async def test_far_end_hang_up_by_line_event(
    autojump_clock: MockClock, event: LineEvent, reason: str
) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        await trio.sleep(5.0)
        rig.port.emit(event)
        await rig.call.over.wait()
        assert rig.call.hangup_reason == reason
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]


@pytest.mark.parametrize("tone", ["busy", "reorder"])
async def test_far_end_hang_up_by_tone_in_the_audio(autojump_clock: MockClock, tone: str) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        await trio.sleep(3.0)
        rig.port.play(generate("us", tone, 5000.0))
        start = trio.current_time()
        await rig.call.over.wait()
        assert rig.call.hangup_reason == f"far end: {tone} tone"
        assert trio.current_time() - start < 2.5  # dsp.tones: busy 1.9 s, reorder 0.92 s
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]


async def test_far_end_hang_up_by_long_silence(autojump_clock: MockClock) -> None:
    talk = scale_to_dbm0(speech("en_us_male")[:8000], -20.0)
    async with line_rig(FXO, fxo(silence_hangup_s=30.0)) as rig:
        await answered_call(rig)
        for _ in range(3):  # someone talks every 20 s: the call stays up
            rig.port.play(talk)
            await trio.sleep(20.0)
        assert not rig.call.over.is_set()
        last_talk_s = trio.current_time() - 19.0
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "far end: silence for 30 s"
        assert trio.current_time() - last_talk_s == pytest.approx(30.0, abs=0.1)


async def test_short_loop_glitch_and_our_own_flash_are_not_hang_ups(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        rig.port.emit(LoopCurrentDropped(0, 60.0))  # a glitch
        await rig.call.line.flash(600.0)
        await trio.sleep(0.6)
        rig.port.emit(LoopCurrentDropped(0, 600.0))  # the flash itself, reported on close
        await trio.sleep(5.0)
        assert not rig.call.over.is_set()
        assert rig.port.names() == ["off_hook", "flash"]


# --- the call's side ---------------------------------------------------------------------------


async def test_call_gets_frames_and_device_digits(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        await trio.sleep(1.0)
        rig.port.emit(DtmfReported(0, "5"))
        await trio.sleep(1.0)
        assert rig.call.signals == [DtmfReported(0, "5")]
        seqs = [f.seq for f in rig.call.frames]
        assert len(seqs) >= 99
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # none lost, in order


async def test_a_stalled_call_loses_frames_not_the_line(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, starter=RecordingStarter(read_frames=False)) as rig:
        await answered_call(rig)
        await trio.sleep(2.0)
        assert rig.line.stats.frames_dropped >= 80  # 100 frames, 16 buffered
        rig.port.emit(PolarityReversed(0))  # the line still reacts at once
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "far end: polarity reversed"


async def test_call_ending_itself_puts_the_line_on_hook(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        rig.call.end.set()
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]
        assert rig.call.hangup_reason is None
        rig.nursery.start_soon(ring, rig.port, 6)  # and the next call is answered
        await rig.call_started()
        assert len(rig.starter.calls) == 2


async def test_a_failing_call_is_logged_and_hung_up(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    starter = RecordingStarter(fail_with=RuntimeError("pipeline bug"))
    async with line_rig(FXO, fxo(pre_answer=False), starter=starter) as rig:
        await answered_call(rig)
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "RuntimeError: pipeline bug" in caplog.text  # with its traceback


async def test_port_lost_ends_the_call_and_waits_for_port_ready(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        rig.port.lost("unplugged")
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "port lost: unplugged"
        await rig.until(lambda: rig.line.state is FxoState.DOWN)
        await ring(rig.port, 3)  # a dead port's events (none would come): ignored
        assert rig.port.names() == ["off_hook"]  # no on_hook: the device restarts on-hook
        rig.port.ready()
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        rig.nursery.start_soon(ring, rig.port, 6)
        await rig.call_started()


async def test_end_call_from_the_console(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        await rig.line.end_call("operator ended it")
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "operator ended it"
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]


async def test_port_closing_ends_the_actor(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        await answered_call(rig)
        rig.port.close()
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "port lost: port closed"


async def test_idle_line_noise_never_reaches_a_call(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        rig.port.off_hook_state = True  # audio flows, nobody rings
        await trio.sleep(30.0)
        assert rig.starter.calls == []
        assert rig.line.state is FxoState.IDLE
        assert np.array_equal(rig.port.sent_audio(), np.zeros(0, np.int16))
