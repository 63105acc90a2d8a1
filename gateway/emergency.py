"""Emergency bypass (#8): an FXS phone that dials an emergency number (`line.fxs.
emergency_numbers`) is put through to an FXO line of the adapter (`line.fxs.emergency_route`),
never to an agent. `EmergencyRouter` is the lines' `CallStarter` in front of the agent's
(`gateway.call.CallPipeline`, through the app); the app builds it over its line actors.

- On dial tone (or a warm line) `gateway.line_fxs` checks the digits before its dial plan and
  starts a call with profile `EMERGENCY_PROFILE` and the number: the *phone leg* here.
- In an agent call on an FXS line the router puts an `EmergencyScreen` on the call's digits
  (`gateway.emergency_digits`): keys that may begin an emergency number never reach the
  agent; a whole number asks the FXS line (`place_call` with `EMERGENCY_PROFILE`), which
  hangs the agent call up (signal "emergency") and starts the phone leg.
- The phone leg takes the FXO line (`place_call` with `EMERGENCY_PROFILE`: the FXO line
  seizes and starts the *line leg* at once, no progress or answer guessing). An agent call
  on it is ended first (signal "emergency", logged at WARNING): an emergency takes the line.
  Then a `PortBridge` joins the two, the phone leg dials the number when the line gives dial
  tone (blind after `line.fxo.dial_tone_wait_s`), and the phone hears the line itself: dial
  tone, the digits, ringback, the answer. It ends when the phone hangs up (the FXO line goes
  on-hook) or the FXO line drops (the phone gets reorder).

Each emergency call is logged at WARNING and gets a record (`on_start` / `on_record`: the
call store) with the number dialled and its timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.tones import ToneDetector
from firmware_bridge.errors import BridgeError
from firmware_bridge.port import PortKind
from gateway.call_metrics import CallRecord, Timeline
from gateway.emergency_digits import EMERGENCY_PROFILE, EmergencyScreen
from gateway.line_base import LineActor
from gateway.line_call import CallLine, CallSpec, CallStarter, DialOutcome, OutboundCall
from gateway.line_config import LineConfig
from gateway.port_bridge import PortBridge

log = logging.getLogger(__name__)

# A preempted call: on-hook this long before the seizure. A hook flash is at most ~1.1 s
# (GR-506 flash timing); a longer break is a disconnect, so the exchange clears that call.
DISCONNECT_S = 1.5
TAKE_LINE_S = 30.0  # the FXO line rings or sets up a call: keep trying to take it this long
LEG_S = 5.0  # the line leg starts right after the seizure; the phone leg claims it in this


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _Leg:
    """The FXO line's side of one emergency call, between the two legs' tasks."""

    line: CallLine | None = None
    phone: str = ""  # the phone leg's call id, once it claimed this one
    arrived: trio.Event = field(default_factory=trio.Event)  # the line leg runs
    claimed: trio.Event = field(default_factory=trio.Event)  # the phone leg bridges it
    done: trio.Event = field(default_factory=trio.Event)  # the phone leg is over


class _DialToneEar:
    """A `PortBridge` tap on the FXO side: sets `heard` at the line's dial tone."""

    def __init__(self, tone_plan: str) -> None:
        self.heard = trio.Event()
        self.listening = True  # off once the number is dialled
        self._tones = ToneDetector(tone_plan)

    def __call__(self, pcm: NDArray[np.int16]) -> None:
        if self.listening and any(t.tone == "dial" for t in self._tones.feed(pcm)):
            self.heard.set()
            self.listening = False


@dataclass(eq=False)
class EmergencyRouter:
    """A `CallStarter`: emergency calls here, the rest to `inner`; see the module docstring.
    `lines`: the line actors by port (the app's live dict); `config`: every port's settings."""

    inner: CallStarter
    lines: Mapping[int, LineActor]
    config: LineConfig
    on_start: Callable[[CallSpec], None] | None = None
    on_record: Callable[[CallRecord], None] | None = None
    wall_clock: Callable[[], datetime] = _utc_now
    _legs: dict[str, _Leg] = field(default_factory=dict)

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        if spec.profile != EMERGENCY_PROFILE:
            await self._agent_call(spec, line)
        elif spec.kind is PortKind.FXS:
            await self._phone_leg(spec, line)
        else:
            await self._line_leg(spec, line)

    # --- agent calls on a phone ----------------------------------------------------------------

    async def _agent_call(self, spec: CallSpec, line: CallLine) -> None:
        fxs = self.config.for_port(spec.port).fxs
        if spec.kind is not PortKind.FXS or not fxs.emergency_numbers:
            await self.inner.run_call(spec, line)
            return
        async with trio.open_nursery() as nursery:

            def pressed(number: str) -> None:
                nursery.start_soon(self._pressed, spec, number)

            line.digit_screen = EmergencyScreen(fxs.emergency_numbers, fxs.interdigit_s,
                                                nursery, pressed, spec.call_id)  # fmt: skip
            await self.inner.run_call(spec, line)
            nursery.cancel_scope.cancel(reason="the call is over")

    async def _pressed(self, spec: CallSpec, number: str) -> None:
        """Ask the phone's line to drop the agent and put the phone through."""
        actor = self.lines.get(spec.port)
        if actor is not None:
            await actor.place_call(OutboundCall(EMERGENCY_PROFILE, number))

    # --- the phone leg ---------------------------------------------------------------------

    async def _phone_leg(self, spec: CallSpec, line: CallLine) -> None:
        log.warning("line %d: emergency number %s dialled: putting the phone through to an "
                    "FXO line", spec.port, spec.number)  # fmt: skip
        started_at, timeline = self.wall_clock(), Timeline(trio.current_time())
        if self.on_start is not None:
            self.on_start(spec)
        ended_by = "cut: the gateway stopped"  # unless the phone or the line ended it
        try:
            ended_by = await self._put_through(spec, line, timeline)
        finally:
            for call_id, leg in list(self._legs.items()):
                if leg.phone == spec.call_id:
                    leg.done.set()  # the line leg ends: its line goes on-hook
                    del self._legs[call_id]
            if line.hangup.hung_up:
                ended_by = line.hangup.reason or ended_by
            log.warning("line %d: emergency call %s to %s over: %s", spec.port, spec.call_id,
                        spec.number, ended_by)  # fmt: skip
            timeline.note(trio.current_time(), f"ended: {ended_by}")
            if self.on_record is not None:
                self.on_record(self._record(spec, line, started_at, ended_by, timeline))

    async def _put_through(self, spec: CallSpec, line: CallLine, timeline: Timeline) -> str:
        """Bridge the phone to the FXO line until one of them ends; why it ended."""
        fxo = self._route(spec.port)
        if fxo is None:
            return "no FXO line to put it through"
        ear = _DialToneEar(self.config.for_port(fxo.port.port).tone_plan)
        bridge = PortBridge(line, tap_b=ear)
        async with trio.open_nursery() as nursery:
            await nursery.start(bridge.run)  # the phone hears silence while the line is taken
            leg = await self._take_line(spec, fxo)
            if leg is None or leg.line is None:
                nursery.cancel_scope.cancel(reason="no line")
                return f"line {fxo.port.port} could not be taken"
            bridge.attach(leg.line)
            timeline.note(trio.current_time(), f"line {fxo.port.port} seized")
            await self._dial(spec, leg.line, ear, timeline)
            await bridge.done.wait()
            nursery.cancel_scope.cancel(reason="bridge over")
        return f"line {fxo.port.port} ended the call"

    def _route(self, port: int) -> LineActor | None:
        route = self.config.for_port(port).fxs.emergency_route
        fxo_ports = sorted(p for p, a in self.lines.items() if a.port.kind is PortKind.FXO)
        if route == "fxo":
            target = fxo_ports[0] if fxo_ports else None
        else:
            wanted = int(route.partition(":")[2])
            target = wanted if wanted in fxo_ports else None
        if target is None:
            log.error("line %d: emergency: no FXO line for route %r (FXO ports: %s)", port,
                      route, fxo_ports or "none")  # fmt: skip
            return None
        return self.lines[target]

    async def _take_line(self, spec: CallSpec, fxo: LineActor) -> _Leg | None:
        """Seize the FXO line for `spec.number`, ending an agent call on it; the line leg."""
        request = OutboundCall(EMERGENCY_PROFILE, spec.number)
        with trio.move_on_after(TAKE_LINE_S):
            while True:
                result = await fxo.place_call(request)
                if result.outcome is DialOutcome.ANSWERED:
                    leg = self._legs.setdefault(result.call_id, _Leg())
                    leg.phone = spec.call_id
                    with trio.move_on_after(LEG_S):
                        await leg.arrived.wait()
                    leg.claimed.set()
                    return leg
                if result.outcome is not DialOutcome.IN_USE:
                    log.error("line %d: emergency: line %d: %s %s", spec.port, fxo.port.port,
                              result.outcome, result.detail)  # fmt: skip
                    return None
                await self._free(spec, fxo)
        log.error("line %d: emergency: line %d not free within %g s", spec.port, fxo.port.port,
                  TAKE_LINE_S)  # fmt: skip
        return None

    async def _free(self, spec: CallSpec, fxo: LineActor) -> None:
        """The FXO line is in use: end its call (not another emergency) and let it clear."""
        running = fxo.call
        if running is not None and running.profile == EMERGENCY_PROFILE:
            log.warning("line %d: emergency: line %d carries another emergency call: waiting",
                        spec.port, fxo.port.port)  # fmt: skip
        elif running is not None:
            log.warning("line %d: emergency: ending agent call %s on line %d: an emergency "
                        "takes the line", spec.port, running.call_id, fxo.port.port)  # fmt: skip
            await fxo.end_call(f"emergency call from line {spec.port}", "emergency")
        await trio.sleep(DISCONNECT_S)

    async def _dial(self, spec: CallSpec, fxo_line: CallLine, ear: _DialToneEar,
                    timeline: Timeline) -> None:  # fmt: skip
        """Dial at the line's dial tone, or blind after `dial_tone_wait_s`; a failed dial
        leaves the phone on the line (its own keys reach the exchange through the bridge)."""
        with trio.move_on_after(self.config.for_port(fxo_line.port.port).fxo.dial_tone_wait_s):
            await ear.heard.wait()
        ear.listening = False
        timeline.note(trio.current_time(), "dial tone" if ear.heard.is_set() else "no dial tone")
        try:
            await fxo_line.port.dial(spec.number)
        except BridgeError as exc:
            log.error("line %d: emergency: dialling %s on line %d failed: %s", spec.port,
                      spec.number, fxo_line.port.port, exc)  # fmt: skip
            timeline.note(trio.current_time(), f"dialling failed: {exc}")
            return
        log.warning("line %d: emergency: %s dialled on line %d", spec.port, spec.number,
                    fxo_line.port.port)  # fmt: skip
        timeline.note(trio.current_time(), f"dialled {spec.number}")

    # --- the line leg ----------------------------------------------------------------------

    async def _line_leg(self, spec: CallSpec, line: CallLine) -> None:
        """The FXO line's call: its audio is the bridge's (the phone leg's) until that ends."""
        leg = self._legs.setdefault(spec.call_id, _Leg())
        leg.line = line
        leg.arrived.set()
        try:
            with trio.move_on_after(LEG_S):
                await leg.claimed.wait()
            if leg.claimed.is_set():
                await leg.done.wait()
            else:
                log.warning("line %d: emergency call %s: the phone left first", spec.port,
                            spec.call_id)  # fmt: skip
        finally:
            self._legs.pop(spec.call_id, None)

    def _record(self, spec: CallSpec, line: CallLine, started_at: datetime, ended_by: str,
                timeline: Timeline) -> CallRecord:  # fmt: skip
        """The call store's record: no agent, so no transcript or audio figures."""
        return CallRecord(
            call_id=spec.call_id, port=spec.port, direction=spec.direction,
            profile=spec.profile, callerid=spec.callerid, started_at=started_at,
            ended_at=self.wall_clock(), ended_by=ended_by, transcript=(), turn_latency_ms=(),
            barge_in_stop_ms=(), uplink_p50_ms=None, uplink_p99_ms=None, downlink_p50_ms=None,
            downlink_p99_ms=None, erle_db=None, frames=0, frames_late=0,
            frames_to_cloud_dropped=0, underruns=0, reconnects=0, barge_ins={}, tool_calls=(),
            dtmf=spec.number, timeline=tuple(timeline.events), hangup_signal=line.hangup.signal,
        )  # fmt: skip
