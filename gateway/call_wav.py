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
from dsp.g711 import alaw_decode, ulaw_decode
from gateway.errors import ConfigError


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


MAX_GREETING_S = 30.0  # a greeting longer than this is the wrong file
G711_SUFFIXES = (".ulaw", ".pcmu", ".alaw", ".pcma")


def read_greeting(path: Path, key: str) -> NDArray[np.int16]:
    """A cached greeting as 8 kHz int16: a WAV file (16-bit PCM, mono, 8 kHz) or raw G.711
    (`.ulaw`/`.pcmu`, `.alaw`/`.pcma`), at most `MAX_GREETING_S`. `ConfigError` naming `key`
    and the file otherwise."""
    suffix = path.suffix.lower()
    try:
        if suffix in G711_SUFFIXES:
            codes = np.frombuffer(path.read_bytes(), np.uint8)
            decode = ulaw_decode if suffix in (".ulaw", ".pcmu") else alaw_decode
            pcm = decode(codes)
        else:
            with wave.open(str(path), "rb") as wav:
                shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
                if shape != (1, 2, RATE_HZ):
                    raise ConfigError(f"{key}: {path} is {shape[0]} channel(s), "
                                      f"{8 * shape[1]}-bit, {shape[2]} Hz; it must be mono "
                                      f"16-bit {RATE_HZ} Hz WAV, or raw .ulaw/.alaw")  # fmt: skip
                pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
    except (OSError, EOFError, wave.Error) as exc:
        raise ConfigError(f"{key}: {path} cannot be read as audio: {exc}") from None
    if pcm.size == 0:
        raise ConfigError(f"{key}: {path} holds no audio")
    if pcm.size > MAX_GREETING_S * RATE_HZ:
        raise ConfigError(f"{key}: {path} is {pcm.size / RATE_HZ:.1f} s long; at most "
                          f"{MAX_GREETING_S:g} s")  # fmt: skip
    return np.ascontiguousarray(pcm)
