"""Warm transfer (#8 item 8), end to end on the simulated adapter (an FXO line with a caller,
an FXS port with a phone, `AdapterLink`, the agent on the local realtime server): the caller
asks for the workshop; the agent says so and calls `transfer_call` with a summary; the phone
on FXS port 1 rings showing the caller's ID; once picked up it hears the agent's summary
while the caller waits in silence; then caller and phone hear each other (a tone each way
across the bridge), and the call's record says so when the caller hangs up. The FXO variant
(hook flash, digits, the summary to whoever answers) is tested on a fake port in
tests/gateway/test_call_control.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import trio

from dsp.callerid import CallerId
from firmware_bridge.sim.line import LineState
from gateway.call import CallPipeline
from gateway.call_config import CallConfig
from gateway.call_fallback import load_prompts
from gateway.call_metrics import CallRecord
from gateway.handoff import HANDOFF_PROFILE, HandoffDesk
from gateway.line import FxoConfig, FxsConfig, FxsState, LineConfig
from gateway.realtime.local import LocalRealtimeServer, Script
from gateway.simcall import demo_profile
from gateway.simcall_scenario import load_caller_voice
from gateway.tools import ToolRegistry
from gateway.tools_builtin import transfer_call_tool
from tests.gateway.test_emergency import FAR_HZ, PHONE_HZ, box, frames_of, tone

CALLER = CallerId("5550142", "ALICE SMITH", "12061015")
SUMMARY = "Alice Smith asks whether her car is ready."
SCRIPT = {"turn": [{"turn": 1, "say": "one_moment", "call": "transfer_call",
                    "arguments": {"target": "workshop", "summary": SUMMARY},
                    "then_say": "booked"}],
          "default": ["anything_else"]}  # fmt: skip
LINES = LineConfig(fxo=FxoConfig(answer_after_rings=2, pre_answer=False),
                   fxs=FxsConfig())  # fmt: skip


def loud_ms(pcm: np.ndarray) -> int:
    """How many ms of `pcm` are loud (voice or tone above ~-40 dBFS)."""
    ms = pcm[: pcm.size // 8 * 8].reshape(-1, 8)
    return int((np.abs(ms).max(axis=1) > 330).sum())


async def test_a_warm_transfer_to_a_phone_of_the_box() -> None:
    server = LocalRealtimeServer(script=Script.from_mapping(SCRIPT))
    records: list[CallRecord] = []
    voice = load_caller_voice()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        tools = ToolRegistry([transfer_call_tool({"workshop": "fxs:1"})])
        profile = replace(demo_profile(url), tools=tools)
        pipeline = CallPipeline({"default": profile}, CallConfig(), prompts=load_prompts(),
                                on_record=records.append)  # fmt: skip
        desk = HandoffDesk(pipeline, {})
        pipeline.handoffs = desk
        async with box(LINES, desk) as rig:  # type: ignore[arg-type]
            desk.lines = {0: rig.fxo, 1: rig.fxs}
            rig.fxs_model.answer_when_rung(2)  # caller ID comes after ring 1
            caller = rig.fxo_model
            caller.incoming_call(CALLER, rings=6)
            caller.wait_for_voice(200.0, 20000.0)  # the agent's greeting
            caller.wait_for_silence(600.0, 20000.0)
            caller.play(voice.request.astype(np.int16), "request")
            await rig.until(lambda: rig.fxs.state is FxsState.CONNECTED, 40.0)
            picked_up = rig.fxs_model.tx_log.size
            caller_waits = caller.tx_log.size
            await rig.until(
                lambda: bool(pipeline.active) and next(iter(pipeline.active.values())).gave_up, 30.0
            )  # the summary, then the bridge
            await trio.sleep(0.3)  # the bridge starts
            summary_ms = loud_ms(rig.fxs_model.tx_log[picked_up:])
            waiting_ms = loud_ms(caller.tx_log[caller_waits:])
            caller.play(tone(FAR_HZ, 1.0), "caller tone")
            rig.fxs_model.play(tone(PHONE_HZ, 1.0), "phone tone")
            await trio.sleep(2.0)
            bridged_to_phone = frames_of(rig.fxs_model.tx_log, FAR_HZ)
            bridged_to_caller = frames_of(caller.tx_log, PHONE_HZ)
            assert rig.fxs.call is not None
            assert rig.fxs.call.profile == HANDOFF_PROFILE
            caller.hang_up("loop_drop")
            await rig.until(lambda: bool(records), 20.0)
            await rig.until(lambda: rig.fxs.state is FxsState.REORDER, 10.0)
        nursery.cancel_scope.cancel()
    print(f"\nthe phone heard {summary_ms} ms of the agent's summary; the caller {waiting_ms} ms "
          f"of anything meanwhile; across the bridge {bridged_to_phone} and {bridged_to_caller} "
          f"tone frames of 50")  # fmt: skip
    shown = rig.fxs_model.received_callerid[-1]
    assert isinstance(shown, CallerId)
    assert (shown.number, shown.name) == (CALLER.number, CALLER.name)  # the phone showed it
    assert summary_ms > 1000  # "You're all set: ..." (the local server's summary)
    assert waiting_ms < 100  # the caller did not hear it
    assert bridged_to_phone >= 40
    assert bridged_to_caller >= 40
    [record] = records
    assert record.ended_by == "caller hung up (far end: loop current dropped for 600 ms)"
    assert any("handed over to line 1" in what for _, what in record.timeline)
    [output] = [i["output"] for s in server.sessions for i in s.created_items()
                if i.get("type") == "function_call_output"]  # fmt: skip
    assert SUMMARY in output
    assert caller.state is not LineState.CONNECTED
