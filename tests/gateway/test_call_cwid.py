"""`gateway.call_cwid`: caller ID on call waiting, frame by frame against the simulated
exchange (a `LineModel` in a call, stepped here: the box's frame step in miniature, one frame
sent per frame received), and the notes the agent gets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from dsp.callerid import CallerId, CallerIdError, encode, modulate_message
from dsp.dtmf import DtmfDetector
from dsp.frame import FRAME_S, FRAME_SAMPLES, RATE_HZ
from dsp.line_signals import LineSignal, LineSignalDetector
from firmware_bridge.port import PortKind
from firmware_bridge.sim.call_waiting import MARK_BITS
from firmware_bridge.sim.caller import CallerScript, CallWaiting, HangUp, Pause
from firmware_bridge.sim.line import LineModel
from gateway.call_cwid import (
    ACK_MS,
    CALL_WAITING_NOTE,
    WINDOW_S,
    CallWaitingId,
    describe,
    waiting_note,
)
from gateway.call_metrics import Timeline

WAITING = CallerId("5559876543", "BOB JONES", "12061530")
ACK_START_MAX_MS = 100.0  # Bellcore off-hook data transmission: 0-100 ms after the CAS ends
UNMUTE_MAX_MS = 50.0  # and the CPE unmutes <= 50 ms after the data ends


def _run(step: CallWaiting, cwid: CallWaitingId,
         seconds: float = 3.0) -> tuple[list[int], LineModel]:  # fmt: skip
    """A call interrupted by `step` 500 ms in; returns the frames (by index) the exchange
    took over, and the line, stepped with what `cwid` (else silence) sends."""
    line = LineModel(PortKind.FXO)
    line.incoming_call(None, rings=3)
    line.host_off_hook()
    CallerScript((Pause(500.0), step, Pause(500.0), HangUp())).load(line)
    detector, tx, taken = LineSignalDetector(), np.zeros(FRAME_SAMPLES, np.int16), []
    for i in range(round(seconds / FRAME_S)):
        rx, _ = line.step(tx)
        out = cwid.step(detector.feed(rx), rx, i * FRAME_S)
        tx = np.zeros(FRAME_SAMPLES, np.int16) if out is None else out
        if out is not None:
            taken.append(i)
    return taken, line


def test_the_cas_is_acknowledged_in_time_and_the_caller_id_decoded() -> None:
    step, cwid = CallWaiting(WAITING), CallWaitingId(True, Timeline(0.0))
    taken, line = _run(step, cwid)
    [heard] = step.heard
    assert heard.acked
    assert heard.digits == "D"
    assert heard.fsk_ms is not None
    cas_end_ms = next(p.end_ms for p in line.played if p.label == "call waiting cas")
    [key] = DtmfDetector().feed(line.tx_log)
    print(f"ack at +{key.start_ms - cas_end_ms:.0f} ms, {key.duration_ms:.0f} ms long")
    assert key.digit == "D"
    assert 0.0 <= key.start_ms - cas_end_ms <= ACK_START_MAX_MS
    assert abs(key.duration_ms - ACK_MS) < 5.0  # 55-65 ms
    assert cwid.outcome == WAITING
    burst = encode(WAITING, seizure_bits=0, mark_bits=MARK_BITS)
    burst_end_ms = heard.fsk_ms + 1000.0 * burst.size / RATE_HZ
    given_back_ms = (taken[-1] + 1) * FRAME_S * 1000.0
    print(f"line given back {given_back_ms - burst_end_ms:.0f} ms after the burst")
    assert 0.0 <= given_back_ms - burst_end_ms <= UNMUTE_MAX_MS
    assert taken == list(range(taken[0], taken[-1] + 1))
    assert [e for _, e in cwid.timeline.events] == [
        "call waiting: CAS acknowledged (D)",
        "call waiting: caller ID BOB JONES 5559876543",
    ]


def test_without_a_burst_the_line_is_given_back_after_the_window() -> None:
    step, cwid = CallWaiting(None), CallWaitingId(True, Timeline(0.0))
    taken, _ = _run(step, cwid)
    assert step.heard[0].acked
    assert step.heard[0].fsk_ms is None
    assert len(taken) == math.ceil(WINDOW_S / FRAME_S)
    assert cwid.outcome is None
    assert cwid.timeline.events[-1][1] == f"call waiting: no caller ID within {WINDOW_S:g} s"


def test_off_it_never_acknowledges_and_the_exchange_sends_nothing() -> None:
    step, cwid = CallWaiting(WAITING), CallWaitingId(False, Timeline(0.0))
    taken, line = _run(step, cwid)
    assert taken == []
    assert not step.heard[0].acked
    assert step.heard[0].fsk_ms is None
    assert not line.tx_log.any()


def test_a_corrupt_burst_is_reported_and_gives_the_line_back() -> None:
    cwid = CallWaitingId(True, Timeline(0.0), standard="bell202", ack_digit="A")
    cas = LineSignal("call_waiting", "cas", 100, 10.0, 80.0, (2130.0, 2750.0), -20.0)
    bad = bytearray(b"\x80\x0c\x02\x0a5559876543")
    bad.append(0)  # wrong checksum
    burst = modulate_message(bytes(bad), seizure_bits=0, mark_bits=80)
    audio = np.concatenate([np.zeros(4 * FRAME_SAMPLES, np.int16), burst,
                            np.zeros(10 * FRAME_SAMPLES, np.int16)])  # fmt: skip
    n = audio.size // FRAME_SAMPLES
    frames = np.split(audio[: n * FRAME_SAMPLES], n)
    sent = [cwid.step([cas] if i == 0 else [], f, i * FRAME_S) for i, f in enumerate(frames)]
    assert isinstance(cwid.outcome, CallerIdError)
    assert cwid.outcome.reason == "bad checksum"
    assert sent[-1] is None
    ack = np.concatenate([f for f in sent[:5] if f is not None])
    assert [key.digit for key in DtmfDetector().feed(ack)] == ["A"]


@pytest.mark.parametrize(
    ("cid", "words"),
    [
        (WAITING, "BOB JONES 5559876543"),
        (CallerId("5559876543", name_reason="private"), "5559876543 (name withheld)"),
        (CallerId(name="BOB", number_reason="unavailable"), "BOB (number unavailable)"),
        (CallerId(number_reason="private", name_reason="private"),
         "name withheld, number withheld"),
        (CallerId(), "no name or number sent"),
    ],
)  # fmt: skip
def test_describe_says_who_or_why_not(cid: CallerId, words: str) -> None:
    assert describe(cid) == words


async def test_notes_the_sas_defers_to_the_cas_that_follows(autojump_clock: MockClock) -> None:
    cwid = CallWaitingId(True, Timeline(0.0))
    sas = LineSignal("call_waiting", "sas", 300, 0.0, 300.0, (440.0,), -20.0)
    cas = LineSignal("call_waiting", "cas", 400, 320.0, 80.0, (2130.0, 2750.0), -20.0)
    notes: list[str | None] = []

    async def note(heard: LineSignal) -> None:
        notes.append(await waiting_note(cwid, heard))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(note, sas)
        await trio.sleep(0.1)
        cwid.step([cas], np.zeros(FRAME_SAMPLES, np.int16), trio.current_time())
        nursery.start_soon(note, cas)
        for _ in range(math.ceil(WINDOW_S / FRAME_S)):
            await trio.sleep(FRAME_S)
            cwid.step([], np.zeros(FRAME_SAMPLES, np.int16), trio.current_time())
    assert notes == [None, CALL_WAITING_NOTE]  # no burst: the plain note, once
    with trio.fail_after(1.0):
        assert await waiting_note(cwid, sas) == CALL_WAITING_NOTE  # an SAS alone
        assert await waiting_note(CallWaitingId(False, Timeline(0.0)), cas) == CALL_WAITING_NOTE
