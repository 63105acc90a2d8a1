"""Digits that never leave the premises (#8): while a tool collects digits (a PIN, a card
number), the caller's key presses go to that tool and nowhere else.

- `SecureDigits` is the call's switch: `collect` turns it on until the terminator, the most
  digits or the deadline; meanwhile `offer` takes every digit the call detects (on the audio
  or reported by the device), so none reaches the agent as text or the record (the record
  keeps a `*` per key).
- `UplinkGuard` keeps the tones out of what the cloud hears: while the switch is on, the
  uplink runs `GUARD_FRAMES` frames behind, so that the frames of a tone that the detector only
  recognises in its second frame are still replaced, and every frame with a tone (or the
  frames just before it) goes up as comfort noise at the line's noise floor, not as the tone,
  and not as silence that would tell the model something happened. Off, it adds no delay.
- A *sensitive* call (its agent has `collect_digits`): callers type a PIN as soon as the agent
  asks, often before it has called the tool. So in such a call no key reaches the agent as a
  digit (it hears "[caller pressed 5 keys]", the record keeps `*`s), keys typed up to
  `TYPEAHEAD_S` before a collection start it (`keep_ahead`), and the guard runs the whole
  call (40 ms more uplink latency, no tone onset ever reaches the cloud).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.comfort_noise import ComfortNoise
from dsp.frame import FRAME_SAMPLES

GUARD_FRAMES = 2  # the DTMF detector knows a tone by its second frame at the latest
DIGITS_BUFFER = 64
NOISE_DBM0 = -70.0  # an idle line; the VAD's noise floor estimate replaces it
# At most this loud: the floor estimate may rise on a long tone, and the cloud's VAD must not
# take the noise that replaces the tone for speech (quiet lines are -65..-70 dBm0).
MAX_NOISE_DBM0 = -60.0
TYPEAHEAD_S = 10.0  # keys typed this long before the tool asked still count (callers type
# as soon as the agent says "enter your PIN", before it has called the tool)
SECURE_MARK = "*"  # what the record keeps of a key pressed while digits were collected


class SecureDigits:
    """See the module docstring. One per call."""

    def __init__(self) -> None:
        self.active = False
        self.sensitive = False  # the agent has the tool: no key reaches it as a digit
        self._send, self._recv = trio.open_memory_channel[str](DIGITS_BUFFER)
        self.collected = 0  # keys taken over the call (for the record)
        self._ahead, self._ahead_s = "", -math.inf  # typed before the tool asked

    def offer(self, digit: str) -> bool:
        """Take `digit` if digits are being collected (True): the caller must not send it on."""
        if not self.active:
            return False
        self.collected += 1
        # More keys than any PIN or card number: the rest are dropped, still secret.
        with contextlib.suppress(trio.WouldBlock):
            self._send.send_nowait(digit)
        return True

    def keep_ahead(self, typed: str) -> None:
        """Keys a sensitive call's caller typed before any tool asked (they did not reach the
        agent): a collection starting within `TYPEAHEAD_S` begins with them."""
        if self.active:  # it began while the burst was still being typed
            for digit in typed:
                self.offer(digit)
            return
        self._ahead, self._ahead_s = self._ahead + typed, trio.current_time()

    async def collect(self, max_digits: int, terminator: str, timeout_s: float) -> str:
        """The digits the caller types next, up to `terminator` (not included), `max_digits`
        or `timeout_s`, whichever comes first; a sensitive call's keys typed just before
        (`keep_ahead`) come first."""
        while True:  # keys from before this collection are not part of it
            try:
                self._recv.receive_nowait()
            except trio.WouldBlock:
                break
        ahead = self._ahead if trio.current_time() - self._ahead_s <= TYPEAHEAD_S else ""
        self._ahead = ""
        if terminator in ahead:
            return ahead.partition(terminator)[0][:max_digits]
        self.active = True
        typed = ahead[:max_digits]
        try:
            with trio.move_on_after(timeout_s):
                while len(typed) < max_digits:
                    digit = await self._recv.receive()
                    if digit == terminator:
                        break
                    typed += digit
        finally:
            self.active = False
        return typed


class UplinkGuard:
    """See the module docstring. `pass_frame(frame, tone)` returns the frames to send now
    (none while the delay line fills, two when it drains after the switch goes off)."""

    def __init__(self, secure: SecureDigits) -> None:
        self.secure = secure
        self._line: deque[NDArray[np.int16]] = deque()
        self._noise = ComfortNoise(NOISE_DBM0)
        self._buffer = np.zeros(FRAME_SAMPLES, np.float64)
        self.replaced = 0  # frames sent up as comfort noise instead of what the line brought

    @property
    def engaged(self) -> bool:
        """Collecting digits (or the call is sensitive), or the delay line still draining."""
        return self._guarding or bool(self._line)

    @property
    def _guarding(self) -> bool:
        return self.secure.active or self.secure.sensitive

    def pass_frame(self, frame: NDArray[np.int16], tone: bool,
                   noise_dbm0: float) -> list[NDArray[np.int16]]:  # fmt: skip
        if not self._guarding and not self._line:
            return [self.noise(noise_dbm0) if tone else frame]
        if tone:  # this frame and the ones held back: the tone's first frames hide among them
            self.replaced += len(self._line) + 1
            self._line = deque(self.noise(noise_dbm0) for _ in self._line)
            frame = self.noise(noise_dbm0)
        self._line.append(frame)
        if self._guarding and len(self._line) <= GUARD_FRAMES:
            return []
        if self._guarding:
            return [self._line.popleft()]
        out = list(self._line)  # the switch is off: drain, and run without delay again
        self._line.clear()
        return out

    def noise(self, level_dbm0: float) -> NDArray[np.int16]:
        """One frame of comfort noise at `level_dbm0` (the line's noise floor)."""
        floor = level_dbm0 if math.isfinite(level_dbm0) else NOISE_DBM0
        level = max(-90.0, min(MAX_NOISE_DBM0, floor))
        self._noise.fill(self._buffer)  # white noise at NOISE_DBM0, scaled to the floor
        gain = 10.0 ** ((level - NOISE_DBM0) / 20.0)
        out: NDArray[np.int16] = np.clip(np.rint(self._buffer * gain), -32768, 32767).astype(
            np.int16
        )
        return out
