"""Mains hum and DC offset: the low-band energy the tone detectors leave out of their tests.

An FXO port behind a cheap DAA, or a USB voice modem, can add a DC offset and 50/60 Hz hum
with harmonics (100/120/150/180 Hz) to everything it hears. `dsp.dtmf` and `dsp.tones` test
what share of a window's energy their tones hold (the talk-off guard); hum counted there hid
busy tone from -25 dBm0 of hum and DTMF from -22 dBm0 (or a DC offset of 1000-1500).

Dropping the low band outright is not an option: speech's pitch and first formant live
there, and without them speech looks far more like a 350-620 Hz tone (shipped clips, tone
fits: runs of frames at purity >= 0.8 grow from 2 to 6-8). So only what repeats is left out:
hum repeats every `HUM_PERIOD_MS` (5 cycles of 50 Hz, 6 of 60 Hz, so every harmonic of
either), DC always; speech and music do not. Two forms, by what each detector has at hand:
- `dsp.dtmf` has each 5 ms window's energy and, from a 4th-order high-pass of the stream
  (`highpass_sections`, `_highpass_kernel`), its low-band energy. Its *hum floor*
  (`_hum_floor_kernel`) is the least low-band energy among the window and those at the same
  point of the hum cycle over the last second: steady hum gives them all the same energy
  (its Hann-windowed energy swings +-17 % with the hum's phase, which this tracks), while
  speech leaves at least one quiet. Hum and the DTMF tones (>= 697 Hz) do not overlap in a
  Hann window, so their cross terms vanish.
- `dsp.tone_frames` has each 20 ms frame's low-band coefficients c (its projection on
  `low_band_basis`, orthonormal). Over 20 ms a 343-620 Hz tone leaves up to 12 % of its power
  in the low band (depending on its phase), and its cross term with strong hum swings the
  low-band energy (425 Hz under DC 3000: by 30 % of the tone's power, measured); so what is
  left out is what repeats of the coefficients themselves (`_hum_repeat_kernel`):
  ||c||^2 - ||c - c'||^2 for c' one hum cycle back. Hum's own part and its cross terms with
  anything else cancel; speech, uncorrelated with itself 100 ms back, keeps its low band.
Until a stream is one hum cycle old there is nothing to compare with and its whole low band
counts as hum, so that a tone starting with the stream over hum keeps its first 100 ms;
speech looks purer for those 100 ms, too short for any cadence, and for a DTMF key the
keypress share stops it (0.70 at most on the shipped clips without their low band, < 0.75).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.frame import RATE_HZ

HUM_PERIOD_MS = 100  # 5 cycles of 50 Hz, 6 of 60 Hz: every harmonic of either repeats
# The DTMF floor looks back 10 periods (1 s). It keeps speech and music at their old
# talk-off figures (shipped clips: DTMF window share max 0.643 with or without it); hum that
# starts or grows is fully left out 1 s later, and hum that stops is counted again at once.
HUM_PERIODS = 10
# Butterworth second-order sections of a 4th-order filter (Q of each pole pair)
_BUTTERWORTH_Q = (1.0 / (2.0 * math.cos(math.pi / 8)), 1.0 / (2.0 * math.cos(3 * math.pi / 8)))
HIGHPASS_STATE = 6  # x[n-1], x[n-2], then y[n-1], y[n-2] of each section


def highpass_sections(cutoff_hz: float, rate_hz: int = RATE_HZ) -> NDArray[np.float64]:
    """(2, 3) float64: a 4th-order Butterworth high-pass (bilinear, prewarped at `cutoff_hz`)
    as two biquads g (1 - 2/z + 1/z^2) / (1 + a1/z + a2/z^2), rows (g, a1, a2); -3 dB at the
    cutoff, 48 dB per octave below it."""
    w0 = 2.0 * math.pi * cutoff_hz / rate_hz
    rows = []
    for q in _BUTTERWORTH_Q:
        alpha = math.sin(w0) / (2.0 * q)
        a0 = 1.0 + alpha
        rows.append(((1.0 + math.cos(w0)) / 2.0 / a0, -2.0 * math.cos(w0) / a0, (1.0 - alpha) / a0))
    return np.array(rows, np.float64)


@njit(cache=True, nogil=True)
def _highpass_kernel(
    pcm: np.ndarray, out: np.ndarray, at: int, sos: np.ndarray, state: np.ndarray
) -> None:
    """Filter pcm through the biquads of `sos` (see `highpass_sections`) into
    out[at : at + len(pcm)]; `state` (HIGHPASS_STATE floats) carries the filter across calls.
    Direct form I: the feedback is two operations deep, 1.5x faster than transposed form II
    (measured)."""
    g0, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2]
    g1, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2]
    x1, x2, y1, y2, z1, z2 = state[0], state[1], state[2], state[3], state[4], state[5]
    for n in range(pcm.shape[0]):
        x = float(pcm[n])
        y = (g0 * ((x - 2.0 * x1) + x2) - a02 * y2) - a01 * y1
        z = (g1 * ((y - 2.0 * y1) + y2) - a12 * z2) - a11 * z1
        x1, x2, y1, y2, z1, z2 = x, x1, y, y1, z, z1
        out[at + n] = z
    state[0], state[1], state[2], state[3], state[4], state[5] = x1, x2, y1, y2, z1, z2


@njit(cache=True, nogil=True)
def _windowed_energy_kernel(x: np.ndarray, start: int, window: np.ndarray) -> float:
    """sum((x[start + n] * window[n]) ** 2) over the window (an even length)."""
    seg = x[start : start + window.shape[0]]  # a view: 1.5x faster than indexing x (measured)
    e0 = e1 = 0.0
    for n in range(0, window.shape[0], 2):  # two sums halve the add latency chain
        v0 = seg[n] * window[n]
        v1 = seg[n + 1] * window[n + 1]
        e0 += v0 * v0
        e1 += v1 * v1
    return e0 + e1


@njit(cache=True, nogil=True)
def _hum_floor_kernel(low: float, past: np.ndarray, step: int, period: int, keep: bool) -> float:
    """The hum floor of window `step` whose low-band energy is `low`: the least of `low` and
    the energies `past` holds for the same point of the hum cycle (`period` windows long).
    `past` is a ring of `period * HUM_PERIODS` energies (+inf where none yet); `keep` stores
    `low` in it."""
    slot = step % past.shape[0]
    floor = low
    for i in range(slot % period, past.shape[0], period):
        floor = min(floor, past[i])
    if keep:
        past[slot] = low
    return floor


def low_band_basis(samples: int, bandwidth_hz: float, count: int, rate_hz: int = RATE_HZ) -> (
    NDArray[np.float64]
):  # fmt: skip
    """(samples, count) orthonormal columns spanning what a block of `samples` can hold below
    `bandwidth_hz`: the leading discrete prolate spheroidal (Slepian) sequences."""
    n = np.arange(samples, dtype=np.float64)
    d = np.subtract.outer(n, n)
    w = bandwidth_hz / rate_hz
    safe = np.where(d == 0.0, 1.0, d)
    kernel = np.where(d == 0.0, 2.0 * w, np.sin(2.0 * np.pi * w * d) / (np.pi * safe))
    _, vectors = np.linalg.eigh(kernel)  # ascending eigenvalues: the best concentrated last
    return np.ascontiguousarray(vectors[:, ::-1][:, :count], np.float64)


@njit(cache=True, nogil=True)
def _hum_repeat_kernel(low: np.ndarray, past: np.ndarray, fresh: bool) -> float:
    """Energy of the low-band coefficients `low` that repeats those one hum cycle back in
    `past`: ||low||^2 - ||low - past||^2 if positive, else 0; all of ||low||^2 while the
    stream is `fresh` (younger than a hum cycle: nothing to compare with). Then stores `low`
    in `past`."""
    energy = 0.0
    for k in range(low.shape[0]):
        p = low[k] if fresh else past[k]
        energy += p * (2.0 * low[k] - p)
        past[k] = low[k]
    return max(energy, 0.0)
