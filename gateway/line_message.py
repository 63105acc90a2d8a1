"""A local message a line plays without an agent: `LocalMessage` (the FXO line's answer to a
call its rules decline, `line.fxo.decline = "message"`). The audio is a file
(`line.fxo.decline_audio`: 8 kHz WAV or raw G.711, checked when the config loads) or the
shipped goodbye prompt; read once, in a worker thread, at the first use.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from gateway.call_fallback import load_prompts
from gateway.call_wav import read_greeting
from gateway.errors import ConfigError

log = logging.getLogger(__name__)

MESSAGE_TAIL_S = 0.3  # after the last sample, before on-hook: the message is not clipped
DEFAULT_PROMPT = "goodbye"  # "Thank you for calling. Goodbye!"


def _read(path: str) -> NDArray[np.int16]:
    if path:
        return read_greeting(Path(path), "line.fxo.decline_audio")
    return load_prompts()[DEFAULT_PROMPT]


class LocalMessage:
    """One message, played one 20 ms frame per received frame (the line's clock)."""

    def __init__(self) -> None:
        self._loaded: dict[str, NDArray[np.int16]] = {}
        self._pcm = np.zeros(0, np.int16)
        self._pos = 0

    async def load(self, path: str) -> float:
        """Make `path` ("" = the shipped prompt) the message, from its start; its length in
        seconds. A file that went missing since the config was checked: silence, logged."""
        if path not in self._loaded:
            try:
                self._loaded[path] = await trio.to_thread.run_sync(_read, path)
            except ConfigError as exc:
                log.error("local message: %s", exc)
                self._loaded[path] = np.zeros(FRAME_SAMPLES, np.int16)
        self._pcm, self._pos = self._loaded[path], 0
        return len(self._pcm) / RATE_HZ

    def frame(self) -> NDArray[np.int16]:
        """The next frame of the message (zero-padded at its end, then silence)."""
        out = np.zeros(FRAME_SAMPLES, np.int16)
        chunk = self._pcm[self._pos : self._pos + FRAME_SAMPLES]
        out[: len(chunk)] = chunk
        self._pos += FRAME_SAMPLES
        return out
