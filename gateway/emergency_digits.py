"""Emergency numbers in what an FXS phone dials (`line.fxs.emergency_numbers`): which digits
are one, or may become one, and the screen that keeps them from an agent in a call.

`gateway.line_fxs` asks `match_emergency` of the digits dialled on dial tone (before the dial
plan); `gateway.emergency.EmergencyRouter` puts an `EmergencyScreen` on each agent call of an
FXS line (`CallLine.digit_screen`, applied by the call's digit router): keys that may begin
an emergency number are held back from the agent, released when the sequence stops matching
or after `hold_s` without a key; a whole number calls `on_number` (the line then ends the
agent call and puts the phone through to the FXO line) and never reaches the agent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from enum import Enum

import trio

log = logging.getLogger(__name__)

EMERGENCY_PROFILE = "!emergency"  # the calls' profile: never an agent ("!" is not in a name)
SCREENED_BUFFER = 32  # as the call's own digit channel: a burst of typing


class Match(Enum):
    NONE = "none"
    PREFIX = "prefix"  # the start of an emergency number
    NUMBER = "number"  # an emergency number, whole


def match_emergency(numbers: Sequence[str], digits: str) -> Match:
    """Whether `digits` is one of `numbers` (which wins over a longer one it begins), the
    start of one, or neither."""
    if not digits:
        return Match.NONE
    if digits in numbers:
        return Match.NUMBER
    if any(number.startswith(digits) for number in numbers):
        return Match.PREFIX
    return Match.NONE


class EmergencyMatcher:
    """Digit by digit, one burst at a time: a number counts only from the burst's first key
    (an account number with 911 inside it is not a call for help). `feed` returns the keys
    to pass on now and the emergency number completed, if any; `pause` ends the burst and
    returns the keys still held."""

    def __init__(self, numbers: Sequence[str]) -> None:
        self.numbers = tuple(numbers)
        self.held = ""
        self._passing = False  # this burst stopped matching: its keys go on

    @property
    def in_burst(self) -> bool:
        return bool(self.held) or self._passing

    def feed(self, digit: str) -> tuple[str, str | None]:
        if self._passing:
            return digit, None
        typed = self.held + digit
        match match_emergency(self.numbers, typed):
            case Match.NUMBER:
                self.held = ""
                self._passing = True  # the rest of the burst goes on (the call ends anyway)
                return "", typed
            case Match.PREFIX:
                self.held = typed
                return "", None
            case Match.NONE:
                self.held, self._passing = "", True
                return typed, None

    def pause(self) -> str:
        held, self.held, self._passing = self.held, "", False
        return held


class EmergencyScreen:
    """A `gateway.line_call.DigitScreen`: call it with the call's digit channel, get the
    screened one; its task runs in `nursery` (the router's, around the call)."""

    def __init__(self, numbers: Sequence[str], hold_s: float, nursery: trio.Nursery,
                 on_number: Callable[[str], None], call_id: str = "") -> None:  # fmt: skip
        self.matcher = EmergencyMatcher(numbers)
        self.hold_s = hold_s
        self._nursery, self._on_number, self._call_id = nursery, on_number, call_id

    def __call__(self, digits: trio.MemoryReceiveChannel[str]) -> trio.MemoryReceiveChannel[str]:
        send, recv = trio.open_memory_channel[str](SCREENED_BUFFER)
        self._nursery.start_soon(self._run, digits, send)
        return recv

    async def _run(self, digits: trio.MemoryReceiveChannel[str],
                   out: trio.MemorySendChannel[str]) -> None:  # fmt: skip
        async with digits, out:
            while True:
                deadline_s = self.hold_s if self.matcher.in_burst else math.inf
                with trio.move_on_after(deadline_s):
                    try:
                        digit = await digits.receive()
                    except trio.EndOfChannel:
                        return
                    passed, number = self.matcher.feed(digit)
                    if number is not None:
                        log.warning("call %s: emergency number %s pressed: not for the agent",
                                    self._call_id, number)  # fmt: skip
                        self._on_number(number)
                    if not self._pass(out, passed):
                        return
                    continue
                if not self._pass(out, self.matcher.pause()):  # no key for hold_s
                    return

    def _pass(self, out: trio.MemorySendChannel[str], keys: str) -> bool:
        """False once the call stopped reading (it is ending)."""
        for key in keys:
            try:
                out.send_nowait(key)
            except trio.WouldBlock:
                log.warning("call %s: digit %s dropped: too many waiting", self._call_id, key)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return True
