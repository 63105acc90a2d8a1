"""Packet loss concealment for the received audio stream, after ITU-T G.711 Appendix I (09/99).

Owns `Concealer`. Its owner (the playout/jitter stage of one call) hands it every received
frame through `good()` and calls `lost()` for every frame that did not arrive in time; both
return the frame to play. A lost frame is filled by repeating the last pitch period(s) of a
48.75 ms history, found by normalised cross-correlation; the first good frame after a loss is
cross-faded with the continued synthetic signal. The algorithm runs on the appendix's 10 ms
sub-frames, so a frame is a multiple of 80 samples.

Delay: as in the appendix, every output frame lags the input by `DELAY_SAMPLES` (30 samples,
3.75 ms), good and lost frames alike. The lag keeps the last quarter period before a loss
unplayed, so that it can still be cross-faded into the repeated period; a zero-delay variant
(same algorithm, that cross-fade never heard) scored 0.05-0.07 PESQ MOS lower on random loss.

One deviation, measured: the appendix fades the repetition by 20 % per 10 ms to silence at
60 ms. We follow that fade down to `FADE_FLOOR` (20 %, reached 50 ms into the loss), hold it
to 150 ms and reach exact silence at 200 ms. With the appendix's fade, bursty loss (mean burst
50 ms) scored no better than repeating the last frame at half level, because every burst past
60 ms became a hole; with the floor we lead it by about 0.1 MOS, and random-loss scores are
unchanged (`python -m tests.bench.plc`).

The kernels work on float64 arrays holding whole sample values: the correlation sums are
exact, and the numpy references in `tests/dsp/reference/plc.py` match them bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import FRAME_SAMPLES, as_int16

SUBFRAME_SAMPLES = 80  # G.711 App. I works on 10 ms frames at 8 kHz
PITCH_MIN_SAMPLES = 40  # App. I: highest pitch searched, 200 Hz
PITCH_MAX_SAMPLES = 120  # App. I: lowest pitch searched, 66.7 Hz
CORR_SAMPLES = 160  # App. I: the last 20 ms are matched against the history
CORR_STEP = 2  # App. I: the coarse search uses every 2nd sample and every 2nd lag
CORR_MIN_POWER = 250.0  # App. I: floor on the energy normalising a correlation (silence)
DELAY_SAMPLES = PITCH_MAX_SAMPLES // 4  # App. I: the largest quarter-period overlap, 3.75 ms
HISTORY_SAMPLES = 3 * PITCH_MAX_SAMPLES + DELAY_SAMPLES  # App. I: 390 samples, 48.75 ms
FADE_START_SAMPLES = 80  # App. I: no attenuation during the first 10 ms of a loss,
FADE_SPAN_SAMPLES = 400  # then -20 % per 10 ms (App. I would be silent at 60 ms) ...
FADE_FLOOR = 0.2  # ... down to -14 dB, reached 50 ms in; held (measured: see the docstring)
FLOOR_END_SAMPLES = 1200  # until 150 ms into the loss,
SILENT_AFTER_SAMPLES = 1600  # then linear to exact silence at 200 ms
MAX_PERIODS = 3  # App. I: one period for 10 ms, one more each 10 ms after, up to three
END_OVERLAP_STEP_SAMPLES = 32  # App. I.2.7: the end overlap grows 4 ms per extra 10 ms lost,
END_OVERLAP_MAX_SAMPLES = 80  # up to 10 ms

# Slots of the int64 state array: period, quarter-period overlap, read offset into the
# repeated segment, segment length (1..3 periods), samples concealed in the current loss.
_PITCH, _OVERLAP, _OFFSET, _LENGTH, _LOST = 0, 1, 2, 3, 4
_STATE_SLOTS = 5

# Functions without the `_kernel` suffix are helpers, called only from inside the kernels.


@njit(cache=True, nogil=True)
def _match_score(history: np.ndarray, start: int, step: int) -> float:
    """Correlation of history[start:start+160:step] with the last 160 samples, over its RMS."""
    tail = history.shape[0] - CORR_SAMPLES
    corr = 0.0
    energy = 0.0
    for i in range(0, CORR_SAMPLES, step):
        past = history[start + i]
        corr += past * history[tail + i]
        energy += past * past
    return corr / math.sqrt(max(energy, CORR_MIN_POWER))


@njit(cache=True, nogil=True)
def _find_pitch_kernel(history: np.ndarray) -> int:
    """Period (40..120 samples) that best predicts the last 20 ms: coarse search, then +-1.

    A full search over all 81 lags costs 3x as much (8 vs 2.7 us on the dev x86) and moved
    the PESQ table by under 0.01 MOS, so we keep the appendix's two steps."""
    first = history.shape[0] - CORR_SAMPLES - PITCH_MAX_SAMPLES  # the segment 120 back
    span = PITCH_MAX_SAMPLES - PITCH_MIN_SAMPLES
    best_shift = 0
    best = _match_score(history, first, CORR_STEP)
    for shift in range(CORR_STEP, span + 1, CORR_STEP):
        score = _match_score(history, first + shift, CORR_STEP)
        if score >= best:  # ties go to the shorter period, as in the appendix
            best, best_shift = score, shift
    low = max(best_shift - 1, 0)
    high = min(best_shift + 1, span)
    best_shift = low
    best = _match_score(history, first + low, 1)
    for shift in range(low + 1, high + 1):
        score = _match_score(history, first + shift, 1)
        if score >= best:
            best, best_shift = score, shift
    return PITCH_MAX_SAMPLES - best_shift


@njit(cache=True, nogil=True)
def _blend_tail(pitch_buf: np.ndarray, last_quarter: np.ndarray, length: int, overlap: int) -> None:
    """Fade the buffer's last `overlap` samples (originally `last_quarter`) into the ones just
    before the repeated `length` samples, so that looping over them has no seam."""
    end = pitch_buf.shape[0]
    for i in range(overlap):
        w = (i + 1) / overlap
        before = pitch_buf[end - length - overlap + i]
        pitch_buf[end - overlap + i] = (1.0 - w) * last_quarter[i] + w * before


@njit(cache=True, nogil=True)
def _read_loop(pitch_buf: np.ndarray, state: np.ndarray, out: np.ndarray, count: int) -> None:
    """Copy `count` samples of the repeated segment into `out`, advancing the read offset."""
    length = state[_LENGTH]
    start = pitch_buf.shape[0] - length
    offset = state[_OFFSET]
    for i in range(count):
        out[i] = pitch_buf[start + offset]
        offset += 1
        if offset == length:
            offset = 0
    state[_OFFSET] = offset


@njit(cache=True, nogil=True)
def _fade_gain_kernel(lost_samples: int) -> float:
    """Gain of the synthetic sample `lost_samples` into a loss: 1 for 10 ms, -20 % per 10 ms
    down to `FADE_FLOOR`, held to 150 ms, then linear to 0 at 200 ms."""
    if lost_samples < FADE_START_SAMPLES:
        return 1.0
    if lost_samples < FLOOR_END_SAMPLES:
        app_i = (FADE_START_SAMPLES + FADE_SPAN_SAMPLES - lost_samples) / FADE_SPAN_SAMPLES
        return max(FADE_FLOOR, app_i)
    tail = SILENT_AFTER_SAMPLES - FLOOR_END_SAMPLES
    return FADE_FLOOR * (max(0, SILENT_AFTER_SAMPLES - lost_samples) / tail)


@njit(cache=True, nogil=True)
def _push(history: np.ndarray, block: np.ndarray, out: np.ndarray) -> None:
    """Append a sub-frame (rounded, saturated) to the history; `out` gets the delayed one."""
    n = block.shape[0]
    end = history.shape[0]
    for i in range(end - n):
        history[i] = history[i + n]
    for i in range(n):
        history[end - n + i] = min(max(math.floor(block[i] + 0.5), -32768.0), 32767.0)
    for i in range(n):
        out[i] = np.int16(history[end - n - DELAY_SAMPLES + i])


@njit(cache=True, nogil=True)
def _start_loss(
    history: np.ndarray, pitch_buf: np.ndarray, last_quarter: np.ndarray, state: np.ndarray
) -> None:
    """First lost sub-frame: find the period, make it loopable, smooth the unplayed tail."""
    end = history.shape[0]
    for i in range(end):
        pitch_buf[i] = history[i]
    pitch = _find_pitch_kernel(pitch_buf)
    overlap = pitch >> 2  # App. I: overlap-add over a quarter period
    for i in range(overlap):
        last_quarter[i] = pitch_buf[end - overlap + i]
    state[_PITCH], state[_OVERLAP], state[_OFFSET], state[_LENGTH] = pitch, overlap, 0, pitch
    _blend_tail(pitch_buf, last_quarter, pitch, overlap)
    for i in range(end - overlap, end):  # still in the delay line: the smoothed tail is played
        history[i] = math.floor(pitch_buf[i] + 0.5)


@njit(cache=True, nogil=True)
def _add_period(
    pitch_buf: np.ndarray,
    last_quarter: np.ndarray,
    state: np.ndarray,
    block: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """10 and 20 ms into a loss: loop over one more period, cross-fading from the old loop."""
    overlap = state[_OVERLAP]
    offset = state[_OFFSET]
    _read_loop(pitch_buf, state, scratch, overlap)
    state[_OFFSET] = offset % state[_PITCH]  # the same phase, in the longer segment
    state[_LENGTH] += state[_PITCH]
    _blend_tail(pitch_buf, last_quarter, state[_LENGTH], overlap)
    _read_loop(pitch_buf, state, block, block.shape[0])
    for i in range(overlap):
        w = (i + 1) / overlap
        block[i] = (1.0 - w) * scratch[i] + w * block[i]


@njit(cache=True, nogil=True)
def _conceal(
    history: np.ndarray,
    pitch_buf: np.ndarray,
    last_quarter: np.ndarray,
    state: np.ndarray,
    block: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Synthesize one lost 10 ms sub-frame into `block`."""
    lost = state[_LOST]
    if lost >= SILENT_AFTER_SAMPLES:
        block[:] = 0.0
    else:
        if lost == 0:
            _start_loss(history, pitch_buf, last_quarter, state)
            _read_loop(pitch_buf, state, block, block.shape[0])
        elif lost < MAX_PERIODS * SUBFRAME_SAMPLES:
            _add_period(pitch_buf, last_quarter, state, block, scratch)
        else:
            _read_loop(pitch_buf, state, block, block.shape[0])
        for i in range(block.shape[0]):
            block[i] = _fade_gain_kernel(lost + i) * block[i]
    state[_LOST] = lost + block.shape[0]


@njit(cache=True, nogil=True)
def _lost_kernel(
    history: np.ndarray,
    pitch_buf: np.ndarray,
    last_quarter: np.ndarray,
    state: np.ndarray,
    work: np.ndarray,
    scratch: np.ndarray,
    out: np.ndarray,
) -> None:
    """Conceal one lost frame: `out` (int16) gets the delayed output."""
    for s in range(0, out.shape[0], SUBFRAME_SAMPLES):
        block = work[s : s + SUBFRAME_SAMPLES]
        _conceal(history, pitch_buf, last_quarter, state, block, scratch)
        _push(history, block, out[s : s + SUBFRAME_SAMPLES])


@njit(cache=True, nogil=True)
def _good_kernel(
    frame: np.ndarray,
    history: np.ndarray,
    pitch_buf: np.ndarray,
    state: np.ndarray,
    work: np.ndarray,
    scratch: np.ndarray,
    out: np.ndarray,
) -> None:
    """Take one received int16 frame: `out` (int16) gets the delayed output. After a loss the
    frame's start is cross-faded from the continued synthetic signal (App. I.2.7)."""
    for i in range(frame.shape[0]):
        work[i] = frame[i]
    lost = state[_LOST]
    if lost > 0:
        extra = (lost // SUBFRAME_SAMPLES - 1) * END_OVERLAP_STEP_SAMPLES
        count = min(state[_OVERLAP] + extra, END_OVERLAP_MAX_SAMPLES)
        gain = _fade_gain_kernel(lost)
        _read_loop(pitch_buf, state, scratch, count)
        for i in range(count):
            w = (i + 1) / count
            work[i] = (1.0 - w) * (gain * scratch[i]) + w * work[i]
        state[_LOST] = 0
    for s in range(0, out.shape[0], SUBFRAME_SAMPLES):
        _push(history, work[s : s + SUBFRAME_SAMPLES], out[s : s + SUBFRAME_SAMPLES])


class Concealer:
    """Conceals lost frames of one audio stream (G.711 App. I). Call `good(frame)` for every
    received frame and `lost()` for every missing one, in playout order. A loss is filled
    from the last pitch period(s) and fades to exact silence 200 ms in.

    Both return a new int16 array of `frame_samples` (the caller owns it), delayed by
    `DELAY_SAMPLES` (3.75 ms) against the input. `concealed_frames` counts `lost()` calls.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if frame_samples <= 0 or frame_samples % SUBFRAME_SAMPLES:
            raise DspInputError(
                f"Concealer wants frames of a multiple of {SUBFRAME_SAMPLES} samples (10 ms), "
                f"got {frame_samples}"
            )
        self.frame_samples = frame_samples
        self.concealed_frames = 0
        self._history = np.zeros(HISTORY_SAMPLES, np.float64)
        self._pitch_buf = np.zeros(HISTORY_SAMPLES, np.float64)
        self._last_quarter = np.zeros(DELAY_SAMPLES, np.float64)
        self._state = np.zeros(_STATE_SLOTS, np.int64)
        self._work = np.zeros(frame_samples, np.float64)
        self._scratch = np.zeros(END_OVERLAP_MAX_SAMPLES, np.float64)

    def good(self, frame: NDArray[np.int16]) -> NDArray[np.int16]:
        """Take a received frame (int16, `frame_samples`); return the frame to play."""
        pcm = as_int16(frame, "Concealer.good")
        if pcm.shape[0] != self.frame_samples:
            raise DspInputError(
                f"Concealer.good wants {self.frame_samples} samples, got {pcm.shape[0]}"
            )
        out = np.empty(self.frame_samples, np.int16)
        _good_kernel(
            pcm, self._history, self._pitch_buf, self._state, self._work, self._scratch, out
        )
        return out

    def lost(self) -> NDArray[np.int16]:
        """Stand in for a missing frame; return the frame to play (int16, `frame_samples`)."""
        out = np.empty(self.frame_samples, np.int16)
        _lost_kernel(
            self._history,
            self._pitch_buf,
            self._last_quarter,
            self._state,
            self._work,
            self._scratch,
            out,
        )
        self.concealed_frames += 1
        return out

    @property
    def concealing(self) -> bool:
        """True between a `lost()` and the next `good()`."""
        return bool(self._state[_LOST] > 0)

    def reset(self) -> None:
        """Forget the stream (history, loss in progress, delay line) and zero the counter."""
        for arr in (self._history, self._pitch_buf, self._last_quarter, self._work):
            arr.fill(0.0)
        self._state.fill(0)
        self.concealed_frames = 0
