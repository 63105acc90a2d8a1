"""The FXO line actor: the box on a PSTN line. `FxoLine` answers ringing calls by the rules,
places calls, and notices when the far end has gone.

States (`FxoState`):

    DOWN ──PortReady──> IDLE ──RingStarted──> RINGING ──ring N over, rules say answer──> CONNECTED
                         │  ^                    │ rules say no        ^                   │
                         │  └── ring gap ────────┴─> LETTING_RING ─────│── ring gap ─> IDLE │
                         └─place_call─> SEIZED ─dial tone─> DIALING ─> PROGRESS ─answer─────┘
    CONNECTED ──far end gone, call ended, end_call──> on-hook, IDLE;   any ──PortLost──> DOWN

Rings are bursts: `RingStarted` counts one. Caller ID arrives between rings 1 and 2, from the
device (`CallerIdReported`, a voice modem) or decoded here from the audio (`dsp.callerid`, the
tipring adapter passes the FSK through); answering on ring 1 waits up to `callerid_wait_s`
for it. The far end is gone on a loop-current drop (not our own flash), a polarity reversal,
a hang-up tone (`hangup_tones`: from the device, or `dsp.tones` on the audio), or
`silence_hangup_s` without a frame above `silence_dbm0`. A placed call is answered on a
polarity reversal, on voice (`gateway.line_progress`), or when ringback was heard and stopped.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import assert_never
from zoneinfo import ZoneInfo

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.levels import LevelMeter
from dsp.tone_plans import get_plan
from dsp.tones import ToneDetector
from firmware_bridge.modem import VoiceModem
from firmware_bridge.port import (
    AudioFrame,
    CallerIdReported,
    DtmfReported,
    HookChanged,
    HookFlashed,
    LinePort,
    LoopCurrentDropped,
    PolarityReversed,
    RingStarted,
    RingStopped,
    ToneReported,
)
from gateway.line_base import LineActor, Signal, VoiceHeard, WallClock, utc_now
from gateway.line_call import CallStarter, DialOutcome, OutboundCall
from gateway.line_config import LineConfig, Source
from gateway.line_progress import Heard, ProgressEar
from gateway.line_rules import decide, local_time

log = logging.getLogger(__name__)

DIAL_DIGITS = frozenset("0123456789*#ABCD")
RINGBACK_MARGIN_S = 1.5  # ringback's longest silent segment plus this, without tone: it stopped
FAILURE_TONES = {"busy": DialOutcome.BUSY, "reorder": DialOutcome.BUSY,
                 "sit": DialOutcome.FAILED, "dial": DialOutcome.FAILED,
                 "fax": DialOutcome.FAILED, "modem": DialOutcome.FAILED}  # fmt: skip


class FxoState(StrEnum):
    DOWN = "down"  # no PortReady since start or PortLost
    IDLE = "idle"  # on-hook, quiet
    RINGING = "ringing"  # counting rings, reading caller ID
    LETTING_RING = "letting_ring"  # not answering this one: until the ringing stops
    SEIZED = "seized"  # placing a call: off-hook, waiting for dial tone
    DIALING = "dialing"  # the port sends the digits
    PROGRESS = "progress"  # listening for ringback, busy, the answer
    CONNECTED = "connected"  # a call runs


class FxoTimer(StrEnum):
    RING_GAP = "ring_gap"  # RINGING / LETTING_RING: the caller gave up
    CALLERID = "callerid"  # RINGING, answering on ring 1: stop waiting for caller ID
    DIAL_TONE = "dial_tone"  # SEIZED: dial (blind) or give up
    NO_ANSWER = "no_answer"  # PROGRESS
    RINGBACK_GONE = "ringback_gone"  # PROGRESS: ringback heard, then stopped: answered
    SILENCE = "silence"  # CONNECTED: pushed on by every frame above silence_dbm0


def _source(configured: Source, port: LinePort) -> Source:
    """ "auto": a voice modem detects caller ID and tones itself; the tipring adapter passes
    audio through, so this side decodes it."""
    if configured != "auto":
        return configured
    return "port" if isinstance(port, VoiceModem) else "audio"


class FxoLine(LineActor):
    """The line actor of one FXO port; see the module docstring."""

    def __init__(self, port: LinePort, config: LineConfig, starter: CallStarter,
                 *, wall_clock: WallClock = utc_now) -> None:  # fmt: skip
        super().__init__(port, config, starter, wall_clock=wall_clock)
        cfg = self.cfg = self.config.fxo
        self.state = FxoState.DOWN
        self.rings = 0
        self.callerid: CallerId | None = None
        self._tz = ZoneInfo(cfg.timezone)
        self._cid: CallerIdDecoder | None = None
        if _source(cfg.callerid_source, port) == "audio":
            self._cid = CallerIdDecoder(cfg.callerid_standard)
        self._tones: ToneDetector | None = None
        if _source(cfg.tone_source, port) == "audio":
            self._tones = ToneDetector(self.config.tone_plan)
        self._meter = LevelMeter()
        self._ear = ProgressEar()
        self._ringback_gap_s = max(get_plan(self.config.tone_plan).tone("ringback").cadence_ms,
                                   default=0) / 1000.0 + RINGBACK_MARGIN_S  # fmt: skip
        self._ringback_heard = False
        self._voice_posted = False
        self._number = ""

    def _enter(self, state: FxoState) -> None:
        if state is not self.state:
            log.debug("line %d: %s -> %s", self.port.port, self.state, state)
        self.state = state
        self._clear_timers()
        if state is FxoState.IDLE:
            self.rings, self.callerid = 0, None
            if self._cid is not None:
                self._cid.reset()
        if state in (FxoState.SEIZED, FxoState.PROGRESS, FxoState.CONNECTED) and self._tones:
            self._tones.reset()
        if state is FxoState.PROGRESS:
            self._ear.reset()
            self._ringback_heard = self._voice_posted = False
        if state is FxoState.CONNECTED:
            self._meter.reset()
            if self.cfg.silence_hangup_s:
                self._set_timer(FxoTimer.SILENCE, self.cfg.silence_hangup_s)

    # --- LineActor hooks --------------------------------------------------------------------------

    def _on_ready(self) -> None:
        self._enter(FxoState.IDLE)

    def _on_lost(self) -> None:
        self._enter(FxoState.DOWN)

    def _available(self) -> DialOutcome | None:
        if self.state is FxoState.DOWN:
            return DialOutcome.UNAVAILABLE
        return None if self.state is FxoState.IDLE else DialOutcome.IN_USE

    async def _finish(self, reason: str) -> None:
        if self.state not in (FxoState.IDLE, FxoState.DOWN):
            await self._command("on_hook", self.port.on_hook)
            self._enter(FxoState.IDLE)

    async def _release(self) -> None:
        if self.state not in (FxoState.IDLE, FxoState.DOWN, FxoState.RINGING,
                              FxoState.LETTING_RING):  # fmt: skip
            await self._command("on_hook", self.port.on_hook)

    def _on_frame(self, frame: AudioFrame) -> None:
        match self.state:
            case FxoState.IDLE | FxoState.RINGING | FxoState.LETTING_RING:
                self._listen_callerid(frame.pcm)
            case FxoState.SEIZED | FxoState.PROGRESS | FxoState.CONNECTED:
                self._listen_tones(frame.pcm)
                if self.state is FxoState.PROGRESS:
                    self._listen_progress(frame.pcm)
                elif self.state is FxoState.CONNECTED:
                    self._listen_silence(frame.pcm)
            case FxoState.DOWN | FxoState.DIALING:
                pass  # dialling: our own DTMF comes back as echo
            case _:
                assert_never(self.state)

    async def _on_signal(self, signal: Signal) -> None:
        match signal:
            case RingStarted():
                await self._ring_started()
            case RingStopped():
                await self._ring_stopped()
            case CallerIdReported(callerid=callerid):
                await self._callerid_arrived(callerid)
            case LoopCurrentDropped(duration_ms=ms):
                await self._loop_dropped(ms)
            case PolarityReversed():
                await self._polarity_reversed()
            case ToneReported(tone=tone):
                await self._tone_heard(tone)
            case VoiceHeard():
                if self.state is FxoState.PROGRESS and self.cfg.voice_answer:
                    self._answered("voice")
            case DtmfReported():
                if self.state is FxoState.CONNECTED:
                    self._forward(signal)
            case HookChanged() | HookFlashed():
                log.debug("line %d: %r on an FXO port ignored", self.port.port, signal)
            case _:
                assert_never(signal)

    async def _on_timer(self, name: str) -> None:
        timer = FxoTimer(name)
        match timer:
            case FxoTimer.RING_GAP:
                log.info("line %d: ringing stopped after %d rings", self.port.port, self.rings)
                self._enter(FxoState.IDLE)
            case FxoTimer.CALLERID:
                await self._decide()
            case FxoTimer.DIAL_TONE:
                if self.cfg.blind_dial:
                    log.info("line %d: no dial tone: dialling anyway", self.port.port)
                    await self._dial()
                else:
                    await self._fail(DialOutcome.FAILED, "no dial tone")
            case FxoTimer.NO_ANSWER:
                await self._fail(DialOutcome.NO_ANSWER, f"{self.cfg.no_answer_s:g} s")
            case FxoTimer.RINGBACK_GONE:
                self._answered("ringback stopped")
            case FxoTimer.SILENCE:
                await self._far_end_gone(f"silence for {self.cfg.silence_hangup_s:g} s", "silence")
            case _:
                assert_never(timer)

    # --- incoming ---------------------------------------------------------------------------------

    async def _ring_started(self) -> None:
        if self.state is FxoState.IDLE:
            self._enter(FxoState.RINGING)
        if self.state not in (FxoState.RINGING, FxoState.LETTING_RING):
            return
        self.rings += 1
        self._timers.pop(FxoTimer.RING_GAP, None)
        log.debug("line %d: ring %d", self.port.port, self.rings)
        if self._timers.pop(FxoTimer.CALLERID, None) is not None:
            await self._decide()  # the caller ID window is over

    async def _ring_stopped(self) -> None:
        if self.state not in (FxoState.RINGING, FxoState.LETTING_RING):
            return
        self._set_timer(FxoTimer.RING_GAP, self.cfg.ring_gap_s)
        if self.state is FxoState.LETTING_RING or self.rings < self.cfg.answer_after_rings:
            return
        if self.callerid is None and self.rings < 2 and self.cfg.callerid_source != "off":
            self._set_timer(FxoTimer.CALLERID, self.cfg.callerid_wait_s)
            return
        await self._decide()

    async def _callerid_arrived(self, callerid: CallerId) -> None:
        if self.state not in (FxoState.IDLE, FxoState.RINGING, FxoState.LETTING_RING):
            return
        self.callerid = callerid
        log.info("line %d: caller ID %s %s", self.port.port, callerid.number or
                 callerid.number_reason or "-", callerid.name or "")  # fmt: skip
        if self._timers.pop(FxoTimer.CALLERID, None) is not None:
            await self._decide()

    async def _decide(self) -> None:
        if self.state is not FxoState.RINGING:
            return
        cfg = self.cfg
        local = local_time(self._wall_clock(), self._tz)
        decision = decide(self.callerid, local, allow=cfg.allow, deny=cfg.deny,
                          rules=cfg.rules, default_profile=cfg.default_profile)  # fmt: skip
        if not decision.answer:
            log.info("line %d: not answering: %s", self.port.port, decision.why)
            self._let_ring()
            return
        log.info("line %d: answering on ring %d with agent %s (%s)", self.port.port,
                 self.rings, decision.profile, decision.why)  # fmt: skip
        if not await self._command("off_hook", self.port.off_hook):
            self._let_ring()
            return
        self._enter(FxoState.CONNECTED)
        self._start_call("inbound", decision.profile, callerid=self.callerid)

    def _let_ring(self) -> None:
        self._enter(FxoState.LETTING_RING)
        self._set_timer(FxoTimer.RING_GAP, self.cfg.ring_gap_s)

    # --- the far end going away -------------------------------------------------------------------

    async def _far_end_gone(self, why: str, signal: str) -> None:
        log.info("line %d: far end gone (%s)", self.port.port, why)
        await self._hang_up_call(f"far end: {why}", signal)
        await self._finish(why)

    async def _loop_dropped(self, duration_ms: float) -> None:
        if self.state not in (FxoState.CONNECTED, FxoState.PROGRESS) or self._flashing():
            return
        # The voice modem does not measure the drop (0.0): take it as a disconnect.
        if 0.0 < duration_ms < self.cfg.loop_drop_min_ms:
            log.debug("line %d: loop current glitch of %.0f ms", self.port.port, duration_ms)
            return
        why = f"loop current dropped for {duration_ms:.0f} ms"
        if self.state is FxoState.PROGRESS:
            await self._fail(DialOutcome.FAILED, why)
        else:
            await self._far_end_gone(why, "loop_drop")

    async def _polarity_reversed(self) -> None:
        if self.state is FxoState.CONNECTED and self.cfg.polarity_hangup:
            await self._far_end_gone("polarity reversed", "polarity")
        elif self.state is FxoState.PROGRESS and self.cfg.polarity_answer:
            self._answered("polarity reversal")

    async def _tone_heard(self, tone: str) -> None:
        log.debug("line %d: %s tone in state %s", self.port.port, tone, self.state)
        if self.state is FxoState.CONNECTED and tone in self.cfg.hangup_tones:
            await self._far_end_gone(f"{tone} tone", tone)
        elif self.state is FxoState.SEIZED and tone == "dial":
            await self._dial()
        elif self.state is FxoState.PROGRESS and tone == "ringback":
            self._ringback_heard = True
            self._set_timer(FxoTimer.RINGBACK_GONE, self._ringback_gap_s)
        elif self.state is FxoState.PROGRESS and tone in FAILURE_TONES:
            await self._fail(FAILURE_TONES[tone], f"{tone} tone")

    # --- outgoing ---------------------------------------------------------------------------------

    async def _place(self, call: OutboundCall) -> None:
        number = call.number.upper()
        if not number or not set(number) <= DIAL_DIGITS:
            self._resolve(DialOutcome.FAILED, f"{call.number!r} is not a number to dial")
            return
        self._number = number
        self._enter(FxoState.SEIZED)
        log.info("line %d: calling %s for agent %s", self.port.port, number, call.profile)
        if not await self._command("off_hook", self.port.off_hook):
            await self._fail(DialOutcome.FAILED, "off-hook failed")
            return
        self._set_timer(FxoTimer.DIAL_TONE, self.cfg.dial_tone_wait_s)

    async def _dial(self) -> None:
        self._enter(FxoState.DIALING)
        if not await self._command("dial", lambda: self.port.dial(self._number)):
            await self._fail(DialOutcome.FAILED, "dialling failed")
            return
        if self.state is FxoState.DIALING:  # not lost meanwhile
            self._enter(FxoState.PROGRESS)
            self._set_timer(FxoTimer.NO_ANSWER, self.cfg.no_answer_s)

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

    # --- the frame task's detectors -------------------------------------------------------------

    def _listen_callerid(self, pcm: NDArray[np.int16]) -> None:
        if self._cid is None or self.callerid is not None:
            return
        for result in self._cid.feed(pcm):
            if isinstance(result, CallerId):
                self._post(CallerIdReported(self.port.port, result))
            else:
                self.stats.callerid_errors += 1
                log.info("line %d: caller ID unreadable (%s)", self.port.port, result.reason)

    def _listen_tones(self, pcm: NDArray[np.int16]) -> None:
        if self._tones is not None:
            for tone in self._tones.feed(pcm):
                self._post(ToneReported(self.port.port, tone.tone))

    def _listen_progress(self, pcm: NDArray[np.int16]) -> None:
        heard = self._ear.hear(pcm)
        if heard is Heard.TONE and self._ringback_heard:
            self._set_timer(FxoTimer.RINGBACK_GONE, self._ringback_gap_s)
        if self._ear.answered and not self._voice_posted:
            self._voice_posted = True
            self._post(VoiceHeard())

    def _listen_silence(self, pcm: NDArray[np.int16]) -> None:
        if self.cfg.silence_hangup_s and self._meter.process(pcm) > self.cfg.silence_dbm0:
            self._timers[FxoTimer.SILENCE] = trio.current_time() + self.cfg.silence_hangup_s
