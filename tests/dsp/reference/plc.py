"""Plain numpy reference for `dsp.plc`: the same G.711 Appendix I concealment, written with
whole-array operations (dot products, modular indexing, concatenation) and a state object
instead of the kernels' sample loops and state slots. It matches the kernels bit for bit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

SUB = 80  # 10 ms sub-frame
HISTORY = 390
DELAY = 30


def _zeros(n: int) -> NDArray[np.float64]:
    return np.zeros(n, np.float64)


@dataclass
class RefState:
    history: NDArray[np.float64] = field(default_factory=lambda: _zeros(HISTORY))
    pitch_buf: NDArray[np.float64] = field(default_factory=lambda: _zeros(HISTORY))
    last_quarter: NDArray[np.float64] = field(default_factory=lambda: _zeros(0))
    pitch: int = 0
    overlap: int = 0
    offset: int = 0
    length: int = 0
    lost: int = 0


def ref_find_pitch(history: NDArray[np.float64]) -> int:
    """Period in 40..120 maximising corr(past, last 160) / |past|, coarse (step 2) then fine."""
    tail = history[-160:]
    first = history.size - 160 - 120

    def score(shift: int, step: int) -> float:
        past = history[first + shift : first + shift + 160 : step]
        energy = max(float(np.dot(past, past)), 250.0)
        return float(np.dot(past, tail[::step])) / math.sqrt(energy)

    def last_best(shifts: list[int], step: int) -> int:
        scores = np.array([score(s, step) for s in shifts])
        return shifts[int(np.flatnonzero(scores == scores.max())[-1])]

    coarse = last_best(list(range(0, 81, 2)), 2)
    fine = last_best(list(range(max(coarse - 1, 0), min(coarse + 1, 80) + 1)), 1)
    return 120 - fine


def ref_fade_gain(lost: NDArray[np.int64] | int) -> NDArray[np.float64]:
    """1 for 10 ms; App. I's -20 % per 10 ms down to 0.2; held to 150 ms; 0 at 200 ms."""
    k = np.asarray(lost, np.int64)
    fading = np.maximum(0.2, (480 - k) / 400)
    tail = 0.2 * (np.maximum(0, 1600 - k) / 400)
    return np.where(k < 80, 1.0, np.where(k < 1200, fading, tail))


def _loop(st: RefState, count: int) -> NDArray[np.float64]:
    segment = st.pitch_buf[st.pitch_buf.size - st.length :]
    idx = (st.offset + np.arange(count)) % st.length
    st.offset = (st.offset + count) % st.length
    return segment[idx]


def _ramp(n: int) -> NDArray[np.float64]:
    return np.arange(1, n + 1) / n


def _blend(st: RefState) -> None:
    n, ov = st.pitch_buf.size, st.overlap
    before = st.pitch_buf[n - st.length - ov : n - st.length]
    w = _ramp(ov)
    st.pitch_buf[n - ov :] = (1.0 - w) * st.last_quarter + w * before


def _push(st: RefState, block: NDArray[np.float64]) -> NDArray[np.int16]:
    rounded = np.clip(np.floor(block + 0.5), -32768.0, 32767.0)
    st.history = np.concatenate([st.history[block.size :], rounded])
    return st.history[HISTORY - block.size - DELAY : HISTORY - DELAY].astype(np.int16)


def _start(st: RefState) -> None:
    st.pitch_buf = st.history.copy()
    st.pitch = ref_find_pitch(st.pitch_buf)
    st.overlap = st.pitch // 4
    st.last_quarter = st.pitch_buf[HISTORY - st.overlap :].copy()
    st.offset, st.length = 0, st.pitch
    _blend(st)
    st.history[HISTORY - st.overlap :] = np.floor(st.pitch_buf[HISTORY - st.overlap :] + 0.5)


def _conceal_sub(st: RefState) -> NDArray[np.float64]:
    lost = st.lost
    st.lost += SUB
    if lost >= 1600:
        return _zeros(SUB)
    if lost == 0:
        _start(st)
        block = _loop(st, SUB)
    elif lost < 240:  # one more period at 10 and 20 ms
        saved = st.offset
        old = _loop(st, st.overlap)
        st.offset = saved % st.pitch
        st.length += st.pitch
        _blend(st)
        block = _loop(st, SUB)
        w = _ramp(st.overlap)
        block[: st.overlap] = (1.0 - w) * old + w * block[: st.overlap]
    else:
        block = _loop(st, SUB)
    return ref_fade_gain(lost + np.arange(SUB)) * block


def ref_lost(st: RefState, frame_samples: int) -> NDArray[np.int16]:
    """One concealed frame, delayed by 30 samples like `_lost_kernel`."""
    return np.concatenate([_push(st, _conceal_sub(st)) for _ in range(frame_samples // SUB)])


def ref_good(st: RefState, frame: NDArray[np.int16]) -> NDArray[np.int16]:
    """One received frame, cross-faded after a loss and delayed, like `_good_kernel`."""
    work = frame.astype(np.float64)
    if st.lost:
        count = min(st.overlap + (st.lost // SUB - 1) * 32, 80)
        gain = float(ref_fade_gain(st.lost))
        w = _ramp(count)
        work[:count] = (1.0 - w) * (gain * _loop(st, count)) + w * work[:count]
        st.lost = 0
    return np.concatenate([_push(st, work[s : s + SUB]) for s in range(0, frame.size, SUB)])
