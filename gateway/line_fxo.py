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
`silence_hangup_s` without a frame above `silence_dbm0`. Placing a call (seize, dial tone,
dialling, progress, the answer) and EMERGENCY are `gateway.line_fxo_dial.FxoDialling`, a base
of `FxoLine`; the states and timers are named in `gateway.line_fxo_state`.
"""

from __future__ import annotations

import logging
from typing import assert_never
from zoneinfo import ZoneInfo

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder
from dsp.levels import LevelMeter
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
from gateway.line_base import Signal, VoiceHeard, WallClock, utc_now
from gateway.line_call import CallStarter, DialOutcome
from gateway.line_config import LineConfig, Source
from gateway.line_fxo_dial import FxoDialling
from gateway.line_fxo_state import FxoState, FxoTimer
from gateway.line_message import MESSAGE_TAIL_S, LocalMessage
from gateway.line_rules import Decision, decide, local_time

__all__ = ["FxoLine", "FxoState", "FxoTimer"]

log = logging.getLogger(__name__)


def _source(configured: Source, port: LinePort) -> Source:
    """ "auto": a voice modem detects caller ID and tones itself; the tipring adapter passes
    audio through, so this side decodes it."""
    if configured != "auto":
        return configured
    return "port" if isinstance(port, VoiceModem) else "audio"


class FxoLine(FxoDialling):
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
            self._tones = ToneDetector(self.config.tone_plan, hangup_watch=True)
        self._meter = LevelMeter()
        self._init_dialling()
        self._decision: Decision | None = None  # taken on the caller ID, before the answer
        self._message = LocalMessage()

    def _enter(self, state: FxoState) -> None:
        if state is not self.state:
            log.debug("line %d: %s -> %s", self.port.port, self.state, state)
        self.state = state
        self._clear_timers()
        if state is FxoState.IDLE:
            self.rings, self.callerid, self._decision = 0, None, None
            if self._cid is not None:
                self._cid.reset()
        if state in (FxoState.SEIZED, FxoState.PROGRESS, FxoState.CONNECTED) and self._tones:
            self._tones.reset()
        if state is FxoState.PROGRESS:
            self._reset_progress()
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
        if self.state is FxoState.RINGING:  # a call prepared while it rang ended itself
            self._let_ring()
            return
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
            case FxoState.MESSAGE:
                self.port.send_audio(self._message.frame())
            case FxoState.DOWN | FxoState.DIALING | FxoState.EMERGENCY:
                pass  # dialling: our own DTMF comes back as echo; emergency: a person listens
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
                await self._hang_up_call("the caller gave up while it rang", "unanswered")
                self._enter(FxoState.IDLE)
            case FxoTimer.CALLERID:
                await self._decide()
            case FxoTimer.DIAL_TONE:
                await self._dial_tone_missing()
            case FxoTimer.NO_ANSWER:
                await self._fail(DialOutcome.NO_ANSWER, f"{self.cfg.no_answer_s:g} s")
            case FxoTimer.RINGBACK_GONE:
                self._answered("ringback stopped")
            case FxoTimer.SILENCE:
                await self._far_end_gone(f"silence for {self.cfg.silence_hangup_s:g} s", "silence")
            case FxoTimer.MESSAGE_END:
                await self._finish("local message played")
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
        elif self.state is FxoState.RINGING and self.rings >= 2:
            await self._prepare()  # no caller ID came with ring 1: decide without it

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
        elif self.state is FxoState.RINGING:
            await self._prepare()

    def _decision_now(self) -> Decision:
        if self._decision is None:
            cfg = self.cfg
            local = local_time(self._wall_clock(), self._tz)
            self._decision = decide(self.callerid, local, allow=cfg.allow, deny=cfg.deny,
                                    rules=cfg.rules,
                                    default_profile=cfg.default_profile)  # fmt: skip
        return self._decision

    async def _prepare(self) -> None:
        """The caller is known (or will not be) before the answer: decline now, or start the
        call (its session opens) while the remaining rings ring."""
        if self._decision is not None:
            return
        decision = self._decision_now()
        if not decision.answer:
            await self._decline(decision)
        elif self.cfg.pre_answer and self._call is None:
            log.info("line %d: preparing agent %s on ring %d (%s)", self.port.port,
                     decision.profile, self.rings, decision.why)  # fmt: skip
            self._start_call("inbound", decision.profile, callerid=self.callerid,
                             answered=False)  # fmt: skip

    async def _decide(self) -> None:
        if self.state is not FxoState.RINGING:
            return
        decision = self._decision_now()
        if not decision.answer:
            await self._decline(decision)
            return
        log.info("line %d: answering on ring %d with agent %s (%s)", self.port.port,
                 self.rings, decision.profile, decision.why)  # fmt: skip
        if not await self._command("off_hook", self.port.off_hook):
            await self._hang_up_call("off-hook failed", "ended")
            self._let_ring()
            return
        self._enter(FxoState.CONNECTED)
        if self._call is not None:  # prepared while it rang
            self._answer_call()
        else:
            self._start_call("inbound", decision.profile, callerid=self.callerid)

    async def _decline(self, decision: Decision) -> None:
        log.info("line %d: not answering: %s", self.port.port, decision.why)
        if self.cfg.decline != "message":
            self._let_ring()
            return
        duration_s = await self._message.load(self.cfg.decline_audio)
        if not await self._command("off_hook", self.port.off_hook):
            self._let_ring()
            return
        self._enter(FxoState.MESSAGE)
        self._set_timer(FxoTimer.MESSAGE_END, duration_s + MESSAGE_TAIL_S)

    def _let_ring(self) -> None:
        self._enter(FxoState.LETTING_RING)
        self._set_timer(FxoTimer.RING_GAP, self.cfg.ring_gap_s)

    # --- the far end going away -------------------------------------------------------------------

    async def _far_end_gone(self, why: str, signal: str) -> None:
        log.info("line %d: far end gone (%s)", self.port.port, why)
        await self._hang_up_call(f"far end: {why}", signal)
        await self._finish(why)

    async def _loop_dropped(self, duration_ms: float) -> None:
        if self.state not in (FxoState.CONNECTED, FxoState.PROGRESS, FxoState.EMERGENCY) or (
            self._flashing()
        ):
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
        else:
            await self._progress_tone(tone)

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

    def _listen_silence(self, pcm: NDArray[np.int16]) -> None:
        if self.cfg.silence_hangup_s and self._meter.process(pcm) > self.cfg.silence_dbm0:
            self._timers[FxoTimer.SILENCE] = trio.current_time() + self.cfg.silence_hangup_s
