"""Segments and cadences: turns the per-frame decisions of `dsp.tone_frames` into named tones.

Owns the tracker kernels of `dsp.tones.ToneDetector`, the layout of its state arrays and of
the cadence tables `dsp.tone_cadence_tables` builds once per plan, and the rules' constants.

Rules (durations in whole 20 ms frames):
- A frame state (a signature, or -1 for none) becomes the current segment only after
  holding `DEBOUNCE_FRAMES`; shorter runs are absorbed, and the segment they end is measured
  up to the change. The segments of one signature form its history.
- A cadenced tone is named when its last N segments, the running one included, fit its
  cadence at some phase, each within +-tolerance and `EDGE_SLACK_MS`: N = 4 (two cycles) for
  busy and reorder, 3 (on-off-on) for long ringback cycles, cycle + 1 for four-segment
  cadences. The first burst of a history may be cut short (a shared tone source runs its
  cadence whatever the moment the line joins it), so only its upper bound is checked, unless
  another cadence on the same frequencies could then fill the rest of the window.
- Dial tone is a burst of its signature lasting `DIAL_HOLD_MS` (`WATCH_DIAL_HOLD_MS` in a call:
  `dsp.tone_cadence_tables`), or longer than any cadenced burst of the same frequencies.
- Watching a call for the far end's hang-up (`hangup_watch`), busy and reorder are also
  named on fewer segments (`quick_windows`): from a whole burst, the fewest (two or more)
  that no other cadence on the same frequencies could show up to that moment, at any phase
  (if the burst opens the history, another cadence's burst there may have been cut short).
  Every pause in the window and the one before it (for a history's first burst, its
  `LEAD_FRAMES` lead-in) must be quiet: no frame but the edge ones (they may hold part of a
  burst) has energy above 200 Hz (hum and DC left out) within `QUIET_DB` of the tone's
  frames'. A burst of the right length inside speech has speech around it; the far end
  stops talking before it hangs up. US busy: burst and 0.4 s of pause; DE/ETSI busy wait
  for a second burst (a cut ringback burst on 425 Hz looks like a first).
- Switching from a reported cadence to another on the same frequencies (UK busy to UK
  congestion) takes one more cycle: speech chopping bursts can mimic a cadence once.
- A tone is reported once; it may be reported again after another tone was reported or
  after its frequencies were absent for `GONE_PAUSES` times its cadence's longest pause
  (`TONE_GONE_MS` at least).
SIT has its own tracker, `dsp.tone_sit`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dsp.tone_plans import TONE_NAMES

FRAME_MS = 20
DEBOUNCE_FRAMES = 3  # a state must hold 60 ms; no cadence has a segment under 200 ms
EDGE_SLACK_MS = 40.0  # a segment edge can cost or add one frame at each end
LONG_CYCLE_MS = 2000  # two-segment cadences longer than this confirm on-off-on
TONE_GONE_MS = 500.0  # a pause this long ends a continuous tone's state
GONE_PAUSES = 3.0  # a cadenced tone's state ends after 3 of its longest pauses (upper
# bound): a burst or two lost under speech does not end it
QUIET_DB = 15.0  # a pause frame this far under the tone's mean frame energy is quiet: line
# noise at 20 dB SNR is 23 dB under a 50 %-duty burst; speech at the tone's level is not
QUIET_RATIO = 10.0 ** (-QUIET_DB / 10.0)
LEAD_FRAMES = 10  # 200 ms before a history's first burst (its edge frame aside) must be
# quiet to confirm from that burst: a burst of the right length inside speech has speech
# before it; the far end leaving is quiet for longer (they stop talking, then hang up)
QUICK_TONES = ("busy", "reorder")  # the hang-up tones confirmed early by `hangup_watch`
HISTORY = 8  # segments kept: a confirmation needs up to 4 (8 when switching UK cadences)
MAX_SEGMENTS = 5  # segment durations carried by an event
DIAL_CODE = TONE_NAMES.index("dial")

# state slots (int64)
_FRAME, _COMMITTED, _CUR_LEN, _CUR_START, _CAND, _CAND_RUN = 0, 1, 2, 3, 4, 5
_HIST_SIG, _HIST_N, _SKIP, _ANNOUNCED = 6, 7, 8, 9  # _ANNOUNCED: bit per reported tone code
_LOUD_AT, _LOUD_BEFORE = 10, 11  # the last two loud frames (neither the tone nor quiet)
STATE_SLOTS = 12
NEG_SLOTS = (_COMMITTED, _CAND, _HIST_SIG, _LOUD_AT, _LOUD_BEFORE)  # start at -1
FRAME_SLOT = _FRAME  # frames processed: the detector's clock
# fstate slots (float64): level sums and counts of the tone state and of the current burst,
# energy sum and count of the tone state's frames
_LVL_SUM, _LVL_N, _SEG_SUM, _SEG_N, _E_SUM, _E_N = 0, 1, 2, 3, 4, 5
# the loudest frame of the lead-in to the tone state's first burst, and a ring of the last
# RING_FRAMES frames' energies (0 for tone frames)
_LEAD_E, _RING = 6, 7
RING_FRAMES = LEAD_FRAMES + DEBOUNCE_FRAMES + 1
FSTATE_SLOTS = _RING + RING_FRAMES
# history columns (int64): frames, on, start frame, quiet (a pause without a loud frame)
HIST_COLS = 4
# params slots (float64)
_T_DIAL_SIG, _T_DIAL_HOLD = 0, 1
_T_GONE = 2  # one slot per tone code: the pause (ms) that ends that tone's state
_TRACK_PARAM_SLOTS = _T_GONE + len(TONE_NAMES)
# cadence table columns (int64): signature, segments per cycle, segments to confirm, tone,
# whether the first burst of a history may be cut short
_C_SIG, _C_LEN, _C_CONFIRM, _C_CODE, _C_CUT = 0, 1, 2, 3, 4
_CAD_COLS = 5
# event columns (int64): tone code, decision frame, onset frame, segment count, durations
E_CODE, E_AT, E_ONSET, E_NSEG, E_SEG = 0, 1, 2, 3, 4
EVENT_COLS = E_SEG + MAX_SEGMENTS


@njit(cache=True, nogil=True)
def _reset_history(state: np.ndarray, fstate: np.ndarray, sig: int, skip: int) -> None:
    state[_HIST_SIG] = sig
    state[_HIST_N] = 0
    state[_SKIP] = skip
    fstate[_LVL_SUM] = 0.0
    fstate[_LVL_N] = 0.0
    fstate[_E_SUM] = 0.0
    fstate[_E_N] = 0.0


@njit(cache=True, nogil=True)
def _debounce_kernel(raw: int, state: np.ndarray, fstate: np.ndarray, hist: np.ndarray) -> None:
    """Commit a change of frame state once the new state has held DEBOUNCE_FRAMES; the
    segment it ends goes to the history with its length up to the change."""
    state[_CUR_LEN] += 1
    if raw == state[_COMMITTED]:
        state[_CAND] = raw
        state[_CAND_RUN] = 0
        return
    state[_CAND_RUN] = state[_CAND_RUN] + 1 if raw == state[_CAND] else 1
    state[_CAND] = raw
    run = state[_CAND_RUN]
    if run < DEBOUNCE_FRAMES:
        return
    if state[_HIST_SIG] >= 0 and state[_SKIP] == 0:
        row = state[_HIST_N] % hist.shape[0]
        hist[row, 0] = state[_CUR_LEN] - run
        hist[row, 1] = 1 if state[_COMMITTED] >= 0 else 0
        hist[row, 2] = state[_CUR_START]
        hist[row, 3] = _quiet(state, state[_FRAME] - run)
        state[_HIST_N] += 1
    state[_SKIP] = 0
    if raw >= 0:
        fstate[_SEG_SUM] = 0.0
        fstate[_SEG_N] = 0.0
        if raw != state[_HIST_SIG]:
            _reset_history(state, fstate, raw, 0)
            fstate[_LEAD_E] = _lead_kernel(state[_FRAME] - run + 1, fstate)
    state[_COMMITTED] = raw
    state[_CUR_LEN] = run
    state[_CUR_START] = state[_FRAME] - run + 1
    state[_CAND_RUN] = 0


@njit(cache=True, nogil=True)
def _quiet(state: np.ndarray, end: int) -> int:
    """1 if the current segment is a pause without a loud frame but at its edges (its first
    frame, and its last, `end`, if it has ended: they may hold part of a burst)."""
    if state[_COMMITTED] >= 0:
        return 0
    start = state[_CUR_START]
    if state[_LOUD_AT] == end:
        return 1 if state[_LOUD_BEFORE] <= start else 0
    return 1 if state[_LOUD_AT] <= start else 0


@njit(cache=True, nogil=True)
def _lead_kernel(start: int, fstate: np.ndarray) -> float:
    """The loudest of the LEAD_FRAMES frames before the one before frame `start` (the ring
    holds them: the frames since are the debounce run)."""
    loudest = 0.0
    for f in range(max(start - 1 - LEAD_FRAMES, 0), start - 1):
        loudest = max(loudest, fstate[_RING + f % RING_FRAMES])
    return loudest


@njit(cache=True, nogil=True)
def _loud_kernel(raw: int, energy: float, state: np.ndarray, fstate: np.ndarray) -> None:
    """Keep the frame's energy (0 under the floor) in the ring unless it is a tone frame;
    mark it loud if that is above QUIET_RATIO times the tone state's mean frame energy."""
    fstate[_RING + state[_FRAME] % RING_FRAMES] = energy if raw < 0 else 0.0
    if raw < 0 and energy > 0.0 and energy > QUIET_RATIO * _mean_level(fstate, _E_SUM, 0.0):
        state[_LOUD_BEFORE] = state[_LOUD_AT]
        state[_LOUD_AT] = state[_FRAME]


@njit(cache=True, nogil=True)
def _running_ms(state: np.ndarray) -> int:
    """Length of the current segment, without the frames already heading for the next."""
    return int(state[_CUR_LEN] - state[_CAND_RUN]) * FRAME_MS


@njit(cache=True, nogil=True)
def _expire_kernel(
    state: np.ndarray, fstate: np.ndarray, limits: np.ndarray, params: np.ndarray
) -> None:
    """Drop the history after a pause longer than its cadences allow, or when the running
    burst is longer than any cadence allows (it is not cadenced); end the reported tone's
    state after a pause longer than its own `_T_GONE`."""
    length_ms = _running_ms(state)
    off = state[_COMMITTED] < 0
    if off and state[_HIST_SIG] >= 0 and length_ms > limits[state[_HIST_SIG], 1]:
        _reset_history(state, fstate, -1, 0)
    if off and state[_ANNOUNCED]:
        gone = 0.0
        for code in range(_TRACK_PARAM_SLOTS - _T_GONE):
            if state[_ANNOUNCED] & (1 << code):
                gone = max(gone, params[_T_GONE + code])
        if length_ms > gone:
            state[_ANNOUNCED] = 0
    sig = state[_HIST_SIG]
    if sig >= 0 and state[_COMMITTED] == sig and state[_SKIP] == 0 and length_ms > limits[sig, 0]:
        _reset_history(state, fstate, sig, 1)  # this burst never enters the history


@njit(cache=True, nogil=True)
def _window_kernel(
    state: np.ndarray, hist: np.ndarray, i: int, need: int
) -> tuple[int, int, int, int]:
    """(duration ms, on, start frame, quiet) of segment i of the last `need` (the last is
    running)."""
    if i == need - 1:
        on = 1 if state[_COMMITTED] >= 0 else 0
        return _running_ms(state), on, state[_CUR_START], _quiet(state, -1)
    row = (state[_HIST_N] - (need - 1) + i) % hist.shape[0]
    return hist[row, 0] * FRAME_MS, hist[row, 1], hist[row, 2], hist[row, 3]


@njit(cache=True, nogil=True)
def _fits_kernel(
    t: int, r: int, need: int, cut: bool, quiet: bool, cad: np.ndarray, cad_ms: np.ndarray,
    state: np.ndarray, hist: np.ndarray,
) -> bool:  # fmt: skip
    """Do the last `need` segments fit tone t's cadence from phase r? `cut`: the first burst
    is only bounded above; `quiet`: every pause must be quiet."""
    length = cad[t, _C_LEN]
    for i in range(need):
        p = (r + i) % length
        dur, on, _, calm = _window_kernel(state, hist, i, need)
        if on != 1 - p % 2 or dur > cad_ms[t, 1, p] or (quiet and on == 0 and calm == 0):
            return False
        if dur < cad_ms[t, 0, p] and not (cut and i == 0 and on == 1):
            return False
    return True


@njit(cache=True, nogil=True)
def _match_kernel(
    t: int, need: int, cad: np.ndarray, cad_ms: np.ndarray, state: np.ndarray, hist: np.ndarray
) -> bool:
    """Do the last `need` segments (the running one included) fit tone t's cadence at some
    phase?"""
    if state[_SKIP] != 0 or state[_HIST_N] < need - 1:
        return False
    # the window opens with the history's first burst, which may have been joined late
    from_start = state[_HIST_N] == need - 1 and cad[t, _C_CUT] == 1
    for r in range(cad[t, _C_LEN]):
        if _fits_kernel(t, r, need, from_start, False, cad, cad_ms, state, hist):
            return True
    return False


@njit(cache=True, nogil=True)
def _quick_kernel(
    t: int, cad: np.ndarray, cad_ms: np.ndarray, quick: np.ndarray, state: np.ndarray,
    fstate: np.ndarray, hist: np.ndarray,
) -> int:  # fmt: skip
    """Segments of a quick confirmation of tone t (`quick_windows`) the history now shows,
    or 0. What comes before the window must be quiet too: the lead-in of the history's
    first burst, or the pause before a later one."""
    if state[_SKIP] != 0:
        return 0
    lead_quiet = fstate[_LEAD_E] <= QUIET_RATIO * _mean_level(fstate, _E_SUM, 0.0)
    for r in range(0, cad[t, _C_LEN], 2):
        for first in range(2):
            need = quick[t, first, r]
            opens = state[_HIST_N] == need - 1  # the window opens the history
            if need == 0 or state[_HIST_N] < need - 1 or opens != (first == 1):
                continue
            before = (state[_HIST_N] - need) % hist.shape[0]  # the pause before (not opens)
            if not (lead_quiet if opens else hist[before, 3] == 1):
                continue
            if _fits_kernel(t, r, need, False, True, cad, cad_ms, state, hist):
                return int(need)
    return 0


@njit(cache=True, nogil=True)
def _emit_kernel(
    events: np.ndarray, ev_level: np.ndarray, n_ev: int, code: int, onset: int, frame: int,
    level: float,
) -> int:  # fmt: skip
    """Write an event row (no segments yet); returns the new event count."""
    events[n_ev, E_CODE] = code
    events[n_ev, E_AT] = frame
    events[n_ev, E_ONSET] = onset
    events[n_ev, E_NSEG] = 0
    ev_level[n_ev] = level
    return n_ev + 1


@njit(cache=True, nogil=True)
def _mean_level(fstate: np.ndarray, slot: int, fallback: float) -> float:
    """Mean of the level sum at `slot` (its count at slot + 1), or `fallback` if empty."""
    return fstate[slot] / fstate[slot + 1] if fstate[slot + 1] > 0 else fallback


@njit(cache=True, nogil=True)
def _hold_kernel(state: np.ndarray, fstate: np.ndarray) -> tuple[int, float]:
    """The signature of the burst under way and its mean level (dBm0), or (-1, 0.0)."""
    if state[_COMMITTED] < 0 or fstate[_SEG_N] == 0:
        return -1, 0.0
    return state[_COMMITTED], fstate[_SEG_SUM] / fstate[_SEG_N]


@njit(cache=True, nogil=True)
def _dial_kernel(
    level: float, params: np.ndarray, state: np.ndarray, fstate: np.ndarray,
    events: np.ndarray, ev_level: np.ndarray, n_ev: int,
) -> int:  # fmt: skip
    """Name dial tone once its burst has lasted the hold time."""
    bit = 1 << DIAL_CODE
    dial_sig = int(params[_T_DIAL_SIG])
    if dial_sig < 0 or state[_COMMITTED] != dial_sig or state[_ANNOUNCED] & bit:
        return n_ev
    if _running_ms(state) < params[_T_DIAL_HOLD]:
        return n_ev
    state[_ANNOUNCED] = bit
    lvl = _mean_level(fstate, _SEG_SUM, level)
    n_ev = _emit_kernel(events, ev_level, n_ev, DIAL_CODE, state[_CUR_START], state[_FRAME], lvl)
    events[n_ev - 1, E_NSEG] = 1
    events[n_ev - 1, E_SEG] = _running_ms(state)
    return n_ev


@njit(cache=True, nogil=True)
def _confirm_kernel(
    t: int, switching: bool, cad: np.ndarray, cad_ms: np.ndarray, quick: np.ndarray,
    state: np.ndarray, fstate: np.ndarray, hist: np.ndarray,
) -> int:  # fmt: skip
    """Segments over which tone t is confirmed now, or 0."""
    need = cad[t, _C_CONFIRM]
    if switching:  # speech chopping bursts can mimic a cadence once, rarely twice
        need = min(need + cad[t, _C_LEN], hist.shape[0] + 1)
    else:
        quick_need = _quick_kernel(t, cad, cad_ms, quick, state, fstate, hist)
        if quick_need > 0:
            return quick_need
    return need if _match_kernel(t, need, cad, cad_ms, state, hist) else 0


@njit(cache=True, nogil=True)
def _sums_kernel(
    raw: int, level: float, energy: float, clean: bool, state: np.ndarray, fstate: np.ndarray
) -> None:
    """Add the frame to the level sums of the burst (if `clean`) and of the tone state, and
    to the tone state's energy sum."""
    if raw >= 0 and raw == state[_COMMITTED] and clean:
        fstate[_SEG_SUM] += level
        fstate[_SEG_N] += 1.0
    if raw >= 0 and raw == state[_HIST_SIG]:
        fstate[_LVL_SUM] += level
        fstate[_LVL_N] += 1.0
        fstate[_E_SUM] += energy
        fstate[_E_N] += 1.0


@njit(cache=True, nogil=True)
def _tone_step_kernel(
    raw: int, level: float, energy: float, clean: bool, cad: np.ndarray, cad_ms: np.ndarray,
    quick: np.ndarray, limits: np.ndarray, params: np.ndarray, state: np.ndarray,
    fstate: np.ndarray, hist: np.ndarray, events: np.ndarray, ev_level: np.ndarray, n_ev: int,
) -> int:  # fmt: skip
    """Advance the tracker by one frame in state `raw` (`clean`: it passed the full purity;
    `energy`: the frame's above the low band, 0 under the floor); returns the new event
    count."""
    _loud_kernel(raw, energy, state, fstate)
    _debounce_kernel(raw, state, fstate, hist)
    _expire_kernel(state, fstate, limits, params)
    _sums_kernel(raw, level, energy, clean, state, fstate)
    sig = state[_HIST_SIG]
    n_ev = _dial_kernel(level, params, state, fstate, events, ev_level, n_ev)
    if sig < 0:
        return n_ev
    switching = False  # another cadence on these frequencies is the current tone
    for t in range(cad.shape[0]):
        if cad[t, _C_SIG] == sig and state[_ANNOUNCED] & (1 << cad[t, _C_CODE]):
            switching = True
    for t in range(cad.shape[0]):
        bit = 1 << cad[t, _C_CODE]
        if cad[t, _C_SIG] != sig or state[_ANNOUNCED] & bit:
            continue
        need = _confirm_kernel(t, switching, cad, cad_ms, quick, state, fstate, hist)
        if need == 0:
            continue
        state[_ANNOUNCED] = bit
        n_ev = _emit_cadence(
            cad[t, _C_CODE], need, level, state, fstate, hist, events, ev_level, n_ev
        )
    return n_ev


@njit(cache=True, nogil=True)
def _emit_cadence(
    code: int, need: int, level: float, state: np.ndarray, fstate: np.ndarray,
    hist: np.ndarray, events: np.ndarray, ev_level: np.ndarray, n_ev: int,
) -> int:  # fmt: skip
    """Report a cadenced tone matched over the last `need` segments (the last
    MAX_SEGMENTS of them go into the event)."""
    onset = _window_kernel(state, hist, 0, need)[2]
    lvl = _mean_level(fstate, _LVL_SUM, level)
    n_ev = _emit_kernel(events, ev_level, n_ev, code, onset, state[_FRAME], lvl)
    shown = min(need, MAX_SEGMENTS)
    events[n_ev - 1, E_NSEG] = shown
    for i in range(shown):
        events[n_ev - 1, E_SEG + i] = _window_kernel(state, hist, need - shown + i, need)[0]
    return n_ev
