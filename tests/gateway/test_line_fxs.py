"""gateway.line_fxs: dial tone, digits and the dial plan, hotline and warm line, reorder and
lockout, hook-flash and on-hook in a call, ringing the phone for agent calls. A real `FxsLine`
on a `FakePort`, on the autojump clock; what the phone hears is checked with `dsp.tones`."""

from __future__ import annotations

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from dsp.callerid import CallerId
from dsp.dtmf import generate as dtmf
from dsp.tones import ToneDetector
from firmware_bridge.errors import CommandFailed
from firmware_bridge.port import DtmfReported, HookFlashed, PortKind
from gateway.line import (
    DialOutcome,
    DialResult,
    DialRule,
    FxsConfig,
    FxsState,
    LineConfig,
    OutboundCall,
)
from tests.gateway.line_rig import Rig, line_rig

FXS = PortKind.FXS
PLAN = (
    DialRule("0", "operator"),
    DialRule("1", "front-desk"),
    DialRule("1XX", "extensions"),
    DialRule("9.", "outside"),
)
AGENT_CALLERID = CallerId("5550100", "TIPRING AGENT")


def fxs(**settings: object) -> LineConfig:
    settings.setdefault("hotline", "")
    settings.setdefault("dial_plan", PLAN)
    return LineConfig(fxs=FxsConfig(**settings))  # type: ignore[arg-type]


def heard_tones(pcm: np.ndarray) -> list[str]:
    return [t.tone for t in ToneDetector("us").feed(pcm)]


async def dials(rig: Rig, digits: str) -> None:
    """The phone dials `digits` (100 ms on, 100 ms off) and the line hears them out."""
    rig.port.play(dtmf(digits))
    await trio.sleep(0.2 * len(digits) + 0.1)


async def test_off_hook_dial_tone_digits_and_the_dial_plan(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(2.0)
        assert rig.line.state is FxsState.DIAL_TONE
        assert heard_tones(rig.port.sent_audio()) == ["dial"]
        start = trio.current_time()
        rig.port.play(dtmf("123"))
        call = await rig.call_started()
        assert trio.current_time() - start < 0.7  # 1XX is complete: no interdigit wait
        assert (call.spec.direction, call.spec.profile, call.spec.number) == (
            "inbound", "extensions", "123")  # fmt: skip
        # dial tone stopped with the first key, silence while the digits came
        assert not rig.port.sent_audio(since_s=start + 0.1).any()


@pytest.mark.parametrize(
    ("digits", "profile", "number", "wait_s"),
    [
        ("1", "front-desk", "1", 4.0),  # 1 could become 1XX: the interdigit timeout decides
        ("0", "operator", "0", 0.0),
        ("95551234", "outside", "95551234", 4.0),  # open-ended: the timeout ends it
        ("955#", "outside", "955", 0.0),  # '#' ends it at once
    ],
)
async def test_interdigit_timeout_and_hash(
    autojump_clock: MockClock, digits: str, profile: str, number: str, wait_s: float
) -> None:
    async with line_rig(FXS, fxs()) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        rig.port.play(dtmf(digits))
        last_key_up_s = trio.current_time() + 0.2 * len(digits) - 0.1
        call = await rig.call_started()
        # dsp.dtmf decides a key ~33 ms after it is released
        assert call.spec.connected_s - last_key_up_s == pytest.approx(wait_s + 0.05, abs=0.05)
        assert (call.spec.profile, call.spec.number) == (profile, number)


async def test_device_reported_digits_work_too(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(0.5)
        for digit in "100":
            rig.port.emit(DtmfReported(0, digit))
        call = await rig.call_started()
        assert call.spec.number == "100"


@pytest.mark.parametrize("digits", ["7", ""])
async def test_no_such_number_or_no_digits_gives_reorder_then_silence(
    autojump_clock: MockClock, digits: str
) -> None:
    async with line_rig(FXS, fxs(first_digit_s=10.0, reorder_s=20.0)) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        rig.port.play(dtmf(digits))
        await rig.until(lambda: rig.line.state is FxsState.REORDER)
        reorder_at = trio.current_time()
        await rig.until(lambda: rig.line.state is FxsState.LOCKOUT)
        assert trio.current_time() - reorder_at == pytest.approx(20.0, abs=0.05)
        assert "reorder" in heard_tones(rig.port.sent_audio(since_s=reorder_at))
        await trio.sleep(5.0)
        assert not rig.port.sent_audio(since_s=trio.current_time() - 4.9).any()
        assert rig.starter.calls == []
        rig.port.phone_on_hook()
        await rig.until(lambda: rig.line.state is FxsState.IDLE)
        rig.port.phone_off_hook()  # and it starts over
        await rig.until(lambda: rig.line.state is FxsState.DIAL_TONE)


async def test_hook_flash_while_dialling_gives_fresh_dial_tone(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        await dials(rig, "9")
        rig.port.emit(HookFlashed(0, 500.0))
        await rig.until(lambda: rig.line.state is FxsState.DIAL_TONE)
        rig.port.play(dtmf("0"))
        call = await rig.call_started()
        assert (call.spec.profile, call.spec.number) == ("operator", "0")


async def test_hotline_connects_at_off_hook(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs(hotline="concierge", dial_plan=())) as rig:
        rig.port.phone_off_hook()
        call = await rig.call_started(limit_s=0.1)
        assert (call.spec.profile, call.spec.number, call.spec.direction) == (
            "concierge", "", "inbound")  # fmt: skip
        assert rig.port.sent == []  # no dial tone: the agent speaks first


@pytest.mark.parametrize(("digits", "profile"), [("", "concierge"), ("0", "operator")])
async def test_warm_line(autojump_clock: MockClock, digits: str, profile: str) -> None:
    async with line_rig(FXS, fxs(hotline="concierge", hotline_delay_s=3.0)) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        rig.port.play(dtmf(digits))
        call = await rig.call_started()
        assert call.spec.profile == profile
        assert heard_tones(rig.port.sent_audio()) == ["dial"]


# --- in a call ---------------------------------------------------------------------------------


async def connected(rig: Rig) -> None:
    rig.port.phone_off_hook()
    await trio.sleep(0.5)
    rig.port.play(dtmf("0"))
    await rig.call_started()


async def test_on_hook_ends_the_call_and_flash_goes_to_it(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        await connected(rig)
        rig.port.emit(HookFlashed(0, 400.0))
        await trio.sleep(2.0)
        assert rig.call.signals == [HookFlashed(0, 400.0)]
        assert len(rig.call.frames) >= 99
        rig.port.phone_on_hook()
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "phone on-hook"
        await rig.until(lambda: rig.line.state is FxsState.IDLE)


async def test_call_ending_itself_gives_the_phone_reorder(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        await connected(rig)
        rig.call.end.set()
        await rig.until(lambda: rig.line.state is FxsState.REORDER)
        ended_at = trio.current_time()
        await trio.sleep(3.0)
        assert "reorder" in heard_tones(rig.port.sent_audio(since_s=ended_at))
        assert rig.call.hangup_reason is None


async def test_port_lost_in_a_call(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        await connected(rig)
        rig.port.lost("adapter reset")
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "port lost: adapter reset"
        await rig.until(lambda: rig.line.state is FxsState.DOWN)
        rig.port.ready()
        await rig.until(lambda: rig.line.state is FxsState.IDLE)


# --- calls the agent places --------------------------------------------------------------------

AGENT_CALL = OutboundCall("reminders", callerid=AGENT_CALLERID)


async def test_agent_call_rings_the_phone_with_caller_id(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs(ring_cadence_ms=(1000, 2000))) as rig:
        results: list[DialResult] = []

        async def placing() -> None:
            results.append(await rig.line.place_call(AGENT_CALL))

        rig.nursery.start_soon(placing)
        await rig.until(lambda: rig.port.ringing)
        assert rig.port.commands[0].args == ((1000, 2000), AGENT_CALLERID)
        await trio.sleep(7.0)
        rig.port.phone_off_hook()
        call = await rig.call_started()
        await rig.until(lambda: bool(results))
        assert results == [DialResult(DialOutcome.ANSWERED, "phone off-hook", call.spec.call_id)]
        assert (call.spec.direction, call.spec.profile, call.spec.callerid) == (
            "outbound", "reminders", AGENT_CALLERID)  # fmt: skip
        assert rig.port.names() == ["ring"]  # the adapter stops ringing on ring trip


async def test_agent_call_nobody_answers(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs(ring_timeout_s=30.0)) as rig:
        start = trio.current_time()
        result = await rig.line.place_call(AGENT_CALL)
        assert result == DialResult(DialOutcome.NO_ANSWER, "30 s")
        assert trio.current_time() - start == pytest.approx(30.0, abs=0.05)
        assert rig.port.names() == ["ring", "stop_ring"]
        assert rig.line.state is FxsState.IDLE


async def test_agent_call_when_the_phone_is_busy_or_refuses(autojump_clock: MockClock) -> None:
    async with line_rig(FXS, fxs()) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(0.5)
        assert (await rig.line.place_call(AGENT_CALL)).outcome is DialOutcome.IN_USE
        rig.port.phone_on_hook()
        await rig.until(lambda: rig.line.state is FxsState.IDLE)
        rig.port.fail["ring"] = CommandFailed(0, "ring", "BAD_ARGUMENT")
        assert await rig.line.place_call(AGENT_CALL) == DialResult(
            DialOutcome.FAILED, "ring failed")  # fmt: skip
        assert rig.line.state is FxsState.IDLE
