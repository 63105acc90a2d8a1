"""Signal levels in dBm0: conversions and a streaming RMS/peak meter for 20 ms frames.

G.711 puts the largest sine a codec can carry 3.14 dB above 0 dBm0, so a sine whose
peak is int16 full scale (32768) is at +3.14 dBm0 and a 0 dBm0 sine peaks at 22 786.
This is also the convention of spandsp (`DBM0_MAX_POWER`), so levels agree in the
benchmark comparisons.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.frame import as_int16

FULL_SCALE = 32768.0
MAX_SINE_DBM0 = 3.14  # G.711: a full-scale sine is +3.14 dBm0
SILENCE_DBM0 = -99.0  # reported for digital silence instead of -inf


def sine_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (int16 units) of a sine at `level_dbm0`."""
    return FULL_SCALE * math.pow(10.0, (level_dbm0 - MAX_SINE_DBM0) / 20.0)


def dbm0_to_rms(level_dbm0: float) -> float:
    """RMS (int16 units) of any signal whose power is `level_dbm0`."""
    return sine_amplitude(level_dbm0) / math.sqrt(2.0)


def rms_to_dbm0(rms: float) -> float:
    """Power level in dBm0 of a signal with RMS `rms` (int16 units); `SILENCE_DBM0` at zero."""
    if rms <= 0.0:
        return SILENCE_DBM0
    return max(SILENCE_DBM0, 20.0 * math.log10(rms * math.sqrt(2.0) / FULL_SCALE) + MAX_SINE_DBM0)


def peak_to_dbm0(peak: float) -> float:
    """Level in dBm0 of a sine whose peak is `peak`; the meter's peak reading uses this scale."""
    if peak <= 0.0:
        return SILENCE_DBM0
    return max(SILENCE_DBM0, 20.0 * math.log10(peak / FULL_SCALE) + MAX_SINE_DBM0)


@njit(cache=True, nogil=True)
def _power_peak_kernel(pcm: np.ndarray, out: np.ndarray) -> None:
    acc = 0.0
    peak = 0.0
    for n in range(pcm.shape[0]):
        x = float(pcm[n])
        acc += x * x
        if abs(x) > peak:
            peak = abs(x)
    out[0] = acc / max(pcm.shape[0], 1)
    out[1] = peak


class LevelMeter:
    """Streaming level meter: per-block RMS and peak, and an RMS smoothed over `tau_ms`.

    `process(pcm)` takes int16 samples of any length (normally one 20 ms frame) and
    updates `rms_dbm0`, `peak_dbm0` (this block) and `smoothed_dbm0` (exponential
    average of power with time constant `tau_ms`).
    """

    def __init__(self, tau_ms: float = 100.0, sample_rate: int = 8000) -> None:
        self._tau_samples = tau_ms * sample_rate / 1000.0
        self._out = np.zeros(2, np.float64)
        self._smoothed_power = 0.0
        self.rms_dbm0 = SILENCE_DBM0
        self.peak_dbm0 = SILENCE_DBM0
        self.smoothed_dbm0 = SILENCE_DBM0

    def process(self, pcm: NDArray[np.int16]) -> float:
        """Measure one block; returns its RMS level in dBm0."""
        pcm = as_int16(pcm, "LevelMeter.process")
        if pcm.shape[0] == 0:
            return self.rms_dbm0
        _power_peak_kernel(pcm, self._out)
        alpha = 1.0 - math.exp(-pcm.shape[0] / self._tau_samples)
        self._smoothed_power += alpha * (self._out[0] - self._smoothed_power)
        self.rms_dbm0 = rms_to_dbm0(math.sqrt(self._out[0]))
        self.peak_dbm0 = peak_to_dbm0(self._out[1])
        self.smoothed_dbm0 = rms_to_dbm0(math.sqrt(self._smoothed_power))
        return self.rms_dbm0

    def reset(self) -> None:
        """Forget the smoothed level."""
        self._smoothed_power = 0.0
        self.rms_dbm0 = self.peak_dbm0 = self.smoothed_dbm0 = SILENCE_DBM0


def tone(
    freqs_hz: tuple[float, ...] | list[float],
    duration_ms: float,
    level_dbm0: float | list[float] | tuple[float, ...],
    sample_rate: int = 8000,
    phase_rad: float = 0.0,
) -> NDArray[np.int16]:
    """Sum of sines, each at its own dBm0 level (one level for all, or one per frequency).

    A plain helper for generators and tests; rounding to int16 with clipping.
    """
    n = round(duration_ms * sample_rate / 1000.0)
    levels = [level_dbm0] * len(freqs_hz) if isinstance(level_dbm0, (int, float)) else level_dbm0
    t = np.arange(n, dtype=np.float64) / sample_rate
    out = np.zeros(n, np.float64)
    for f, lv in zip(freqs_hz, levels, strict=True):
        out += sine_amplitude(float(lv)) * np.sin(2.0 * np.pi * f * t + phase_rad)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
