"""Where the echo is: the echo canceller's delay estimator and the step prior it aims
(`dsp.echo_frame` feeds it every block, `dsp.echo_window` acts on it every frame).

It reuses the reference spectra of the last `R` 4 ms blocks (`dsp.echo_mdf`, undelayed) and
the mic block's spectrum. Per block with far-end speech, for every lag partition p (the
reference p blocks back) and bin k in `BAND`, it averages the cross-spectrum
C_p(k) = <D(k) conj X_p(k)> and the two power spectra; per frame, the band mean of the
magnitude-squared coherence |C_p|^2 / (S_dd S_xx) ranks the partitions. Per-bin
normalisation whitens speech, so the peak is the partition of the echo's main tap or one of
its next two (speech correlates neighbouring blocks; a ringing hybrid spreads its energy).
A best partition counts once it stands out (`CONFIDENCE_RATIO`, above the bias of a short
average) and has held for `HOLD_UPDATES` frames. Near-end speech and noise add to S_dd but
not, on average, to C: double talk lowers the coherence without moving its peak, which is
also how `dsp.echo_control` tells double talk from an echo path change
(`_explained_kernel`).

The prior (`_prior_kernel`) gives the partitions around the echo most of the step until the
filter has found it itself: with the step spread over 32 partitions the filter needed 1.4 s
for 20 dB ERLE on speech, with 90 % of it on the echo's three partitions 0.25 s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dsp.echo_mdf import BLOCK_SAMPLES

BAND = (2, 29)  # bins 2..28 of 33: 250-3500 Hz, the telephone band
SMOOTHING = 0.97  # per block: a 33-block (130 ms) memory
CONFIDENCE_RATIO = 4.0  # the best partition's coherence over the mean of all
MIN_COHERENCE = 0.02  # and at least this (the maximum is 0.5, see `_coherence_kernel`) ...
NOISE_COHERENCE = 3.0  # ... and 3 times a short average's bias (1 / blocks)
TRACK_TOLERANCE = 1  # partitions
HOLD_UPDATES = 3  # frames the best partition must hold (60 ms) ...
# ... once this many blocks of far-end speech are in the cross-spectra (48 ms): earlier, a
# first guess was wrong often enough (and cost a restart) to be worth waiting for.
MIN_EVIDENCE_BLOCKS = 12
PRIOR_PRE_SAMPLES = 30  # the prior covers the window's lead before the main tap ...
# ... to 6 ms after: the bulk of a G.168 Annex D response; its tail adapts on the partition
# gains. A prior to 12 ms converged slower (check "time to 20 dB": 1.4 s against 0.8 s).
PRIOR_POST_SAMPLES = 48
# The partitions either side of the span get this share of its largest: speech couples
# neighbouring partitions, and a neighbour starved of step keeps what it learnt before the
# prior came (seen: 29.6 instead of 34.0 dB ERLE when the prior arrived 20 ms late).
PRIOR_SKIRT = 0.25


@njit(cache=True, nogil=True)
def _cross_kernel(
    xs: np.ndarray, head: int, dspec: np.ndarray, xpow: np.ndarray, blocks: int,
    cross: np.ndarray, psd: np.ndarray,
) -> None:  # fmt: skip
    """Smooth C_p(k) = D(k) conj X_p(k) for every lag partition p (ring `xs`, newest at
    `head`) and the powers S_dd (psd[0]), S_xx (psd[1], from `xpow`) over `BAND`; `blocks`
    earlier blocks are in them (a plain mean until the exponential memory is longer)."""
    ring = xs.shape[1]
    a = max(1.0 - SMOOTHING, 1.0 / (blocks + 1))
    for k in range(BAND[0], BAND[1]):
        dr, di = dspec[0, k], dspec[1, k]
        psd[0, k] += a * (dr * dr + di * di - psd[0, k])
        psd[1, k] += a * (xpow[k] - psd[1, k])
    for p in range(ring):
        s = head - p
        if s < 0:
            s += ring
        for k in range(BAND[0], BAND[1]):
            dr, di = dspec[0, k], dspec[1, k]
            xr, xi = xs[0, s, k], xs[1, s, k]
            cross[0, p, k] += a * (dr * xr + di * xi - cross[0, p, k])
            cross[1, p, k] += a * (di * xr - dr * xi - cross[1, p, k])


@njit(cache=True, nogil=True)
def _coherence_kernel(cross: np.ndarray, psd: np.ndarray, gam: np.ndarray) -> None:
    """gam[p] = mean over BAND of |C_p|^2 / (S_dd S_xx): at most 0.5 (a B-sample mic block
    against 2B reference samples), 0.5 for a noiseless pure delay inside partition p."""
    width = BAND[1] - BAND[0]
    for p in range(gam.shape[0]):
        acc = 0.0
        for k in range(BAND[0], BAND[1]):
            c2 = cross[0, p, k] * cross[0, p, k] + cross[1, p, k] * cross[1, p, k]
            acc += c2 / (psd[0, k] * psd[1, k] + 1e-6)
        gam[p] = acc / width


@njit(cache=True, nogil=True)
def _explained_kernel(cross: np.ndarray, psd: np.ndarray, gam: np.ndarray) -> float:
    """The share of the mic's power (over BAND) that the reference explains at the partition
    of largest coherence: sum_k |C_k|^2 / S_xx,k over sum_k S_dd,k (at most 0.5, see
    `_coherence_kernel`). Unlike the coherence it is weighted by power, so a narrowband
    caller (DTMF) lowers it as much as speech does."""
    p = 0
    for q in range(gam.shape[0]):
        if gam[q] > gam[p]:
            p = q
    num = den = 0.0
    for k in range(BAND[0], BAND[1]):
        num += (cross[0, p, k] ** 2 + cross[1, p, k] ** 2) / (2.0 * psd[1, k] + 1e-6)
        den += psd[0, k]
    return num / (den + 1e-6)


@njit(cache=True, nogil=True)
def _best_partition_kernel(gam: np.ndarray, blocks: int) -> int:
    """The partition of largest coherence if it is confident, else -1: CONFIDENCE_RATIO
    times the mean of all, and above the bias of a coherence estimated from `blocks` blocks
    (about 1 / blocks for unrelated signals: NOISE_COHERENCE / blocks), and MIN_COHERENCE."""
    best, total = 0, 0.0
    for p in range(gam.shape[0]):
        total += gam[p]
        if gam[p] > gam[best]:
            best = p
    floor = max(MIN_COHERENCE, NOISE_COHERENCE / max(blocks, 1))
    if gam[best] < floor or gam[best] < CONFIDENCE_RATIO * total / gam.shape[0]:
        return -1
    return best


@njit(cache=True, nogil=True)
def _track_kernel(part: int, track: np.ndarray) -> bool:
    """Feed one confident best partition (or -1) to track = [candidate, updates held,
    accepted]; True when the accepted partition moved by more than `TRACK_TOLERANCE`
    (a dispersive echo spreads over two partitions and its best one alternates)."""
    if part < 0:
        return False
    if track[1] > 0 and abs(part - track[0]) <= TRACK_TOLERANCE:
        track[1] += 1
    else:
        track[0], track[1] = part, 1
    if track[1] >= HOLD_UPDATES and (track[2] < 0 or abs(track[2] - track[0]) > TRACK_TOLERANCE):
        track[2] = track[0]
        return True
    return False


@njit(cache=True, nogil=True)
def _prior_kernel(first: int, last: int, delay: int, prior: np.ndarray) -> None:
    """prior[j]: the share of [first - PRE, last + POST) (lags, samples) that filter
    partition j covers (the filter starting `delay` samples back), and PRIOR_SKIRT of the
    largest share for the partition on either side; normalised to sum 1 (uniform if the
    span misses the window)."""
    b, parts = BLOCK_SAMPLES, prior.shape[0]
    lo, hi = first - PRIOR_PRE_SAMPLES - delay, last + PRIOR_POST_SAMPLES - delay
    first, last, top = parts, -1, 0.0
    for j in range(parts):
        prior[j] = max(0, min((j + 1) * b, hi) - max(j * b, lo)) / b
        if prior[j] > 0.0:
            first, last, top = min(first, j), j, max(top, prior[j])
    if last < 0:
        prior[:] = 1.0 / parts
        return
    if first > 0:
        prior[first - 1] = PRIOR_SKIRT * top
    if last + 1 < parts:
        prior[last + 1] = PRIOR_SKIRT * top
    prior /= np.sum(prior)
