"""The exchange behind a simulated FXO line, for the calls the host places: `FxoExchange`, a
base of `firmware_bridge.sim.line.LineModel` on `line_core.LineCore`.

Owns what the network does with the host's DTMF (decoded by `LineModel` while the host is
off-hook): in dial tone or dialling, each digit joins `dialed_digits`; the number is complete
after `number_digits` digits or the inter-digit timeout, and after `post_dial_ms` the far end
rings (ringback tone) and answers after `answer_after_rings` cycles (optionally reversing the
polarity: answer supervision), or is busy. In a call the far party hears the digits
(`digits_heard`). `expect_outgoing` sets how the next number goes. Pure, like the line: every
timer counts samples.
"""

from __future__ import annotations

from dsp.tones import ToneGenerator
from firmware_bridge.port import PolarityReversed, PortKind
from firmware_bridge.sim.line_core import LineCore, LineState, samples

DIGIT_TIMEOUT_MS = 4000.0  # exchange's short inter-digit timer: the number is complete
POST_DIAL_MS = 1000.0  # silence between the last digit and ringback / busy
ANSWER_GAP_MS = 500.0  # the called party picks up this long after a ringback burst


class FxoExchange(LineCore):
    """The outgoing-call part of `LineModel` (see the module docstring)."""

    def _init_exchange(self) -> None:
        self._answer_after: int | None = 2  # FXO outgoing: rings before the far end answers
        self._number_digits: int | None = None
        self._post_dial_ms, self._reverse_on_answer = POST_DIAL_MS, False
        self.dialed_digits, self.digits_heard = "", ""

    def expect_outgoing(
        self,
        answer_after_rings: int | None = 2,
        *,
        number_digits: int | None = None,
        post_dial_ms: float = POST_DIAL_MS,
        reverse_polarity_on_answer: bool = False,
    ) -> None:
        """FXO: how the next number the host dials goes. Complete after `number_digits`
        digits (None: after the inter-digit timeout); then `post_dial_ms` of silence and
        ringback; the far end answers after `answer_after_rings` ringback cycles (None: busy
        tone instead), optionally with answer supervision by a polarity reversal."""
        self._need(PortKind.FXO, "expect_outgoing")
        self._answer_after, self._number_digits = answer_after_rings, number_digits
        self._post_dial_ms, self._reverse_on_answer = post_dial_ms, reverse_polarity_on_answer

    def _host_digit(self, digit: str) -> None:
        if self._state not in (LineState.DIAL_TONE, LineState.DIALING):
            self.digits_heard += digit  # in a call: the far party hears it
            return
        self._state, self._tone = LineState.DIALING, None
        self.dialed_digits += digit
        count = len(self.dialed_digits)
        if count == self._number_digits:
            self._number_complete()
        else:
            self._at(self._now + samples(DIGIT_TIMEOUT_MS), lambda _: self._timeout(count))

    def _timeout(self, count: int) -> None:
        if self._state is LineState.DIALING and len(self.dialed_digits) == count:
            self._number_complete()

    def _number_complete(self) -> None:
        busy = self._answer_after is None
        self._state = LineState.BUSY if busy else LineState.RINGBACK
        self._at(self._now + samples(self._post_dial_ms), self._far_end_rings)

    def _far_end_rings(self, due: int) -> None:
        if self._state is LineState.BUSY or self._answer_after is None:
            self._tone = ToneGenerator(self.plan, "busy")
            return
        cadence = self.plan.tone("ringback").cadence_ms
        self._tone = ToneGenerator(self.plan, "ringback")
        if self._answer_after <= 0:
            self._far_answers(due)
            return
        ring_ms = (self._answer_after - 1) * sum(cadence) + sum(cadence[:-1]) + ANSWER_GAP_MS
        self._at(due + samples(ring_ms), self._far_answers)

    def _far_answers(self, _due: int) -> None:
        self._state, self._tone = LineState.CONNECTED, None
        if self._reverse_on_answer:
            self._emit(PolarityReversed(self.port))
