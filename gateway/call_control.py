"""What the agent's tools may do to the call they run in: `CallActions` implements
`gateway.tools.CallControl` for one call (hang up politely, transfer, play DTMF), and
`ResponseWatch` follows the session's responses for it.

Who talks to it: the call's `ToolRunner` (through the built-in tools `end_call`,
`transfer_call`, `send_dtmf`), and the call's events task (`ResponseWatch`). It acts on the
call through its `AudioPath` (local audio, muting the agent), its `CallLine` (hook flash) and
the `end` callback that ends the call (cancels its nursery with the reason).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.dtmf import generate as dtmf_generate
from firmware_bridge.errors import BridgeError
from firmware_bridge.port import PortKind
from gateway.call_audio import AudioPath
from gateway.call_handover import Handover
from gateway.errors import GatewayError
from gateway.handoff import HandoffDesk, HandoffFailed, Leg
from gateway.line_call import CallLine, CallSpec
from gateway.line_progress import ProgressEar

log = logging.getLogger(__name__)


# end_call: the response to the tool's output (the agent's goodbye) starts within a second or
# two; without one in this long, the call ends on the audio already received.
END_FOLLOW_UP_S = 8.0
END_DRAIN_S = 30.0  # the goodbye itself plays out (the longest answer we wait for)
TRANSFER_DRAIN_S = 6.0  # "I'm transferring you now" plays before the flash; within the tool's 10 s
TRANSFER_PAUSE_S = 2.0  # a "," in a dial string (PBX convention)
GREETED_QUIET_S = 0.6  # a warm transfer: the person who answered stopped talking ...
GREETED_MAX_S = 6.0  # ... or talked this long: the summary starts
PICKED_UP_S = 1.0  # a warm transfer to a phone of the box: they pick up and say hello
TRANSFER_HANG_UP_S = 0.5  # after the last digit, before on-hook (blind transfer on a PBX)
DTMF_ON_MS, DTMF_OFF_MS = 100.0, 100.0  # Q.23 >= 40 ms each; 100/100 as phones send
DTMF_LEVEL_DBM0 = -8.0  # per tone, GR-506 nominal (as firmware_bridge.adapter_port dials)


class TransferUnsupported(GatewayError):
    """This line cannot transfer (FXS, or an `fxs:N` target): the agent is told why."""


class TransferFailed(GatewayError):
    """The hook flash failed: the caller is still on the line with the agent."""


@dataclass(eq=False)
class ResponseWatch:
    """When each realtime response was created and finished (trio's clock)."""

    created: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def response_created(self, response_id: str, now_s: float) -> None:
        self.created.setdefault(response_id, now_s)
        self._wake()

    def response_done(self, response_id: str, now_s: float) -> None:
        self.done.setdefault(response_id, now_s)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def done_after(self, since_s: float) -> None:
        """Until a response created at or after `since_s` has finished."""
        while not any(self.created.get(r, -math.inf) >= since_s for r in self.done):
            await self._changed.wait()


class CallActions:
    """`CallControl` for one call; see the module docstring."""

    def __init__(self, spec: CallSpec, line: CallLine, audio: AudioPath, responses: ResponseWatch,
                 end: Callable[[str], None], nursery: trio.Nursery,
                 handoffs: HandoffDesk | None = None,
                 hand_over: Handover | None = None) -> None:  # fmt: skip
        self._spec, self._line, self._audio = spec, line, audio
        self._responses, self._end, self._nursery = responses, end, nursery
        self._handoffs, self._hand_over = handoffs, hand_over
        self.ending = False

    @property
    def call_id(self) -> str:
        return self._spec.call_id

    @property
    def line(self) -> int:
        return self._spec.port

    @property
    def caller_id(self) -> CallerId | None:
        return self._spec.callerid

    async def collect_digits(self, max_digits: int, terminator: str, timeout_s: float) -> str:
        log.info("call %s: collecting up to %d digits securely", self.call_id, max_digits)
        return await self._audio.secure.collect(max_digits, terminator, timeout_s)

    async def hang_up(self, reason: str) -> None:
        """Ends the call once the agent's goodbye (the response to this tool's output) has
        played; returns at once."""
        if self.ending:
            return
        self.ending = True
        log.info("call %s: the agent hangs up (%s)", self.call_id, reason)
        self._nursery.start_soon(self._hang_up_after_goodbye, reason, trio.current_time())

    async def _hang_up_after_goodbye(self, reason: str, asked_s: float) -> None:
        with trio.move_on_after(END_FOLLOW_UP_S):
            await self._responses.done_after(asked_s)
        await self._drain(END_DRAIN_S)
        self._end(f"agent ended the call ({reason})")

    async def send_dtmf(self, digits: str) -> None:
        """Queues the digits on the line after the agent's audio in progress; returns at once."""
        self._audio.play_local(_dtmf(digits), "dtmf")

    async def transfer(self, target: str) -> None:
        """FXO: lets the agent's announcement play, flashes the hook, dials `target` (digits;
        "," pauses 2 s) and ends the call (a blind transfer: the PBX connects the caller).
        `TransferUnsupported` on FXS and for `fxs:N`; `TransferFailed` if the flash fails."""
        self._check_transfer(target)
        await self._drain(TRANSFER_DRAIN_S)
        self._audio.mute_agent()
        await self._flash_and_dial(target)
        self._nursery.start_soon(self._end_later, TRANSFER_HANG_UP_S, f"transferred to {target}")

    def _check_transfer(self, target: str) -> None:
        if target.startswith("fxs:"):
            raise TransferUnsupported(
                f"{target}: a blind transfer to a phone of the box is not supported; give a "
                "summary (a warm transfer) to ring it"
            )
        if self._spec.kind is not PortKind.FXO:
            raise TransferUnsupported(
                f"line {self.line} is an FXS port (a phone on the box): it cannot transfer"
            )

    async def _flash_and_dial(self, target: str) -> None:
        """The agent is muted: flash (`TransferFailed`, unmuted, if it fails), then the
        digits ("," pauses)."""
        try:
            await self._line.flash()
        except BridgeError as exc:
            self._audio.unmute_agent()
            raise TransferFailed(f"line {self.line}: the hook flash failed: {exc}") from exc
        log.info("call %s: transferring to %s", self.call_id, target)
        for index, digits in enumerate(target.split(",")):
            if index:
                await trio.sleep(TRANSFER_PAUSE_S)
            if digits:
                await self._audio.play_local(_dtmf(digits), "transfer").done.wait()

    async def warm_transfer(self, target: str, answer_s: float) -> None:
        """FXO: the agent's words so far play out; it is muted, the hook flashed (the PBX
        holds the caller) and `target` dialled; once someone answers there (`ProgressEar`:
        voice, not ringback), the agent is unmuted and its next response (to this tool's
        output: the summary) goes to them; then on-hook, and the PBX connects the caller.
        Nobody within `answer_s`: a flash back to the caller, `TransferFailed`. `fxs:N`: the
        phone on port N rings instead (`_warm_to_phone`)."""
        if target.startswith("fxs:"):
            await self._warm_to_phone(target, answer_s)
            return
        self._check_transfer(target)
        await self._drain(TRANSFER_DRAIN_S)
        self._audio.mute_agent()
        await self._flash_and_dial(target)
        ear = self._audio.ear = ProgressEar()
        with trio.move_on_after(answer_s):
            await self._audio.until(lambda: ear.answered)
        self._audio.ear = None
        if not ear.answered:
            log.info("call %s: nobody answered at %s: back to the caller", self.call_id, target)
            with contextlib.suppress(BridgeError):
                await self._line.flash()
            self._audio.unmute_agent()
            raise TransferFailed(f"nobody answered at {target} within {answer_s:g} s; the "
                                 "caller is back on the line with you")  # fmt: skip
        with trio.move_on_after(GREETED_MAX_S):  # they say who they are; the agent then
            await self._audio.until(self._quiet)  # speaks (not over them: no barge-in)
        log.info("call %s: %s answered: the agent gives the summary", self.call_id, target)
        self._audio.unmute_agent()  # (what the agent made meanwhile, to their hello, is gone)
        self.ending = True
        self._nursery.start_soon(self._complete_after_summary, target, trio.current_time())

    async def _warm_to_phone(self, target: str, answer_s: float) -> None:
        """The phone on FXS port N rings (the caller waits in silence); once picked up, the
        agent's summary goes to it, then the caller's line is bridged to it."""
        if self._handoffs is None or self._hand_over is None:
            raise TransferUnsupported(f"{target}: this box cannot ring its phones for a transfer")
        await self._drain(TRANSFER_DRAIN_S)
        self._audio.mute_agent()
        try:
            leg = await self._handoffs.ring(int(target[4:]), self._spec.callerid, answer_s)
        except HandoffFailed as exc:
            self._audio.unmute_agent()
            raise TransferFailed(f"{exc}; the caller is back on the line with you") from None
        assert leg.line is not None
        self._hand_over.consult(leg.line, self._nursery)  # the agent talks to them
        await trio.sleep(PICKED_UP_S)  # they say hello
        self._audio.unmute_agent()
        self.ending = True
        self._nursery.start_soon(self._summary_then_hand_over, target, leg, trio.current_time())

    async def _summary_then_hand_over(self, target: str, leg: Leg, asked_s: float) -> None:
        assert self._hand_over is not None
        assert leg.line is not None
        try:
            with trio.move_on_after(END_FOLLOW_UP_S):
                await self._responses.done_after(asked_s)
            await self._drain(END_DRAIN_S)
            await self._hand_over.bridge(leg.line, f"warm transfer to {target}")
        finally:
            leg.released.set()

    def _quiet(self) -> bool:
        return trio.current_time() - self._audio.last_speech_s >= GREETED_QUIET_S

    async def _complete_after_summary(self, target: str, asked_s: float) -> None:
        with trio.move_on_after(END_FOLLOW_UP_S):
            await self._responses.done_after(asked_s)
        await self._drain(END_DRAIN_S)
        self._end(f"warm transfer to {target}")

    async def _end_later(self, delay_s: float, ended_by: str) -> None:
        await trio.sleep(delay_s)
        self._end(ended_by)

    async def _drain(self, limit_s: float) -> None:
        """Until nothing is left to play (at most `limit_s`)."""
        with trio.move_on_after(limit_s):
            await self._audio.until(lambda: self._audio.drained)


def _dtmf(digits: str) -> NDArray[np.int16]:
    return dtmf_generate(digits, DTMF_ON_MS, DTMF_OFF_MS, DTMF_LEVEL_DBM0)
