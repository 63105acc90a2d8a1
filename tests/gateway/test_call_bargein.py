"""gateway.call_bargein: the barge-in state machine, and gateway.call_metrics' pieces that do
not need a call (percentiles, the late-frame clock, the record's JSON)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from dsp.callerid import CallerId
from dsp.frame import FRAME_S, FRAME_SAMPLES
from gateway.call_bargein import BargeIn, BargeInState
from gateway.call_config import CallConfig
from gateway.call_metrics import CallMetrics, CallRecord, FrameClock, TranscriptLine
from gateway.errors import ConfigError
from gateway.tools import ToolCallRecord


def test_a_rise_over_the_agent_pauses_and_the_cloud_confirms_it() -> None:
    b = BargeIn(confirm_window_s=1.5)
    assert b.voice_rose(onset_s=10.0, agent_playing=True)
    assert b.state is BargeInState.PAUSED
    assert not b.voice_rose(onset_s=10.3, agent_playing=True)  # already paused
    assert not b.tick(11.4)
    assert b.cloud_speech(agent_active=True)
    assert not b.paused
    assert (b.stats.paused, b.stats.confirmed, b.stats.resumed) == (1, 1, 0)


def test_an_unconfirmed_pause_resumes_when_the_window_runs_out() -> None:
    b = BargeIn(confirm_window_s=1.5)
    assert b.voice_rose(onset_s=10.0, agent_playing=True)
    assert not b.tick(11.5)
    assert b.tick(11.52)
    assert b.state is BargeInState.IDLE
    assert b.stats.resumed == 1
    assert not b.cloud_speech(agent_active=False)  # later speech with the agent quiet: a turn


def test_a_rise_with_the_agent_quiet_is_a_turn_not_a_barge_in() -> None:
    b = BargeIn()
    assert not b.voice_rose(onset_s=1.0, agent_playing=False)
    assert b.state is BargeInState.IDLE
    assert b.stats.paused == 0


def test_the_cloud_alone_stops_a_talking_agent() -> None:
    b = BargeIn()
    assert b.cloud_speech(agent_active=True)
    assert b.stats.cloud_only == 1


def test_a_withdrawn_pause_is_not_counted() -> None:
    b = BargeIn()
    assert not b.withdraw()
    assert b.voice_rose(onset_s=1.0, agent_playing=True)
    assert b.withdraw()
    assert b.state is BargeInState.IDLE
    assert b.stats.paused == 0


@pytest.mark.parametrize("window", [0.0, -1.0, math.nan, 11.0])
def test_a_confirm_window_out_of_range_is_a_config_error(window: float) -> None:
    with pytest.raises(ConfigError, match="confirm_window_s"):
        BargeIn(window)


def test_call_config_names_the_key_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"call\.hold_timeout_s must be in 0\.\.300"):
        CallConfig(hold_timeout_s=301.0)


def test_frames_handled_over_a_frame_late_or_lost_count_as_late() -> None:
    clock = FrameClock()
    t0 = 100.0
    for seq in range(10):  # on time, with 2 ms of jitter
        assert (
            clock.lateness_s(
                seq, seq * FRAME_SAMPLES, False, t0 + seq * FRAME_S + 0.002 * (seq % 2)
            )
            < FRAME_S
        )
    assert clock.late == 0
    clock.lateness_s(10, 10 * FRAME_SAMPLES, False, t0 + 10 * FRAME_S + 0.035)  # 35 ms late
    clock.lateness_s(14, 14 * FRAME_SAMPLES, True, t0 + 14 * FRAME_S)  # 3 frames lost
    assert (clock.late, clock.lost, clock.concealed) == (1, 3, 1)


def test_turn_latency_runs_from_the_end_of_speech_to_the_next_answer_on_the_line() -> None:
    m = CallMetrics()
    m.agent_started(first_push_s=0.5, now_s=0.52)  # the greeting: no turn
    m.caller_started()
    m.caller_stopped(end_s=3.0)
    m.agent_started(first_push_s=2.9, now_s=3.1)  # an answer queued before: not this turn's
    m.agent_started(first_push_s=3.4, now_s=3.41)
    assert m.turn_latency_ms == [pytest.approx(410.0)]
    assert m.downlink_ms == [pytest.approx(20.0), pytest.approx(200.0), pytest.approx(10.0)]


def test_uplink_latency_percentiles_come_from_the_histogram() -> None:
    m = CallMetrics()
    for ms in [1.0] * 98 + [4.0, 9.0]:
        m.handed_to_cloud(arrived_s=0.0, now_s=ms / 1e3)
    assert m.uplink_percentile(50) == pytest.approx(1.0, abs=0.05)
    assert m.uplink_percentile(99) == pytest.approx(4.0, abs=0.05)
    assert CallMetrics().uplink_percentile(50) is None


def test_the_record_json_has_the_report_keys_at_the_top() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = CallRecord(
        "c1", 2, "inbound", "default", CallerId(number="5550100", name="ALICE"), t, t,
        "caller hung up (phone on-hook)", (TranscriptLine("caller", "hi"),), (412.25,),
        (9.12,), 1.0, 2.5, 15.0, 19.5, 31.04, 100, 1, 0, 2, 0,
        {"paused": 1, "confirmed": 1, "resumed": 0, "cloud_only": 0},
        (ToolCallRecord("x", "lookup", "ok", 1.0, 0.25),), "5#",
    )  # fmt: skip
    report = record.as_json()
    assert report["turn_latency_ms"] == [412.2]
    assert report["barge_in_stop_ms"] == [9.1]
    assert report["added_latency_ms"] == {"uplink_p50": 1.0, "uplink_p99": 2.5,
                                          "downlink_p50": 15.0, "downlink_p99": 19.5}  # fmt: skip
    assert report["erle_db"] == 31.0
    assert report["frames_late"] == 1
    assert report["transcript"] == [{"who": "caller", "text": "hi"}]
    assert report["ended_by"] == "caller hung up (phone on-hook)"
    assert report["caller_id"] == {"number": "5550100", "name": "ALICE"}
    assert report["tool_calls"] == [{"name": "lookup", "outcome": "ok", "duration_ms": 250.0}]
