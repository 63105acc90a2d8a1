"""What one 20 ms frame of the uplink holds, for `dsp.vad`: its active part, its spectrum, its
noise floors, and how much of it two sinusoids explain.

`dsp.vad` calls `_analyse_kernel` once per frame and reads the results from the arrays it
owns; nothing here keeps state of its own. Per frame:
- the frame is high-passed at `HIGHPASS_HZ` (two 4th-order Butterworth sections of
  `dsp.hum` in cascade): mains hum, its harmonics and DC never reach the features;
- its *active part* [a, b): the 1 ms blocks within `SEGMENT_DB` of the loudest block and
  `SEGMENT_OVER_FLOOR` times over the noise floor, its edges refined to the sample where one
  average sample's energy has come in. A tone or a word that starts late in the frame is
  analysed from its start, so its spectrum has no step in it (a step splatters a tone over
  the whole band and makes it look like speech);
- the power spectrum of the Hann-windowed active part (`FFT_SIZE` points, 31.25 Hz bins) in
  the band 312-3406 Hz, and the power of its `BANDS` bands;
- noise floors by minimum statistics: the least of the raw per-frame powers over the last
  `MIN_STATS_WINDOWS` windows of `MIN_STATS_FRAMES` frames (1.28 s), times `FLOOR_BIAS`
  (the mean-over-minimum ratio measured on white and pink noise through mu-law). One floor
  per band (for the tonality) and one for the whole frame's time-domain power (for the SNR);
- the *tonality* (`_tonality_kernel`): what remains of the active part's spectrum after the
  Hann mainlobes of its two strongest peaks are taken out, over what the part holds above
  the noise floor, both corrected for the noise (dB). Measured on every frame of the battery
  (`tests/bench/vad_battery.py`) over 6 dB SNR whose active part is >= 4 ms: US/UK/DE
  call-progress tones -28 dB and less, DTMF at -10..-40 dBm0 -20 dB and less (the window's
  sidelobes, the codec's noise), but -9 dB where SIT changes frequency mid-frame (`dsp.vad`
  deals with that); speech -6.6 dB median, 4 % of its frames under -17 dB (some vowels and
  nasals of the shipped clips look as pure as a tone for a few frames).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.hum import _highpass_kernel, highpass_sections

HIGHPASS_HZ = 300.0  # x2 sections: 180 Hz hum -36 dB, 120 Hz -64 dB; speech > 400 Hz < 1 dB
BLOCK_SAMPLES = 8  # 1 ms blocks locate the active part
BLOCKS = FRAME_SAMPLES // BLOCK_SAMPLES
SEGMENT_DB = 15.0  # blocks this far under the loudest one are outside the active part
SEGMENT_OVER_FLOOR = 4.0  # ... and so are blocks under 4x (6 dB over) the noise floor
FFT_SIZE = 256
LO_BIN, HI_BIN = 10, 110  # 312.5 .. 3406 Hz: the telephone band, above the high-pass
SPEC_BINS = HI_BIN - LO_BIN
# Band edges (bins from LO_BIN), about a third of an octave at the bottom, wider at the top.
BAND_EDGES = (0, 6, 12, 19, 27, 37, 49, 64, 82, 100)
BANDS = len(BAND_EDGES) - 1
FRAME_SLOT = BANDS  # values[FRAME_SLOT]: the frame's time-domain power, after the bands
VALUES = BANDS + 1
MIN_STATS_FRAMES = 8  # frames per window of minimum statistics ...
MIN_STATS_WINDOWS = 8  # ... and windows: the floor follows a rising noise within 1.28 s
# Mean power over the minimum statistics' estimate, per band then for the frame: measured on
# 2 minutes each of white and pink noise at -50 and -60 dBm0 through mu-law. The frame's
# figure spreads 1.33-1.41; narrow bands of short frames fluctuate most, so their minimum
# lies furthest under the mean (the -50 dBm0 figures; at -60 dBm0 some are 1 dB lower).
FLOOR_BIAS = (7.7, 7.2, 6.6, 5.6, 4.6, 3.9, 3.5, 3.1, 3.0, 1.37)
# A Hann window of L samples has its mainlobe within 2 / L of the peak's frequency; 5 % more
# takes the interpolated peak's error too (measured: the tones above leave < -25 dB).
LOBE = 1.05
# The noise left in the remainder is subtracted with a margin of 2 standard deviations of
# its estimate: ~2 dof per Hz-second of the remainder's 2800 Hz.
NOISE_SIGMAS = 2.0
REMAINDER_HZ = 2800.0
NO_TONALITY_DB = -300.0  # nothing above the noise (or only the two peaks): pure tone
HP_ROWS = 2  # two cascaded high-pass sections (dsp.hum.HIGHPASS_STATE floats of state each)
WORK_ROWS = 4  # scratch: FFT real and imaginary parts, the high-passed frame, block energies
_SEGMENT_SHARE = 10.0 ** (-SEGMENT_DB / 10.0)


def fft_tables() -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Bit-reversed index, cos and sin of 2 pi k / FFT_SIZE (k < FFT_SIZE / 2)."""
    bits = FFT_SIZE.bit_length() - 1
    rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(FFT_SIZE)], np.int64)
    angle = 2.0 * np.pi * np.arange(FFT_SIZE // 2) / FFT_SIZE
    return rev, np.cos(angle), np.sin(angle)


def filter_sections() -> NDArray[np.float64]:
    """The high-pass sections (see `dsp.hum.highpass_sections`), used twice in cascade."""
    return highpass_sections(HIGHPASS_HZ)


@njit(cache=True, nogil=True)
def _edge(y: np.ndarray, start: int, step: int, mean: float) -> int:
    """Samples from `start` (walking by `step`) before one `mean` sample's energy is in."""
    acc = 0.0
    for j in range(BLOCK_SAMPLES):
        acc += y[start + step * j] * y[start + step * j]
        if acc >= mean:
            return j
    return BLOCK_SAMPLES - 1


@njit(cache=True, nogil=True)
def _segment_kernel(y: np.ndarray, floor_power: float, energies: np.ndarray) -> tuple[int, int]:
    """The active part [a, b) of the frame y (see the module docstring); `floor_power` is the
    noise floor per sample (0: none yet); `energies` receives the blocks' energies."""
    top = 0.0
    for i in range(BLOCKS):
        acc = 0.0
        for n in range(i * BLOCK_SAMPLES, (i + 1) * BLOCK_SAMPLES):
            acc += y[n] * y[n]
        energies[i] = acc
        top = max(top, acc)
    threshold = max(top * _SEGMENT_SHARE, SEGMENT_OVER_FLOOR * BLOCK_SAMPLES * floor_power)
    first, last, total = -1, -1, 0.0
    for i in range(BLOCKS):
        if top > 0.0 and energies[i] >= threshold:
            first = i if first < 0 else first
            last = i
    if first < 0:
        return 0, FRAME_SAMPLES
    for i in range(first, last + 1):
        total += energies[i]
    a, b = first * BLOCK_SAMPLES, (last + 1) * BLOCK_SAMPLES
    mean = total / (b - a)
    if a > 0:
        a += _edge(y, a, 1, mean)
    if b < FRAME_SAMPLES:
        b -= _edge(y, b - 1, -1, mean)
    return a, b


@njit(cache=True, nogil=True)
def _fft_kernel(
    re: np.ndarray, im: np.ndarray, rev: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray
) -> None:
    """In-place forward complex FFT of (re, im), unscaled, length FFT_SIZE (radix 2)."""
    for i in range(FFT_SIZE):
        j = rev[i]
        if j > i:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    size = 2
    while size <= FFT_SIZE:
        half, stride = size // 2, FFT_SIZE // size
        for start in range(0, FFT_SIZE, size):
            for k in range(half):
                c, s = cos_t[k * stride], sin_t[k * stride]  # w = exp(-2 pi i k / size)
                i, j = start + k, start + k + half
                tr = re[j] * c + im[j] * s
                ti = im[j] * c - re[j] * s
                re[j], im[j] = re[i] - tr, im[i] - ti
                re[i] += tr
                im[i] += ti
        size *= 2


@njit(cache=True, nogil=True)
def _spectrum_kernel(
    y: np.ndarray, a: int, b: int, rev: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray,
    work: np.ndarray, spec: np.ndarray,
) -> None:  # fmt: skip
    """spec[k - LO_BIN] for LO_BIN <= k < HI_BIN: the power of y[a:b] in bin k, Hann-windowed
    over [a, b) and scaled so the bins of a band add up to the band's mean power per sample.
    `work` (2, FFT_SIZE) is scratch."""
    re, im = work[0], work[1]
    length = b - a
    re[:] = 0.0
    im[:] = 0.0
    w2 = 0.0
    for n in range(length):
        w = 0.5 - 0.5 * math.cos(2.0 * math.pi * (n + 0.5) / length)
        re[n] = y[a + n] * w
        w2 += w * w
    _fft_kernel(re, im, rev, cos_t, sin_t)
    scale = 2.0 / (FFT_SIZE * w2)
    for k in range(SPEC_BINS):
        spec[k] = (re[LO_BIN + k] * re[LO_BIN + k] + im[LO_BIN + k] * im[LO_BIN + k]) * scale


@njit(cache=True, nogil=True)
def _floor_kernel(
    values: np.ndarray, frame: int, bias: np.ndarray, least: np.ndarray, rings: np.ndarray,
    floors: np.ndarray,
) -> None:  # fmt: skip
    """Minimum statistics: take frame number `frame`'s `values` into `rings` (rows 0..W-1: the
    last windows' minima, row W: the running window's) and set `floors` to `bias` times the
    least of them, but not under `least`."""
    nw = MIN_STATS_WINDOWS
    for v in range(values.shape[0]):
        if frame == 0:
            rings[:, v] = values[v]
        running = min(rings[nw, v], values[v])
        if (frame + 1) % MIN_STATS_FRAMES == 0:  # the window is complete: it replaces the oldest
            rings[(frame // MIN_STATS_FRAMES) % nw, v] = running
            rings[nw, v] = np.inf
        else:
            rings[nw, v] = running
        lowest = rings[nw, v]
        for w in range(nw):
            lowest = min(lowest, rings[w, v])
        floors[v] = max(bias[v] * lowest, least[v])


@njit(cache=True, nogil=True)
def _peak(spec: np.ndarray, taken: float, half: float) -> float:
    """Frequency (bins, interpolated) of the strongest bin farther than `half` from `taken`;
    `taken` itself if there is none."""
    best, level = -1, -1.0
    for k in range(SPEC_BINS):
        if abs(k - taken) > half and spec[k] > level:
            best, level = k, spec[k]
    if best < 0:
        return taken
    if 0 < best < SPEC_BINS - 1 and spec[best - 1] > 0.0 and spec[best + 1] > 0.0:
        lo, mid, hi = math.log(spec[best - 1]), math.log(spec[best]), math.log(spec[best + 1])
        curve = lo - 2.0 * mid + hi
        if curve < 0.0:  # a parabola through the log powers: its vertex
            return best + 0.5 * (lo - hi) / curve
    return float(best)


@njit(cache=True, nogil=True)
def _tonality_kernel(spec: np.ndarray, band_floors: np.ndarray, length: int) -> float:
    """dB: the spectrum less its two strongest mainlobes, over the whole, both less their
    noise (the remainder's with a margin); NO_TONALITY_DB if nothing is left."""
    half = LOBE * 2.0 * FFT_SIZE / length
    f1 = _peak(spec, -1e9, half)
    f2 = _peak(spec, f1, half)
    margin = 1.0 + NOISE_SIGMAS * math.sqrt(RATE_HZ / (REMAINDER_HZ * length))
    total = rest = 0.0
    for j in range(BANDS):
        per_bin = band_floors[j] / (BAND_EDGES[j + 1] - BAND_EDGES[j])
        for k in range(BAND_EDGES[j], BAND_EDGES[j + 1]):
            total += spec[k] - per_bin
            if abs(k - f1) > half and abs(k - f2) > half:
                rest += spec[k] - margin * per_bin
    if total <= 0.0 or rest <= 0.0:
        return NO_TONALITY_DB
    return 10.0 * math.log10(rest / total)


@njit(cache=True, nogil=True)
def _analyse_kernel(
    frame: np.ndarray, frame_no: int, sos: np.ndarray, rev: np.ndarray, cos_t: np.ndarray,
    sin_t: np.ndarray, hp: np.ndarray, work: np.ndarray, spec: np.ndarray, values: np.ndarray,
    floors: np.ndarray,
) -> tuple[int, int, float]:  # fmt: skip
    """One frame (int16, frame number `frame_no`): high-pass it into work[2], find its active
    part [a, b) with the floors as they were, its spectrum (`spec`), band powers and
    time-domain power (`values`). Returns (a, b, the active part's mean power). The caller
    takes `values` into the floors (`_floor_kernel`) once it has used the old ones."""
    y = work[2, :FRAME_SAMPLES]
    _highpass_kernel(frame, work[0], 0, sos, hp[0])
    _highpass_kernel(work[0, :FRAME_SAMPLES], y, 0, sos, hp[1])
    floor = floors[FRAME_SLOT] if frame_no > 0 else 0.0
    a, b = _segment_kernel(y, floor, work[3, :BLOCKS])
    _spectrum_kernel(y, a, b, rev, cos_t, sin_t, work[:2], spec)
    for j in range(BANDS):
        acc = 0.0
        for k in range(BAND_EDGES[j], BAND_EDGES[j + 1]):
            acc += spec[k]
        values[j] = acc
    whole = part = 0.0
    for n in range(FRAME_SAMPLES):
        whole += y[n] * y[n]
        if a <= n < b:
            part += y[n] * y[n]
    values[FRAME_SLOT] = whole / FRAME_SAMPLES
    return a, b, part / (b - a)
