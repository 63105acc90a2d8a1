"""What the agent's tools may do to the call they run in: `CallActions` implements
`gateway.tools.CallControl` for one call (hang up politely, transfer, play DTMF), and
`ResponseWatch` follows the session's responses for it.

Who talks to it: the call's `ToolRunner` (through the built-in tools `end_call`,
`transfer_call`, `send_dtmf`), and the call's events task (`ResponseWatch`). It acts on the
call through its `AudioPath` (local audio, muting the agent), its `CallLine` (hook flash) and
the `end` callback that ends the call (cancels its nursery with the reason).
"""

from __future__ import annotations

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
from gateway.errors import GatewayError
from gateway.line_call import CallLine, CallSpec

log = logging.getLogger(__name__)

# end_call: the response to the tool's output (the agent's goodbye) starts within a second or
# two; without one in this long, the call ends on the audio already received.
END_FOLLOW_UP_S = 8.0
END_DRAIN_S = 30.0  # the goodbye itself plays out (the longest answer we wait for)
TRANSFER_DRAIN_S = 6.0  # "I'm transferring you now" plays before the flash; within the tool's 10 s
TRANSFER_PAUSE_S = 2.0  # a "," in a dial string (PBX convention)
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
                 end: Callable[[str], None], nursery: trio.Nursery) -> None:  # fmt: skip
        self._spec, self._line, self._audio = spec, line, audio
        self._responses, self._end, self._nursery = responses, end, nursery
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
        if target.startswith("fxs:"):
            raise TransferUnsupported(
                f"line {self.line}: ringing another phone of the box ({target}) is not supported"
                " yet; transfer to a number behind a PBX (FXO) instead"
            )
        if self._spec.kind is not PortKind.FXO:
            raise TransferUnsupported(
                f"line {self.line} is an FXS port (a phone on the box): it cannot transfer"
            )
        await self._drain(TRANSFER_DRAIN_S)
        self._audio.mute_agent()
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
        self._nursery.start_soon(self._end_later, TRANSFER_HANG_UP_S, f"transferred to {target}")

    async def _end_later(self, delay_s: float, ended_by: str) -> None:
        await trio.sleep(delay_s)
        self._end(ended_by)

    async def _drain(self, limit_s: float) -> None:
        """Until nothing is left to play (at most `limit_s`)."""
        with trio.move_on_after(limit_s):
            await self._audio.until(lambda: self._audio.drained)


def _dtmf(digits: str) -> NDArray[np.int16]:
    return dtmf_generate(digits, DTMF_ON_MS, DTMF_OFF_MS, DTMF_LEVEL_DBM0)
