"""The calls an FXO line places: `FxoDialling`, a base of `gateway.line_fxo.FxoLine`.

`place_call` on an FXO line comes to `_place`: the number is checked (`DIAL_DIGITS`) and the
line seized (SEIZED); dial tone, or `dial_tone_wait_s` without it and `blind_dial`, dials it
(DIALING); then PROGRESS listens (`gateway.line_progress.ProgressEar` on the audio, tones from
the device or `dsp.tones`) until the answer or a failure. Answered: ringback heard and then
silent for longer than its cadence's longest gap (`RINGBACK_MARGIN_S`), or (`FxoLine`'s signal
handlers) a polarity reversal or voice; failed: a tone in `FAILURE_TONES`, `no_answer_s`, or
(`FxoLine`) a loop-current drop. The answer starts the outbound call and resolves the request.
A phone's emergency call (`EMERGENCY_PROFILE`) skips all that: the line is seized and the call
(the bridge to the phone, `gateway.emergency`, which dials) starts at once, in EMERGENCY.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from dsp.tone_plans import get_plan
from gateway.emergency_digits import EMERGENCY_PROFILE
from gateway.line_base import LineActor, VoiceHeard
from gateway.line_call import DialOutcome, OutboundCall
from gateway.line_config import FxoConfig
from gateway.line_fxo_state import FxoState, FxoTimer
from gateway.line_progress import Heard, ProgressEar

log = logging.getLogger(__name__)

DIAL_DIGITS = frozenset("0123456789*#ABCD")
RINGBACK_MARGIN_S = 1.5  # ringback's longest silent segment plus this, without tone: it stopped
FAILURE_TONES = {"busy": DialOutcome.BUSY, "reorder": DialOutcome.BUSY,
                 "sit": DialOutcome.FAILED, "dial": DialOutcome.FAILED,
                 "fax": DialOutcome.FAILED, "modem": DialOutcome.FAILED}  # fmt: skip


class FxoDialling(LineActor):
    """The outgoing-call part of `FxoLine` (see the module docstring)."""

    state: FxoState
    cfg: FxoConfig

    def _enter(self, state: FxoState) -> None:
        """`FxoLine`'s state change."""
        raise NotImplementedError

    def _init_dialling(self) -> None:
        self._ear = ProgressEar()
        self._ringback_gap_s = max(get_plan(self.config.tone_plan).tone("ringback").cadence_ms,
                                   default=0) / 1000.0 + RINGBACK_MARGIN_S  # fmt: skip
        self._ringback_heard = False
        self._voice_posted = False
        self._number = ""

    def _reset_progress(self) -> None:
        self._ear.reset()
        self._ringback_heard = self._voice_posted = False

    async def _place(self, call: OutboundCall) -> None:
        number = call.number.upper()
        if not number or not set(number) <= DIAL_DIGITS:
            self._resolve(DialOutcome.FAILED, f"{call.number!r} is not a number to dial")
            return
        self._number = number
        emergency = call.profile == EMERGENCY_PROFILE  # the phone hears the line: no guessing
        self._enter(FxoState.EMERGENCY if emergency else FxoState.SEIZED)
        log.info("line %d: calling %s for agent %s", self.port.port, number, call.profile)
        if not await self._command("off_hook", self.port.off_hook):
            await self._fail(DialOutcome.FAILED, "off-hook failed")
            return
        if emergency:  # the bridge to the phone starts now and dials (gateway.emergency)
            spec = self._start_call("outbound", call.profile, number=number)
            self._resolve(DialOutcome.ANSWERED, "line seized", spec.call_id)
            return
        self._set_timer(FxoTimer.DIAL_TONE, self.cfg.dial_tone_wait_s)

    async def _dial_tone_missing(self) -> None:
        self.health.dial_tone_missing()
        if self.cfg.blind_dial:
            log.info("line %d: no dial tone: dialling anyway", self.port.port)
            await self._dial()
        else:
            await self._fail(DialOutcome.FAILED, "no dial tone")

    async def _dial(self) -> None:
        self._enter(FxoState.DIALING)
        if not await self._command("dial", lambda: self.port.dial(self._number)):
            await self._fail(DialOutcome.FAILED, "dialling failed")
            return
        if self.state is FxoState.DIALING:  # not lost meanwhile
            self._enter(FxoState.PROGRESS)
            self._set_timer(FxoTimer.NO_ANSWER, self.cfg.no_answer_s)

    async def _progress_tone(self, tone: str) -> None:
        """A tone while placing a call: dial tone (SEIZED), ringback or a failure (PROGRESS)."""
        if self.state is FxoState.SEIZED and tone == "dial":
            self.health.dial_tone_heard()
            await self._dial()
        elif self.state is FxoState.PROGRESS and tone == "ringback":
            self._ringback_heard = True
            self._set_timer(FxoTimer.RINGBACK_GONE, self._ringback_gap_s)
        elif self.state is FxoState.PROGRESS and tone in FAILURE_TONES:
            await self._fail(FAILURE_TONES[tone], f"{tone} tone")

    def _answered(self, how: str) -> None:
        request = self._pending
        assert request is not None
        log.info("line %d: %s answered (%s)", self.port.port, self._number, how)
        self._enter(FxoState.CONNECTED)
        spec = self._start_call("outbound", request.call.profile, number=self._number)
        self._resolve(DialOutcome.ANSWERED, how, spec.call_id)

    async def _fail(self, outcome: DialOutcome, detail: str) -> None:
        self._resolve(outcome, detail)
        await self._finish(detail)

    def _listen_progress(self, pcm: NDArray[np.int16]) -> None:
        """The frame task, in PROGRESS: keep the ringback timer going while ringback sounds;
        post `VoiceHeard` once when someone speaks."""
        heard = self._ear.hear(pcm)
        if heard is Heard.TONE and self._ringback_heard:
            self._set_timer(FxoTimer.RINGBACK_GONE, self._ringback_gap_s)
        if self._ear.answered and not self._voice_posted:
            self._voice_posted = True
            self._post(VoiceHeard())
