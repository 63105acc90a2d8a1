"""firmware_bridge.sim.call_waiting: the simulated exchange's call waiting alert, and its
caller ID burst only after an ack, against a host scripted here on the line's own clock
(it keys its digit a fixed time after the CAS, or not at)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.callerid import CallerId, CallerIdDecoder, Standard
from dsp.dtmf import generate as dtmf_generate
from dsp.line_signals import LineSignalDetector
from firmware_bridge.port import PortKind
from firmware_bridge.sim.call_waiting import ACK_WAIT_MS
from firmware_bridge.sim.caller import CallerScript, CallWaiting, HangUp, Pause
from firmware_bridge.sim.line import LineModel

FRAME = 160
CID = CallerId("5559876543", "BOB JONES", "12061530")


def _call(step: CallWaiting, digit: str | None, after_ms: float,
          standard: Standard = "bell202") -> list[object]:  # fmt: skip
    """A call interrupted by `step`; the host keys `digit` (60 ms) `after_ms` after it hears
    the CAS end (None: it keys nothing). Returns what a caller ID decoder made of the audio
    the host received."""
    line = LineModel(PortKind.FXO, callerid_standard=standard)
    line.incoming_call(None, rings=3)
    line.host_off_hook()
    CallerScript((Pause(200.0), step, Pause(200.0), HangUp())).load(line)
    detector, decoder = LineSignalDetector(), CallerIdDecoder(standard)
    pending = np.zeros(0, np.int16)
    got: list[object] = []
    for _ in range(150):
        tx, pending = pending[:FRAME], pending[FRAME:]
        rx, _ = line.step(np.pad(tx, (0, FRAME - tx.size)))
        got += decoder.feed(rx)
        if digit is not None and any(s.variant == "cas" for s in detector.feed(rx)):
            wait = np.zeros(round(after_ms * 8), np.int16)
            pending = np.concatenate([wait, dtmf_generate(digit, 60.0, 0.0)])
    return got


@pytest.mark.parametrize("standard", ["bell202", "v23"])
@pytest.mark.parametrize("digit", ["D", "A"])
def test_an_ack_gets_the_caller_id_burst(digit: str, standard: Standard) -> None:
    step = CallWaiting(CID)
    assert _call(step, digit, 0.0, standard) == [CID]
    [heard] = step.heard
    assert heard.acked
    assert heard.digits == digit
    assert heard.fsk_ms is not None
    assert heard.fsk_ms - heard.cas_end_ms == ACK_WAIT_MS


@pytest.mark.parametrize(
    ("digit", "after_ms"), [(None, 0.0), ("5", 0.0), ("D", ACK_WAIT_MS)]
)  # fmt: skip
def test_no_ack_no_burst(digit: str | None, after_ms: float) -> None:
    step = CallWaiting(CID)
    assert _call(step, digit, after_ms) == []
    [heard] = step.heard
    assert not heard.acked
    assert heard.fsk_ms is None


def test_a_line_without_caller_id_on_call_waiting_sends_nothing_after_the_ack() -> None:
    step = CallWaiting(None, sas_ms=0.0)
    assert _call(step, "D", 0.0) == []
    assert step.heard[0].acked
    assert step.heard[0].fsk_ms is None
