"""Hang-up truth, end to end on the simulators (real clock): one call per far-end hang-up
signal, all at once on a 5-port simulated adapter. For each, the time from the far end leaving
(the simulated exchange starts the signal) to the local realtime server seeing the session's
socket close, and the record's `hangup_signal`. Figures printed (-s); measured: loop drop
0.63 s, polarity 0.03 s, busy 0.90-0.91 s, reorder 0.68 s, dial tone 1.00 s."""

from __future__ import annotations

import math

from firmware_bridge.sim.caller import CallerScript, HangUp, Mark, WaitForSilence, WaitForVoice
from firmware_bridge.sim.line import HangUpMethod
from gateway.realtime.local import Script
from gateway.simcall import SimResult, run_sim_calls
from gateway.simcall_scenario import ScriptedCaller, caller_id

# How the far end leaves, the signal the record must name, and the budget from the far end's
# act to the cloud session closed: the 1 s for each. Loop drop and polarity are seen
# in one event. A tone must first be recognised; the FXO line's detector watches for hang-up
# (`hangup_watch`): after a quiet lead-in, busy (0.5 s on / 0.5 s off) is named on one whole
# burst and 0.4 s of quiet pause (0.9 s), reorder (0.25 / 0.25) on burst, pause and 0.18 s of
# the next burst (0.68 s), dial tone after 0.7 s steady; the box adds about 0.01 s.
CASES: tuple[tuple[HangUpMethod, str, float], ...] = (
    ("loop_drop", "loop_drop", 1.0),
    ("polarity", "polarity", 1.0),
    ("busy", "busy", 1.0),
    ("reorder", "reorder", 1.0),
    ("dial_tone", "dial", 1.0),
)
TIMEOUT_S = 60.0


def leaving(method: HangUpMethod) -> ScriptedCaller:
    return ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), Mark("leaving"), HangUp(method),
    )))  # fmt: skip


def _session_of(result: SimResult, port: int) -> float:
    """When the server saw the socket of line `port`'s call close (its caller ID names it)."""
    assert result.server is not None
    number = caller_id(port).number
    for session in result.server.sessions:
        if any(number in str(event) for event in session.received):
            return session.closed_s
    raise AssertionError(f"no session for line {port}")


async def test_every_hang_up_signal_closes_the_cloud_session_and_is_recorded() -> None:
    callers = [leaving(method) for method, _, _ in CASES]
    result = await run_sim_calls(callers, script=Script(), timeout_s=TIMEOUT_S, watch=True)
    assert not result.timed_out, f"timed out after {result.elapsed_s:.1f} s"
    rows = []
    for port, (method, signal, budget_s) in enumerate(CASES):
        record = result.records[port]
        assert record is not None, f"line {port} ({method}): no record"
        marks = dict(result.lines[port].marks)
        left_s = result.watches[port].trio_s(marks["leaving"])
        closed_s = _session_of(result, port)
        assert math.isfinite(closed_s), f"{method}: the session never closed"
        took_s = closed_s - left_s
        rows.append((method, record.hangup_signal, took_s, record.cloud_closed_ms))
        assert record.hangup_signal == signal, (method, record.ended_by)
        assert record.ended_by.startswith("caller hung up (far end: "), record.ended_by
        assert record.cloud_closed_ms is not None
        assert record.cloud_closed_ms <= 500.0, (method, record.cloud_closed_ms)
        assert 0.0 < took_s <= budget_s, (method, took_s)
    print("\nfar end leaves -> cloud session closed (server side)")
    for method, signal, took_s, closed_ms in rows:
        print(f"  {method:<10} {signal:<10} {took_s * 1000:7.0f} ms   (box: line hang-up -> "
              f"closed {closed_ms:.0f} ms)")  # fmt: skip
