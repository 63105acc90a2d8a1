"""The seam between a line and the call on it: `CallStarter`, which the call pipeline
(`gateway.call`) implements, and what one call gets from its line: `CallSpec`, `CallLine`
(with its `HangupWatch`). Also the requests to place a call (`OutboundCall`, `DialResult`).

The contract, as `gateway.line` keeps it:

- When a call is connected (FXO: we answered a ringing line, or the far end answered our
  dialling; FXS: the phone dialled a number or lifted a hotline, or answered our ringing) the
  line actor runs `await starter.run_call(spec, line)` as a task in its own nursery. FXO
  pre-answer: the call starts while the line still rings (the caller ID decided it), with
  `line.answered` unset; the line sets it when it goes off-hook, or hangs the call up
  ("unanswered") when the caller gives up first.
- The call ends itself by returning from `run_call` (the agent hung up, the cloud is gone for
  good): the line then hangs up (FXO: on-hook; FXS: reorder tone until the phone hangs up).
  An exception escaping `run_call` is logged with its traceback and ends the call the same way.
- The line ends the call (far end hung up, phone on-hook, port lost, `Line.end_call`) by
  setting `line.hangup` (reason and time), closing `line.frames` and `line.signals`, then
  cancelling the task. The call's shielded cleanup (its record) reads `line.hangup.reason`
  and has `CALL_CLEANUP_S` before the line goes on without it. When the line actor itself is
  cancelled (app shutdown, supervisor restart) the call is cancelled with it and the reason
  stays None.
- While it runs, the call is the only task that calls `port.send_audio` (one 20 ms frame per
  received frame, spec §7). It reads received audio from `line.frames` only: the line actor
  is the one reader of `port.frames` and forwards every frame at once (dropped and counted
  when the call falls `CALL_FRAMES_BUFFER` behind; the line clock never waits on it). Device
  signals come on `line.signals`. FXO: hook-flash with `line.flash()`, which tells the line
  its own loop-current drop is not a hang-up; `port.dial` plays DTMF to the far end.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import trio

from dsp.callerid import CallerId
from firmware_bridge.port import AudioFrame, DtmfReported, HookFlashed, LinePort, PortKind
from gateway.line_health import LineHealth

CALL_FRAMES_BUFFER = 16  # 320 ms, as the port's own: a stalled uplink loses frames, not time
CALL_SIGNALS_BUFFER = 16  # flashes and device digits: a few per second at most
CALL_CLEANUP_S = 2.0  # a hung-up call's shielded cleanup (its record) gets this long

Direction = Literal["inbound", "outbound"]
CallSignal = HookFlashed | DtmfReported  # FXS hook-flash; digits a device detected (modem)
DigitScreen = Callable[[trio.MemoryReceiveChannel[str]], trio.MemoryReceiveChannel[str]]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What the call is. `direction` "inbound": the far end called (FXO ringing) or the phone
    user picked up (FXS); "outbound": we placed it (`Line.place_call`). `profile` is the agent
    profile chosen by the line's rules, dial plan, hotline or request. `number`: FXO outbound
    the digits dialled, FXS inbound the digits the phone dialled, else "". `callerid`: FXO
    inbound the caller as the line delivered it; FXS outbound what the phone was shown.
    `connected_s` is trio's clock at the answer."""

    call_id: str
    port: int
    kind: PortKind
    direction: Direction
    profile: str
    number: str = ""
    callerid: CallerId | None = None
    connected_s: float = 0.0


HANGUP_SIGNALS = (
    "loop_drop",  # FXO: the loop current dropped (the exchange's disconnect)
    "polarity",  # FXO: the line's polarity reversed in the call
    "busy", "reorder", "dial", "sit",  # FXO: the exchange's tone after the far end left
    "silence",  # FXO: nothing on the line for `silence_hangup_s`
    "on_hook",  # FXS: the phone was hung up
    "ended",  # the box ended it (console hangup, a tool, the line's own request)
    "unanswered",  # FXO: the caller gave up while it rang (a call prepared before the answer)
    "fax", "modem",  # FXO: a fax or modem answered or called (`line.fxo.hangup_tones`)
    "port_lost", "port_restarted",  # the adapter went away or restarted
    "emergency",  # an emergency number (`gateway.emergency`): the line goes to it
)  # fmt: skip


@dataclass(eq=False)
class HangupWatch:
    """Why and when the line ended the call. Unset while the call is up or when the call
    ended itself; the line sets it before cancelling the call."""

    reason: str | None = None
    signal: str | None = None  # what the line saw, as a key: one of `HANGUP_SIGNALS`
    at_s: float = math.inf  # trio's clock
    _event: trio.Event = field(default_factory=trio.Event)

    @property
    def hung_up(self) -> bool:
        return self.reason is not None

    def set(self, reason: str, signal: str | None = None) -> None:
        """The line's: the call is over because of `reason` (the first reason sticks), which
        the line saw as `signal` (a `HANGUP_SIGNALS` key)."""
        if self.reason is None:
            self.reason, self.at_s = reason, trio.current_time()
            self.signal = signal
            self._event.set()

    async def wait(self) -> str:
        """Return the reason once the line ended the call."""
        await self._event.wait()
        assert self.reason is not None
        return self.reason


def _answered() -> trio.Event:
    event = trio.Event()
    event.set()
    return event


@dataclass(eq=False)
class CallLine:
    """One call's view of its line: the port (send_audio, dial), the received audio and
    signals the line forwards, the hang-up watch, a flash that the line knows about, and the
    line's health (`gateway.line_health`).
    `answered` is set once the line is off-hook: a call prepared while the line still rings
    (FXO pre-answer) opens its session then, and touches the line's audio only after."""

    port: LinePort
    frames: trio.MemoryReceiveChannel[AudioFrame]
    signals: trio.MemoryReceiveChannel[CallSignal]
    hangup: HangupWatch
    _flash: Callable[[float], Awaitable[None]]
    answered: trio.Event = field(default_factory=_answered)
    health: LineHealth | None = None  # the line's: the call hands it its figures at its end
    digit_screen: DigitScreen | None = None  # FXS emergency numbers (`gateway.emergency`)

    def screen_digits(self, digits: trio.MemoryReceiveChannel[str]
                      ) -> trio.MemoryReceiveChannel[str]:  # fmt: skip
        """The caller's `digits` as the agent may have them: an emergency number and what
        may begin one are held back (`digit_screen`); unchanged without a screen."""
        return digits if self.digit_screen is None else self.digit_screen(digits)

    async def flash(self, duration_ms: float = 600.0) -> None:
        """FXO: a hook flash of `duration_ms` (call waiting, transfer on a PBX); raises what
        `LinePort.flash` raises."""
        await self._flash(duration_ms)


class CallStarter(Protocol):
    """The call pipeline, as the line actor sees it (see the module docstring)."""

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        """Run the call described by `spec` on `line` until it ends itself (return) or the
        line cancels it."""


@dataclass(frozen=True, slots=True)
class OutboundCall:
    """A call to place (from the console, or an agent's tool): `profile` is the agent.
    FXO: `number` is dialled (0-9 * # A-D). FXS: the phone rings showing `callerid`."""

    profile: str
    number: str = ""
    callerid: CallerId | None = None


class DialOutcome(StrEnum):
    """How placing a call went."""

    ANSWERED = "answered"  # the call runs (DialResult.call_id)
    BUSY = "busy"  # busy or reorder tone
    NO_ANSWER = "no_answer"  # rang until the timeout
    FAILED = "failed"  # no dial tone, SIT, a command failed, the port went away
    IN_USE = "in_use"  # ringing, in a call, or (FXS) the phone is off-hook
    UNAVAILABLE = "unavailable"  # the port is down (no PortReady since it was lost)


@dataclass(frozen=True, slots=True)
class DialResult:
    outcome: DialOutcome
    detail: str = ""
    call_id: str = ""
