"""Where the echo canceller's filter looks: the bulk delay skipped before its first tap,
and the step prior that tells it where the echo is (`dsp.echo_frame` calls
`_delay_frame_kernel` once per frame; `dsp.echo_delay` supplies the estimates).

The window starts `LEAD_SAMPLES` before the echo's main tap, to the sample, so that the
filter spends no taps on the bulk delay and, as important, has no partition before the
echo: a partition that only ever sees the echo's "future" reference learns a share of the
echo that speech cannot tell apart from the true one, and gives it back as residual when the
spectrum changes. Measured on a single-tap echo, all else equal (16-bit path, -65 dBm0
noise): echo in the window's first partition 44.2 dB ERLE, in the second 36.2, in the second
with the first frozen at zero 44.0. `LEAD_SAMPLES` keeps the precursor of the G.168 Annex D
models (up to 28 taps before the main tap in D.6; D.7's 35 lose 5 taps 40 dB down).

Two stages. Coarse: the delay estimator's best partition puts the main tap in a span of
three partitions (`COARSE_BEFORE_PARTS`); the window and the prior cover the span, widened
while early estimates waver. Fine: once the filter cancels `REFINE_DB`, its own largest tap
(held `PEAK_HOLD_FRAMES`) is the main tap; the window is re-timed around it and the prior
narrowed. After that the estimator is only heard when it contradicts the filter and the
filter's error is suspect: an echo path change, which restarts the filter.

A move re-times both filters' taps (shifted through the time domain, exactly) and
recomputes the filter's reference spectra from the history (`_refill_kernel`); a restart
zeroes them instead. What a filter learnt outside the prior before the echo was located is
zeroed too (`_forget_kernel`): with the step on the prior those partitions would keep it
for seconds (measured: 26.7 against 33.8 dB ERLE on a 32 ms pure delay).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dsp.echo_control import (
    COARSE,
    CONVERGED,
    DELAY,
    ERLE_DEN,
    ERLE_NUM,
    EVIDENCE,
    FHEAD,
    LAG,
    PEAK,
    PEAK_HELD,
    SPAN,
    SUSPECT,
    _erle_db,
)
from dsp.echo_delay import (
    MIN_EVIDENCE_BLOCKS,
    _best_partition_kernel,
    _prior_kernel,
    _track_kernel,
)
from dsp.echo_fft import _irfft2_kernel, _rfft2_kernel
from dsp.echo_mdf import BLOCK_SAMPLES, _slot
from dsp.frame import FRAME_SAMPLES

LEAD_SAMPLES = 30
# Until the filter's taps show the peak, the echo's main tap is taken to be in the delay
# estimator's best partition or up to this many before it: the coherence of a ringing
# response (G.168 D.9) peaks up to two partitions after its main tap.
COARSE_BEFORE_PARTS = 2
REFINE_TOLERANCE_SAMPLES = 6  # the window is re-timed when the peak is this far off
REFINE_DB = 10.0  # the filter's own peak is trusted from this ERLE estimate on ...
REFINE_PARTS = 8  # ... searched in its first 32 ms
# The estimator's best partition may sit up to this far from the filter's peak without
# moving the window: speech spreads the coherence over the echo's neighbours (3 blocks).
AGREE_SAMPLES = 3 * BLOCK_SAMPLES
PEAK_HOLD_FRAMES = 5  # the filter's peak must hold 100 ms before the window follows it


@njit(cache=True, nogil=True)
def _coarse_placement_kernel(lo: int, max_delay: int) -> int:
    """Bulk delay (samples) for an echo whose main tap is at `lo` samples or later."""
    return min(max(lo - LEAD_SAMPLES, 0), max_delay)


@njit(cache=True, nogil=True)
def _filter_peak_kernel(
    w: np.ndarray, parts: int, rev: np.ndarray, tw: np.ndarray, scr: np.ndarray,
    spec: np.ndarray,
) -> int:  # fmt: skip
    """Index of the background filter's largest tap (by magnitude) in its first `parts`
    partitions (through the time domain, two partitions per transform)."""
    b, nk = BLOCK_SAMPLES, w.shape[3]
    best, peak = 0, -1.0
    for j in range(0, parts, 2):
        for r in range(2):
            q = min(j + r, parts - 1)
            for k in range(nk):
                spec[2 * r, k], spec[2 * r + 1, k] = w[1, 0, q, k], w[1, 1, q, k]
        _irfft2_kernel(spec, scr[0], scr[1], rev, tw[0], tw[1], scr[2], scr[3])
        for r in range(2):
            for i in range(b):
                v = abs(scr[r, i])
                if j + r < parts and v > peak:
                    best, peak = (j + r) * b + i, v
    return best


@njit(cache=True, nogil=True)
def _refill_kernel(
    hist: np.ndarray, end: int, delay: int, fx: np.ndarray, fxp: np.ndarray, head: int,
    rev: np.ndarray, tw: np.ndarray, scr: np.ndarray, spec: np.ndarray,
) -> None:  # fmt: skip
    """Recompute the filter's reference ring for bulk delay `delay`: slot of block j back from
    `head` = spectrum of hist[end - j B - 2B - delay : end - j B - delay] (`end`: one past the
    newest sample of the newest block). Two blocks per packed transform."""
    b, ring = BLOCK_SAMPLES, fx.shape[1]
    for j in range(0, ring, 2):
        for r in range(2):
            stop = end - (j + r) * b - delay
            for i in range(2 * b):
                n = stop - 2 * b + i
                scr[r, i] = hist[n] if 0 <= n < hist.shape[0] and j + r < ring else 0.0
        _rfft2_kernel(scr[0], scr[1], spec, rev, tw[0], tw[1], scr[2], scr[3])
        for r in range(2):
            if j + r < ring:
                s = _slot(head, j + r, ring)
                for k in range(spec.shape[1]):
                    fx[0, s, k], fx[1, s, k] = spec[2 * r, k], spec[2 * r + 1, k]
                    fxp[s, k] = spec[2 * r, k] ** 2 + spec[2 * r + 1, k] ** 2


@njit(cache=True, nogil=True)
def _retime_kernel(
    w: np.ndarray, shift: int, taps: np.ndarray, rev: np.ndarray, tw: np.ndarray,
    scr: np.ndarray, spec: np.ndarray,
) -> None:  # fmt: skip
    """Both filters' taps move `shift` samples earlier (the window moved `shift` later): tap t
    takes old tap t + shift, zero where that falls outside. `taps`: (2, P B) scratch."""
    b, parts, nk = BLOCK_SAMPLES, w.shape[2], w.shape[3]
    for j in range(parts):  # to the time domain, both filters in one transform
        for k in range(nk):
            spec[0, k], spec[1, k] = w[0, 0, j, k], w[0, 1, j, k]
            spec[2, k], spec[3, k] = w[1, 0, j, k], w[1, 1, j, k]
        _irfft2_kernel(spec, scr[0], scr[1], rev, tw[0], tw[1], scr[2], scr[3])
        for i in range(b):
            taps[0, j * b + i], taps[1, j * b + i] = scr[0, i], scr[1, i]
    n = parts * b
    for f in range(2):
        if shift >= 0:
            for t in range(n):
                taps[f, t] = taps[f, t + shift] if t + shift < n else 0.0
        else:
            for t in range(n - 1, -1, -1):
                taps[f, t] = taps[f, t + shift] if t + shift >= 0 else 0.0
    for j in range(parts):
        for i in range(b):
            scr[0, i], scr[1, i] = taps[0, j * b + i], taps[1, j * b + i]
            scr[0, b + i] = scr[1, b + i] = 0.0
        _rfft2_kernel(scr[0], scr[1], spec, rev, tw[0], tw[1], scr[2], scr[3])
        for k in range(nk):
            w[0, 0, j, k], w[0, 1, j, k] = spec[0, k], spec[1, k]
            w[1, 0, j, k], w[1, 1, j, k] = spec[2, k], spec[3, k]


@njit(cache=True, nogil=True)
def _forget_kernel(w: np.ndarray, prior: np.ndarray) -> None:
    """Zero both filters' partitions outside the prior: what they hold was learnt before
    the echo was located, or where it was."""
    for j in range(prior.shape[0]):
        if prior[j] == 0.0:
            w[:, :, j] = 0.0


@njit(cache=True, nogil=True)
def _move_window_kernel(
    delay: int, keep: bool, hist: np.ndarray, w: np.ndarray, g: np.ndarray, fx: np.ndarray,
    fxp: np.ndarray, taps: np.ndarray, rev: np.ndarray, tw: np.ndarray, scr: np.ndarray,
    spec: np.ndarray, ist: np.ndarray,
) -> None:  # fmt: skip
    """Start the filter window `delay` samples back: `keep` re-times the taps (they stay
    where the echo is), else the filters restart (what they learnt with the echo elsewhere
    would stay in them as error, and their IPNLMS gains would keep feeding it)."""
    if delay == ist[DELAY]:
        return
    if keep:
        _retime_kernel(w, delay - ist[DELAY], taps, rev, tw, scr, spec)
    else:
        w[:] = 0.0
        g[:] = 1.0 / g.shape[0]
    _refill_kernel(hist, hist.shape[0], delay, fx, fxp, ist[FHEAD], rev, tw, scr, spec)
    ist[DELAY] = delay


@njit(cache=True, nogil=True)
def _coarse_kernel(
    max_delay: int, hist: np.ndarray, w: np.ndarray, g: np.ndarray, prior: np.ndarray,
    fx: np.ndarray, fxp: np.ndarray, taps: np.ndarray, rev: np.ndarray, tw: np.ndarray,
    scr: np.ndarray, spec: np.ndarray, fst: np.ndarray, ist: np.ndarray,
) -> None:  # fmt: skip
    """The estimator's best partition moved. Filter peak known: ignore it unless near that
    peak (the estimator wavers) or, once converged, unless the error is suspect and the echo
    left the window (a path change: restart, the ERLE estimate too). Not known yet: widen
    the provisional span [LAG, LAG + SPAN] to it if it stays within `AGREE_SAMPLES` (early
    estimates waver between neighbours; restarting each time cost 0.3 s), else restart.
    The first placement re-times instead: the echo was in the open window (if near) and
    what was learnt about it stays; the rest goes with the partitions outside the prior."""
    # the main tap lies in [lo, hi]: the best partition, or up to two before it
    lo = max(ist[COARSE + 2] - COARSE_BEFORE_PARTS, 0) * BLOCK_SAMPLES
    hi = (ist[COARSE + 2] + 1) * BLOCK_SAMPLES
    if ist[PEAK_HELD] >= PEAK_HOLD_FRAMES:  # the filter has shown the peak
        if lo - AGREE_SAMPLES <= ist[LAG] <= hi + AGREE_SAMPLES:
            return
        inside = ist[DELAY] <= hi and lo < ist[DELAY] + fx.shape[1] * BLOCK_SAMPLES
        if ist[CONVERGED] and (inside or not ist[SUSPECT]):
            return
    elif (
        ist[LAG] >= 0
        and ist[LAG] - AGREE_SAMPLES <= hi
        and lo <= ist[LAG] + ist[SPAN] + AGREE_SAMPLES
    ):
        lo, hi = min(ist[LAG], lo), max(ist[LAG] + ist[SPAN], hi)
        delay = _coarse_placement_kernel(lo, max_delay)
        if delay < ist[DELAY]:
            _move_window_kernel(delay, True, hist, w, g, fx, fxp, taps, rev, tw, scr, spec, ist)
        ist[LAG], ist[SPAN] = lo, hi - lo
        _prior_kernel(lo, hi, ist[DELAY], prior)
        _forget_kernel(w, prior)
        return
    first = ist[LAG] < 0  # the first placement keeps what the open window learnt near it
    fst[ERLE_NUM] = fst[ERLE_DEN] = 0.0
    ist[CONVERGED] = 0
    delay = _coarse_placement_kernel(lo, max_delay)
    _move_window_kernel(delay, first, hist, w, g, fx, fxp, taps, rev, tw, scr, spec, ist)
    ist[LAG], ist[SPAN], ist[PEAK], ist[PEAK_HELD] = lo, hi - lo, -1, 0
    _prior_kernel(lo, hi, delay, prior)
    _forget_kernel(w, prior)


@njit(cache=True, nogil=True)
def _delay_frame_kernel(
    hist: np.ndarray, cross: np.ndarray, psd: np.ndarray, gam: np.ndarray, w: np.ndarray,
    g: np.ndarray, prior: np.ndarray, fx: np.ndarray, fxp: np.ndarray, taps: np.ndarray,
    rev: np.ndarray, tw: np.ndarray, scr: np.ndarray, spec: np.ndarray, fst: np.ndarray,
    ist: np.ndarray,
) -> None:  # fmt: skip
    """Per frame. Coarse: the delay estimator's best partition, tracked; an unconverged
    filter follows it (window and prior), a converged one only when its error is suspect
    and the echo left its window (an echo path change: its ERLE estimate restarts). Fine:
    once the filter cancels >= REFINE_DB, its own largest tap is the echo's main tap; the
    window is re-timed to start LEAD_SAMPLES before it. (`gam` is this frame's.)"""
    max_delay = hist.shape[0] - FRAME_SAMPLES - (fx.shape[1] + 1) * BLOCK_SAMPLES
    enough = ist[EVIDENCE] >= MIN_EVIDENCE_BLOCKS
    best = _best_partition_kernel(gam, min(ist[EVIDENCE], 33)) if enough else -1
    if _track_kernel(best, ist[COARSE : COARSE + 3]):
        _coarse_kernel(max_delay, hist, w, g, prior, fx, fxp, taps, rev, tw, scr, spec, fst, ist)
        return
    if ist[COARSE + 2] < 0 or _erle_db(fst[ERLE_NUM], fst[ERLE_DEN]) < REFINE_DB or ist[SUSPECT]:
        return
    lag = ist[DELAY] + _filter_peak_kernel(w, min(REFINE_PARTS, w.shape[2]), rev, tw, scr, spec)
    if abs(lag - ist[PEAK]) > REFINE_TOLERANCE_SAMPLES:  # a new peak must hold a while
        ist[PEAK], ist[PEAK_HELD] = lag, 0
        return
    ist[PEAK_HELD] += 1
    if ist[PEAK_HELD] < PEAK_HOLD_FRAMES:
        return
    first = ist[SPAN] > 0 or ist[PEAK_HELD] == PEAK_HOLD_FRAMES  # from a provisional span
    ist[LAG], ist[SPAN] = lag, 0
    target = min(max(lag - LEAD_SAMPLES, 0), max_delay)
    if abs(target - ist[DELAY]) > REFINE_TOLERANCE_SAMPLES:
        _move_window_kernel(target, True, hist, w, g, fx, fxp, taps, rev, tw, scr, spec, ist)
    _prior_kernel(lag, lag, ist[DELAY], prior)
    if first:  # what the provisional span learnt outside the echo goes
        _forget_kernel(w, prior)
