"""Warm transfer to a phone on the box (#8): `transfer_call` with a summary to an `fxs:N`
target rings FXS port N; the person who answers hears the agent's summary while the caller
waits; then the two are put through to each other (`gateway.port_bridge`) and the agent goes.

`HandoffDesk` is the lines' `CallStarter` in front of the rest (the app chains it before the
emergency router and the pipeline). A transferring call (`gateway.call_control.CallActions.
warm_transfer`) asks it to `ring` port N: the FXS line places a call with `HANDOFF_PROFILE`
(the phone rings showing the caller's ID); when the phone is picked up, that call (the *leg*)
comes back here and is handed to the transferring call, which sends the agent's summary to the
leg's port and then bridges its own line to it (`gateway.call.Call.hand_over`). The leg lasts
until the transferring call lets it go (its end: either party hung up).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from dsp.callerid import CallerId
from firmware_bridge.port import PortKind
from gateway.errors import GatewayError
from gateway.line_base import LineActor
from gateway.line_call import CallLine, CallSpec, CallStarter, DialOutcome, OutboundCall

log = logging.getLogger(__name__)

HANDOFF_PROFILE = "!handoff"  # not an agent: the leg of a warm transfer to a phone of the box
LEG_S = 5.0  # the phone was picked up: its call reaches the desk within this


class HandoffFailed(GatewayError):
    """The phone could not be rung or nobody answered: the caller stays with the agent."""


@dataclass(eq=False)
class Leg:
    """The phone's side of one warm transfer."""

    line: CallLine | None = None
    arrived: trio.Event = field(default_factory=trio.Event)
    released: trio.Event = field(default_factory=trio.Event)  # the transfer is over


@dataclass(eq=False)
class HandoffDesk:
    """See the module docstring. `lines`: the line actors by port (the app's live dict)."""

    inner: CallStarter
    lines: Mapping[int, LineActor]
    _legs: dict[str, Leg] = field(default_factory=dict)

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        if spec.profile != HANDOFF_PROFILE:
            await self.inner.run_call(spec, line)
            return
        leg = self._legs.setdefault(spec.call_id, Leg())
        leg.line = line
        leg.arrived.set()
        try:
            await leg.released.wait()
        finally:
            self._legs.pop(spec.call_id, None)

    async def ring(self, port: int, callerid: CallerId | None, answer_s: float) -> Leg:
        """Ring FXS port `port` showing `callerid`; the leg once someone picks up, else
        `HandoffFailed` (not an FXS port, in use, no answer within `answer_s`)."""
        actor = self.lines.get(port)
        if actor is None or actor.port.kind is not PortKind.FXS:
            raise HandoffFailed(f"fxs:{port} is not a phone port of this box")
        with trio.move_on_after(answer_s) as waited:
            result = await actor.place_call(OutboundCall(HANDOFF_PROFILE, callerid=callerid))
        if waited.cancelled_caught:
            await actor.end_call("nobody answered the transfer")
            raise HandoffFailed(f"nobody answered at fxs:{port} within {answer_s:g} s")
        if result.outcome is not DialOutcome.ANSWERED:
            raise HandoffFailed(f"fxs:{port}: {result.outcome} {result.detail}".strip())
        leg = self._legs.setdefault(result.call_id, Leg())
        with trio.move_on_after(LEG_S):
            await leg.arrived.wait()
        if leg.line is None:
            leg.released.set()
            raise HandoffFailed(f"fxs:{port} was picked up but its call did not start")
        log.info("fxs:%d picked up for a warm transfer (call %s)", port, result.call_id)
        return leg
