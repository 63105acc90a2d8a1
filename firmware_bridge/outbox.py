"""Frames waiting for a serial writer: `Outbox`, control ahead of audio (spec §6.1).

The host's link (`firmware_bridge.link`) and the simulated adapter (`firmware_bridge.sim.
adapter`) each give their one writer task an `Outbox`: answers, reliable and link frames go
out before any queued AUDIO, and audio past a small cap is refused (the caller counts the
drop) so a backed-up link never builds latency.
"""

from __future__ import annotations

from collections import deque

import trio

# One write carries every queued control frame and audio up to this size: a write to a pty
# or tty costs ~100 us of kernel time however small (measured on a pty, `tipring bench link`),
# so frames that are ready together go together. 1 KiB is 11 ms at 921600 baud: a command
# queued meanwhile waits no longer than behind the kernel's own buffer.
WRITE_BYTES = 1024


class Outbox:
    """Two queues of wire frames; `get` takes control frames first."""

    def __init__(self, audio_cap: int) -> None:
        self.control: deque[bytes] = deque()
        self.audio: deque[bytes] = deque()
        self.audio_cap = audio_cap
        self._wake = trio.Event()

    def put_control(self, *frames: bytes) -> None:
        if frames:
            self.control.extend(frames)
            self._wake.set()

    def put_audio(self, frame: bytes) -> bool:
        """Queue an AUDIO frame; False (not queued) when `audio_cap` frames already wait."""
        if len(self.audio) >= self.audio_cap:
            return False
        self.audio.append(frame)
        self._wake.set()
        return True

    def clear(self) -> None:
        self.control.clear()
        self.audio.clear()

    async def get(self) -> bytes:
        """The next bytes to write: every control frame queued, then AUDIO frames while the
        write stays under `WRITE_BYTES` (at least one frame)."""
        while not (self.control or self.audio):
            self._wake = trio.Event()
            await self._wake.wait()
        out = bytearray(b"".join(self.control))
        self.control.clear()
        while self.audio and (not out or len(out) + len(self.audio[0]) <= WRITE_BYTES):
            out += self.audio.popleft()
        return bytes(out)
