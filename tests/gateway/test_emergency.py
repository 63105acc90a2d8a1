"""Emergency bypass (#8), end to end on the simulated adapter (one FXO and one FXS port on a
real pty, `AdapterLink`, both line actors, `EmergencyRouter` in front of the agent): a phone
that dials 911 is put through to the FXO line, which seizes and dials it (the simulated
exchange decodes the digits); audio goes both ways across the bridge; 9-1-1 pressed in a
hotline call never reaches the agent (the local realtime server), ends the agent call and
bridges the phone; an agent call on the FXO line is preempted; other digits still reach the
agent. The lines run at real time: the port dials on trio's clock."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
import trio
from numpy.typing import NDArray
from trio.testing import MockClock

from dsp.dtmf import generate as dtmf
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.tones import ToneDetector
from firmware_bridge.link import AdapterLink
from firmware_bridge.port import PortKind
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.line import LineModel, LineState
from gateway.call import CallPipeline
from gateway.call_config import CallConfig
from gateway.call_fallback import load_prompts
from gateway.call_metrics import CallRecord
from gateway.emergency import EmergencyRouter
from gateway.emergency_digits import EMERGENCY_PROFILE, EmergencyMatcher, Match, match_emergency
from gateway.errors import ConfigError
from gateway.line import (
    DialRule,
    FxoConfig,
    FxoLine,
    FxoState,
    FxsConfig,
    FxsLine,
    FxsState,
    LineConfig,
    line_actor,
)
from gateway.line_call import CallStarter
from gateway.realtime.local import LocalRealtimeServer
from gateway.simcall import demo_profile, warm_kernels
from tests.gateway.fake_port import FakePort
from tests.gateway.line_rig import RecordingStarter, line_rig

TICK_S = 0.02  # real time: the port paces its dialling (and the call its audio) by trio's clock
RIG_S = 60.0
FAR_HZ, PHONE_HZ = 1000.0, 1500.0  # on 50 Hz FFT bins of one frame


def tone(hz: float, seconds: float, level: int = 3000) -> NDArray[np.int16]:
    t = np.arange(round(seconds * RATE_HZ)) / RATE_HZ
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def frames_of(pcm: NDArray[np.int16], hz: float) -> int:
    """How many 20 ms frames of `pcm` are dominated by `hz` and loud (> -40 dBFS)."""
    count = 0
    for i in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = pcm[i : i + FRAME_SAMPLES].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(frame))
        peak = int(np.argmax(spectrum[1:])) + 1
        if peak == round(hz * FRAME_SAMPLES / RATE_HZ) and np.abs(frame).max() > 330:
            count += 1
    return count


@dataclass(eq=False)
class Box:
    fxo_model: LineModel
    fxs_model: LineModel
    fxo: FxoLine
    fxs: FxsLine
    router: EmergencyRouter
    agent: RecordingStarter | CallPipeline
    records: list[CallRecord] = field(default_factory=list)

    async def until(self, cond: Callable[[], bool], limit_s: float = 30.0) -> None:
        try:
            with trio.fail_after(limit_s):
                while not cond():  # noqa: ASYNC110 (the simulated lines are the clock)
                    await trio.sleep(0.01)
        except trio.TooSlowError:
            print(f"\nFXO line {self.fxo_model.state} dialled {self.fxo_model.dialed_digits!r} "
                  f"heard {self.fxo_model.digits_heard!r}; actors {self.fxo.state} "
                  f"{self.fxs.state}")  # fmt: skip
            raise


def config(**fxs: object) -> LineConfig:
    fxs.setdefault("hotline", "default")
    return LineConfig(fxo=FxoConfig(answer_after_rings=2, default_profile="default",
                                    pre_answer=False),
                      fxs=FxsConfig(**fxs))  # type: ignore[arg-type]  # fmt: skip


@asynccontextmanager
async def box(line_config: LineConfig, agent: RecordingStarter | CallPipeline,
              tick_s: float = TICK_S) -> AsyncIterator[Box]:  # fmt: skip
    warm_kernels()
    fxo_model, fxs_model = LineModel(PortKind.FXO, port=0), LineModel(PortKind.FXS, port=1)
    sim = AdapterSimulator([fxo_model, fxs_model], tick_s=tick_s)
    records: list[CallRecord] = []
    lines: dict[int, FxoLine | FxsLine] = {}
    router = EmergencyRouter(agent, lines, line_config, on_record=records.append)
    starter: CallStarter = router
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            link = AdapterLink(await nursery.start(sim.run))
            await nursery.start(link.run)
            for port in link.ports:
                lines[port.port] = line_actor(port, line_config, starter)
                await nursery.start(lines[port.port].run)
            fxo, fxs = lines[0], lines[1]
            assert isinstance(fxo, FxoLine)
            assert isinstance(fxs, FxsLine)
            rig = Box(fxo_model, fxs_model, fxo, fxs, router, agent, records)
            await rig.until(lambda: fxo.state == "idle" and fxs.state == "idle")
            yield rig
            nursery.cancel_scope.cancel()


async def test_the_end_to_end_cases_side_by_side() -> None:
    """Each case on its own simulated adapter (and realtime server), all three at once: the
    lines run on the real clock, so this takes as long as the longest."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_911_on_a_warm_line_goes_to_the_fxo_line_both_ways)
        nursery.start_soon(_an_agent_call_on_the_fxo_line_is_preempted)
        nursery.start_soon(_911_pressed_in_a_hotline_call_never_reaches_the_agent)


async def _911_on_a_warm_line_goes_to_the_fxo_line_both_ways() -> None:
    agent = RecordingStarter()
    async with box(config(hotline_delay_s=5.0), agent) as rig:
        rig.fxo_model.expect_outgoing(answer_after_rings=2, number_digits=3)
        rig.fxo_model.silence(500.0)  # the far end answered
        rig.fxo_model.play(tone(FAR_HZ, 1.0), "far tone")
        rig.fxs_model.phone_off_hook()
        rig.fxs_model.silence(1000.0)
        rig.fxs_model.phone_dials("911")
        await rig.until(lambda: rig.fxo_model.state is LineState.CONNECTED)
        assert rig.fxo_model.dialed_digits == "911"  # the exchange decoded our dialling
        assert rig.fxo.state is FxoState.EMERGENCY
        assert rig.fxs.call is not None
        assert rig.fxs.call.profile == EMERGENCY_PROFILE
        rig.fxs_model.silence(100.0)
        rig.fxs_model.play(tone(PHONE_HZ, 1.0), "phone tone")
        await trio.sleep(2.5)  # both tones are over
        assert rig.fxs_model.state is LineState.CONNECTED
        heard = [t.tone for t in ToneDetector("us").feed(rig.fxs_model.tx_log)]
        print(f"\nthe phone heard {heard}; far tone frames at the phone "
              f"{frames_of(rig.fxs_model.tx_log, FAR_HZ)}, phone tone frames at the far end "
              f"{frames_of(rig.fxo_model.tx_log, PHONE_HZ)}")  # fmt: skip
        assert "ringback" in heard  # the exchange's, through the bridge
        assert frames_of(rig.fxs_model.tx_log, FAR_HZ) >= 40  # of 50: far end -> phone
        assert frames_of(rig.fxo_model.tx_log, PHONE_HZ) >= 40  # phone -> far end
        rig.fxs_model.phone_on_hook()
        await rig.until(lambda: not rig.fxo_model.off_hook)  # the FXO line hung up too
        await rig.until(lambda: rig.fxo.state is FxoState.IDLE and rig.fxs.state is FxsState.IDLE)
    assert agent.calls == []  # no agent ever heard of it
    [record] = rig.records
    assert (record.profile, record.dtmf, record.hangup_signal) == (EMERGENCY_PROFILE, "911",
                                                                    "on_hook")  # fmt: skip
    assert any("dialled 911" in what for _, what in record.timeline)


async def _an_agent_call_on_the_fxo_line_is_preempted() -> None:
    agent = RecordingStarter()
    async with box(config(hotline="", dial_plan=(DialRule("0", "operator"),)), agent) as rig:
        rig.fxo_model.incoming_call(rings=6)
        await rig.until(lambda: bool(agent.calls) and rig.fxo.state is FxoState.CONNECTED)
        rig.fxo_model.expect_outgoing(answer_after_rings=1, number_digits=3)
        rig.fxs_model.phone_off_hook()
        rig.fxs_model.silence(500.0)
        rig.fxs_model.phone_dials("911")
        await rig.until(lambda: agent.calls[0].over.is_set())
        assert agent.calls[0].hangup_reason == "emergency call from line 1"
        assert agent.calls[0].line.hangup.signal == "emergency"
        await rig.until(lambda: rig.fxo_model.state is LineState.CONNECTED)
        assert rig.fxo_model.dialed_digits == "911"
        assert len(agent.calls) == 1
        rig.fxo_model.hang_up("loop_drop")  # the far end hangs up: the phone gets reorder
        await rig.until(lambda: rig.fxs.state is FxsState.REORDER)
        await rig.until(lambda: rig.fxo.state is FxoState.IDLE)
    [record] = rig.records
    assert record.ended_by == "line 0 ended the call"


async def _911_pressed_in_a_hotline_call_never_reaches_the_agent() -> None:
    server = LocalRealtimeServer()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        pipeline = CallPipeline({"default": demo_profile(url)}, CallConfig(),
                                prompts=load_prompts())  # fmt: skip
        async with box(config(interdigit_s=1.5), pipeline) as rig:
            rig.fxo_model.expect_outgoing(answer_after_rings=1, number_digits=3)
            rig.fxs_model.phone_off_hook()
            rig.fxs_model.silence(6000.0)  # the agent greets
            rig.fxs_model.phone_dials("5")  # not an emergency number's start: to the agent
            rig.fxs_model.silence(3000.0)
            rig.fxs_model.phone_dials("1")  # it may start 112: held, released after 1.5 s
            rig.fxs_model.silence(4000.0)
            rig.fxs_model.phone_dials("911")
            await rig.until(lambda: rig.fxo_model.state is LineState.CONNECTED, 40.0)
            assert rig.fxo_model.dialed_digits == "911"
            assert rig.fxs.call is not None
            assert rig.fxs.call.profile == EMERGENCY_PROFILE
            [agent_record] = pipeline.records
            assert agent_record.hangup_signal == "emergency"
            rig.fxs_model.phone_on_hook()
            await rig.until(lambda: rig.fxo.state is FxoState.IDLE)
        nursery.cancel_scope.cancel()
    [session] = server.sessions
    pressed = [e["item"]["content"][0]["text"] for e in session.received
               if e.get("type") == "conversation.item.create"
               and "caller pressed" in json.dumps(e)]  # fmt: skip
    print(f"\nthe agent got {pressed}")
    assert pressed == ["[caller pressed 5]", "[caller pressed 1]"]
    assert "911" in agent_record.dtmf  # the record keeps what was pressed


# --- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "passed", "number", "held"),
    [
        ("911", "", "911", ""),
        ("5911", "5911", None, ""),  # not from the burst's first key
        ("1123", "3", "112", ""),  # the rest of the burst goes on
        ("19", "19", None, ""),  # 1 may begin 112: held, then released with the 9
        ("91", "", None, "91"),  # held until the pause
    ],
)
def test_the_matcher_holds_prefixes_and_finds_numbers(keys: str, passed: str, number: str | None,
                                                      held: str) -> None:  # fmt: skip
    matcher = EmergencyMatcher(("911", "112"))
    out, found = "", None
    for key in keys:
        released, complete = matcher.feed(key)
        out, found = out + released, found or complete
    assert (out, found, matcher.pause()) == (passed, number, held)
    assert matcher.feed("9") == ("", None)  # a pause starts a new burst


def test_match_emergency() -> None:
    numbers = ("911", "9911")
    assert match_emergency(numbers, "9") is Match.PREFIX
    assert match_emergency(numbers, "911") is Match.NUMBER
    assert match_emergency(numbers, "92") is Match.NONE
    assert match_emergency((), "911") is Match.NONE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"emergency_numbers": ["91a"]}, "line.fxs.emergency_numbers: '91a' is not 1-8 keys"),
        ({"emergency_numbers": "911"}, "line.fxs.emergency_numbers must be an array of strings"),
        ({"emergency_route": "fxs"}, "line.fxs.emergency_route 'fxs' is not \"fxo\""),
        ({"emergency_route": "fxo:x"}, "line.fxs.emergency_route 'fxo:x' is not"),
    ],
)
def test_bad_emergency_settings_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        LineConfig.from_config({"fxs": table})


def test_emergency_settings_load_and_default() -> None:
    assert LineConfig().fxs.emergency_numbers == ("911", "112")
    loaded = LineConfig.from_config({"fxs": {"emergency_numbers": ["999", "112"],
                                             "emergency_route": "fxo:2"}})  # fmt: skip
    assert (loaded.fxs.emergency_numbers, loaded.fxs.emergency_route) == (("999", "112"), "fxo:2")
    assert LineConfig.from_config({"fxs": {"emergency_numbers": []}}).fxs.emergency_numbers == ()


async def test_the_dial_plan_never_gets_an_emergency_number(autojump_clock: MockClock) -> None:
    plan = (DialRule("9.", "outside"), DialRule("0", "operator"))
    async with line_rig(PortKind.FXS, config(hotline="", dial_plan=plan)) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        start = trio.current_time()
        rig.port.play(dtmf("911"))
        call = await rig.call_started()
        assert trio.current_time() - start < 0.7  # complete: no interdigit wait
        assert (call.spec.profile, call.spec.number) == (EMERGENCY_PROFILE, "911")


async def test_an_emergency_prefix_waits_for_more_digits(autojump_clock: MockClock) -> None:
    plan = (DialRule("0", "operator"),)
    async with line_rig(PortKind.FXS, config(hotline="", dial_plan=plan)) as rig:
        rig.port.phone_off_hook()
        await trio.sleep(1.0)
        rig.port.play(dtmf("11"))  # no plan entry starts with 1: but 112 might come
        await trio.sleep(1.0)
        assert rig.line.state is FxsState.DIGITS
        await rig.until(lambda: rig.line.state is FxsState.REORDER, 4.0)  # interdigit_s
        assert not rig.starter.calls


async def test_without_an_fxo_line_the_phone_gets_reorder(autojump_clock: MockClock) -> None:
    line_config = config(hotline="", dial_plan=(DialRule("0", "operator"),))
    records: list[CallRecord] = []
    lines: dict[int, FxoLine | FxsLine] = {}
    agent = RecordingStarter()
    port = FakePort(PortKind.FXS)
    lines[port.port] = line = line_actor(port, line_config, EmergencyRouter(
        agent, lines, line_config, on_record=records.append))  # fmt: skip
    with trio.fail_after(60.0):
        async with trio.open_nursery() as nursery:
            await nursery.start(port.run)
            await nursery.start(line.run)
            port.ready()
            port.phone_off_hook()
            await trio.sleep(1.0)
            port.play(dtmf("112"))
            while line.state != "reorder":  # noqa: ASYNC110
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert agent.calls == []
    [record] = records
    assert (record.ended_by, record.dtmf) == ("no FXO line to put it through", "112")
