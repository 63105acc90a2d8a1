"""The local server's caller audio: decoding from the session's input format and an energy
VAD with `server_vad` semantics (threshold, prefix padding, silence duration).

`threshold` (0-1, like OpenAI's) maps to a frame level in dBm0: 0.5 -> -45 dBm0, which passes
speech at telephone levels (-15 to -35 dBm0) and ignores line noise (< -55 dBm0). Speech starts
after `ONSET_FRAMES` loud frames; it stops after `silence_duration_ms` of quiet frames.
Offsets are on the session's input timeline (all audio appended, in ms), as the real APIs'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from dsp.levels import rms_to_dbm0
from gateway.realtime.audio import DownlinkDecoder, WireFormat

FRAME_MS = 20
ONSET_FRAMES = 2  # 40 ms above the threshold: a click or a DTMF blip alone does not start
SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 800, "auto": 800, "high": 500}


def threshold_dbm0(threshold: float) -> float:
    return -70.0 + 50.0 * min(max(threshold, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class Edge:
    started: bool  # True: speech started, False: stopped
    at_ms: int  # audio_start_ms (padding included) or audio_end_ms (silence included)


class EnergyVad:
    """Frames in, speech edges out."""

    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300,
                 silence_duration_ms: int = 500) -> None:  # fmt: skip
        self.level_dbm0 = threshold_dbm0(threshold)
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self.speaking = False
        self.t_ms = 0  # end of the last frame fed, on the input timeline
        self.speech_ms = 0  # of the current utterance
        self._loud_run = 0
        self._quiet_ms = 0

    def feed(self, frame: NDArray[np.int16]) -> Edge | None:
        self.t_ms += FRAME_MS
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        loud = rms_to_dbm0(rms) >= self.level_dbm0
        if not self.speaking:
            self._loud_run = self._loud_run + 1 if loud else 0
            if self._loud_run < ONSET_FRAMES:
                return None
            self.speaking, self._quiet_ms = True, 0
            self.speech_ms = ONSET_FRAMES * FRAME_MS
            onset = self.t_ms - ONSET_FRAMES * FRAME_MS
            return Edge(True, max(0, onset - self.prefix_padding_ms))
        self.speech_ms += FRAME_MS
        self._quiet_ms = 0 if loud else self._quiet_ms + FRAME_MS
        if self._quiet_ms < self.silence_duration_ms:
            return None
        self.speaking, self._loud_run = False, 0
        return Edge(False, self.t_ms)


class InputTrack:
    """Wire bytes of the input format -> 8 kHz int16 frames (a partial frame waits). Decodes
    like the client's downlink: the same formats, the same 24 kHz -> 8 kHz resampler."""

    def __init__(self, fmt: WireFormat) -> None:
        self.fmt = fmt
        self._decoder = DownlinkDecoder(fmt)
        self._pending = np.zeros(0, np.int16)

    def frames(self, wire: bytes) -> list[NDArray[np.int16]]:
        pcm = self._decoder.decode("input", wire)
        pcm = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        whole = pcm.size - pcm.size % FRAME_SAMPLES
        self._pending = pcm[whole:].copy()
        return [pcm[i : i + FRAME_SAMPLES] for i in range(0, whole, FRAME_SAMPLES)]
