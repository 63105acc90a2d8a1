"""Caller ID on call waiting (#8), end to end on the simulators (real clock): the simulated
exchange interrupts a call with the CAS while the agent greets; the box acknowledges with
DTMF D within 100 ms, the exchange sends the waiting caller's ID as FSK, and the agent is
told who is waiting, with none of the FSK in what the cloud hears; its greeting, held
meanwhile, plays on after. A line without caller ID on call waiting (SAS and CAS, no FSK
after the ack), and the box with `call.callwaiting_id` off (no ack, so no FSK), give the
plain call-waiting note."""

from __future__ import annotations

import numpy as np
import trio

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.dtmf import DtmfDetector
from firmware_bridge.sim.caller import (
    CallerScript,
    CallWaiting,
    HangUp,
    WaitForSilence,
    WaitForVoice,
)
from firmware_bridge.sim.line import LineModel
from gateway.call_config import CallConfig
from gateway.call_cwid import ACK_MS, CALL_WAITING_NOTE
from gateway.realtime.local import LocalRealtimeServer, Script
from gateway.realtime.local.record import SessionRecord
from gateway.simcall import SimResult, run_sim_calls
from gateway.simcall_scenario import ScriptedCaller, caller_id

WAITING = CallerId("5559876543", "BOB JONES", "12061530")
WAITING_NOTE = (
    "[call waiting: BOB JONES 5559876543 is calling on this line; the call stays unanswered]"
)
ACK_START_MAX_MS = 100.0  # Bellcore off-hook data transmission: ack 0-100 ms after the CAS
TIMEOUT_S = 40.0


def interrupted(callerid: CallerId | None, sas_ms: float = 300.0
                ) -> tuple[ScriptedCaller, CallWaiting]:  # fmt: skip
    """A caller whose call is interrupted by a call waiting 300 ms of voice into the agent's
    greeting; it hears the greeting out and hangs up."""
    waiting = CallWaiting(callerid, sas_ms=sas_ms)
    return ScriptedCaller(CallerScript((
        WaitForVoice(300.0), waiting, WaitForVoice(200.0), WaitForSilence(600.0),
        HangUp("loop_drop"),
    ))), waiting  # fmt: skip


async def _run(callers: list[ScriptedCaller], config: CallConfig
               ) -> tuple[SimResult, LocalRealtimeServer]:  # fmt: skip
    server = LocalRealtimeServer(script=Script(), keep_audio=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        result = await run_sim_calls(callers, script=Script(), realtime_url=url, config=config,
                                     timeout_s=TIMEOUT_S)  # fmt: skip
        nursery.cancel_scope.cancel()
    assert not result.timed_out, f"timed out after {result.elapsed_s:.1f} s"
    return result, server


def _session(server: LocalRealtimeServer, port: int) -> SessionRecord:
    """Line `port`'s session (its caller ID names it)."""
    number = caller_id(port).number
    assert number is not None
    return next(s for s in server.sessions if any(number in t for _, t in s.item_texts()))


def _notes(session: SessionRecord) -> list[str]:
    return [t for role, t in session.item_texts() if role == "system" and "call waiting" in t]


def _heard_fsk(session: SessionRecord, standard: str = "bell202") -> list[object]:
    """What a caller ID decoder makes of everything the cloud heard on `session`."""
    assert session.audio is not None
    audio = np.concatenate([np.asarray(f, np.int16) for f in session.audio])
    return list(CallerIdDecoder(standard).feed(audio))  # type: ignore[arg-type]


def _ack_delay_ms(line: LineModel, label: str = "call waiting cas") -> float:
    """From the end of the CAS at the line to the start of the host's DTMF D there."""
    cas_end_ms = next(p.end_ms for p in line.played if p.label == label)
    keys = [k for k in DtmfDetector().feed(line.tx_log) if k.digit == "D"]
    assert len(keys) == 1, keys
    assert abs(keys[0].duration_ms - ACK_MS) < 5.0
    return keys[0].start_ms - cas_end_ms


async def _the_agent_hears_who_is_waiting_and_not_the_fsk() -> None:
    (with_id, cw_id), (without_id, cw_none) = interrupted(WAITING, sas_ms=0.0), interrupted(None)
    result, server = await _run([with_id, without_id], CallConfig())
    [heard] = cw_id.heard
    assert heard.acked
    assert heard.fsk_ms is not None
    delay_ms = _ack_delay_ms(result.lines[0])
    print(f"ack starts {delay_ms:.0f} ms after the CAS ends (bound {ACK_START_MAX_MS:.0f} ms)")
    assert 0.0 <= delay_ms <= ACK_START_MAX_MS
    session = _session(server, 0)
    assert _notes(session) == [WAITING_NOTE]
    assert _heard_fsk(session) == []
    record = result.records[0]
    assert record is not None
    events = [e for _, e in record.timeline]
    acked_at = events.index("call waiting: CAS acknowledged (D)")
    assert events[acked_at + 2] == "call waiting: caller ID BOB JONES 5559876543"
    assert not [e for e in events if e.startswith(("barge-in", "truncated"))], events
    # One response (the greeting), held and resumed; its id depends on which of the two
    # calls' greetings the server made first.
    assert len([e for e in events if e.startswith("agent audio")]) == 1, record.timeline
    # The greeting held through the exchange plays on after it: the line is quiet from the
    # ack's end to the burst's end, and the agent's voice is back once it is over.
    line = result.lines[0]
    burst_end_ms = heard.fsk_ms + 400.0
    ack_end_ms = heard.cas_end_ms + delay_ms + ACK_MS
    quiet = line.host_quiet_after(ack_end_ms + 10.0, quiet_ms=burst_end_ms - ack_end_ms - 20.0)
    assert quiet is not None
    assert quiet <= ack_end_ms + 30.0
    assert line.host_voice_after(burst_end_ms) is not None
    [no_fsk] = cw_none.heard
    assert no_fsk.acked
    assert no_fsk.fsk_ms is None
    assert _notes(_session(server, 1)) == [CALL_WAITING_NOTE]


async def _with_callwaiting_id_off_the_cas_is_not_acknowledged() -> None:
    caller, waiting = interrupted(WAITING)
    result, server = await _run([caller], CallConfig(callwaiting_id=False))
    [heard] = waiting.heard
    assert not heard.acked
    assert heard.digits == ""
    assert heard.fsk_ms is None
    notes = _notes(_session(server, 0))
    assert len(notes) == 2  # one for the SAS, one for the CAS
    assert set(notes) == {CALL_WAITING_NOTE}
    assert not any(k.digit == "D" for k in DtmfDetector().feed(result.lines[0].tx_log))


async def test_call_waiting_with_and_without_its_caller_id() -> None:
    """The two runs at once, each on its own simulated adapter and realtime server."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_the_agent_hears_who_is_waiting_and_not_the_fsk)
        nursery.start_soon(_with_callwaiting_id_off_the_cas_is_not_acknowledged)
