"""What an FXO line hears while a call it placed rings: tone, voice or quiet, frame by frame.

`gateway.line_fxo` runs a `ProgressEar` on the received audio between dialling and the answer.
`dsp.tones` names ringback, busy, reorder and SIT, but only once per onset and after whole
cadence cycles; the answer ("ringback stops and voice appears") needs a per-frame view: is
this frame a pure call-progress tone (any plan: energy in a few spectral peaks), voice
(loud, and not tonal), or quiet. Numpy on one frame: it runs only while a call is placed.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from dsp.levels import LevelMeter

FFT_SIZE = 256  # 160 samples zero-padded: 31 Hz bins
PEAK_BINS = 8  # a Hann-windowed tone fills ~6 bins; two tones ~12, of which these 8 hold most
# Share of a frame's energy (DC removed) in its strongest PEAK_BINS bins. Measured on the
# tone plans' tones: dial, ringback >= 0.99, busy 0.974, SIT 0.82 at its segment changes and
# >= 0.99 otherwise. Speech frames above -45 dBm0 (tests/data/speech, 1167 frames): median
# 0.71, 90th percentile 0.91, 99th 0.97: speech is peaky at 8 kHz, so "voice" leaves out the
# peakiest tenth of it and "tone" the other side.
TONE_SHARE = 0.95
VOICE_SHARE = 0.90
VOICE_DBM0 = -45.0  # quieter frames are the idle line (~-65), not a person answering
TONE_DBM0 = -45.0  # the quietest progress tone we expect: US busy at -24 dBm0 per tone, and
# long loops lose ~10 dB more
ANSWER_VOICE_FRAMES = 10  # 200 ms of voice net of other frames: someone said "hello"


class Heard(Enum):
    """One frame's class."""

    QUIET = "quiet"
    TONE = "tone"
    VOICE = "voice"
    OTHER = "other"  # loud but neither clearly tonal nor clearly voice


class ProgressEar:
    """Classifies 20 ms int16 frames and keeps a leaky count of voice frames (+1 per voice
    frame, -1 per other frame, never below 0); `answered` once it reaches
    `ANSWER_VOICE_FRAMES`."""

    def __init__(self) -> None:
        self._window = np.hanning(FRAME_SAMPLES)
        self._meter = LevelMeter()
        self.voice_count = 0

    def reset(self) -> None:
        self._meter.reset()
        self.voice_count = 0

    @property
    def answered(self) -> bool:
        return self.voice_count >= ANSWER_VOICE_FRAMES

    def hear(self, pcm: NDArray[np.int16]) -> Heard:
        """Classify one frame (160 int16 samples) and update the voice count."""
        heard = self._classify(pcm)
        if heard is Heard.VOICE:
            self.voice_count += 1
        elif self.voice_count:
            self.voice_count -= 1
        return heard

    def _classify(self, pcm: NDArray[np.int16]) -> Heard:
        level_dbm0 = self._meter.process(pcm)
        if level_dbm0 < min(VOICE_DBM0, TONE_DBM0):
            return Heard.QUIET
        x = pcm.astype(np.float64)
        x -= x.mean()
        power = np.abs(np.fft.rfft(x * self._window, FFT_SIZE)) ** 2
        total = float(power.sum())
        if total <= 0.0:
            return Heard.QUIET
        share = float(np.partition(power, -PEAK_BINS)[-PEAK_BINS:].sum()) / total
        if share >= TONE_SHARE and level_dbm0 >= TONE_DBM0:
            return Heard.TONE
        if share < VOICE_SHARE and level_dbm0 >= VOICE_DBM0:
            return Heard.VOICE
        return Heard.OTHER
