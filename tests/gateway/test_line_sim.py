"""gateway.line against the simulated adapter over a real pseudo-terminal, on the real clock:
an FXO call with caller ID answered after N rings (and the far end's loop drop ending it), and
an FXS phone going off-hook, hearing dial tone and dialling an extension.

`AdapterSimulator` runs the board and its `LineModel`s 4x faster than real time (as
tests/firmware_bridge/test_link.py does); `AdapterLink` serves it; the line actor runs on the
link's port. Each test takes about a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from dsp.callerid import CallerId
from dsp.tones import ToneDetector
from firmware_bridge.link import AdapterLink
from firmware_bridge.port import PortKind
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.line import LineModel, LineState
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
    warm_line_kernels,
)
from tests.gateway.line_rig import RecordingStarter

FAST_TICK_S = 0.005  # the simulated lines run 4x real time
RIG_S = 20.0  # no test takes this long; a hang fails instead of blocking CI
CALLER = CallerId("5551234567", "ALICE SMITH", "03031000")
CONFIG = LineConfig(
    fxo=FxoConfig(answer_after_rings=2, default_profile="reception"),
    fxs=FxsConfig(hotline="", dial_plan=(DialRule("0", "operator"), DialRule("1XX", "ext"))),
)


@dataclass
class SimRig:
    model: LineModel
    line: FxoLine | FxsLine
    starter: RecordingStarter

    async def until(self, cond: object, limit_s: float = 10.0) -> None:
        assert callable(cond)
        with trio.fail_after(limit_s):
            while not cond():  # noqa: ASYNC110
                await trio.sleep(0.005)


@asynccontextmanager
async def sim_rig(kind: PortKind) -> AsyncIterator[SimRig]:
    warm_line_kernels()
    model = LineModel(kind, port=0)  # default echo path and line noise
    sim = AdapterSimulator([model], tick_s=FAST_TICK_S)
    starter = RecordingStarter()
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(sim.run)
            link = AdapterLink(path)
            await nursery.start(link.run)
            line = line_actor(link.ports[0], CONFIG, starter)
            await nursery.start(line.run)
            rig = SimRig(model, line, starter)
            await rig.until(lambda: line.state == "idle")
            yield rig
            nursery.cancel_scope.cancel()


async def test_fxo_incoming_call_with_caller_id_answered_after_two_rings() -> None:
    async with sim_rig(PortKind.FXO) as rig:
        rig.model.incoming_call(CALLER, rings=6, cadence_ms=(1000, 3000))
        rig.model.silence(2000.0)  # the caller waits 0.5 s of line time, then hangs up
        rig.model.hang_up("loop_drop")
        await rig.until(lambda: bool(rig.starter.calls))
        call = rig.starter.calls[0]
        await rig.until(call.line.answered.is_set)  # started on the caller ID, while it rang
        assert (call.spec.profile, call.spec.callerid) == ("reception", CALLER)
        assert rig.model.state is LineState.CONNECTED
        assert rig.model.rings == 2  # FSK caller ID decoded from the audio between the rings
        with trio.fail_after(5.0):
            await call.over.wait()
        assert call.hangup_reason == "far end: loop current dropped for 600 ms"
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        await rig.until(lambda: not rig.model.off_hook)  # we went on-hook
        assert len(call.frames) > 50  # the call heard the line meanwhile


async def test_fxs_off_hook_dial_tone_digits_reach_the_agent() -> None:
    async with sim_rig(PortKind.FXS) as rig:
        rig.model.phone_off_hook()
        rig.model.silence(1500.0)
        rig.model.phone_dials("123")
        await rig.until(lambda: bool(rig.starter.calls))
        call = rig.starter.calls[0]
        assert (call.spec.profile, call.spec.number, call.spec.direction) == (
            "ext", "123", "inbound")  # fmt: skip
        heard = [t.tone for t in ToneDetector("us").feed(rig.model.tx_log)]
        assert heard[:1] == ["dial"]  # what the phone heard before it dialled
        rig.model.phone_on_hook()
        with trio.fail_after(5.0):
            await call.over.wait()
        assert call.hangup_reason == "phone on-hook"
        await rig.until(lambda: rig.line.state is FxsState.IDLE)
