"""The call running on a line, as its line actor keeps it: `CallKeeper`, a base of
`gateway.line_base.LineActor`.

Owns the actor's one running call (`_Running`): `_start_call` opens its frame and signal
channels and runs it through the actor's `CallStarter` in the actor's nursery (answered at
once, or, FXO pre-answer, told later by `_answer_call`); `_forward` passes line signals to it;
`_hang_up_call` is the line ending it (reason first, then cancel, then a bounded wait for its
cleanup); a call that returns by itself posts `CallEnded` to the actor's inbox. The hook flash
a call asks for (`CallLine.flash`) runs here too, with the guard that keeps our own flash's
loop-current drop from reading as a hang-up (`_flashing`). The contract with the call
pipeline is `gateway.line_call`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from dsp.callerid import CallerId
from firmware_bridge.port import AudioFrame, LinePort
from gateway.line_call import (
    CALL_CLEANUP_S,
    CALL_FRAMES_BUFFER,
    CALL_SIGNALS_BUFFER,
    CallLine,
    CallSignal,
    CallSpec,
    CallStarter,
    Direction,
    HangupWatch,
)
from gateway.line_health import LineHealth

if TYPE_CHECKING:
    from gateway.line_base import LineStats, Message

log = logging.getLogger(__name__)

FLASH_GUARD_S = 0.5  # our own flash's loop-current drop is reported when the loop closes


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call task returned (or raised) without the line hanging up."""

    call_id: str


@dataclass(eq=False)
class _Running:
    spec: CallSpec
    hangup: HangupWatch
    frames_send: trio.MemorySendChannel[AudioFrame]
    signals_send: trio.MemorySendChannel[CallSignal]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    answered: trio.Event = field(default_factory=trio.Event)  # only a pre-answer call waits


class CallKeeper:
    """The running-call part of `LineActor` (see the module docstring); the actor sets these
    attributes up."""

    port: LinePort
    stats: LineStats
    health: LineHealth
    _starter: CallStarter
    _nursery: trio.Nursery | None
    _inbox_send: trio.MemorySendChannel[Message]
    _call: _Running | None
    _flash_until: float

    def _start_call(self, direction: Direction, profile: str, number: str = "",
                    callerid: CallerId | None = None, *,
                    answered: bool = True) -> CallSpec:  # fmt: skip
        """Start a call on this line. `answered` False: the line still rings (FXO pre-answer);
        `_answer_call` tells the call when it is off-hook."""
        assert self._nursery is not None
        assert self._call is None
        spec = CallSpec(f"{self.port.port}-{uuid.uuid4().hex[:12]}", self.port.port,
                        self.port.kind, direction, profile, number, callerid,
                        trio.current_time())  # fmt: skip
        frames_send, frames_recv = trio.open_memory_channel[AudioFrame](CALL_FRAMES_BUFFER)
        signals_send, signals_recv = trio.open_memory_channel[CallSignal](CALL_SIGNALS_BUFFER)
        running = _Running(spec, HangupWatch(), frames_send, signals_send)
        line = CallLine(self.port, frames_recv, signals_recv, running.hangup, self._flash,
                        health=self.health)  # fmt: skip
        if not answered:
            line.answered = running.answered = trio.Event()
        self._call = running
        self.stats.calls += 1
        log.info("line %d: call %s (%s) to agent %s", self.port.port, spec.call_id, direction,
                 profile)  # fmt: skip
        self._nursery.start_soon(self._run_call, running, line)
        return spec

    async def _run_call(self, running: _Running, line: CallLine) -> None:
        try:
            with running.scope:
                await self._starter.run_call(running.spec, line)
        except Exception:  # the line supervises its calls: a failed call must not end the line
            log.error("line %d: call %s failed", self.port.port, running.spec.call_id,
                      exc_info=True)  # fmt: skip
        finally:
            running.done.set()
            running.frames_send.close()
            running.signals_send.close()
        if not running.hangup.hung_up:
            await self._inbox_send.send(CallEnded(running.spec.call_id))

    async def _hang_up_call(self, reason: str, signal: str = "ended") -> None:
        """The line ends the running call (if any): the reason (and the `HANGUP_SIGNALS` key
        of what showed it) first, then cancel, then give its cleanup `CALL_CLEANUP_S`."""
        running, self._call = self._call, None
        if running is None:
            return
        log.info("line %d: call %s hung up: %s", self.port.port, running.spec.call_id, reason)
        running.hangup.set(reason, signal)
        running.frames_send.close()
        running.signals_send.close()
        running.scope.cancel(reason=reason)
        with trio.move_on_after(CALL_CLEANUP_S):
            await running.done.wait()
        if not running.done.is_set():
            log.warning("line %d: call %s still cleaning up after %.1f s", self.port.port,
                        running.spec.call_id, CALL_CLEANUP_S)  # fmt: skip

    def _answer_call(self) -> CallSpec | None:
        """The line went off-hook for the call prepared while it rang: tell the call."""
        running = self._call
        if running is None:
            return None
        running.spec = dataclasses.replace(running.spec, connected_s=trio.current_time())
        running.answered.set()
        return running.spec

    def _forward(self, signal: CallSignal) -> None:
        if self._call is None:
            return
        try:
            self._call.signals_send.send_nowait(signal)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("line %d: the call did not take %r", self.port.port, signal)

    async def _flash(self, duration_ms: float) -> None:
        self._flash_until = trio.current_time() + duration_ms / 1000.0 + FLASH_GUARD_S
        await self.port.flash(duration_ms)  # returns as the loop opens (spec §8.2)
        self._flash_until = trio.current_time() + duration_ms / 1000.0 + FLASH_GUARD_S

    def _flashing(self) -> bool:
        return trio.current_time() < self._flash_until
