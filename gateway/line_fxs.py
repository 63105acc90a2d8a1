"""The FXS line actor: a telephone plugged into the box. `FxsLine` gives the phone dial tone,
collects its digits, puts it through to an agent, and rings it for calls the agent places.

States (`FxsState`):

    DOWN ──PortReady──> IDLE ──off-hook──> hotline (no delay) ─────────────────────> CONNECTED
                         │                  WARM / DIAL_TONE ──digit──> DIGITS ──plan──>  ^
                         │                     │ no digit        no match │               │
                         │                     └──────> REORDER <─────────┘               │
                         │                              │ reorder_s                       │
                         │                              └──> LOCKOUT (silence)            │
                         └──place_call──> ALERTING (ringing, caller ID) ──off-hook────────┘
    on-hook: any off-hook state -> IDLE (a call is hung up);   the call ends itself -> REORDER;
    any ──PortLost──> DOWN

Tones go to the phone one 20 ms frame per received frame (spec §7 pacing: the adapter sends
audio while the phone is off-hook): dial tone, reorder, or silence while digits are collected.
Digits are DTMF in the received audio (`dsp.dtmf`), or `DtmfReported` from a device that
detects them; `#` ends a number early. WARM is a warm line: dial tone, and the hotline agent
after `hotline_delay_s` unless a digit comes first. A hook-flash before a call gives fresh
dial tone; in a call it goes to the call. Emergency numbers (`emergency_numbers`) are checked
before the dial plan and go to `gateway.emergency` (profile `EMERGENCY_PROFILE`), as does one
pressed in an agent call (the router's screen asks with `place_call`).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import assert_never

import numpy as np

from dsp.callerid import CallerId
from dsp.dtmf import DtmfDetector
from dsp.frame import FRAME_SAMPLES
from dsp.tones import ToneGenerator
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
from gateway.emergency_digits import EMERGENCY_PROFILE, Match, match_emergency
from gateway.line_base import LineActor, PlaceCall, Signal, VoiceHeard, WallClock, utc_now
from gateway.line_call import CallSpec, CallStarter, DialOutcome, Direction, OutboundCall
from gateway.line_config import LineConfig
from gateway.line_rules import match_dial_plan

log = logging.getLogger(__name__)

SILENCE = np.zeros(FRAME_SAMPLES, np.int16)
SILENCE.flags.writeable = False


class FxsState(StrEnum):
    DOWN = "down"  # no PortReady since start or PortLost
    IDLE = "idle"  # the phone is on-hook
    WARM = "warm"  # warm line: dial tone; the hotline unless a digit comes first
    DIAL_TONE = "dial_tone"  # waiting for the first digit
    DIGITS = "digits"  # collecting digits (silence to the phone)
    REORDER = "reorder"  # no digits, no such number, or the call ended: reorder tone
    LOCKOUT = "lockout"  # reorder is over: silence until the phone hangs up
    ALERTING = "alerting"  # ringing the phone for a call the agent places
    CONNECTED = "connected"  # a call runs


class FxsTimer(StrEnum):
    FIRST_DIGIT = "first_digit"  # WARM / DIAL_TONE: nobody dials
    HOTLINE = "hotline"  # WARM: the hotline agent
    INTERDIGIT = "interdigit"  # DIGITS: the number is complete
    REORDER = "reorder"  # REORDER: go quiet
    RING = "ring"  # ALERTING: no answer


class FxsLine(LineActor):
    """The line actor of one FXS port; see the module docstring."""

    def __init__(self, port: LinePort, config: LineConfig, starter: CallStarter,
                 *, wall_clock: WallClock = utc_now) -> None:  # fmt: skip
        super().__init__(port, config, starter, wall_clock=wall_clock)
        self.cfg = self.config.fxs
        self.state = FxsState.DOWN
        self.digits = ""
        self._dtmf = DtmfDetector()
        self._dial_tone = ToneGenerator(self.config.tone_plan, "dial")
        self._reorder = ToneGenerator(self.config.tone_plan, "reorder")
        self._key_down = False  # a key sounds: dial tone stops before its digit is decided

    def _enter(self, state: FxsState) -> None:
        if state is not self.state:
            log.debug("line %d: %s -> %s", self.port.port, self.state, state)
        self.state = state
        self._clear_timers()
        if state in (FxsState.WARM, FxsState.DIAL_TONE):
            self.digits, self._key_down = "", False
            self._dtmf.reset()
            self._dial_tone.reset()
            self._set_timer(FxsTimer.FIRST_DIGIT, self.cfg.first_digit_s)
        if state is FxsState.WARM:
            self._set_timer(FxsTimer.HOTLINE, self.cfg.hotline_delay_s)
        if state is FxsState.REORDER:
            self._reorder.reset()
            self._set_timer(FxsTimer.REORDER, self.cfg.reorder_s)

    # --- LineActor hooks --------------------------------------------------------------------------

    def _on_ready(self) -> None:
        self._enter(FxsState.IDLE)

    def _on_lost(self) -> None:
        self._enter(FxsState.DOWN)

    def _available(self) -> DialOutcome | None:
        if self.state is FxsState.DOWN:
            return DialOutcome.UNAVAILABLE
        return None if self.state is FxsState.IDLE else DialOutcome.IN_USE

    async def _finish(self, reason: str) -> None:
        if self.state is FxsState.ALERTING:
            await self._command("stop_ring", self.port.stop_ring)
            self._enter(FxsState.IDLE)
        elif self.state not in (FxsState.IDLE, FxsState.DOWN):
            self._enter(FxsState.REORDER)  # the phone is still off-hook

    async def _release(self) -> None:
        if self.state is FxsState.ALERTING:
            await self._command("stop_ring", self.port.stop_ring)

    def _on_frame(self, frame: AudioFrame) -> None:
        match self.state:
            case FxsState.WARM | FxsState.DIAL_TONE:
                self._listen_digits(frame)
                tone = SILENCE if self._key_down else self._dial_tone.frame()
                self.port.send_audio(tone)
            case FxsState.DIGITS:
                self._listen_digits(frame)
                self.port.send_audio(SILENCE)
            case FxsState.REORDER:
                self.port.send_audio(self._reorder.frame())
            case FxsState.LOCKOUT:
                self.port.send_audio(SILENCE)
            case FxsState.DOWN | FxsState.IDLE | FxsState.ALERTING | FxsState.CONNECTED:
                pass  # on-hook, or the call has the audio
            case _:
                assert_never(self.state)

    async def _on_signal(self, signal: Signal) -> None:
        match signal:
            case HookChanged(off_hook=off_hook):
                await (self._off_hook() if off_hook else self._on_hook())
            case HookFlashed():
                if self.state is FxsState.CONNECTED:
                    self._forward(signal)
                elif self.state in (FxsState.DIGITS, FxsState.REORDER, FxsState.LOCKOUT):
                    self._enter(FxsState.DIAL_TONE)
            case DtmfReported(digit=digit):
                if self.state is FxsState.CONNECTED:
                    self._forward(signal)
                elif self.state in (FxsState.WARM, FxsState.DIAL_TONE, FxsState.DIGITS):
                    await self._digit(digit)
            case (
                RingStarted() | RingStopped() | PolarityReversed() | LoopCurrentDropped()
                | CallerIdReported() | ToneReported() | VoiceHeard()
            ):  # fmt: skip
                log.debug("line %d: %r on an FXS port ignored", self.port.port, signal)
            case _:
                assert_never(signal)

    async def _on_timer(self, name: str) -> None:
        timer = FxsTimer(name)
        match timer:
            case FxsTimer.FIRST_DIGIT:
                self._reorder_because("no digits dialled")
            case FxsTimer.HOTLINE:
                self._connect("inbound", self.cfg.hotline)
            case FxsTimer.INTERDIGIT:
                self._route(final=True)
            case FxsTimer.REORDER:
                self._enter(FxsState.LOCKOUT)
            case FxsTimer.RING:
                await self._command("stop_ring", self.port.stop_ring)
                self._enter(FxsState.IDLE)
                self._resolve(DialOutcome.NO_ANSWER, f"{self.cfg.ring_timeout_s:g} s")
            case _:
                assert_never(timer)

    # --- the phone --------------------------------------------------------------------------------

    async def _off_hook(self) -> None:
        if self.state is FxsState.ALERTING:
            request = self._pending
            assert request is not None
            spec = self._connect("outbound", request.call.profile, callerid=request.call.callerid)
            self._resolve(DialOutcome.ANSWERED, "phone off-hook", spec.call_id)
        elif self.state is FxsState.IDLE:
            log.info("line %d: phone off-hook", self.port.port)
            if self.cfg.hotline and not self.cfg.hotline_delay_s:
                self._connect("inbound", self.cfg.hotline)
            else:
                self._enter(FxsState.WARM if self.cfg.hotline else FxsState.DIAL_TONE)

    async def _on_hook(self) -> None:
        if self.state in (FxsState.DOWN, FxsState.IDLE, FxsState.ALERTING):
            return
        log.info("line %d: phone on-hook", self.port.port)
        await self._hang_up_call("phone on-hook", "on_hook")
        self._enter(FxsState.IDLE)

    async def _digit(self, digit: str) -> None:
        self._key_down = False
        if self.state is not FxsState.DIGITS:
            self._enter(FxsState.DIGITS)
        self._clear_timers()
        if match_emergency(self.cfg.emergency_numbers, self.digits + digit) is Match.NUMBER:
            self._connect("inbound", EMERGENCY_PROFILE, number=self.digits + digit)
            return  # before the dial plan: never an agent (gateway.emergency)
        routed = match_dial_plan(self.cfg.dial_plan, self.digits + digit)
        if digit == "#" and self.digits and not routed.profile and not routed.more:
            self._route(final=True)  # '#' ends the number, unless the plan dials it
            return
        self.digits += digit
        log.debug("line %d: digits %s", self.port.port, self.digits)
        self._route(final=False)

    def _route(self, *, final: bool) -> None:
        routed = match_dial_plan(self.cfg.dial_plan, self.digits)
        emergency = match_emergency(self.cfg.emergency_numbers, self.digits)
        more = routed.more or emergency is Match.PREFIX  # wait: it may become one
        if routed.profile and (final or not more):
            self._connect("inbound", routed.profile, number=self.digits)
        elif final or not more:
            self._reorder_because(f"no agent for {self.digits!r}")
        else:
            self._set_timer(FxsTimer.INTERDIGIT, self.cfg.interdigit_s)

    def _reorder_because(self, why: str) -> None:
        log.info("line %d: reorder: %s", self.port.port, why)
        self._enter(FxsState.REORDER)

    def _connect(self, direction: Direction, profile: str, number: str = "",
                 callerid: CallerId | None = None) -> CallSpec:  # fmt: skip
        self._enter(FxsState.CONNECTED)
        return self._start_call(direction, profile, number, callerid)

    async def _place_request(self, request: PlaceCall) -> None:
        """An emergency number pressed in an agent call (`gateway.emergency`): the agent call
        ends and the phone goes through to the FXO line."""
        call = request.call
        if call.profile != EMERGENCY_PROFILE:
            await super()._place_request(request)
            return
        if self.state is not FxsState.CONNECTED:  # the phone hung up meanwhile
            self._pending = request
            self._resolve(DialOutcome.FAILED, "the phone is not in a call")
            return
        await self._hang_up_call(f"emergency number {call.number} pressed", "emergency")
        self._pending = request
        spec = self._connect("inbound", EMERGENCY_PROFILE, number=call.number)
        self._resolve(DialOutcome.ANSWERED, "emergency", spec.call_id)

    # --- calls the agent places -------------------------------------------------------------------

    async def _place(self, call: OutboundCall) -> None:
        self._enter(FxsState.ALERTING)
        log.info("line %d: ringing the phone for agent %s", self.port.port, call.profile)
        ring = self.port.ring
        if not await self._command("ring", lambda: ring(self.cfg.ring_cadence_ms, call.callerid)):
            self._enter(FxsState.IDLE)
            self._resolve(DialOutcome.FAILED, "ring failed")
            return
        if self.state is FxsState.ALERTING:
            self._set_timer(FxsTimer.RING, self.cfg.ring_timeout_s)

    # --- the frame task's detectors -------------------------------------------------------------

    def _listen_digits(self, frame: AudioFrame) -> None:
        for key in self._dtmf.feed(frame.pcm):
            self._post(DtmfReported(self.port.port, key.digit))
        if self._dtmf.active_digit is not None:
            self._key_down = True
