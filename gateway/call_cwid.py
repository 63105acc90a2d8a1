"""Caller ID on call waiting (#8): `CallWaitingId`, one per call, which the call's `AudioPath`
runs in its frame step, and `waiting_note`, which `gateway.call_signals` awaits to tell the
agent who is waiting.

Bellcore's "off-hook data transmission" (GR-30-CORE, SR-TSV-002476; ETSI EN 300 659-2 is
the same exchange): with a second call for a line in a call, the exchange takes the far party
off the line, plays the SAS (440 Hz, for the subscriber) and the CAS (2130 + 2750 Hz, for the
CPE). A CPE that wants the caller ID mutes its handset and acknowledges with DTMF D (A on
ADSI sets, TR-NWT-000575); only then does the exchange send the caller ID as FSK, with no
channel seizure and a short mark signal, and it puts the far party back after it. The box is
the CPE and the agent the subscriber (FXO lines only):
- the frame step that recognises the CAS (`dsp.line_signals`: 10 ms after it ends) starts an
  exchange: from the frame it sends then, the line gets the ack and then silence, not the
  agent, whose audio stays buffered (the playout is not advanced) and plays on from where it
  stopped once the exchange is over;
- the frames received meanwhile go to a `CallerIdDecoder`, and the VAD, the cloud and the
  tapes get comfort noise at the line's floor instead: no FSK, no ack echo in the agent's
  ears; the echo canceller's reference is silence meanwhile (taught the ack, a two-tone
  signal, it misadapts and lets the agent's echo through afterwards: a false barge-in). The
  CAS itself is kept from the VAD and the cloud while it sounds, like DTMF (`AudioPath`);
- it ends with the first burst decoded, or `WINDOW_S` after its start without one.

Timing, as the Zarlink MT8843 and Winbond W91030 datasheets chart Bellcore's off-hook data
transmission: CAS 75-85 ms; the ack starts 0-100 ms after the CAS ends and lasts 55-65 ms;
the FSK starts 0-500 ms after the ack ends, with 58-75 ms of marks; the CPE unmutes <= 50 ms
after the data ends (here: in the frame the decoder completes the burst).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder, CallerIdError, Reason
from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_S, FRAME_SAMPLES
from dsp.line_signals import LineSignal
from gateway.call_metrics import Timeline

if TYPE_CHECKING:
    from gateway.call_config import CallConfig

CALL_WAITING_NOTE = "[call waiting: another call is coming in on this line; it stays unanswered]"
ACK_DIGITS = ("D", "A")  # TR-NWT-000575: D for a plain CPE, A for an ADSI one
FSK_STANDARDS = ("bell202", "v23")  # GR-30-CORE; ETSI EN 300 659-2
ACK_MS = 60.0  # 55-65 ms
ACK_LEVEL_DBM0 = -10.0  # per tone: what the simulated callers' keypads send too
# The ack (60 ms), the exchange's 500 ms before the FSK, and a burst of up to 640 ms: 80 marks
# and 64 bytes at 1200 baud (GR-30-CORE's longest MDMF, a 15-character name, 10 digits and
# the date, is 42 bytes; EN 300 659-3 names of up to 26 characters fit).
WINDOW_S = 1.2
# The CAS follows the SAS at once: an SAS without a CAS this soon after it is a plain call
# waiting tone (the SAS is reported when it ends, the CAS 10 ms after its 80 ms).
CAS_AFTER_SAS_S = 0.3
_REASON_WORDS: dict[Reason, str] = {"private": "withheld", "unavailable": "unavailable"}

Outcome = CallerId | CallerIdError | None  # None: nothing decoded in the window


class CallWaitingId:
    """See the module docstring. `enabled`: the line is FXO and `call.callwaiting_id` is on;
    `standard` the FSK ("bell202" or "v23"), `ack_digit` the DTMF ack ("D" or "A"; both
    checked by `CallConfig`)."""

    def __init__(self, enabled: bool, timeline: Timeline, standard: str = "bell202",
                 ack_digit: str = "D") -> None:  # fmt: skip
        self.enabled, self.timeline, self.ack_digit = enabled, timeline, ack_digit
        self._decoder = CallerIdDecoder("v23" if standard == "v23" else "bell202")
        self.exchanges = 0  # started over the call
        self.outcome: Outcome = None  # the last exchange's
        self._out = np.zeros(0, np.int16)  # what the line gets while the exchange lasts
        self._sent = 0  # samples of it sent
        self._done = trio.Event()

    @classmethod
    def of(cls, config: CallConfig, fxo: bool, timeline: Timeline) -> CallWaitingId:
        """A call's, as `config` says (`call.callwaiting_id*`); only FXO lines have it."""
        return cls(config.callwaiting_id and fxo, timeline, config.callwaiting_id_standard,
                   config.callwaiting_ack)  # fmt: skip

    @property
    def active(self) -> bool:
        """An exchange is under way: the line is its own."""
        return self._sent < self._out.shape[0]

    def step(self, heard: Sequence[LineSignal], clean: NDArray[np.int16],
             now_s: float) -> NDArray[np.int16] | None:  # fmt: skip
        """One frame of the call's step: `heard` the signals recognised in it, `clean` the
        received frame after echo cancellation. Returns the frame to send to the line (a new
        160-sample int16 array) while an exchange is under way, else None (the agent's)."""
        if not self.active and self.enabled and any(h.variant == "cas" for h in heard):
            self._start(now_s)
        elif not self.active:
            return None
        else:
            for result in self._decoder.feed(clean):
                self._finish(result, now_s)
                return np.zeros(FRAME_SAMPLES, np.int16)  # `clean` still holds the burst's end
        frame = self._out[self._sent : self._sent + FRAME_SAMPLES].copy()
        self._sent += FRAME_SAMPLES
        if not self.active:
            self._finish(None, now_s)
        return frame

    async def wait(self) -> Outcome:
        """The outcome of the exchange under way (or of the last one, if it is over)."""
        await self._done.wait()
        return self.outcome

    def _start(self, now_s: float) -> None:
        frames = math.ceil(WINDOW_S / FRAME_S)
        ack = dtmf_generate(self.ack_digit, ACK_MS, 0.0, ACK_LEVEL_DBM0)
        self._out = np.zeros(frames * FRAME_SAMPLES, np.int16)
        self._out[: ack.shape[0]] = ack
        self._sent, self.outcome, self._done = 0, None, trio.Event()
        self._decoder.reset()
        self.exchanges += 1
        self.timeline.note(now_s, f"call waiting: CAS acknowledged ({self.ack_digit})")

    def _finish(self, outcome: Outcome, now_s: float) -> None:
        self._sent = self._out.shape[0]
        self.outcome = outcome
        if isinstance(outcome, CallerId):
            what = f"caller ID {describe(outcome)}"
        elif isinstance(outcome, CallerIdError):
            what = f"caller ID unreadable ({outcome.reason})"
        else:
            what = f"no caller ID within {WINDOW_S:g} s"
        self.timeline.note(now_s, f"call waiting: {what}")
        self._done.set()


def describe(cid: CallerId) -> str:
    """`cid` in words for the agent: the name and number sent, and why any is missing."""
    known = " ".join(part for part in (cid.name, cid.number) if part)
    reasons = (("name", cid.name, cid.name_reason), ("number", cid.number, cid.number_reason))
    missing = ", ".join(f"{what} {_REASON_WORDS[why]}" for what, value, why in reasons
                        if why is not None and not value)  # fmt: skip
    if known and missing:
        return f"{known} ({missing})"
    return known or missing or "no name or number sent"


async def waiting_note(cwid: CallWaitingId, heard: LineSignal) -> str | None:
    """The note for the agent on a call-waiting signal (None: none). Caller ID on call waiting
    off: the plain note for each. On: after a CAS, once its exchange is over, who is waiting
    (the plain note without a caller ID); after an SAS, the plain note only if no CAS followed
    it within `CAS_AFTER_SAS_S` (that CAS's note tells the agent)."""
    if not cwid.enabled:
        return CALL_WAITING_NOTE
    if heard.variant == "cas":
        outcome = await cwid.wait()
        if not isinstance(outcome, CallerId):
            return CALL_WAITING_NOTE
        return (f"[call waiting: {describe(outcome)} is calling on this line; "
                "the call stays unanswered]")  # fmt: skip
    started = cwid.exchanges
    await trio.sleep(CAS_AFTER_SAS_S)
    return None if cwid.exchanges > started else CALL_WAITING_NOTE
