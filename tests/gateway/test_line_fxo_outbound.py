"""gateway.line_fxo, calls the box places: dial tone, dialling, ringback, busy, the answer
(voice, polarity reversal, ringback stopping), no answer; and `gateway.line_progress` on
known signals. A real `FxoLine` on a `FakePort`, on the autojump clock."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.lowlevel
from trio.testing import MockClock

from dsp.frame import FRAME_SAMPLES
from dsp.tones import generate
from firmware_bridge.port import PolarityReversed, PortKind, RingStarted
from gateway.line import DialOutcome, DialResult, FxoConfig, FxoState, LineConfig, OutboundCall
from gateway.line_progress import Heard, ProgressEar
from tests.gateway.line_rig import Rig, line_rig
from tests.signals import frames, scale_to_dbm0, speech, white_noise

FXO = PortKind.FXO
CALL = OutboundCall(profile="reminders", number="5551234")
HELLO = scale_to_dbm0(speech("en_us_female")[:16000], -22.0)


def fxo(**settings: object) -> LineConfig:
    return LineConfig(fxo=FxoConfig(**settings))  # type: ignore[arg-type]


async def place(rig: Rig, call: OutboundCall = CALL) -> list[DialResult]:
    """Start placing `call`; the result lands in the returned list."""
    results: list[DialResult] = []

    async def placing() -> None:
        results.append(await rig.line.place_call(call))

    rig.nursery.start_soon(placing)
    await trio.lowlevel.checkpoint()
    return results


async def exchange_gives_dial_tone(rig: Rig) -> float:
    """Dial tone from the off-hook until the line dials; returns when the digits were sent."""
    await rig.until(lambda: "off_hook" in rig.port.names())
    rig.port.play(generate("us", "dial", 10_000.0))
    await rig.until(lambda: "dial" in rig.port.names())
    dialled_at = trio.current_time()
    rig.port.clear_audio()
    await rig.until(lambda: rig.line.state is FxoState.PROGRESS)
    return dialled_at


async def test_dials_after_dial_tone_and_is_answered_by_voice(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        off_hook_at = trio.current_time()
        dialled_at = await exchange_gives_dial_tone(rig)
        assert dialled_at - off_hook_at == pytest.approx(0.7, abs=0.1)  # 0.7 s: the watch
        rig.port.play(np.zeros(8000, np.int16))  # post-dial silence, then two ringback cycles
        rig.port.play(generate("us", "ringback", 12_000.0))
        await trio.sleep(13.0)
        assert results == []
        hello_at = trio.current_time()
        rig.port.play(HELLO)
        call = await rig.call_started()
        assert trio.current_time() - hello_at < 0.5
        assert results[0].outcome is DialOutcome.ANSWERED
        assert results[0].call_id == call.spec.call_id
        assert (call.spec.direction, call.spec.profile, call.spec.number) == (
            "outbound", "reminders", "5551234")  # fmt: skip
        assert rig.port.commands[1].args == ("5551234",)
        assert rig.line.state is FxoState.CONNECTED


async def test_polarity_reversal_is_the_answer(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        await exchange_gives_dial_tone(rig)
        rig.port.play(generate("us", "ringback", 3000.0))
        await trio.sleep(3.0)
        rig.port.emit(PolarityReversed(0))
        await rig.call_started()
        assert results == [
            DialResult(DialOutcome.ANSWERED, "polarity reversal", rig.call.spec.call_id)
        ]
        rig.port.emit(PolarityReversed(0))  # the second one: the far end hangs up
        await rig.call.over.wait()
        assert rig.call.hangup_reason == "far end: polarity reversed"


async def test_ringback_stopping_without_voice_is_an_answer(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        await exchange_gives_dial_tone(rig)
        rig.port.play(generate("us", "ringback", 14_000.0))  # ends after the 3rd burst
        await rig.call_started()
        assert results[0].outcome is DialOutcome.ANSWERED
        assert results[0].detail == "ringback stopped"
        # ringback: the third burst ends at 14 s; silence 4 s + 1.5 s means it stopped
        assert rig.port.commands[1].at_s + 1.4 + 14.0 + 5.5 == pytest.approx(
            trio.current_time(), abs=0.3)  # fmt: skip


@pytest.mark.parametrize(
    ("tone", "outcome"),
    [("busy", DialOutcome.BUSY), ("reorder", DialOutcome.BUSY), ("sit", DialOutcome.FAILED)],
)
async def test_busy_reorder_or_sit_fail_the_attempt(
    autojump_clock: MockClock, tone: str, outcome: DialOutcome
) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        await exchange_gives_dial_tone(rig)
        rig.port.play(generate("us", tone, 6000.0))
        await rig.until(lambda: bool(results))
        assert results == [DialResult(outcome, f"{tone} tone")]
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "dial", "on_hook"]
        assert rig.starter.calls == []


async def test_no_answer_gives_up(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, fxo(no_answer_s=30.0)) as rig:
        results = await place(rig)
        dialled_at = await exchange_gives_dial_tone(rig)
        rig.port.play(generate("us", "ringback", 60_000.0))
        await rig.until(lambda: bool(results))
        assert results == [DialResult(DialOutcome.NO_ANSWER, "30 s")]
        assert trio.current_time() - dialled_at == pytest.approx(31.4, abs=0.1)  # 7 digits
        await rig.until(lambda: rig.port.names()[-1:] == ["on_hook"])


@pytest.mark.parametrize("blind", [True, False])
async def test_without_dial_tone(autojump_clock: MockClock, blind: bool) -> None:
    async with line_rig(FXO, fxo(blind_dial=blind, dial_tone_wait_s=2.0)) as rig:
        results = await place(rig)
        await trio.sleep(2.5)
        if blind:
            assert rig.port.names() == ["off_hook", "dial"]
            assert results == []
        else:
            assert rig.port.names() == ["off_hook", "on_hook"]
            assert results == [DialResult(DialOutcome.FAILED, "no dial tone")]


async def test_place_call_when_the_line_cannot(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, ready=False) as rig:
        assert (await rig.line.place_call(CALL)).outcome is DialOutcome.UNAVAILABLE
        rig.port.ready()
        rig.port.emit(RingStarted(0))
        await trio.sleep(0.1)
        assert (await rig.line.place_call(CALL)).outcome is DialOutcome.IN_USE
        bad = await rig.line.place_call(OutboundCall("x", number="555-1234"))
        assert bad.outcome is DialOutcome.IN_USE
    async with line_rig(FXO) as rig:
        bad = await rig.line.place_call(OutboundCall("x", number="555-1234"))
        assert bad == DialResult(DialOutcome.FAILED, "'555-1234' is not a number to dial")
        assert rig.port.commands == []


async def test_end_call_abandons_an_attempt(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        await exchange_gives_dial_tone(rig)
        await rig.line.end_call("operator cancelled")
        await rig.until(lambda: bool(results))
        assert results == [DialResult(DialOutcome.FAILED, "operator cancelled")]
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "dial", "on_hook"]


async def test_port_lost_while_ringing_out(autojump_clock: MockClock) -> None:
    async with line_rig(FXO) as rig:
        results = await place(rig)
        await exchange_gives_dial_tone(rig)
        rig.port.lost("reset")
        await rig.until(lambda: bool(results))
        assert results == [DialResult(DialOutcome.FAILED, "port lost: reset")]
        assert rig.line.state is FxoState.DOWN


# --- what the progress ear hears ---------------------------------------------------------------


def classes(pcm: np.ndarray) -> list[Heard]:
    ear = ProgressEar()
    return [ear.hear(f) for f in frames(pcm) if f.shape == (FRAME_SAMPLES,)]


@pytest.mark.parametrize("plan", ["us", "uk", "de"])
@pytest.mark.parametrize("tone", ["dial", "ringback", "busy", "reorder"])
def test_progress_tones_never_answer(plan: str, tone: str) -> None:
    ear = ProgressEar()
    heard = []
    for f in frames(generate(plan, tone, 6000.0)):
        heard.append(ear.hear(f))
        assert not ear.answered
    # a frame that is half burst, half gap can read as voice (US reorder: 12 of 300)
    assert heard.count(Heard.VOICE) <= 0.05 * len(heard)
    assert heard.count(Heard.TONE) >= 10 * heard.count(Heard.OTHER)


def test_sit_never_answers() -> None:
    ear = ProgressEar()
    for f in frames(generate("us", "sit", 6000.0)):
        ear.hear(f)
        assert not ear.answered


def test_speech_answers_and_line_noise_does_not() -> None:
    ear = ProgressEar()
    for f in frames(white_noise(5.0, -60.0)):
        ear.hear(f)
    assert not ear.answered
    voiced = classes(HELLO)
    print(f"speech frames heard as voice: {voiced.count(Heard.VOICE)} of {len(voiced)}")
    assert voiced.count(Heard.VOICE) > 0.6 * (len(voiced) - voiced.count(Heard.QUIET))
