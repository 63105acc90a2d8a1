"""One 20 ms frame of the echo canceller, all in compiled code (`dsp.echo.EchoCanceller`
calls `_echo_frame_kernel` once per frame with the arrays it owns).

Order within a frame: condition the inputs (DC blockers, reference history, codec noise);
five 4 ms blocks through both filters (`dsp.echo_mdf`; no adaptation in double talk), the
delay estimator learning from each; the coherence, double talk, the two-path test and the
frame statistics (`dsp.echo_control`); the window, which may move and aims the step
(`dsp.echo_window`); the output guard; the NLP (`dsp.echo_nlp`); rounding to int16.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dsp.echo_control import (
    COARSE,
    DC_MIC,
    DC_REF,
    DELAY,
    DOUBLE_TALK,
    ERLE_DEN,
    ERLE_NUM,
    EVIDENCE,
    FAR_ACTIVE_POWER,
    FAR_POWER,
    FHEAD,
    HEAD,
    MU_NOW,
    NOISE,
    SUSPECT,
    TURN,
    _dc_block_kernel,
    _erle_db,
    _stats_kernel,
    _talk_state_kernel,
    _two_path_kernel,
)
from dsp.echo_delay import (
    _coherence_kernel,
    _cross_kernel,
    _explained_kernel,
)
from dsp.echo_floor import _codec_noise_kernel
from dsp.echo_mdf import (
    ALPHA,
    BLOCK_SAMPLES,
    MU,
    ROUND_ROBIN_PAIRS,
    _gains_kernel,
    _mdf_block_kernel,
    _push_kernel,
)
from dsp.echo_nlp import _nlp_block_kernel, _noise_shape_kernel
from dsp.echo_window import _delay_frame_kernel
from dsp.frame import FRAME_SAMPLES

BLOCKS = FRAME_SAMPLES // BLOCK_SAMPLES  # 5 per frame
EVIDENCE_CAP = 1000  # blocks counted (beyond both the estimator's minimum and its memory)
# Share of the step the prior directs while the filter converges, and once it has (the
# ERLE estimate going from PRIOR_FADE_DB[0] to [1]): the IPNLMS gains know where the echo is
# by then, and a prior kept to the end cost 3-9 dB of steady-state ERLE (pure delays).
PRIOR_WEIGHT = 0.8
PRIOR_LATE = 0.0
PRIOR_FADE_DB = (25.0, 35.0)
# Rows of the frame array (FRAME_ROWS, FRAME_SAMPLES): the DC-blocked mic, the foreground /
# background errors, the output before rounding, per-block codec noise (first BLOCKS).
MIC, EF, EB, FINAL, CODEC = range(5)
FRAME_ROWS = 5
# Per-sample frame powers (array `pw`): mic, foreground error, background error, filter
# difference (+1, the two-path test's floor), foreground echo estimate, reference.
P_MIC, P_FG, P_BG, P_DIFF, P_ECHO, P_REF = range(6)
POWERS = 6


@njit(cache=True, nogil=True)
def _prior_weight(fst: np.ndarray, ist: np.ndarray) -> float:
    """The prior's share of the step: PRIOR_WEIGHT while the filter converges, down to
    PRIOR_LATE as the ERLE estimate goes from PRIOR_FADE_DB[0] to [1] (by then the partition
    gains know where the echo is), none before the echo is located."""
    if ist[COARSE + 2] < 0:
        return 0.0
    erle_db = _erle_db(fst[ERLE_NUM], fst[ERLE_DEN])
    t = min(max((erle_db - PRIOR_FADE_DB[0]) / (PRIOR_FADE_DB[1] - PRIOR_FADE_DB[0]), 0.0), 1.0)
    return PRIOR_WEIGHT + t * (PRIOR_LATE - PRIOR_WEIGHT)


@njit(cache=True, nogil=True)
def _condition_kernel(
    ref: np.ndarray, mic: np.ndarray, table: np.ndarray, hist: np.ndarray, frame: np.ndarray,
    fst: np.ndarray,
) -> None:  # fmt: skip
    """Shift the reference history by a frame and DC-block the new reference onto its end, the
    mic into frame[MIC]; each block's codec noise variance into frame[CODEC, :BLOCKS]."""
    n, keep = FRAME_SAMPLES, hist.shape[0] - FRAME_SAMPLES
    for i in range(keep):
        hist[i] = hist[i + n]
    _dc_block_kernel(ref, hist, keep, fst, DC_REF)
    _dc_block_kernel(mic, frame[MIC], 0, fst, DC_MIC)
    _codec_noise_kernel(mic, table, BLOCK_SAMPLES, frame[CODEC, :BLOCKS])


@njit(cache=True, nogil=True)
def _blocks_kernel(
    hist: np.ndarray, frame: np.ndarray, prior_weight: float, fx: np.ndarray,
    fxp: np.ndarray, xs: np.ndarray, xp: np.ndarray, w: np.ndarray, g: np.ndarray,
    prior: np.ndarray, bins: np.ndarray, par: np.ndarray, work: np.ndarray, rev: np.ndarray,
    tw: np.ndarray, scr: np.ndarray, pairs: np.ndarray, cross: np.ndarray, psd: np.ndarray,
    ist: np.ndarray,
) -> None:  # fmt: skip
    """The frame's five blocks through the filters; the delay estimator learns from the
    blocks where the far end is active."""
    b, parts = BLOCK_SAMPLES, w.shape[2]
    delay = ist[DELAY]
    for k in range(BLOCKS):
        end = hist.shape[0] - FRAME_SAMPLES + (k + 1) * b
        ist[HEAD] = (ist[HEAD] + 1) % xs.shape[1]
        ist[FHEAD] = (ist[FHEAD] + 1) % fx.shape[1]
        _push_kernel(
            hist[end - 2 * b - delay : end - delay], hist[end - 2 * b : end], fx, fxp,
            ist[FHEAD], xs, xp, ist[HEAD], rev, tw, scr, work[0:4],
        )  # fmt: skip
        at = k * b
        _mdf_block_kernel(
            frame[MIC, at : at + b], frame[CODEC, k], ist[FHEAD], par[MU] > 0.0, fx, fxp, w, g,
            bins, par, work, rev, tw, scr, pairs, ist[TURN], frame[EF, at : at + b],
            frame[EB, at : at + b],
        )  # fmt: skip
        ist[TURN] = (ist[TURN] + 2 * ROUND_ROBIN_PAIRS) % parts
        _gains_kernel(w, prior, prior_weight, par[ALPHA], g)
        power = 0.0
        for i in range(end - b, end):
            power += hist[i] * hist[i]
        if power > FAR_ACTIVE_POWER * b:
            _cross_kernel(xs, ist[HEAD], work[8:10], xp[ist[HEAD]], ist[EVIDENCE], cross, psd)
            ist[EVIDENCE] = min(ist[EVIDENCE] + 1, EVIDENCE_CAP)


@njit(cache=True, nogil=True)
def _frame_powers_kernel(hist: np.ndarray, frame: np.ndarray, pw: np.ndarray) -> None:
    """Per-sample powers of the frame into `pw` (slots P_MIC ... P_REF)."""
    pw[:] = 0.0
    n, base = FRAME_SAMPLES, hist.shape[0] - FRAME_SAMPLES
    for i in range(n):
        d, ef, eb, x = frame[MIC, i], frame[EF, i], frame[EB, i], hist[base + i]
        pw[P_MIC] += d * d
        pw[P_FG] += ef * ef
        pw[P_BG] += eb * eb
        pw[P_DIFF] += (ef - eb) * (ef - eb)
        pw[P_ECHO] += (d - ef) * (d - ef)
        pw[P_REF] += x * x
    pw /= n
    pw[P_DIFF] += 1.0


@njit(cache=True, nogil=True)
def _two_path_apply_kernel(
    frame: np.ndarray, w: np.ndarray, pw: np.ndarray, fst: np.ndarray, ist: np.ndarray
) -> bool:
    """Run the two-path test; on a copy the frame's output fades from the old foreground's
    error to the background's (and pw follows). True if the background was copied."""
    action = _two_path_kernel(
        pw[P_FG], pw[P_BG], pw[P_DIFF], bool(ist[SUSPECT]), bool(ist[DOUBLE_TALK]), fst
    )
    if action < 0:
        w[1] = w[0]
    if action <= 0:
        return False
    w[0] = w[1]
    n = FRAME_SAMPLES
    sff = syy = 0.0
    for i in range(n):
        t = (i + 1) / n
        e = (1.0 - t) * frame[EF, i] + t * frame[EB, i]
        frame[EF, i] = e
        sff += e * e
        syy += (frame[MIC, i] - e) * (frame[MIC, i] - e)
    pw[P_FG], pw[P_ECHO] = sff / n, syy / n
    return True


@njit(cache=True, nogil=True)
def _nlp_frame_kernel(
    frame: np.ndarray, fst: np.ndarray, nst: np.ndarray, nis: np.ndarray, cn: np.ndarray,
    sff: float,
) -> None:  # fmt: skip
    """The NLP over the frame's blocks (frame[FINAL] in place); the comfort noise's colour
    learns from frames where neither side talks."""
    if fst[FAR_POWER] <= FAR_ACTIVE_POWER and sff <= 2.0 * fst[NOISE]:
        _noise_shape_kernel(frame[FINAL], nst)
    erle = (fst[ERLE_NUM] + 1e-9) / (fst[ERLE_DEN] + 1e-9)
    b = BLOCK_SAMPLES
    for k in range(BLOCKS):
        at = k * b
        e = frame[FINAL, at : at + b]
        for i in range(b):
            cn[i] = frame[MIC, at + i] - e[i]  # the echo estimate of this block
        _nlp_block_kernel(
            e, cn[:b], frame[CODEC, k], max(fst[NOISE], 0.0), erle, nst, nis, cn[b:], e
        )


@njit(cache=True, nogil=True)
def _echo_frame_kernel(
    ref: np.ndarray, mic: np.ndarray, out: np.ndarray, nlp: bool, table: np.ndarray,
    hist: np.ndarray, frame: np.ndarray, fx: np.ndarray, fxp: np.ndarray, xs: np.ndarray,
    xp: np.ndarray, w: np.ndarray, g: np.ndarray, prior: np.ndarray, bins: np.ndarray,
    par: np.ndarray, work: np.ndarray, rev: np.ndarray, tw: np.ndarray, scr: np.ndarray,
    pairs: np.ndarray, taps: np.ndarray, cross: np.ndarray, psd: np.ndarray, gam: np.ndarray,
    pw: np.ndarray, fst: np.ndarray, ist: np.ndarray, nst: np.ndarray, nis: np.ndarray,
    cn: np.ndarray,
) -> None:  # fmt: skip
    """One frame: `ref`, `mic` int16 (160) in, `out` int16 (160) filled."""
    _condition_kernel(ref, mic, table, hist, frame, fst)
    par[MU] = fst[MU_NOW]
    prior_weight = _prior_weight(fst, ist)
    _blocks_kernel(
        hist, frame, prior_weight, fx, fxp, xs, xp, w, g, prior, bins, par, work, rev, tw,
        scr, pairs, cross, psd, ist,
    )  # fmt: skip
    _frame_powers_kernel(hist, frame, pw)
    codec = 0.0
    for k in range(BLOCKS):
        codec += frame[CODEC, k] / BLOCKS
    _coherence_kernel(cross, psd, gam)
    _talk_state_kernel(pw, codec, _explained_kernel(cross, psd, gam), fst, ist)
    copied = _two_path_apply_kernel(frame, w, pw, fst, ist)
    _stats_kernel(pw, codec, copied, fst, ist)
    _delay_frame_kernel(
        hist, cross, psd, gam, w, g, prior, fx, fxp, taps, rev, tw, scr, work[0:4], fst, ist
    )
    use_mic = pw[P_FG] > pw[P_MIC]  # the filter would add echo (the echo path has just gone)
    for i in range(FRAME_SAMPLES):
        frame[FINAL, i] = frame[MIC, i] if use_mic else frame[EF, i]
    if nlp:
        _nlp_frame_kernel(frame, fst, nst, nis, cn, pw[P_FG])
    for i in range(FRAME_SAMPLES):
        out[i] = min(max(math.floor(frame[FINAL, i] + 0.5), -32768.0), 32767.0)
