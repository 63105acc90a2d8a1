"""The echo canceller's linear stage: a partitioned-block frequency-domain adaptive filter
(MDF, Soo & Pang 1990) in two copies, a foreground that makes the output and a background
that adapts (`dsp.echo_frame` runs it; `dsp.echo_control` decides when one is copied to the
other).

Blocks of `BLOCK_SAMPLES` (4 ms, five per 20 ms frame), overlap-save with `FFT_SIZE`-point
transforms; the tail is P partitions of one block each. The filter sees the reference
delayed by the bulk delay (`dsp.echo_window` places it just before the echo); the spectra of
its last P blocks live in a ring (`fx`, their powers in `fxp`), slot `head` the newest.

Step control (per block, per frequency bin k, for partition j):
    W_j(k) += 2 mu g_j a(k) conj(X_j(k)) E(k) / (D(k) + beta mean_k D + delta)
- D(k): the proportionate (IPNLMS) regressor power sum_j g_j |X_j(k)|^2, so that the update
  is the frequency-domain analogue of IPNLMS's mu e G x / (x' G x): per-bin normalisation
  decorrelates speech, the partition gains g_j (sum 1) put the step where the echo is. It
  is held (decaying `D_HOLD` per block) over a bin's momentary dips: with the step on a few
  partitions, D is a sum of few single-block periodograms and noisy; holding it moved a
  well-placed filter from 33.4 to 35.9 dB ERLE (mu-law line, ceiling 36.7);
- beta mean_k D bounds a weak bin's step to 1/beta times the average: per-bin steps that
  differ too much are smeared into strong bins by the gradient constraint and diverge
  (measured on voiced speech with beta 0.05; 0.3 is stable at mu 0.8);
- a(k) = S / (S + N), the bin's echo-to-noise ratio. Noise in E makes the update noisy in
  proportion to 1/|X|^2, and speech leaves most bins weak most of the time: without it the
  filter sat at 26-30 dB on a mu-law line with -65 dBm0 of noise, with it at 34-36. S is
  the smoothed power of the background's echo estimate plus `ECHO_FLOOR` times the
  reference's (so that an unconverged filter adapts), never above the mic's own power (a
  filter making up echo where the reference is weak must not raise its own step there); N
  the per-bin minimum of the error power plus the codec's noise for this block
  (`dsp.echo_floor`).
The gradient constraint (a partition's time-domain taps stay one block long) costs two
transforms per partition; it is applied to the `TOP_CONSTRAINED` partitions with the
largest gains every block and to the others in turn.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dsp.echo_fft import _irfft2_kernel, _rfft2_kernel

BLOCK_SAMPLES = 32
FFT_SIZE = 2 * BLOCK_SAMPLES
BINS = BLOCK_SAMPLES + 1

# Rows of the per-bin statistics array `bins` (BIN_ROWS, BINS).
S_ECHO, E_POW, N_MIN, D_HELD, STEP = 0, 1, 2, 3, 4
BIN_ROWS = 5
# Slots of the parameter array (see `mdf_params`).
MU, ALPHA, BETA, DELTA, SMOOTH, ECHO_FLOOR, NOISE_RISE, D_HOLD = range(8)
MDF_PARAMS = 8
TOP_CONSTRAINED = 4  # partitions with the largest gains, constrained every block
ROUND_ROBIN_PAIRS = 1  # and this many pairs of the others, in turn
# Rows of the block work array (WORK_ROWS, BINS): output spectra (fg, bg: re, im), error
# and echo-estimate spectra, the mic block's spectrum.
WORK_ROWS = 10


def mdf_params() -> np.ndarray:
    """The default parameter array (float64, `MDF_PARAMS`); slot MU is set per frame."""
    par = np.zeros(MDF_PARAMS, np.float64)
    par[MU] = 0.4
    par[ALPHA] = -0.5  # IPNLMS: half the gain proportionate to the partition's weight norm
    par[BETA] = 0.3
    par[DELTA] = FFT_SIZE * 260.0  # |X|^2 of a block at -60 dBm0: a silent reference's floor
    par[SMOOTH] = 0.3  # per-block smoothing of S and |E|^2 (about 13 ms)
    par[ECHO_FLOOR] = 0.01  # an echo path is assumed no weaker than 20 dB below the reference
    par[NOISE_RISE] = 1.0005  # the noise minimum may rise 0.5 dB/s
    par[D_HOLD] = 0.9  # per block: a dip in D recovers over ~40 ms
    return par


@njit(cache=True, nogil=True)
def _slot(head: int, lag: int, ring: int) -> int:
    """Ring slot of the block `lag` blocks before the newest (at `head`)."""
    s = head - lag
    return s + ring if s < 0 else s


@njit(cache=True, nogil=True)
def _push_kernel(
    xf: np.ndarray, xe: np.ndarray, fx: np.ndarray, fxp: np.ndarray, fhead: int,
    xs: np.ndarray, xp: np.ndarray, ehead: int, rev: np.ndarray, tw: np.ndarray,
    scr: np.ndarray, spec: np.ndarray,
) -> None:  # fmt: skip
    """Spectra (and powers) of the block's 2B reference samples: `xf` (bulk-delayed, for the
    filter) into ring slot `fhead` of fx / fxp, `xe` (undelayed, for the delay estimator)
    into slot `ehead` of xs / xp. One packed transform."""
    _rfft2_kernel(xf, xe, spec, rev, tw[0], tw[1], scr[2], scr[3])
    for k in range(spec.shape[1]):
        fx[0, fhead, k], fx[1, fhead, k] = spec[0, k], spec[1, k]
        fxp[fhead, k] = spec[0, k] * spec[0, k] + spec[1, k] * spec[1, k]
        xs[0, ehead, k], xs[1, ehead, k] = spec[2, k], spec[3, k]
        xp[ehead, k] = spec[2, k] * spec[2, k] + spec[3, k] * spec[3, k]


@njit(cache=True, nogil=True)
def _outputs_kernel(fx: np.ndarray, head: int, w: np.ndarray, spec: np.ndarray) -> None:
    """spec[0:2] = sum_j W_fg,j X_j, spec[2:4] = the same for the background."""
    spec[:] = 0.0
    ring = fx.shape[1]
    for j in range(w.shape[2]):
        s = _slot(head, j, ring)
        for f in range(2):
            for k in range(spec.shape[1]):
                a, b = fx[0, s, k], fx[1, s, k]
                wr, wi = w[f, 0, j, k], w[f, 1, j, k]
                spec[2 * f, k] += wr * a - wi * b
                spec[2 * f + 1, k] += wr * b + wi * a


@njit(cache=True, nogil=True)
def _errors_kernel(
    dd: np.ndarray, spec: np.ndarray, rev: np.ndarray, tw: np.ndarray, scr: np.ndarray,
    ef: np.ndarray, eb: np.ndarray, espec: np.ndarray, dspec: np.ndarray,
) -> None:  # fmt: skip
    """From the output spectra in `spec`: errors ef (foreground), eb (background); espec[0:2]
    = spectrum of [0, eb], espec[2:4] = of [0, background estimate], dspec = of [0, dd]
    (their sum: the transform is linear)."""
    b = dd.shape[0]
    _irfft2_kernel(spec, scr[0], scr[1], rev, tw[0], tw[1], scr[2], scr[3])
    for i in range(b):
        ef[i] = dd[i] - scr[0, b + i]
        eb[i] = dd[i] - scr[1, b + i]
        scr[0, i] = 0.0
        scr[1, i] = 0.0
        scr[0, b + i] = eb[i]
    _rfft2_kernel(scr[0], scr[1], espec, rev, tw[0], tw[1], scr[2], scr[3])
    for k in range(espec.shape[1]):
        dspec[0, k] = espec[0, k] + espec[2, k]
        dspec[1, k] = espec[1, k] + espec[3, k]


@njit(cache=True, nogil=True)
def _bin_stats_kernel(
    espec: np.ndarray, dspec: np.ndarray, xpow: np.ndarray, par: np.ndarray, bins: np.ndarray
) -> None:
    """Update the smoothed echo estimate S, error power and its per-bin minimum (`bins`) from
    this block's spectra (`espec`: error and echo estimate, `dspec`: mic); `xpow`: the newest
    reference block's power spectrum. S never exceeds what the mic holds: a filter that
    makes up echo in a bin (where the reference is weak) must not raise its own step there."""
    a = par[SMOOTH]
    for k in range(bins.shape[1]):
        y2 = espec[2, k] * espec[2, k] + espec[3, k] * espec[3, k]
        e2 = espec[0, k] * espec[0, k] + espec[1, k] * espec[1, k]
        d2 = dspec[0, k] * dspec[0, k] + dspec[1, k] * dspec[1, k]
        # |X|^2 of 2B samples is twice a B-sample block's: halve it to compare with |Y|^2
        s2 = min(y2 + par[ECHO_FLOOR] * 0.5 * xpow[k], d2)
        bins[S_ECHO, k] += a * (s2 - bins[S_ECHO, k])
        if bins[E_POW, k] < 0.0:  # the first block: no average yet (nor a biased minimum)
            bins[E_POW, k] = e2
        bins[E_POW, k] += a * (e2 - bins[E_POW, k])
        if bins[E_POW, k] < bins[N_MIN, k]:
            bins[N_MIN, k] = bins[E_POW, k]
        else:
            bins[N_MIN, k] *= par[NOISE_RISE]


@njit(cache=True, nogil=True)
def _step_kernel(
    fxp: np.ndarray, head: int, g: np.ndarray, codec_var: float, par: np.ndarray,
    bins: np.ndarray,
) -> None:  # fmt: skip
    """bins[STEP] = 2 mu a(k) / (D(k) + beta mean D + delta), see the module docstring."""
    ring, nk = fxp.shape[0], bins.shape[1]
    bins[STEP] = 0.0
    for j in range(g.shape[0]):
        s = _slot(head, j, ring)
        for k in range(nk):
            bins[STEP, k] += g[j] * fxp[s, k]
    mean = 0.0
    for k in range(nk):
        bins[D_HELD, k] = max(bins[STEP, k], par[D_HOLD] * bins[D_HELD, k])
        mean += bins[D_HELD, k]
    mean /= nk
    block_noise = (nk - 1) * codec_var  # E|Q(k)|^2 of B samples of white noise
    for k in range(nk):
        s_k = bins[S_ECHO, k]
        weight = s_k / (s_k + bins[N_MIN, k] + block_noise + 1e-9)
        den = bins[D_HELD, k] + par[BETA] * mean + par[DELTA]
        bins[STEP, k] = 2.0 * par[MU] * weight / den


@njit(cache=True, nogil=True)
def _adapt_kernel(
    fx: np.ndarray, head: int, g: np.ndarray, espec: np.ndarray, bins: np.ndarray,
    w: np.ndarray,
) -> None:  # fmt: skip
    """Background gradient step: W_bg,j += g_j step(k) conj(X_j) E."""
    ring = fx.shape[1]
    for j in range(g.shape[0]):
        s = _slot(head, j, ring)
        for k in range(espec.shape[1]):
            m = g[j] * bins[STEP, k]
            er, ei = espec[0, k] * m, espec[1, k] * m
            a, b = fx[0, s, k], fx[1, s, k]
            w[1, 0, j, k] += a * er + b * ei
            w[1, 1, j, k] += a * ei - b * er


@njit(cache=True, nogil=True)
def _constrain_kernel(
    w: np.ndarray, f: int, p: int, q: int, spec: np.ndarray, rev: np.ndarray, tw: np.ndarray,
    scr: np.ndarray,
) -> None:  # fmt: skip
    """Gradient constraint of filter f's partitions p and q (one packed transform pair): their
    time-domain taps past the first block are zeroed."""
    nk = spec.shape[1]
    for k in range(nk):
        spec[0, k], spec[1, k] = w[f, 0, p, k], w[f, 1, p, k]
        spec[2, k], spec[3, k] = w[f, 0, q, k], w[f, 1, q, k]
    _irfft2_kernel(spec, scr[0], scr[1], rev, tw[0], tw[1], scr[2], scr[3])
    half = rev.shape[0] // 2
    scr[0, half:] = 0.0
    scr[1, half:] = 0.0
    _rfft2_kernel(scr[0], scr[1], spec, rev, tw[0], tw[1], scr[2], scr[3])
    for k in range(nk):
        w[f, 0, p, k], w[f, 1, p, k] = spec[0, k], spec[1, k]
        w[f, 0, q, k], w[f, 1, q, k] = spec[2, k], spec[3, k]


@njit(cache=True, nogil=True)
def _gains_kernel(
    w: np.ndarray, prior: np.ndarray, prior_weight: float, alpha: float, g: np.ndarray
) -> None:
    """Partition gains g (sum 1): IPNLMS on the background's partition norms, mixed with the
    delay estimator's prior: (1 - prior_weight) ipnlms + prior_weight prior."""
    parts = g.shape[0]
    total = 0.0
    for j in range(parts):
        e = 0.0
        for k in range(w.shape[3]):
            e += w[1, 0, j, k] * w[1, 0, j, k] + w[1, 1, j, k] * w[1, 1, j, k]
        g[j] = math.sqrt(e)
        total += g[j]
    for j in range(parts):
        ipnlms = (1.0 - alpha) / (2.0 * parts) + (1.0 + alpha) * g[j] / (2.0 * total + 1e-9)
        g[j] = (1.0 - prior_weight) * ipnlms + prior_weight * prior[j]


@njit(cache=True, nogil=True)
def _constrain_schedule_kernel(g: np.ndarray, turn: int, out: np.ndarray) -> None:
    """Partitions to constrain this block, as pairs in `out`: the `TOP_CONSTRAINED` largest
    gains, then `2 ROUND_ROBIN_PAIRS` more from `turn` on (a repeat is harmless)."""
    parts = g.shape[0]
    for n in range(TOP_CONSTRAINED):
        best = -1
        for j in range(parts):
            taken = False
            for i in range(n):
                taken = taken or out[i] == j
            if not taken and (best < 0 or g[j] > g[best]):
                best = j
        out[n] = best
    for i in range(2 * ROUND_ROBIN_PAIRS):
        out[TOP_CONSTRAINED + i] = (turn + i) % parts


@njit(cache=True, nogil=True)
def _mdf_block_kernel(
    dd: np.ndarray, codec_var: float, head: int, adapt: bool, fx: np.ndarray, fxp: np.ndarray,
    w: np.ndarray, g: np.ndarray, bins: np.ndarray, par: np.ndarray, work: np.ndarray,
    rev: np.ndarray, tw: np.ndarray, scr: np.ndarray, pairs: np.ndarray, turn: int,
    ef: np.ndarray, eb: np.ndarray,
) -> None:  # fmt: skip
    """One block after `_push_kernel`: errors for the mic block `dd` into ef / eb (and the
    mic's spectrum into work[8:10]), then, if `adapt`, one background step and its
    constraints. `work` rows: see WORK_ROWS."""
    spec, espec, dspec = work[0:4], work[4:8], work[8:10]
    _outputs_kernel(fx, head, w, spec)
    _errors_kernel(dd, spec, rev, tw, scr, ef, eb, espec, dspec)
    _bin_stats_kernel(espec, dspec, fxp[head], par, bins)
    if not adapt:
        return
    _step_kernel(fxp, head, g, codec_var, par, bins)
    _adapt_kernel(fx, head, g, espec, bins, w)
    _constrain_schedule_kernel(g, turn, pairs)
    for i in range(0, pairs.shape[0], 2):
        _constrain_kernel(w, 1, pairs[i], pairs[i + 1], spec, rev, tw, scr)
