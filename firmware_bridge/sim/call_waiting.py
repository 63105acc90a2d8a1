"""The exchange's call waiting on a simulated FXO line in a call, with caller ID on call
waiting (Bellcore "off-hook data transmission", GR-30-CORE / SR-TSV-002476; ETSI
EN 300 659-2): `CallWaiting`, a caller step (`caller.CallerScript` queues it with
`queue_call_waiting`), and `CallWaitingHeard`, what the exchange made of the host's answer.

On the far side's script, in order: the far party goes quiet (the exchange has taken it off
the line), the SAS (440 Hz, 300 ms; optional) and a short gap, the CAS (2130 + 2750 Hz,
80 ms), then
`ack_wait_ms` of listening: if the host sent the ack digit (DTMF D or A, decoded from what it
sent to the line since the SAS began), the exchange sends the caller ID as a Bell 202 / V.23
burst (the line's `callerid_standard`) with no channel seizure and 80 marks (58-75 ms at
1200 baud: 70-90 bits), else nothing; the far party is back after `burst_ms` either way.
Pure, like the line: everything happens on the line's sample clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsp.callerid import CallerId, encode
from dsp.frame import RATE_HZ
from dsp.levels import tone
from firmware_bridge.sim.line import LineModel

__all__ = ["CallWaiting", "CallWaitingHeard", "queue_call_waiting"]

SAS_HZ, SAS_MS = 440.0, 300.0  # GR-506-CORE subscriber alerting signal
CAS_HZ, CAS_MS = (2130.0, 2750.0), 80.0  # SR-TSV-002476: each +-0.5 %, 80 +-5 ms
MARK_BITS = 80  # the off-hook burst's mark signal: 58-75 ms, no channel seizure
# The ack starts <= 100 ms after the CAS and lasts 55-65 ms; the line's DTMF decoder reports a
# key 25 ms after it ends. 100 ms more for the host's path to the line (the link and the
# adapter's playout FIFO): a real exchange allows none of it, so `CallWaitingHeard.ack_ms`
# says how late the ack really was.
ACK_WAIT_MS = 300.0


@dataclass(frozen=True, slots=True)
class CallWaitingHeard:
    """One call-waiting alert: `cas_end_ms` the line ms the exchange's listening began (the
    frame boundary after the CAS), `digits` what the host keyed from the SAS to the decision,
    `acked` whether they held the ack, `fsk_ms` when the caller ID burst began (None: not
    sent)."""

    cas_end_ms: float
    digits: str
    acked: bool
    fsk_ms: float | None


@dataclass(frozen=True, slots=True)
class CallWaiting:
    """A second call arrives while the caller talks to the host: `callerid` is what the
    exchange sends if the host acknowledges the CAS (None: a line without caller ID on call
    waiting, which sends nothing). `acks` the digits the exchange takes as an ack; `level_dbm0`
    the tones' level (each); `sas_ms` 0: the CAS alone (ETSI's dual-tone alerting signal,
    no call waiting tone); `heard` collects one `CallWaitingHeard` per alert played."""

    callerid: CallerId | None = None
    label: str = "call waiting"
    acks: str = "DA"
    level_dbm0: float = -20.0
    sas_ms: float = SAS_MS
    gap_ms: float = 40.0
    ack_wait_ms: float = ACK_WAIT_MS
    heard: list[CallWaitingHeard] = field(default_factory=list, compare=False)


def queue_call_waiting(line: LineModel, step: CallWaiting) -> None:
    """Queue `step`'s alert, the exchange's decision and its caller ID on `line`'s script."""
    burst = np.zeros(0, np.int16)
    if step.callerid is not None:
        burst = encode(step.callerid, line.callerid_standard, seizure_bits=0, mark_bits=MARK_BITS)
    keyed = [0]  # the host's digits before the alert (set when it starts)
    line.then(lambda: keyed.__setitem__(0, len(line.digits_heard)))
    if step.sas_ms > 0.0:
        line.play(tone([SAS_HZ], step.sas_ms, step.level_dbm0), f"{step.label} sas")
        line.silence(step.gap_ms)
    line.play(tone(list(CAS_HZ), CAS_MS, step.level_dbm0), f"{step.label} cas")
    cas_end = [0.0]
    line.then(lambda: cas_end.__setitem__(0, line.now_ms))
    line.silence(step.ack_wait_ms)

    def decide() -> None:
        digits = line.digits_heard[keyed[0] :]
        acked = any(d in step.acks for d in digits)
        send = acked and burst.shape[0] > 0
        if send:
            line.send_network(burst)
        step.heard.append(CallWaitingHeard(cas_end[0], digits, acked,
                                           line.now_ms if send else None))  # fmt: skip

    line.then(decide)
    line.silence(1000.0 * burst.shape[0] / RATE_HZ + 20.0)  # the far party is back after it
