"""Plays call-progress tones from a plan: dial tone to an FXS phone, test signals for the detector.

Owns `ToneGenerator` (streaming: consecutive calls continue the oscillators' phase and the
cadence exactly where the last call stopped) and `generate` (a one-shot array). `dsp.tones`
re-exports both. Plans come from `dsp.tone_plans`; levels default to the plan's send level
per frequency (e.g. US dial tone -13 dBm0 per component, the Precise Tone Plan's value).

Each frequency is a free-running oscillator; a cadence only gates it, so bursts do not all
start at phase 0. Every burst edge is faded over `RAMP_MS` so the phone hears no click.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import FRAME_S, SUPPORTED_RATES_HZ, check_rate
from dsp.levels import sine_amplitude
from dsp.tone_plans import TONE_NAMES, TonePlan, get_plan

RAMP_MS = 2.0  # linear fade at burst edges: inaudible as a click, 1 % of the shortest burst

# state slots (int64): current cadence segment, samples already played of it
_SEG, _POS = 0, 1


@njit(cache=True, nogil=True)
def _synth_kernel(
    out: np.ndarray,
    inc: np.ndarray,
    amp: np.ndarray,
    seg_len: np.ndarray,
    seg_mask: np.ndarray,
    ramp: int,
    state: np.ndarray,
    phase: np.ndarray,
) -> None:
    """Fill `out` (int16) with the tone: oscillator k (phase in cycles, `inc` cycles/sample,
    peak `amp`) sounds while bit k of the current segment's mask is set. A segment of length
    -1 never ends. Phases and the cadence position carry over in `phase` and `state`."""
    seg = state[_SEG]
    pos = state[_POS]
    for n in range(out.shape[0]):
        length = seg_len[seg]
        mask = seg_mask[seg]
        x = 0.0
        if mask != 0:
            for k in range(inc.shape[0]):
                if mask & (1 << k):
                    x += amp[k] * math.sin(2.0 * math.pi * phase[k])
            env = min(1.0, (pos + 1) / ramp)
            if length > 0:
                env = min(env, (length - pos) / ramp)
            x *= env
        for k in range(inc.shape[0]):
            phase[k] += inc[k]
            if phase[k] >= 1.0:
                phase[k] -= 1.0
        out[n] = np.int16(min(max(math.floor(x + 0.5), -32768.0), 32767.0))
        pos += 1
        if length > 0 and pos >= length:
            pos = 0
            seg = (seg + 1) % seg_len.shape[0]
    state[_SEG] = seg
    state[_POS] = pos


def _segments(
    plan: TonePlan, tone: str, rate_hz: int, level_dbm0: float | None
) -> tuple[list[float], list[float], list[int], list[int]]:
    """Frequencies, peak amplitudes, segment lengths (samples, -1 = endless) and masks."""

    def samples(ms: float) -> int:
        return round(ms * rate_hz / 1000.0)

    if tone == "sit":
        sit = plan.sit
        level = sit.level_dbm0 if level_dbm0 is None else level_dbm0
        lengths = [samples(ms) for ms in (*sit.send_ms, sit.silence_ms)]
        return list(sit.send_hz), [sine_amplitude(level)] * 3, lengths, [1, 2, 4, 0]
    spec = plan.tone(tone)
    levels = spec.levels_dbm0 if level_dbm0 is None else (level_dbm0,) * len(spec.freqs_hz)
    amps = [sine_amplitude(lv) for lv in levels]
    every = (1 << len(spec.freqs_hz)) - 1
    if not spec.cadence_ms:
        return list(spec.freqs_hz), amps, [-1], [every]
    masks = [every if i % 2 == 0 else 0 for i in range(len(spec.cadence_ms))]
    return list(spec.freqs_hz), amps, [samples(ms) for ms in spec.cadence_ms], masks


class ToneGenerator:
    """Streams one tone of a plan as int16 audio at `sample_rate`, cadence and phase continuous
    across calls. `level_dbm0` overrides the plan's level (per frequency)."""

    def __init__(
        self,
        plan: str | TonePlan,
        tone: str,
        sample_rate: int = 8000,
        level_dbm0: float | None = None,
    ) -> None:
        self.sample_rate = check_rate(sample_rate, "ToneGenerator", SUPPORTED_RATES_HZ)
        self.plan = get_plan(plan)
        if tone not in TONE_NAMES:
            raise DspInputError(f"ToneGenerator: tone {tone!r} is not one of {TONE_NAMES}")
        self.tone = tone
        freqs, amps, lengths, masks = _segments(self.plan, tone, sample_rate, level_dbm0)
        self._inc = np.array([f / sample_rate for f in freqs], np.float64)
        self._amp = np.array(amps, np.float64)
        self._seg_len = np.array(lengths, np.int64)
        self._seg_mask = np.array(masks, np.int64)
        self._ramp = max(1, round(RAMP_MS * sample_rate / 1000.0))
        self._state = np.zeros(2, np.int64)
        self._phase = np.zeros(len(freqs), np.float64)
        self.frame_samples = round(FRAME_S * sample_rate)

    def reset(self) -> None:
        """Start again from the first burst, all oscillators at phase 0."""
        self._state[:] = 0
        self._phase[:] = 0.0

    def read(self, n_samples: int) -> NDArray[np.int16]:
        """The next `n_samples` samples (a new int16 array the caller owns)."""
        if n_samples < 0:
            raise DspInputError(f"ToneGenerator.read: n_samples must be >= 0, got {n_samples}")
        out = np.empty(n_samples, np.int16)
        _synth_kernel(
            out, self._inc, self._amp, self._seg_len, self._seg_mask, self._ramp,
            self._state, self._phase,
        )  # fmt: skip
        return out

    def frame(self) -> NDArray[np.int16]:
        """The next 20 ms frame (160 samples at 8 kHz)."""
        return self.read(self.frame_samples)


def generate(
    plan: str | TonePlan,
    tone: str,
    duration_ms: float,
    sample_rate: int = 8000,
    level_dbm0: float | None = None,
) -> NDArray[np.int16]:
    """`duration_ms` of `tone` ("dial", "ringback", "busy", "reorder", "sit") from `plan`,
    starting at the beginning of its cadence, at the plan's level unless `level_dbm0` is given
    (dBm0 per frequency)."""
    if not math.isfinite(duration_ms) or duration_ms < 0:
        raise DspInputError(f"generate: duration_ms must be >= 0, got {duration_ms}")
    gen = ToneGenerator(plan, tone, sample_rate, level_dbm0)
    return gen.read(round(duration_ms * sample_rate / 1000.0))
