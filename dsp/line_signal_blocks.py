"""What each 20 ms block of the line holds, for `dsp.line_signals`: one steady tone, the CAS
pair, or neither. Owns the per-block kernel `_line_block_kernel`, its table (`cas_table`)
and the column layout of its output; `dsp.line_signal_track` reads the rows.

Blocks are 160 samples at 8 kHz aligned to the stream (block b holds samples 160 b ..
160 b + 159), analysed after a 4th-order high-pass at `HIGHPASS_HZ` (`dsp.hum`) so that DC
offset and mains hum neither bias the frequency nor count against a tone's purity. Per block:
- the frequency of its strongest sinusoid, coarse: x[n] + x[n-2] = a x[n-1] holds exactly for
  a pure tone with a = 2 cos(w); a is the least-squares fit over the block, its noise bias
  taken out (white noise of power s2 adds s2 to the fit's denominator and (2 + a^2) s2 to its
  residual): +-5 Hz per block for a -40 dBm0 tone over -65 dBm0 noise (440 Hz, the worst);
  any other sound pulls it by its share (ANSam at -25 dBm0 over 60 Hz hum at -20 dBm0, what
  the high-pass leaves of its 180 Hz harmonic: 5-10 Hz low);
- the tone's power at the coarse frequency over the block (a sine's mean power, by DFT);
- the frequency refined: the DFT's phase advance at the coarse frequency from the last block
  to this one, less the coarse frequency's (+-0.2 Hz per block for the tone above; a tone
  that began in this block leaves it off by up to 25 Hz);
- the purity: a sine's power at the refined frequency over the last 40 ms (this block and
  the one before) divided by their mean power. A 20 ms window cannot tell 440+480 Hz
  ringback from a 460 Hz tone (purity up to 0.92 where the two are in phase); 40 ms (25 Hz
  resolution) keeps it under 0.15, but 10 Hz of error would cost a tone half its purity;
- for each 10 ms half: the DFT at 2130 and 2750 Hz (the CAS) and its mean power.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.frame import RATE_HZ
from dsp.hum import HIGHPASS_STATE, _highpass_kernel, highpass_sections

BLOCK_SAMPLES = 160  # 20 ms: one line frame
HALF_SAMPLES = 80  # 10 ms: the CAS (80 +- 5 ms) needs the finer grid
# Every signal here is >= 400 Hz less its tolerance: a 4th-order Butterworth at 300 Hz keeps
# 400 Hz within 0.4 dB (levels are reported as sent) and takes DC out, 50 / 60 Hz hum down by
# 62 / 56 dB, 120 / 150 / 180 Hz by 32 / 24 / 18 dB.
HIGHPASS_HZ = 300.0
# SR-TSV-002476 / ETSI EN 300 659-1: the CPE alerting signal is 2130 + 2750 Hz, each +-0.5 %.
CAS_FREQS_HZ = (2130.0, 2750.0)

# Output columns, one row per block: high-passed mean power, refined frequency (Hz), tone
# power over the block, 40 ms purity, coarse frequency (Hz); then per 10 ms half h, at
# CAS_COL + CAS_COLS * h: the DFT (re, im) at each CAS tone, the power of a sine each shows,
# and the half's mean power. Powers are mean powers in int16 units squared (A^2 / 2 for a
# sine of amplitude A).
F_POWER, F_FREQ, F_TONE, F_PURITY, F_COARSE = 0, 1, 2, 3, 4
CAS_COL = 5
C_RE1, C_IM1, C_RE2, C_IM2, C_TONE1, C_TONE2, C_POWER = 0, 1, 2, 3, 4, 5, 6
CAS_COLS = 7
BLOCK_COLS = CAS_COL + 2 * CAS_COLS
BUF_SAMPLES = 2 * BLOCK_SAMPLES  # the previous block's high-passed samples, then this one's


def cas_table(rate_hz: int = RATE_HZ) -> NDArray[np.float64]:
    """(4, 80): cos(w n), -sin(w n) of the low CAS tone, then of the high one."""
    n = np.arange(HALF_SAMPLES, dtype=np.float64)
    rows = []
    for f in CAS_FREQS_HZ:
        w = 2.0 * math.pi * f / rate_hz
        rows += [np.cos(w * n), -np.sin(w * n)]
    return np.array(rows, np.float64)


def block_sections() -> NDArray[np.float64]:
    """The high-pass in front of the analysis (`dsp.hum.highpass_sections` at HIGHPASS_HZ)."""
    return highpass_sections(HIGHPASS_HZ)


STATE_SLOTS = HIGHPASS_STATE  # the high-pass state; the kernel keeps the rest in `buf`


@njit(cache=True, nogil=True)
def _goertzel_pair(buf: np.ndarray, w: float) -> tuple[complex, complex]:
    """exp(j w 159) times the DFT at w of buf[0:160] and of buf[160:320] (each from its own
    first sample). Goertzel, the two chains in one loop so that their latencies overlap."""
    coef = 2.0 * math.cos(w)
    a1 = a2 = b1 = b2 = 0.0
    for m in range(BLOCK_SAMPLES):
        a1, a2 = buf[m] + coef * a1 - a2, a1
        b1, b2 = buf[m + BLOCK_SAMPLES] + coef * b1 - b2, b1
    turn = complex(math.cos(w), -math.sin(w))  # s[N-1] - exp(-j w) s[N-2]
    return a1 - turn * a2, b1 - turn * b2


@njit(cache=True, nogil=True)
def _tone_fit(buf: np.ndarray, row: np.ndarray, rate_hz: float) -> None:
    """Frequency, tone power and 40 ms purity of the block in buf[160:320] into row."""
    r0 = r1 = r2 = e_cur = e_prev = 0.0
    for n in range(BLOCK_SAMPLES, BUF_SAMPLES):
        xm1 = buf[n - 1]
        s = buf[n] + buf[n - 2]
        r0 += xm1 * xm1
        r1 += xm1 * s
        r2 += s * s
        e_cur += buf[n] * buf[n]
        e_prev += buf[n - BLOCK_SAMPLES] * buf[n - BLOCK_SAMPLES]
    row[F_POWER] = e_cur / BLOCK_SAMPLES
    if r0 <= 0.0:
        row[F_FREQ] = row[F_TONE] = row[F_PURITY] = row[F_COARSE] = 0.0
        return
    a = r1 / r0
    noise = max(r2 - a * r1, 0.0) / (2.0 + a * a)  # the residual's white-noise part
    if r0 - noise > 0.5 * r0:  # else no tone worth the correction is there
        a = r1 / (r0 - noise)
    w = math.acos(0.5 * min(max(a, -2.0), 2.0))
    row[F_COARSE] = w * rate_hz / (2.0 * math.pi)
    prev, cur = _goertzel_pair(buf, w)
    row[F_TONE] = 2.0 * abs(cur) ** 2 / BLOCK_SAMPLES**2
    # the tone's phase advance from the last block to this one, less w's, refines w
    advance = cur * prev.conjugate() * cmath.exp(-1j * w * BLOCK_SAMPLES)
    if advance != 0.0:  # the last block was silent: nothing to refine with
        w = min(max(w + cmath.phase(advance) / BLOCK_SAMPLES, 0.0), math.pi)
    row[F_FREQ] = w * rate_hz / (2.0 * math.pi)
    prev, cur = _goertzel_pair(buf, w)
    both = prev + cur * cmath.exp(-1j * w * BLOCK_SAMPLES)  # the two DFTs on one time axis
    tone40 = 2.0 * abs(both) ** 2 / BUF_SAMPLES**2
    e40 = (e_cur + e_prev) / BUF_SAMPLES
    row[F_PURITY] = tone40 / e40 if e40 > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _cas_fit(buf: np.ndarray, tab: np.ndarray, row: np.ndarray) -> None:
    """DFT at both CAS tones and the mean power of each 10 ms half of buf[160:320]."""
    for h in range(2):
        re1 = im1 = re2 = im2 = e = 0.0
        base = BLOCK_SAMPLES + h * HALF_SAMPLES
        for n in range(HALF_SAMPLES):
            x = buf[base + n]
            re1 += x * tab[0, n]
            im1 += x * tab[1, n]
            re2 += x * tab[2, n]
            im2 += x * tab[3, n]
            e += x * x
        col = CAS_COL + h * CAS_COLS
        row[col + C_RE1], row[col + C_IM1] = re1, im1
        row[col + C_RE2], row[col + C_IM2] = re2, im2
        row[col + C_TONE1] = 2.0 * (re1 * re1 + im1 * im1) / HALF_SAMPLES**2
        row[col + C_TONE2] = 2.0 * (re2 * re2 + im2 * im2) / HALF_SAMPLES**2
        row[col + C_POWER] = e / HALF_SAMPLES


@njit(cache=True, nogil=True)
def _line_block_kernel(
    pcm: np.ndarray,
    sos: np.ndarray,
    state: np.ndarray,
    buf: np.ndarray,
    tab: np.ndarray,
    rate_hz: float,
    out: np.ndarray,
) -> int:
    """Analyse the whole blocks of `pcm` (int16) into out[0:k] (k returned, at most
    out.shape[0]). `state` carries the high-pass and `buf` the previous block across calls."""
    blocks = int(min(pcm.shape[0] // BLOCK_SAMPLES, out.shape[0]))
    for b in range(blocks):
        block = pcm[b * BLOCK_SAMPLES : (b + 1) * BLOCK_SAMPLES]
        _highpass_kernel(block, buf, BLOCK_SAMPLES, sos, state)
        _tone_fit(buf, out[b], rate_hz)
        _cas_fit(buf, tab, out[b])
        for n in range(BLOCK_SAMPLES):
            buf[n] = buf[n + BLOCK_SAMPLES]
    return blocks
