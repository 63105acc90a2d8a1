"""What the FXO and FXS line actors share: `LineActor`, its inbox, timers and calls.

A line actor is the one reader of its port's `events` and `frames`. Two of its own tasks feed
it: the event pump puts every line event into the inbox; the frame task forwards each frame
to the running call first (latency), then runs the state's detectors on it (caller ID, tones,
DTMF, levels) and posts what they heard to the inbox as the port's own event types
(`CallerIdReported`, `ToneReported`, `DtmfReported`), so a device that detects them itself and
one that passes audio through look the same. The main loop takes one inbox message at a time,
or a timer expiry (named deadlines on trio's clock, cleared on every state change), and runs
the subclass's state machine; port commands are awaited there, one at a time.

The actor keeps its port's `health` (`gateway.line_health.LineHealth`): the frame task gives
it each frame's level, the main loop the loop voltage and the port's loss and return; each
call gets it on its `CallLine`. Subclasses (`gateway.line_fxo.FxoLine`,
`gateway.line_fxs.FxsLine`) implement the `_on_*` hooks. Calls: the running call's
bookkeeping (start, hang-up, pre-answer, signals, flash) is `gateway.line_running.CallKeeper`,
a base of `LineActor`; `gateway.line_call` is the contract with the call pipeline.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from firmware_bridge.errors import BridgeError
from firmware_bridge.port import (
    AudioFrame,
    CallerIdReported,
    DtmfReported,
    HookChanged,
    HookFlashed,
    LinePort,
    LineVoltageMeasured,
    LoopCurrentDropped,
    PolarityReversed,
    PortLost,
    PortReady,
    RingStarted,
    RingStopped,
    ToneReported,
)
from gateway.line_call import CallSpec, CallStarter, DialOutcome, DialResult, OutboundCall
from gateway.line_config import LineConfig
from gateway.line_health import LineHealth
from gateway.line_running import CallEnded, CallKeeper

log = logging.getLogger(__name__)

INBOX_BUFFER = 64  # line events are rare; a reconnect's burst of state events fits
RELEASE_S = 2.0  # stopping: the on-hook / stop-ring command gets this long (link round trips)
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class VoiceHeard:
    """The frame task heard someone speak on a line that rings out (FXO)."""


@dataclass(frozen=True, slots=True)
class PlaceCall:
    call: OutboundCall
    reply_send: trio.MemorySendChannel[DialResult]


@dataclass(frozen=True, slots=True)
class EndCall:
    reason: str
    signal: str = "ended"  # the `HANGUP_SIGNALS` key the call's record gets


@dataclass(frozen=True, slots=True)
class _Closed:
    """The port's event channel ended: the line actor ends."""


Signal = (
    HookChanged | HookFlashed | RingStarted | RingStopped | PolarityReversed | LoopCurrentDropped
    | CallerIdReported | DtmfReported | ToneReported | VoiceHeard
)  # fmt: skip
Inbox = Signal | LineVoltageMeasured | PortLost | PortReady | PlaceCall | EndCall | CallEnded
Message = Inbox | _Closed


@dataclass
class LineStats:
    """Counters over the actor's life."""

    calls: int = 0
    frames_dropped: int = 0  # frames the call did not take in time
    inbox_dropped: int = 0  # detector results lost to a full inbox
    command_failures: int = 0
    callerid_errors: int = 0  # bursts heard but unreadable


class LineActor(CallKeeper):
    """One port's line state machine (see the module docstring); construct with
    `gateway.line.line_actor`. Construction does no I/O."""

    def __init__(self, port: LinePort, config: LineConfig, starter: CallStarter,
                 *, wall_clock: WallClock = utc_now) -> None:  # fmt: skip
        self.port = port
        self.config = config.for_port(port.port)
        self.stats = LineStats()
        self._starter = starter
        self._wall_clock = wall_clock
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[Message](INBOX_BUFFER)
        self._timers: dict[str, float] = {}
        self._call = None
        self._pending: PlaceCall | None = None
        self._flash_until = -math.inf
        self._nursery: trio.Nursery | None = None
        self.health = LineHealth(port.port, port.kind, self.config.health, wall_clock)

    # --- public: the actor, and requests to it --------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the port until its event channel ends (or cancelled). Ready at once: the port
        tells its own readiness with `PortReady`."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._pump_events)
                nursery.start_soon(self._pump_frames)
                nursery.start_soon(self.health.watch)
                task_status.started()
                await self._serve()
                nursery.cancel_scope.cancel(reason="port closed")
        finally:
            with trio.move_on_after(RELEASE_S, shield=True):
                await self._release()

    async def place_call(self, call: OutboundCall) -> DialResult:
        """Place `call` on this line; returns once it was answered (the call then runs) or
        failed. Never raises for line trouble: the outcome says."""
        reply_send, reply_recv = trio.open_memory_channel[DialResult](1)
        try:
            await self._inbox_send.send(PlaceCall(call, reply_send))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return DialResult(DialOutcome.UNAVAILABLE, "the line actor is not running")
        async with reply_recv:
            try:
                return await reply_recv.receive()
            except trio.EndOfChannel:
                return DialResult(DialOutcome.UNAVAILABLE, "the line actor stopped")

    def resume(self, ready: PortReady) -> None:
        """A new actor on a port that is already up (the one before it crashed): take the
        port's last `PortReady` as if it had just come."""
        self._post(ready)

    async def end_call(self, reason: str, signal: str = "ended") -> None:
        """End the call (or call attempt) on this line, as the far end's hang-up would."""
        await self._inbox_send.send(EndCall(reason, signal))

    @property
    def call(self) -> CallSpec | None:
        """The call running on this line, if any."""
        return self._call.spec if self._call is not None else None

    # --- for subclasses -------------------------------------------------------------------------

    async def _on_signal(self, signal: Signal) -> None:
        raise NotImplementedError

    async def _on_timer(self, name: str) -> None:
        raise NotImplementedError

    def _on_frame(self, frame: AudioFrame) -> None:
        """The frame task's detectors (synchronous: one frame, no awaiting)."""
        raise NotImplementedError

    def _on_ready(self) -> None:
        raise NotImplementedError

    def _on_lost(self) -> None:
        raise NotImplementedError

    def _available(self) -> DialOutcome | None:
        """None if a call can be placed now, else why not."""
        raise NotImplementedError

    async def _place(self, call: OutboundCall) -> None:
        raise NotImplementedError

    async def _finish(self, reason: str) -> None:
        """The call or attempt is over and no one hung up the line itself: back to rest."""
        raise NotImplementedError

    async def _release(self) -> None:
        """The actor is stopping: leave the port at rest (on-hook, not ringing)."""
        raise NotImplementedError

    # --- timers -----------------------------------------------------------------------------------

    def _set_timer(self, name: str, delay_s: float) -> None:
        self._timers[name] = trio.current_time() + delay_s

    def _clear_timers(self) -> None:
        self._timers.clear()

    # --- the main loop ----------------------------------------------------------------------------

    async def _pump_events(self) -> None:
        async for event in self.port.events:
            await self._inbox_send.send(event)
        await self._inbox_send.send(PortLost(self.port.port, "port closed"))
        await self._inbox_send.send(_Closed())

    async def _pump_frames(self) -> None:
        async for frame in self.port.frames:
            call = self._call
            if call is not None:
                try:
                    call.frames_send.send_nowait(frame)
                except trio.WouldBlock:
                    self.stats.frames_dropped += 1
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the call stopped reading: it is ending
            self._on_frame(frame)
            self.health.frame(frame.pcm, frame.concealed, trio.current_time())

    async def _serve(self) -> None:
        while True:
            msg: Message | None = None
            with trio.move_on_at(min(self._timers.values(), default=math.inf)):
                msg = await self._inbox_recv.receive()
            if msg is None:
                await self._expire_timers()
            elif isinstance(msg, _Closed):
                return
            else:
                await self._handle(msg)

    async def _expire_timers(self) -> None:
        now = trio.current_time()
        for name, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if at <= now and self._timers.get(name) == at:  # an earlier one may have cleared it
                del self._timers[name]
                await self._on_timer(name)

    async def _handle(self, msg: Inbox) -> None:
        match msg:
            case PortLost(reason=reason):
                log.warning("line %d: port lost (%s)", self.port.port, reason)
                await self._hang_up_call(f"port lost: {reason}", "port_lost")
                self._resolve(DialOutcome.FAILED, f"port lost: {reason}")
                self._clear_timers()
                self._on_lost()
                self.health.port_lost(reason)
            case PortReady():
                log.info("line %d: %s port ready", self.port.port, self.port.kind)
                await self._hang_up_call("port restarted", "port_restarted")
                self._resolve(DialOutcome.FAILED, "port restarted")
                self._clear_timers()
                self._on_ready()
                self.health.port_ready()
            case LineVoltageMeasured(volts=volts):
                log.debug("line %d: line voltage %.1f V", self.port.port, volts)
                self.health.voltage(volts, trio.current_time())
            case PlaceCall():
                await self._place_request(msg)
            case EndCall(reason=reason, signal=signal):
                if self._call is not None or self._pending is not None:
                    log.info("line %d: ending the call: %s", self.port.port, reason)
                    await self._hang_up_call(reason, signal)
                    self._resolve(DialOutcome.FAILED, reason)
                    await self._finish(reason)
            case CallEnded(call_id=call_id):
                if self._call is not None and self._call.spec.call_id == call_id:
                    log.info("line %d: call %s ended by the call", self.port.port, call_id)
                    self._call = None
                    await self._finish("call ended")
            case _:
                await self._on_signal(msg)

    async def _place_request(self, request: PlaceCall) -> None:
        why_not = self._available()
        if why_not is None and (self._pending is not None or self._call is not None):
            why_not = DialOutcome.IN_USE
        if why_not is not None:
            request.reply_send.send_nowait(DialResult(why_not, f"line {self.port.port}"))
            request.reply_send.close()
            return
        self._pending = request
        await self._place(request.call)

    def _resolve(self, outcome: DialOutcome, detail: str = "", call_id: str = "") -> None:
        """Answer the pending `place_call` (if any)."""
        request, self._pending = self._pending, None
        if request is None:
            return
        log.info("line %d: placing a call: %s %s", self.port.port, outcome, detail)
        # BrokenResourceError: the requester went away (cancelled): nobody to tell
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            request.reply_send.send_nowait(DialResult(outcome, detail, call_id))
        request.reply_send.close()

    def _post(self, msg: Inbox) -> None:
        """From the frame task: never wait (the frame clock), drop and count when full."""
        try:
            self._inbox_send.send_nowait(msg)
        except trio.WouldBlock:
            self.stats.inbox_dropped += 1
            log.warning("line %d: inbox full: %r dropped", self.port.port, msg)

    async def _command(self, what: str, command: Callable[[], Awaitable[None]]) -> bool:
        """Run a port command; False (logged, counted) if the device refused or went away."""
        try:
            await command()
        except BridgeError as exc:
            self.stats.command_failures += 1
            log.warning("line %d: %s failed: %s", self.port.port, what, exc)
            return False
        return True
