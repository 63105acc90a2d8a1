"""Small power-of-two FFTs for the echo canceller's frequency-domain filter (`dsp.echo_mdf`).

numba cannot call numpy's FFT from compiled code, and the filter needs a 64-point transform
a few dozen times per 20 ms frame, so this module owns a plain iterative radix-2 one: tables
built once (`fft_tables`), then `_fft_kernel` in place on separate real and imaginary arrays.
The filter only transforms real signals, two at a time: `_rfft2_kernel` packs two real blocks
into one complex transform (a + jb) and splits the result by conjugate symmetry, and
`_irfft2_kernel` is its inverse. Spectra are half spectra: bins 0..n/2 (`n // 2 + 1`).

Scaling: the forward transform is unscaled, the inverse divides by n, so a round trip returns
the input (to rounding: about 1e-16 relative).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError


def fft_tables(n: int) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """(bit-reversed index, cos, sin) tables of an `n`-point FFT (`n` a power of two >= 4):
    cos/sin of 2 pi k / n for k < n / 2."""
    if n < 4 or n & (n - 1):
        raise DspInputError(f"fft_tables wants a power of two >= 4, got {n}")
    bits = n.bit_length() - 1
    rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)], np.int64)
    angle = 2.0 * np.pi * np.arange(n // 2) / n
    return rev, np.cos(angle), np.sin(angle)


@njit(cache=True, nogil=True)
def _fft_kernel(
    re: np.ndarray, im: np.ndarray, rev: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray,
    inverse: bool,
) -> None:  # fmt: skip
    """In-place complex FFT of (re, im), length n = rev.shape[0]; the inverse is scaled 1/n."""
    n = rev.shape[0]
    for i in range(n):
        j = rev[i]
        if j > i:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    sign = 1.0 if inverse else -1.0
    half = 1
    while half < n:
        step = n // (2 * half)
        for k in range(half):
            wr = cos_t[k * step]
            wi = sign * sin_t[k * step]
            for a in range(k, n, 2 * half):
                b = a + half
                tr = wr * re[b] - wi * im[b]
                ti = wr * im[b] + wi * re[b]
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        half *= 2
    if inverse:
        scale = 1.0 / n
        for i in range(n):
            re[i] *= scale
            im[i] *= scale


@njit(cache=True, nogil=True)
def _rfft2_kernel(
    a: np.ndarray, b: np.ndarray, spec: np.ndarray, rev: np.ndarray, cos_t: np.ndarray,
    sin_t: np.ndarray, re: np.ndarray, im: np.ndarray,
) -> None:  # fmt: skip
    """Half spectra of two real n-sample blocks: spec[0] = Re A, spec[1] = Im A, spec[2] = Re B,
    spec[3] = Im B (each n // 2 + 1 bins). `re`, `im`: n-sample scratch."""
    n = rev.shape[0]
    for i in range(n):
        re[i] = a[i]
        im[i] = b[i]
    _fft_kernel(re, im, rev, cos_t, sin_t, False)
    for k in range(n // 2 + 1):
        m = (n - k) % n
        # Z = A + jB, A and B Hermitian: A = (Z[k] + conj Z[n-k]) / 2,
        # B = (Z[k] - conj Z[n-k]) / 2j
        spec[0, k] = 0.5 * (re[k] + re[m])
        spec[1, k] = 0.5 * (im[k] - im[m])
        spec[2, k] = 0.5 * (im[k] + im[m])
        spec[3, k] = 0.5 * (re[m] - re[k])


@njit(cache=True, nogil=True)
def _irfft2_kernel(
    spec: np.ndarray, a: np.ndarray, b: np.ndarray, rev: np.ndarray, cos_t: np.ndarray,
    sin_t: np.ndarray, re: np.ndarray, im: np.ndarray,
) -> None:  # fmt: skip
    """Inverse of `_rfft2_kernel`: the real blocks a, b (n samples) whose half spectra are
    spec[0] + j spec[1] and spec[2] + j spec[3]. Imaginary parts of bins 0 and n/2 are ignored
    (a real signal has none)."""
    n = rev.shape[0]
    h = n // 2
    for k in range(h + 1):
        # Z[k] = A[k] + j B[k]; Z[n-k] = conj A[k] + j conj B[k]
        ar, ai, br, bi = spec[0, k], spec[1, k], spec[2, k], spec[3, k]
        if k == 0 or k == h:
            ai = bi = 0.0
        re[k] = ar - bi
        im[k] = ai + br
        if 0 < k < h:
            re[n - k] = ar + bi
            im[n - k] = br - ai
    _fft_kernel(re, im, rev, cos_t, sin_t, True)
    for i in range(n):
        a[i] = re[i]
        b[i] = im[i]
