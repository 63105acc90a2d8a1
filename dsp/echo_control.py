"""The echo canceller's per-frame decisions (`dsp.echo_frame` calls them once per 20 ms
frame): the two-path scheme, double talk, the step size, the ERLE estimate, the noise floor.

Two paths (Ochiai et al. 1977; speexdsp's mdf.c has a version): the background filter
adapts, the foreground makes the output and changes only by copying the background when
the background is significantly better. "Significantly" is a test on the frame's error
powers: the foreground's Sff and the background's See improve by d = Sff - See, the filters'
outputs differ by Dbf; d^2 > Sff Dbf on the frame, or the same test on short and long
averages of d, copies. Small steady gains (0.3 dB on 400 ms averages) copy too when nothing
is suspect: in slow late convergence no single frame is significant. A background 3 dB
worse than the foreground on a significant test is reset to it (it ran off).

`suspect`: the foreground's error is 6 dB above what its echo estimate, ERLE estimate and
the noise floor predict while the far end talks: double talk or an echo path change. The
delay estimator's coherence tells them apart (`dsp.echo_delay`): near-end speech is
uncorrelated with the reference, so in double talk the best partition's coherence falls
(measured: 0.30 to 0.05-0.15 within 100 ms), while after a path change it stays high, at the
old partition or a new one. In double talk the background stops adapting and nothing is
copied; on a change it steps at `MU_CONVERGE` and a 3 dB better background is copied. The
ERLE estimate learns only from frames that are neither, so double talk never drags it down.

The step otherwise: `MU_CONVERGE` until the ERLE estimate reaches `MU_FULL_BELOW_DB`, then
the optimal step of a noisy NLMS (Haensler and Schmidt), `MU_MAX` times the residual echo's
share of the error (residual / (residual + noise floor)), at least `MU_MIN`: large while
there is echo to remove, small once the codec's noise dominates (which keeps the gradient
noise under it: 35-36 dB ERLE against a 36.7 dB ceiling on the mu-law line).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Float state slots (array `fst`).
DC_REF, DC_REF_OUT, DC_MIC, DC_MIC_OUT = 0, 1, 2, 3  # DC blockers: last input and output
AVG_SHORT, AVG_LONG, VAR_SHORT, VAR_LONG = 4, 5, 6, 7  # two-path test averages
ERLE_NUM, ERLE_DEN, REPORT_NUM, REPORT_DEN = 8, 9, 10, 11
NOISE, FAR_POWER, MU_NOW = 12, 13, 14
SLOW_FG, SLOW_BG = 15, 16  # long averages of the two errors
FLOOR_AVG = 17  # the noise floor averaged like the ERLE's parts
COH_REF = 18  # the echo's usual coherence (frames with far-end speech, nothing suspect)
FLOAT_SLOTS = 19
# Int state slots (array `ist`).
# Ring heads (delay estimator, filter), the filter's bulk delay (samples), the constraint
# round-robin's turn, frames since the last copy, flags, the echo's main tap (samples back,
# from the filter's taps; -1 unknown), the delay tracker's three slots (`echo_delay`).
HEAD, FHEAD, DELAY, TURN, SINCE_COPY, SUSPECT, DOUBLE_TALK, CONVERGED, LAG = range(9)
COARSE = 9  # 9, 10, 11: candidate partition, frames held, accepted partition (-1 none)
PEAK, PEAK_HELD = 12, 13  # the filter's largest tap (samples back) and frames it held
SPAN = 14  # the echo lies in [LAG, LAG + SPAN] (a span while the estimator wavers)
EVIDENCE = 15  # blocks of far-end speech in the delay estimator (up to its minimum)
INT_SLOTS = 16

MU_CONVERGE = 0.6
MU_MAX = 0.8
MU_MIN = 0.1
MU_FULL_BELOW_DB = 15.0
SUSPECT_RATIO = 4.0  # 6 dB above the predicted residual + noise
DT_COHERENCE_RATIO = 0.5  # coherence under half its usual value: double talk
COH_SMOOTHING = 0.98  # per frame: the usual coherence over ~1 s
CONVERGED_DB = 20.0
FAR_ACTIVE_POWER = 50.0  # per-sample power of the reference (int16^2), about -55 dBm0
FAR_DECAY = 0.5  # per frame: the far end counts as active for ~100 ms after it stops
ERLE_SMOOTHING = 0.9  # per frame (200 ms)
ERLE_CAP = 1e6  # 60 dB
NOISE_FALL = 0.5  # the noise floor follows a quieter frame, by at most 3 dB per frame ...
NOISE_RISE = 1.0012  # ... and rises 0.5 dB/s (1.0012^50 per second)
TWO_PATH_SHORT, TWO_PATH_LONG = 0.5, 0.85  # per-frame smoothing of the test averages
TWO_PATH_SLOW = 0.95  # per frame: 400 ms averages of both errors ...
SLOW_MARGIN = 0.93  # ... the background 0.3 dB better on them is copied too
BACKTRACK_RATIO = 2.0  # the background is reset only when 3 dB worse (it ran off)
SUSPECT_COPY_RATIO = 0.5  # a suspect foreground is replaced only by a 3 dB better one


@njit(cache=True, nogil=True)
def _dc_block_kernel(x: np.ndarray, out: np.ndarray, at: int, fst: np.ndarray, slot: int) -> None:
    """First-order DC blocker y[n] = x[n] - x[n-1] + 0.999 y[n-1] of int16 x into
    out[at:]: -3 dB at 1.3 Hz, 0.7 degrees of phase at 100 Hz (a male voice's pitch keeps its
    waveform within -38 dB). State: fst[slot] last input, fst[slot + 1] last output."""
    x1, y1 = fst[slot], fst[slot + 1]
    for n in range(x.shape[0]):
        v = float(x[n])
        y1 = v - x1 + 0.999 * y1
        x1 = v
        out[at + n] = y1
    fst[slot], fst[slot + 1] = x1, y1


@njit(cache=True, nogil=True)
def _two_path_kernel(
    sff: float, see: float, dbf: float, suspect: bool, double_talk: bool, fst: np.ndarray
) -> int:
    """The two-path test on one frame's per-sample powers (foreground error sff, background
    error see, their difference dbf), given the last frame's flags: 1 copy background to
    foreground, -1 reset the background to the foreground, 0 neither."""
    d = sff - see
    spread = sff * dbf
    fst[AVG_SHORT] = TWO_PATH_SHORT * fst[AVG_SHORT] + (1.0 - TWO_PATH_SHORT) * d
    fst[AVG_LONG] = TWO_PATH_LONG * fst[AVG_LONG] + (1.0 - TWO_PATH_LONG) * d
    fst[VAR_SHORT] = TWO_PATH_SHORT**2 * fst[VAR_SHORT] + (1.0 - TWO_PATH_SHORT) ** 2 * spread
    fst[VAR_LONG] = TWO_PATH_LONG**2 * fst[VAR_LONG] + (1.0 - TWO_PATH_LONG) ** 2 * spread
    fst[SLOW_FG] += (1.0 - TWO_PATH_SLOW) * (sff - fst[SLOW_FG])
    fst[SLOW_BG] += (1.0 - TWO_PATH_SLOW) * (see - fst[SLOW_BG])
    short, long_ = fst[AVG_SHORT], fst[AVG_LONG]
    action = 0
    significant = (
        d * abs(d) > spread
        or short * abs(short) > 0.5 * fst[VAR_SHORT]
        or (long_ * abs(long_) > 0.25 * fst[VAR_LONG])
    )
    if double_talk:  # what the background gains on the caller must not add up for later
        action = 0
        for s in (AVG_SHORT, AVG_LONG, VAR_SHORT, VAR_LONG):
            fst[s] = 0.0
        fst[SLOW_BG] = fst[SLOW_FG]
    elif (significant and (not suspect or see < SUSPECT_COPY_RATIO * sff)) or (
        not suspect and fst[SLOW_BG] < SLOW_MARGIN * fst[SLOW_FG]
    ):
        action = 1
    if action == 0 and -d * abs(d) > 4.0 * spread and see > BACKTRACK_RATIO * sff:
        action = -1
    if action != 0:
        for s in (AVG_SHORT, AVG_LONG, VAR_SHORT, VAR_LONG):
            fst[s] = 0.0
        fst[SLOW_FG] = fst[SLOW_BG]
    return action


@njit(cache=True, nogil=True)
def _erle_db(num: float, den: float) -> float:
    """10 log10(num / den), capped at ERLE_CAP; 0 dB before any data (both 0)."""
    return 10.0 * math.log10((num + 1e-9) / (max(den, num / ERLE_CAP) + 1e-9))


@njit(cache=True, nogil=True)
def _noise_floor_kernel(sff: float, fst: np.ndarray) -> None:
    """Track the line's noise floor: the foreground error's minimum over frames, falling at
    most 3 dB per frame (one quiet frame is not a floor) and rising 0.5 dB/s."""
    if fst[NOISE] < 0.0 or sff < NOISE_FALL * fst[NOISE]:
        fst[NOISE] = max(sff, NOISE_FALL * fst[NOISE])
    elif sff < fst[NOISE]:
        fst[NOISE] = sff
    else:
        fst[NOISE] *= NOISE_RISE


@njit(cache=True, nogil=True)
def _talk_state_kernel(
    pw: np.ndarray, codec_var: float, coherence: float, fst: np.ndarray, ist: np.ndarray
) -> None:
    """Per-sample frame powers `pw` (mic, foreground error, -, -, foreground echo estimate,
    reference: `dsp.echo_frame` P_*), the frame's codec noise and the reference's share of
    the mic (`echo_delay._explained_kernel`): update the noise floor, far activity and the
    suspect / double-talk flags, before the two-path test acts on them."""
    sff, syy = pw[1], pw[4]
    _noise_floor_kernel(sff, fst)
    fst[FAR_POWER] = max(pw[5], FAR_DECAY * fst[FAR_POWER])
    far = fst[FAR_POWER] > FAR_ACTIVE_POWER
    erle = (fst[ERLE_NUM] + 1e-9) / (fst[ERLE_DEN] + 1e-9)
    suspect = far and sff > SUSPECT_RATIO * (syy / erle + fst[NOISE] + codec_var)
    ist[SUSPECT] = suspect
    ist[DOUBLE_TALK] = suspect and coherence < DT_COHERENCE_RATIO * fst[COH_REF]
    if far and not suspect and coherence > DT_COHERENCE_RATIO * fst[COH_REF]:
        fst[COH_REF] += (1.0 - COH_SMOOTHING) * (coherence - fst[COH_REF])


@njit(cache=True, nogil=True)
def _stats_kernel(
    pw: np.ndarray, codec_var: float, copied: bool, fst: np.ndarray, ist: np.ndarray
) -> None:
    """After the two-path test: the ERLE estimates (from frames with far-end speech that are
    not suspect, or where a clearly better background was just copied), the converged flag
    and the next frame's step (fst[MU_NOW])."""
    sdd, sff, syy = pw[0], pw[1], pw[4]
    floor = fst[NOISE] + codec_var
    far = fst[FAR_POWER] > FAR_ACTIVE_POWER
    ist[SINCE_COPY] = 0 if copied else ist[SINCE_COPY] + 1
    if far and syy > 4.0 * floor and (copied or not ist[SUSPECT]):
        a = 1.0 - ERLE_SMOOTHING
        fst[ERLE_NUM] += a * (max(sdd - floor, 0.0) - fst[ERLE_NUM])
        fst[ERLE_DEN] += a * (max(sff - floor, 0.0) - fst[ERLE_DEN])
        fst[REPORT_NUM] += a * (max(sdd - fst[NOISE], 0.0) - fst[REPORT_NUM])
        fst[REPORT_DEN] += a * (max(sff - fst[NOISE], 0.0) - fst[REPORT_DEN])
        fst[FLOOR_AVG] += a * (floor - fst[FLOOR_AVG])
    erle_db = _erle_db(fst[ERLE_NUM], fst[ERLE_DEN])
    ist[CONVERGED] = erle_db >= CONVERGED_DB
    if ist[DOUBLE_TALK]:
        fst[MU_NOW] = 0.0
    else:
        fst[MU_NOW] = _step_size(erle_db, fst[ERLE_DEN], fst[FLOOR_AVG], bool(ist[SUSPECT]))


@njit(cache=True, nogil=True)
def _step_size(erle_db: float, residual: float, floor: float, suspect: bool) -> float:
    """MU_MAX while converging (ERLE < MU_FULL_BELOW_DB) or suspect; then the optimal step
    of a noisy NLMS (Haensler and Schmidt): MU_MAX times the residual echo's share of the
    error, residual / (residual + noise floor), at least MU_MIN."""
    if suspect or erle_db <= MU_FULL_BELOW_DB:
        return MU_CONVERGE
    return max(MU_MAX * residual / (residual + floor + 1e-9), MU_MIN)


def control_state() -> tuple[np.ndarray, np.ndarray]:
    """Fresh (float, int) state arrays: no lag, no noise floor yet (the first frame's)."""
    fst = np.zeros(FLOAT_SLOTS, np.float64)
    ist = np.zeros(INT_SLOTS, np.int64)
    fst[NOISE] = -1.0
    fst[COH_REF] = 0.1
    fst[MU_NOW] = MU_CONVERGE
    ist[LAG] = ist[COARSE] = ist[COARSE + 2] = ist[PEAK] = -1
    return fst, ist
