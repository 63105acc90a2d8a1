"""The echo canceller's non-linear processor (NLP) and comfort noise (`dsp.echo` runs them on
the linear stage's output when built with `nlp=True`).

The linear stage leaves a residual about 35 dB under the echo: the codec's own noise and the
filter's misadjustment, audible on a quiet line. Per 4 ms block the NLP compares the output
power with what the residual should be: the foreground's echo estimate over the ERLE
estimate (`RESIDUAL_MARGIN` times, for its spread), plus the line's noise floor and the
block's codec noise. A block within `NLP_RATIO` of that, while there is echo to suppress, is
residual echo and noise only: it is replaced by comfort noise. Anything louder is the caller
and passes untouched, from the block it starts in (no look-ahead, so no onset clipping) and
for `HANG_BLOCKS` after (word endings). The gain moves linearly across a block, so a
switch never clicks; echo and comfort noise are mixed power-complementary.

Comfort noise (after ITU-T G.711 Appendix II's idea of a spectral noise model): the level
is the line's noise floor (`dsp.echo_control`), the colour an order-`LPC_ORDER` all-pole fit
to the output while neither side talks (smoothed autocorrelation, Levinson-Durbin), the
excitation a 31-bit LCG. A quiet line gets silence.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LPC_ORDER = 6
NLP_RATIO = 4.0  # a block within 6 dB of the expected residual + noise is residual
RESIDUAL_MARGIN = 4.0  # the residual estimate (echo estimate / ERLE) is trusted to 6 dB
HANG_BLOCKS = 10  # 40 ms
AC_SMOOTHING = 0.9  # per noise-only frame
WHITE_NOISE_CORRECTION = 1.0001  # r[0] scaled by this: keeps Levinson well conditioned
# Float state slots (array `nst`): gain now, then the autocorrelation, the LPC polynomial
# (a[0] = 1) and the synthesis filter memory, LPC_ORDER + 1 / + 1 / entries each.
GAIN, PRED_ERROR = 0, 1
AC = 2
LPC = AC + LPC_ORDER + 1
MEM = LPC + LPC_ORDER + 1
NLP_FLOAT_SLOTS = MEM + LPC_ORDER
# Int state slots (array `nis`).
HANG, RNG = 0, 1
NLP_INT_SLOTS = 2


def nlp_state() -> tuple[np.ndarray, np.ndarray]:
    """Fresh (float, int) NLP state: gain 1, white comfort noise, a fixed RNG seed."""
    nst = np.zeros(NLP_FLOAT_SLOTS, np.float64)
    nis = np.zeros(NLP_INT_SLOTS, np.int64)
    nst[GAIN] = 1.0
    nst[PRED_ERROR] = 1.0
    nst[LPC] = 1.0
    nis[RNG] = 12345
    return nst, nis


@njit(cache=True, nogil=True)
def _levinson_kernel(r: np.ndarray, a: np.ndarray) -> float:
    """LPC polynomial a (a[0] = 1, len(r) entries) for autocorrelation r; returns the
    prediction error over r[0] (1 for silence)."""
    order = r.shape[0] - 1
    a[:] = 0.0
    a[0] = 1.0
    if r[0] <= 0.0:
        return 1.0
    err = r[0] * WHITE_NOISE_CORRECTION
    for i in range(1, order + 1):
        acc = r[i]
        for j in range(1, i):
            acc += a[j] * r[i - j]
        k = -acc / err
        for j in range(1, i // 2 + 1):
            aj, aij = a[j], a[i - j]
            a[j] = aj + k * aij
            a[i - j] = aij + k * aj
        a[i] = k
        err *= 1.0 - k * k
    return float(err / r[0])


@njit(cache=True, nogil=True)
def _noise_shape_kernel(e: np.ndarray, nst: np.ndarray) -> None:
    """Fold one noise-only frame `e` into the smoothed autocorrelation and refit the LPC."""
    n = e.shape[0]
    for i in range(LPC_ORDER + 1):
        acc = 0.0
        for t in range(i, n):
            acc += e[t] * e[t - i]
        nst[AC + i] += (1.0 - AC_SMOOTHING) * (acc / n - nst[AC + i])
    nst[PRED_ERROR] = _levinson_kernel(nst[AC : AC + LPC_ORDER + 1], nst[LPC : LPC + LPC_ORDER + 1])


@njit(cache=True, nogil=True)
def _comfort_noise_kernel(power: float, nst: np.ndarray, nis: np.ndarray, out: np.ndarray) -> None:
    """Fill `out` with comfort noise of per-sample `power`, coloured by the LPC fit."""
    scale = math.sqrt(max(power, 0.0) * nst[PRED_ERROR] * 6.0)  # 2 uniforms: variance 1/6
    s = nis[RNG]
    for n in range(out.shape[0]):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        u1 = s / 2147483648.0
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        u2 = s / 2147483648.0
        y = scale * (u1 + u2 - 1.0)
        for i in range(LPC_ORDER):
            y -= nst[LPC + 1 + i] * nst[MEM + i]
        for i in range(LPC_ORDER - 1, 0, -1):
            nst[MEM + i] = nst[MEM + i - 1]
        nst[MEM] = y
        out[n] = y
    nis[RNG] = s


@njit(cache=True, nogil=True)
def _nlp_block_kernel(
    e: np.ndarray, y: np.ndarray, codec_var: float, noise: float, erle: float,
    nst: np.ndarray, nis: np.ndarray, cn: np.ndarray, out: np.ndarray,
) -> None:  # fmt: skip
    """One block: `e` the linear stage's output, `y` its echo estimate; `noise` the line's
    noise floor and `erle` the ERLE estimate (power ratios). Writes the block to `out`."""
    b = e.shape[0]
    pe = py = 0.0
    for n in range(b):
        pe += e[n] * e[n]
        py += y[n] * y[n]
    pe /= b
    py /= b
    floor = noise + codec_var
    expected = RESIDUAL_MARGIN * py / erle + floor
    if py > floor and pe < NLP_RATIO * expected and nis[HANG] == 0:
        target = 0.0
    else:
        target = 1.0
        if pe >= NLP_RATIO * expected and pe > NLP_RATIO * floor:
            nis[HANG] = HANG_BLOCKS
    if nis[HANG] > 0:
        nis[HANG] -= 1
    _comfort_noise_kernel(noise, nst, nis, cn)
    g0 = nst[GAIN]
    for n in range(b):
        g = g0 + (target - g0) * (n + 1) / b
        out[n] = g * e[n] + math.sqrt(1.0 - g * g) * cn[n]
    nst[GAIN] = target
