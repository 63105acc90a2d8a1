"""Bit clock, UART framing and burst detection of the caller ID FSK receiver.

Owns `_fsk_framer_kernel`: it takes the discriminator output and in-band level that
`dsp.fsk`'s front end computes per sample, recovers the bit clock (a second order DPLL on
the discriminator's zero crossings, re-timed on each start bit after idle marks), finds the
channel seizure and mark signal, frames bytes (start bit 0, 8 data bits LSB first, stop bit
1) and ends the burst when its message is complete or the carrier is lost. `dsp.fsk.FskReceiver`
is its only caller. Events are int32 codes: 0-255 a data byte, or one of the `EV_*` codes.

The carrier is judged by level (hysteresis between `on` and `off` power) and, once a burst is
open, by quality: the smoothed |timing error| of transitions, small for FSK and about a
quarter bit for noise. Level alone cannot tell a -38 dBm0 burst from a noisy line.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

EV_SEIZURE = 256  # a channel seizure (alternating bits) was recognised: a burst has begun
EV_MARK_BURST = 257  # a burst without seizure began: long mark, then a known message type byte
EV_FRAMING = 258  # the byte that follows had a space (0) where its stop bit belongs
EV_COMPLETE = 259  # message type, length, `length` bytes and the checksum have arrived
EV_LOST = 260  # carrier or framing lost before the message was complete

# A burst opens after this many alternating bits (GR-30 / EN 300 659-1 send 300). Random
# bits give such a run with probability 2**-32 per start, so noise never opens one.
SEIZURE_MIN_BITS = 32
# ... each with the discriminator at least this far from the centre when sampled: a seizure
# swings it to 0.45-0.8 of the deviation at 15-20 dB SNR, a vowel whose harmonics straddle
# 1700 Hz alternates it by about 0.2.
SEIZURE_MIN_SWING = 0.3
MARK_MIN_AFTER_SEIZURE_BITS = 20  # every variant sends >= 55 marks after the seizure
# Without a seizure (EN 300 659-1 off-hook: 80 +/- 25 mark bits) the first byte must also be a
# known message type before anything is reported.
MARK_MIN_ALONE_BITS = 50
# A bit counts toward a mark signal only if the discriminator sits within this fraction of the
# deviation from the mark frequency (a 3 % tone error moves it 0.1): a vowel's harmonic
# wandering near 1200 Hz does not.
MARK_TOLERANCE = 0.35
MAX_IDLE_BITS = 40  # marks between two bytes of one message before we call it lost
SNAP_AFTER_MARKS = 4  # a start bit after this many marks re-times the clock in one step
DPLL_GAIN = 0.2  # fraction of the timing error removed at each transition
# Frequency term of the bit clock: removes the 0.1 bit lag a 1 % baud error leaves otherwise.
DPLL_FREQ_GAIN = 0.02
DPLL_MAX_FREQ = 0.03  # GR-30 allows 1 %: track up to 3 %
QUALITY_ALPHA = 0.125  # smoothing of |timing error| per transition
# Smoothed |timing error| of transitions, in bits (measured): 0.03-0.05 on average, at most
# 0.14, in bursts at 10-20 dB SNR with -6..+10 dB twist; 0.25 on average, at least 0.15, in
# white noise (transitions at random phase). Above this an open burst's carrier is lost.
QUALITY_MAX_BITS = 0.15
QUALITY_NOISE_BITS = 0.25  # where the quality measure starts: assume noise
# Framer float state and int state indices.
_G_PREV, _G_PHASE, _G_QUALITY, _G_DFREQ, _G_SIZE = 0, 1, 2, 3, 4
_I_LEVEL_ON, _I_BAD, _I_MODE, _I_PREV_BIT, _I_ALT, _I_MARKS, _I_SEIZURE, _I_OPEN = range(8)
_I_UART, _I_SHIFT, _I_BYTES, _I_EXPECTED, _I_IDLE, _I_SIZE = range(8, 14)
_HUNT, _ARMED, _DATA = 0, 1, 2
# Framer parameters: phase step per sample (bits), carrier on/off power, drop samples (whole).
_P_INC, _P_ON, _P_OFF, _P_DROP, _P_SIZE = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def _emit(out: np.ndarray, n_out: int, code: int) -> int:
    if n_out < out.shape[0]:  # the wrapper sizes `out` for the worst case of a block
        out[n_out] = code
        return n_out + 1
    return n_out


@njit(cache=True, nogil=True)
def _to_hunt(st: np.ndarray) -> None:
    st[_I_MODE] = _HUNT
    st[_I_ALT] = st[_I_MARKS] = st[_I_SEIZURE] = st[_I_OPEN] = 0
    st[_I_UART] = -1
    st[_I_BYTES] = st[_I_EXPECTED] = st[_I_IDLE] = 0


@njit(cache=True, nogil=True)
def _lose(st: np.ndarray, fs: np.ndarray, out: np.ndarray, n_out: int) -> int:
    if st[_I_OPEN]:
        n_out = _emit(out, n_out, EV_LOST)
    _to_hunt(st)
    fs[_G_QUALITY] = QUALITY_NOISE_BITS
    fs[_G_DFREQ] = 0.0
    return n_out


@njit(cache=True, nogil=True)
def _got_byte(
    byte: int, bad_stop: bool, known: np.ndarray, st: np.ndarray, out: np.ndarray, n_out: int
) -> int:
    if st[_I_OPEN] == 0:  # no seizure: only a known message type makes this a burst
        if known[byte] == 0:
            _to_hunt(st)
            return n_out
        st[_I_OPEN] = 1
        n_out = _emit(out, n_out, EV_MARK_BURST)
    if bad_stop:
        n_out = _emit(out, n_out, EV_FRAMING)
    n_out = _emit(out, n_out, byte)
    st[_I_BYTES] += 1
    if st[_I_BYTES] == 2:
        st[_I_EXPECTED] = byte + 3  # type, length, `length` bytes, checksum
    if st[_I_BYTES] >= 2 and st[_I_BYTES] >= st[_I_EXPECTED]:
        n_out = _emit(out, n_out, EV_COMPLETE)
        _to_hunt(st)
    return n_out


@njit(cache=True, nogil=True)
def _uart_bit(
    bit: int, known: np.ndarray, st: np.ndarray, fs: np.ndarray, out: np.ndarray, n_out: int
) -> int:
    u = st[_I_UART]
    if u < 0:  # between bytes: marks until a start bit (space)
        if bit == 0:
            st[_I_UART], st[_I_SHIFT], st[_I_IDLE] = 0, 0, 0
        else:
            st[_I_IDLE] += 1
            if st[_I_IDLE] > MAX_IDLE_BITS:
                return _lose(st, fs, out, n_out)
        return n_out
    if u < 8:  # data bits, least significant first
        st[_I_SHIFT] |= bit << u
        st[_I_UART] = u + 1
        return n_out
    st[_I_UART] = -1
    return _got_byte(st[_I_SHIFT], bit == 0, known, st, out, n_out)


@njit(cache=True, nogil=True)
def _on_bit(
    g: float, known: np.ndarray, st: np.ndarray, fs: np.ndarray, out: np.ndarray, n_out: int
) -> int:
    bit = 1 if g < 0.0 else 0
    swing = abs(g) > SEIZURE_MIN_SWING
    st[_I_ALT] = st[_I_ALT] + 1 if bit != st[_I_PREV_BIT] and swing else 0
    st[_I_MARKS] = st[_I_MARKS] + 1 if abs(g + 1.0) < MARK_TOLERANCE else 0
    st[_I_PREV_BIT] = bit
    mode = st[_I_MODE]
    if mode == _DATA:
        return _uart_bit(bit, known, st, fs, out, n_out)
    if mode == _ARMED:
        if bit == 0:  # the first start bit
            st[_I_MODE], st[_I_UART], st[_I_SHIFT], st[_I_IDLE] = _DATA, 0, 0, 0
        return n_out
    if st[_I_SEIZURE] == 0 and st[_I_ALT] >= SEIZURE_MIN_BITS:
        st[_I_SEIZURE] = st[_I_OPEN] = 1
        n_out = _emit(out, n_out, EV_SEIZURE)
    need = MARK_MIN_AFTER_SEIZURE_BITS if st[_I_SEIZURE] else MARK_MIN_ALONE_BITS
    if st[_I_MARKS] >= need:
        st[_I_MODE] = _ARMED
        if st[_I_SEIZURE] == 0:
            fs[_G_QUALITY] = 0.0  # a steady mark has no transitions to judge: trust it
    return n_out


@njit(cache=True, nogil=True)
def _clock(g: float, inc: float, st: np.ndarray, fs: np.ndarray) -> bool:
    """Advance the bit clock by one sample; True when a bit is due (sample `g` now)."""
    gp = fs[_G_PREV]
    fs[_G_PHASE] += inc * (1.0 + fs[_G_DFREQ])
    if (gp > 0.0) != (g > 0.0) and gp != g:  # transitions belong at phase 0.5
        e = fs[_G_PHASE] - (1.0 - gp / (gp - g)) * inc - 0.5
        if g > 0.0 and st[_I_MARKS] >= SNAP_AFTER_MARKS:
            fs[_G_PHASE] -= e  # a start bit after idle marks: the clock may have drifted
        else:
            fs[_G_QUALITY] += QUALITY_ALPHA * (abs(e) - fs[_G_QUALITY])
            fs[_G_PHASE] -= DPLL_GAIN * e
            df = fs[_G_DFREQ] - DPLL_FREQ_GAIN * e
            fs[_G_DFREQ] = min(DPLL_MAX_FREQ, max(-DPLL_MAX_FREQ, df))
    fs[_G_PREV] = g
    if fs[_G_PHASE] >= 1.0:
        fs[_G_PHASE] -= 1.0
        return True
    return False


@njit(cache=True, nogil=True)
def _fsk_framer_kernel(
    disc: np.ndarray,
    level: np.ndarray,
    params: np.ndarray,
    known: np.ndarray,
    fs: np.ndarray,
    st: np.ndarray,
    out: np.ndarray,
) -> int:
    n_out = 0
    for n in range(disc.shape[0]):
        level_ok = level[n] >= (params[_P_OFF] if st[_I_LEVEL_ON] else params[_P_ON])
        st[_I_LEVEL_ON] = 1 if level_ok else 0
        hunting = st[_I_MODE] == _HUNT and st[_I_OPEN] == 0
        if level_ok and (hunting or fs[_G_QUALITY] <= QUALITY_MAX_BITS):
            st[_I_BAD] = 0
        else:
            st[_I_BAD] += 1
            if st[_I_BAD] == params[_P_DROP] + 1:  # once per bad stretch
                n_out = _lose(st, fs, out, n_out)
        if not level_ok and hunting:  # idle: keep the discriminator history only
            fs[_G_PREV] = disc[n]
            continue
        if _clock(disc[n], params[_P_INC], st, fs):
            n_out = _on_bit(disc[n], known, st, fs, out, n_out)
    return n_out


def new_framer_state() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Float and int state arrays of `_fsk_framer_kernel`, reset (hunting, no carrier)."""
    fs, st = np.zeros(_G_SIZE, np.float64), np.zeros(_I_SIZE, np.int64)
    reset_framer_state(fs, st)
    return fs, st


def reset_framer_state(fs: NDArray[np.float64], st: NDArray[np.int64]) -> None:
    """Reset framer state arrays in place."""
    fs[:] = 0.0
    st[:] = 0
    fs[_G_QUALITY] = QUALITY_NOISE_BITS
    st[_I_UART] = -1


def framer_params(
    baud: float, rate_hz: int, on_power: float, off_power: float, drop_bits: float
) -> NDArray[np.float64]:
    """Parameter array of `_fsk_framer_kernel`; powers in int16 units squared."""
    drop_samples = round(drop_bits * rate_hz / baud)
    return np.array([baud / rate_hz, on_power, off_power, drop_samples], np.float64)
