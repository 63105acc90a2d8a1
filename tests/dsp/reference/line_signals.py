"""Plain numpy reference for `dsp.line_signal_blocks` (the kernel of `dsp.line_signals`).

Written from the module's description, not its code: the high-pass is the DTMF reference's
(one difference equation from the analog Butterworth poles) over the whole signal; the
coarse frequency is a `np.linalg.lstsq` fit of x[n] + x[n-2] = a x[n-1] per block, its
residual's white-noise part then taken out of the fit's denominator; tone powers are matrix
DFTs (the kernel runs Goertzel recursions): at the coarse frequency, and at the refined one,
which the DFT's phase advance from the previous block to this one (on one time axis) gives;
the CAS values are DFTs at the two tones. Only the public constants are shared.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dsp import line_signal_blocks as lb
from tests.dsp.reference.dtmf import ref_highpass

N = lb.BLOCK_SAMPLES
HALF = lb.HALF_SAMPLES
RATE_HZ = 8000


def _dft(x: NDArray[np.float64], freq_hz: float, start: int = 0) -> complex:
    """sum x[n] exp(-j 2 pi f n / fs) over n from `start` to the end."""
    n = np.arange(start, x.size)
    return complex(x[start:] @ np.exp(-2j * np.pi * freq_hz * n / RATE_HZ))


def _fit(buf: NDArray[np.float64]) -> tuple[float, float, float, float, float]:
    """(power, frequency, tone power, purity, coarse frequency) of the block buf[N:] after
    the block buf[:N]."""
    cur = buf[N:]
    power = float(cur @ cur) / N
    past = buf[N - 1 : 2 * N - 1]  # x[n-1] for each n of the block
    both = buf[N:] + buf[N - 2 : 2 * N - 2]  # x[n] + x[n-2]
    if not past.any():
        return power, 0.0, 0.0, 0.0, 0.0
    sol, resid, _, _ = np.linalg.lstsq(past[:, None], both, rcond=None)
    a = float(sol[0])
    residual = float(resid[0]) if resid.size else float(np.sum((both - a * past) ** 2))
    noise = max(residual, 0.0) / (2.0 + a * a)
    r0 = float(past @ past)
    if r0 - noise > 0.5 * r0:
        a = float(past @ both) / (r0 - noise)
    coarse = float(np.arccos(np.clip(a, -2.0, 2.0) / 2.0)) * RATE_HZ / (2.0 * np.pi)
    tone = 2.0 * abs(_dft(cur, coarse)) ** 2 / N**2
    # X(w) of the second block over X(w) of the first, both on one time axis: exp(j d N)
    # for a tone at w + d
    shifted = _dft(buf, coarse, start=N) * np.conj(_dft(buf[:N], coarse))
    freq = coarse + (float(np.angle(shifted)) / N * RATE_HZ / (2.0 * np.pi) if shifted else 0.0)
    freq = float(np.clip(freq, 0.0, RATE_HZ / 2.0))
    tone40 = 2.0 * abs(_dft(buf, freq)) ** 2 / (2 * N) ** 2
    e40 = float(buf @ buf) / (2 * N)
    return power, freq, tone, tone40 / e40 if e40 > 0.0 else 0.0, coarse


def ref_line_blocks(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    """One row per whole block of `pcm` from a fresh start, laid out as the kernel's."""
    y = np.concatenate([np.zeros(N), ref_highpass(pcm.astype(np.float64), lb.HIGHPASS_HZ)])
    rows = []
    for b in range(pcm.size // N):
        buf = y[b * N : b * N + 2 * N]
        row = list(_fit(buf))
        for h in range(2):
            half = buf[N + h * HALF : N + (h + 1) * HALF]
            x1, x2 = (_dft(half, f) for f in lb.CAS_FREQS_HZ)
            tone1, tone2 = (2.0 * abs(x) ** 2 / HALF**2 for x in (x1, x2))
            row += [x1.real, x1.imag, x2.real, x2.imag, tone1, tone2, float(half @ half) / HALF]
        rows.append(row)
    return np.array(rows, np.float64).reshape(-1, lb.BLOCK_COLS)
