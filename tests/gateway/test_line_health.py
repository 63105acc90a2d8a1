"""Line health (`gateway.line_health`): the alarms and figures of one port.

On the simulated adapter over a pty (the line actor on `AdapterLink`, the lines 4x real
time, as tests/gateway/test_line_sim.py): a cut line raises "line dead" and clears when the
battery comes back; a seize without dial tone raises "no dial tone" and the next dial tone
clears it; the noise floor of a line with known added noise is read within a few dB. End to
end through the call pipeline and the local realtime server (`gateway.simcall`, real clock):
two calls on one line, the echo path's delay moved between them, raise "echo path changed",
and the records (and the store) carry the line's figures. The pure parts (baseline, the
config keys) are checked directly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import trio

from dsp.levels import dbm0_to_rms
from firmware_bridge.link import AdapterLink
from firmware_bridge.port import PortKind
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.caller import (
    CallerScript,
    HangUp,
    Say,
    Step,
    WaitForSilence,
    WaitForVoice,
)
from firmware_bridge.sim.echo_paths import EchoPath
from firmware_bridge.sim.line import DEFAULT_ECHO, LineModel
from gateway.call_config import CallConfig
from gateway.call_metrics import CallRecord
from gateway.errors import ConfigError
from gateway.line import FxoConfig, FxoLine, LineConfig, OutboundCall, line_actor
from gateway.line import warm_line_kernels as warm_gateway_line_kernels
from gateway.line_call import DialOutcome
from gateway.line_health import (
    ECHO_PATH_CHANGED,
    LINE_DEAD,
    NO_DIAL_TONE,
    CallFigures,
    HealthConfig,
    LineHealth,
)
from gateway.realtime.local import LocalRealtimeServer
from gateway.simcall import Appliance, SimLines, demo_profile, pipeline_factory, until, warm_kernels
from gateway.simcall_scenario import DEMO_SCRIPT, CallerVoice, ScriptedCaller, load_caller_voice
from gateway.store import CallStore
from gateway.store_types import call_finished
from tests.gateway.line_rig import RecordingStarter

FAST_TICK_S = 0.005  # the simulated lines run 4x real time
RIG_S = 30.0
HEALTH = HealthConfig(dead_after_s=1.0)
CONFIG = LineConfig(fxo=FxoConfig(default_profile="reception", blind_dial=False,
                                  dial_tone_wait_s=1.0), health=HEALTH)  # fmt: skip
NOW = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)


@dataclass
class HealthRig:
    model: LineModel
    line: FxoLine

    async def until(self, cond: object, limit_s: float = 10.0) -> None:
        assert callable(cond)
        with trio.fail_after(limit_s):
            while not cond():  # noqa: ASYNC110 (the simulated line is the clock)
                await trio.sleep(0.005)


@asynccontextmanager
async def health_rig(noise_dbm0: float | None = -65.0) -> AsyncIterator[HealthRig]:
    warm_gateway_line_kernels()
    model = LineModel(PortKind.FXO, port=0, noise_dbm0=noise_dbm0)
    sim = AdapterSimulator([model], tick_s=FAST_TICK_S)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(sim.run)
            link = AdapterLink(path)
            await nursery.start(link.run)
            line = line_actor(link.ports[0], CONFIG, RecordingStarter())
            assert isinstance(line, FxoLine)
            await nursery.start(line.run)
            rig = HealthRig(model, line)
            await rig.until(lambda: line.state == "idle")
            yield rig
            nursery.cancel_scope.cancel()


# --- on the simulated adapter -------------------------------------------------------------------


async def test_a_cut_line_raises_line_dead_and_clears_when_the_battery_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "gateway.line_health")
    async with health_rig() as rig:
        health = rig.line.health
        await rig.until(lambda: health.loop_volts == 48.0)
        assert health.snapshot().alarms == ()
        rig.model.cut()
        await rig.until(lambda: health.loop_volts == 0.0)
        assert LINE_DEAD not in health.active  # not before dead_after_s
        await rig.until(lambda: LINE_DEAD in health.active)
        assert health.active[LINE_DEAD].detail.startswith("loop at 0.0 V for ")
        await trio.sleep(0.5)  # the frames go on: still one alarm, logged once
        rig.model.restore()
        await rig.until(lambda: LINE_DEAD not in health.active)
        assert health.loop_volts == 48.0
        assert [a.name for a in health.history] == [LINE_DEAD]
        assert health.history[0].cleared_at is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"line 0: alarm line dead: {health.history[0].detail}"]
    assert "line 0: alarm line dead cleared" in caplog.messages


async def test_a_seize_without_dial_tone_raises_no_dial_tone_until_dial_tone_returns() -> None:
    async with health_rig() as rig:
        health = rig.line.health
        rig.model.dial_tone = False
        result = await rig.line.place_call(OutboundCall("reception", "5551234"))
        assert (result.outcome, result.detail) == (DialOutcome.FAILED, "no dial tone")
        assert NO_DIAL_TONE in health.active
        assert LINE_DEAD not in health.active  # the loop has its battery: 8 V off-hook
        await rig.until(lambda: not rig.model.off_hook)
        rig.model.dial_tone = True
        rig.model.expect_outgoing(None, number_digits=7)  # busy, but dial tone was there
        result = await rig.line.place_call(OutboundCall("reception", "5551234"))
        assert result.detail != "no dial tone"
        assert NO_DIAL_TONE not in health.active
        assert [a.name for a in health.history] == [NO_DIAL_TONE]


@pytest.mark.parametrize("noise_dbm0", [-50.0, -65.0])
async def test_the_noise_floor_of_a_line_with_known_noise(noise_dbm0: float) -> None:
    async with health_rig(noise_dbm0) as rig:
        health = rig.line.health
        rig.model.incoming_call(rings=6)  # answered on ring 2; the far end stays silent
        await rig.until(lambda: rig.model.off_hook)  # on-hook, the adapter sends no audio
        await rig.until(lambda: health.noise_dbm0 is not None)
        await trio.sleep(1.0)  # 4 s of line time: 200 frames in the window
        assert health.noise_dbm0 is not None
        print(f"noise floor {health.noise_dbm0:.2f} dBm0 for {noise_dbm0} dBm0 of white noise")
        # a 10th percentile of 20 ms levels reads white noise ~0.6 dB low; G.711 adds a little
        assert abs(health.noise_dbm0 - noise_dbm0) < 2.0


# --- end to end: calls through the pipeline -------------------------------------------------


def _caller(voice: CallerVoice, talk: bool) -> ScriptedCaller:
    """Hears the greeting out (the canceller converges on it); says its request if `talk`
    (a receive level); hangs up."""
    steps: list[Step] = [WaitForVoice(200.0), WaitForSilence(600.0)]
    if talk:
        steps += [Say(voice.request, "request"), WaitForVoice(700.0)]
    return ScriptedCaller(CallerScript((*steps, HangUp("loop_drop"))))


async def _one_call(sim: SimLines, appliance: Appliance, caller: ScriptedCaller) -> CallRecord:
    line = sim.lines[0]
    appliance.records.clear()
    caller.dial_in(line)
    await until(lambda: 0 in appliance.records)
    await until(lambda: appliance.line_actors[0].state == "idle")
    return appliance.records[0]


async def test_two_calls_over_different_echo_paths_raise_echo_path_changed(
    tmp_path: Path,
) -> None:
    voice = load_caller_voice()
    warm_kernels()
    server = LocalRealtimeServer(script=DEMO_SCRIPT)
    sim = SimLines([_caller(voice, True)])
    with trio.fail_after(90.0):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(server.run)
            path = await nursery.start(sim.run)
            appliance = Appliance(path, pipeline_factory(demo_profile(url), CallConfig()))
            await nursery.start(appliance.run)
            first = await _one_call(sim, appliance, _caller(voice, True))
            sim.lines[0].set_echo_path(EchoPath.g168(1, delay_ms=24.0, erl_db=12.0))
            second = await _one_call(sim, appliance, _caller(voice, False))
            health = appliance.line_actors[0].health
            nursery.cancel_scope.cancel()
    a, b = first.line_health, second.line_health
    assert a is not None
    assert b is not None
    print(f"first: {a.as_json()}\nsecond: {b.as_json()}")
    assert DEFAULT_ECHO.delay_samples == 16  # 2 ms; then 24 ms
    assert a.call.echo_delay_ms is not None
    assert b.call.echo_delay_ms is not None
    assert abs(b.call.echo_delay_ms - a.call.echo_delay_ms - 22.0) < 1.0
    for figures in (a, b):  # ERL 12 dB white: model 1 gives speech 10.7 dB
        assert figures.call.erl_db is not None
        assert 6.0 < figures.call.erl_db < 16.0
        assert figures.call.send_dbm0 is not None
        assert -30.0 < figures.call.send_dbm0 < -5.0
        assert figures.noise_dbm0 is not None
        assert abs(figures.noise_dbm0 - -65.0) < 3.0  # the simulated line's noise
        assert figures.loop_volts == 8.0  # off-hook in the call (the far end's drop: 0 V)
    assert a.call.receive_dbm0 is not None  # the caller spoke in the first call
    assert a.alarms == ()
    assert b.alarms == (ECHO_PATH_CHANGED,)
    assert re.fullmatch(
        r"echo delay 2\d\.\d -> 4\d\.\d ms", health.active[ECHO_PATH_CHANGED].detail
    )
    store = CallStore.open(tmp_path / "calls.db")
    store.apply([call_finished(first), call_finished(second)])
    stored = store.call(second.call_id)
    store.close()
    assert stored is not None
    assert stored.line_health["alarms"] == [ECHO_PATH_CHANGED]
    assert stored.line_health["echo_delay_ms"] == pytest.approx(b.call.echo_delay_ms, abs=0.1)
    assert stored.as_json()["line_health"]["erl_db"] == pytest.approx(b.call.erl_db, abs=0.1)


# --- the pure parts -------------------------------------------------------------------------


def _health(config: HealthConfig | None = None) -> LineHealth:
    return LineHealth(3, PortKind.FXO, config or HealthConfig(), lambda: NOW)


def test_the_echo_baseline_is_the_median_of_earlier_calls_and_restarts_on_a_change() -> None:
    health = _health(HealthConfig(echo_delay_change_ms=4.0, erl_change_db=6.0))
    for delay, erl in ((3.0, 11.0), (3.5, 12.0), (2.5, 12.5)):
        figures = health.call_ended(CallFigures(erl_db=erl, echo_delay_ms=delay))
        assert figures.alarms == ()
    moved = health.call_ended(CallFigures(erl_db=12.0, echo_delay_ms=9.0))
    assert moved.alarms == (ECHO_PATH_CHANGED,)
    assert health.active[ECHO_PATH_CHANGED].detail == "echo delay 3.0 -> 9.0 ms"
    assert health.call_ended(CallFigures()).alarms == (ECHO_PATH_CHANGED,)  # nothing measured
    assert health.call_ended(CallFigures(erl_db=2.0, echo_delay_ms=9.5)).alarms == (
        ECHO_PATH_CHANGED,)  # fmt: skip
    assert health.active[ECHO_PATH_CHANGED].detail == "echo delay 3.0 -> 9.0 ms"  # raised once
    assert health.call_ended(CallFigures(erl_db=3.0, echo_delay_ms=9.0)).alarms == ()


def test_a_lost_port_is_a_dead_line_until_it_is_ready() -> None:
    health = _health()
    health.port_lost("device gone")
    health.voltage(48.0, 0.0)  # a stale reading does not clear it
    assert list(health.active) == [LINE_DEAD]
    health.port_ready()
    assert health.active == {}


def test_a_short_loop_drop_is_no_dead_line() -> None:
    health = _health(HealthConfig(dead_after_s=5.0))
    health.voltage(0.0, 10.0)
    health.tick(14.9)
    health.voltage(8.0, 10.6)  # the exchange's disconnect: 600 ms
    health.tick(20.0)
    assert health.active == {}


def test_the_floor_skips_digital_silence_and_concealed_frames() -> None:
    health = _health()
    rng = np.random.default_rng(1)
    for k in range(200):
        noise = rng.standard_normal(160) * dbm0_to_rms(-60.0)
        health.frame(np.rint(noise).astype(np.int16), False, k * 0.02)
        health.frame(np.zeros(160, np.int16), False, k * 0.02)
        health.frame(np.full(160, 8000, np.int16), True, k * 0.02)
    assert health.noise_dbm0 is not None
    assert abs(health.noise_dbm0 - -60.0) < 1.5


def test_health_keys_are_read_and_checked_naming_the_key() -> None:
    cfg = LineConfig.from_config({"health": {"dead_volts": 2, "baseline_calls": 3},
                                  "ports": {"1": {"fxo": {"answer_after_rings": 4}}}})  # fmt: skip
    assert (cfg.health.dead_volts, cfg.health.baseline_calls) == (2.0, 3)
    assert cfg.for_port(1).health == cfg.health
    with pytest.raises(ConfigError, match=r"^line\.health\.dead_after_s must be 0\.1\.\.600"):
        LineConfig.from_config({"health": {"dead_after_s": 0}})
    with pytest.raises(ConfigError, match=r"^line\.health\.baseline_calls must be a whole num"):
        LineConfig.from_config({"health": {"baseline_calls": 2.5}})
    with pytest.raises(ConfigError, match=r"^line\.health\.volts is not a setting; known: dead"):
        LineConfig.from_config({"health": {"volts": 1}})
    with pytest.raises(ConfigError, match=r"^line\.health must be a table"):
        LineConfig.from_config({"health": 3})
