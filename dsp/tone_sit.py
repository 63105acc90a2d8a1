"""Special information tone (SIT): three rising single-frequency segments, named once per group.

Owns the SIT tracker kernel of `dsp.tones.ToneDetector` and the layout of its state arrays.
`dsp.tone_frames` says which SIT band (0, 1, 2 or none) each frame holds; this tracker names
SIT when runs in bands 0, 1 and 2 follow each other, each lasting the plan's
`segment_min_ms`..`segment_max_ms` (E.180: 330 +-70 ms; Telcordia: 274 or 380 ms) with gaps of
at most `SIT_GAP_FRAMES`. It is decided once the third segment reaches its minimum, and
reported once per group: SIT repeats after about 1 s of silence (E.180 Suppl. 2), so it re-arms
only after `SIT_REARM_MS` without any SIT band.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.tone_cadence import E_NSEG, E_SEG, EDGE_SLACK_MS, FRAME_MS, _emit_kernel
from dsp.tone_plans import TONE_NAMES, TonePlan

SIT_GAP_FRAMES = 2  # E.180: up to 30 ms between SIT segments, plus a mixed frame
SIT_REARM_MS = 2500.0  # SIT repeats after 1 s (+-250 ms) of silence: one report per group
SIT_CODE = TONE_NAMES.index("sit")

# sit_state slots (int64): band of the current run (-1: none), its length and trailing gap
# (frames), segments matched so far, frames without any SIT band, reported flag, onset frame,
# lengths of the first two segments
_BAND, _LEN, _GAP, _STAGE, _IDLE, _DONE, _ONSET, _SEG = 0, 1, 2, 3, 4, 5, 6, 7
SIT_STATE_SLOTS = 9
SIT_NEG_SLOTS = (_BAND,)  # start at -1
# sit_fstate slots (float64): level sum and count over the current group
_LVL_SUM, _LVL_N = 0, 1
SIT_FSTATE_SLOTS = 2
# sit_params slots (float64): shortest and longest segment accepted (ms)
_LO_MS, _HI_MS = 0, 1


@njit(cache=True, nogil=True)
def _sit_close(state: np.ndarray, params: np.ndarray) -> None:
    """The current band run ended: advance the three-segment sequence or restart it."""
    band = state[_BAND]
    if band < 0:
        return
    dur = state[_LEN] * FRAME_MS
    valid = params[_LO_MS] <= dur <= params[_HI_MS]
    stage = state[_STAGE]
    if valid and band == stage and stage < 2:
        state[_SEG + stage] = state[_LEN]
        state[_STAGE] = stage + 1
    elif valid and band == 0:
        state[_SEG] = state[_LEN]
        state[_STAGE] = 1
    else:
        state[_STAGE] = 0


@njit(cache=True, nogil=True)
def _sit_advance(
    band: int, frame: int, state: np.ndarray, fstate: np.ndarray, params: np.ndarray
) -> None:
    """Extend, start or close the current band run with this frame's band."""
    if band >= 0 and band == state[_BAND]:
        state[_LEN] += state[_GAP] + 1  # a short dropout inside a segment counts
        state[_GAP] = 0
    elif band >= 0:
        _sit_close(state, params)
        state[_BAND] = band
        state[_LEN] = 1
        state[_GAP] = 0
        if band == 0:
            state[_ONSET] = frame
            fstate[_LVL_SUM] = 0.0
            fstate[_LVL_N] = 0.0
    elif state[_BAND] >= 0:
        state[_GAP] += 1
        if state[_GAP] > SIT_GAP_FRAMES:
            _sit_close(state, params)
            state[_BAND] = -1
            state[_STAGE] = 0
            state[_GAP] = 0


@njit(cache=True, nogil=True)
def _sit_step_kernel(
    band: int, level: float, frame: int, params: np.ndarray, state: np.ndarray,
    fstate: np.ndarray, events: np.ndarray, ev_level: np.ndarray, n_ev: int,
) -> int:  # fmt: skip
    """Advance the tracker by frame number `frame`, in SIT `band` (-1: none) at `level` dBm0;
    returns the event count."""
    state[_IDLE] = 0 if band >= 0 else state[_IDLE] + 1
    if state[_DONE] and state[_IDLE] * FRAME_MS > SIT_REARM_MS:
        state[_DONE] = 0
    _sit_advance(band, frame, state, fstate, params)
    if band >= 0:
        fstate[_LVL_SUM] += level
        fstate[_LVL_N] += 1.0
    if state[_BAND] != 2 or state[_STAGE] != 2 or state[_DONE]:
        return n_ev
    if state[_LEN] * FRAME_MS < params[_LO_MS]:
        return n_ev
    state[_DONE] = 1
    lvl = fstate[_LVL_SUM] / fstate[_LVL_N]
    n_ev = _emit_kernel(events, ev_level, n_ev, SIT_CODE, state[_ONSET], frame, lvl)
    events[n_ev - 1, E_NSEG] = 3
    events[n_ev - 1, E_SEG] = state[_SEG] * FRAME_MS
    events[n_ev - 1, E_SEG + 1] = state[_SEG + 1] * FRAME_MS
    events[n_ev - 1, E_SEG + 2] = state[_LEN] * FRAME_MS
    return n_ev


def build_sit_params(plan: TonePlan) -> NDArray[np.float64]:
    """Segment length window (ms) of `plan`'s SIT, frame-edge slack included."""
    return np.array(
        [plan.sit.segment_min_ms - EDGE_SLACK_MS, plan.sit.segment_max_ms + EDGE_SLACK_MS],
        np.float64,
    )
