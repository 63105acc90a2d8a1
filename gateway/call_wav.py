"""Call audio to WAV files: `FrameTape` (20 ms frames kept in memory, capped) and
`write_wav` (8 kHz 16-bit mono, the stdlib `wave` module). The call keeps a tape per direction
when capture is on (the uplink after the echo canceller, and what was sent to the line) and one
for a voicemail; it writes them at its end, from a worker thread (`trio.to_thread`).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_S, RATE_HZ


def write_wav(path: Path, pcm: NDArray[np.int16]) -> None:
    """Write `pcm` (int16, 8 kHz) as a mono 16-bit WAV file, replacing `path`; its directory
    is made if need be. Blocking: run it in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(pcm.astype("<i2").tobytes())


class FrameTape:
    """Frames appended one by one (copied), up to `max_s`; later ones are counted, not kept
    (a 10 minute tape is 9.6 MB)."""

    def __init__(self, max_s: float) -> None:
        self.max_frames = max(0, int(max_s / FRAME_S))
        self._frames: list[NDArray[np.int16]] = []
        self.overflow = 0

    def append(self, frame: NDArray[np.int16]) -> None:
        if len(self._frames) < self.max_frames:
            self._frames.append(frame.copy())
        else:
            self.overflow += 1

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def seconds(self) -> float:
        return len(self._frames) * FRAME_S

    @property
    def full(self) -> bool:
        return len(self._frames) >= self.max_frames

    def pcm(self) -> NDArray[np.int16]:
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
