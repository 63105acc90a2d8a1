"""DTMF (ITU-T Q.23 signals, Q.24 reception): `DtmfDetector`, `DtmfEvent` and `generate()`.

`gateway.call` feeds the detector the uplink after echo cancellation and gets one event per
keypress when the key is released; `active_digit` / `tone_present` let it keep DTMF out of the
audio sent to the cloud. Method: a 160-sample Hann window every 40 samples (window j centred on
sample 40 j); per window the DFT at the 8 tones and the energy. A *strict* window shows one row
and one column tone standing out (level, twist, relative peak, share of the energy). A keypress
opens on a strict window, lasts while its tones stay the strongest of their groups at >= half
its peak amplitude, and closes after 25 ms without. Its edges are interpolated between windows
(a Hann window sees half the amplitude when its centre is on the edge): times are good to ~1 ms.
Each tone's frequency is its phase advance between consecutive strict windows, summed over the
keypress; the Q.24 1.5 % / 3.5 % decision needs more than a 20 ms window's magnitudes give.
Twist is the high-group tone level minus the low-group tone level, in dB (positive: high louder).
The energy in the share tests leaves out the window's hum floor (`dsp.hum`): its energy below
`HUM_HIGHPASS_HZ` that recurs with mains hum and DC offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import RATE_HZ, SUPPORTED_RATES_HZ, as_int16, check_rate
from dsp.hum import (
    HIGHPASS_STATE,
    HUM_PERIOD_MS,
    HUM_PERIODS,
    _highpass_kernel,
    _hum_floor_kernel,
    _windowed_energy_kernel,
    highpass_sections,
)
from dsp.levels import sine_amplitude, tone

# Q.23 frequency allocation: low (row) and high (column) group; key index = 4 * row + column.
ROW_FREQS_HZ = (697.0, 770.0, 852.0, 941.0)
COL_FREQS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"

# 20 ms Hann window (50 Hz bins): a row tone 1.5 % off still leads the next row's bin by 9.2 dB
# (measured, worst: 770 Hz -1.5 % against 697 Hz), and whole windows fit in a 40 ms tone.
WINDOW_SAMPLES = 160
# 5 ms time grid; edge interpolation refines it.
HOP_SAMPLES = 40
# Q.24: operate down to -36 dBm0 per tone. A tone 1.5 % off 1633 Hz loses 1.4 dB in its Hann
# bin; 4.6 dB more for noise gives spandsp's floor.
MIN_TONE_DBM0 = -42.0
# Q.24: accept twist from -8 dB (low group louder) to +4 dB (high group louder). Scalloping at
# the 1.5 % limits misreads a window's twist by up to 1.4 dB: 2 dB margin each way.
MAX_TWIST_DB = 6.0
MIN_TWIST_DB = -10.0
# Each tone must lead the rest of its group by this much (>= 9.2 dB for DTMF, see above):
# rejects chords and two keys at once.
REL_PEAK_DB = 6.0
# Share of a window's energy (less its hum floor) in the two tones: 1.0 for clean DTMF, 0.76
# at the worst Q.24 corner (+4 dB twist, both tones 1.5 % off, key D, noise 20 dB down;
# measured). Windows of the shipped speech clips, also replayed 0.7-1.4x fast, reach 0.63,
# 0.64 over any hum of tests/signals.py. The first talk-off guard.
MIN_TONE_SHARE = 0.65
# The same share over a keypress's strict windows, corrected for the scalloping its measured
# frequency error causes: ~0.97 at the worst corner. Keys made of speech windows (with the
# share test above relaxed to 0.5) reach 0.67; DTMF in white noise 8 dB down still passes.
# The second guard: each alone stops all the talk-off we measured.
MIN_KEY_SHARE = 0.75
# A window belongs to the keypress while both tones keep >= half the peak amplitude.
ON_POWER_FRACTION = 0.25
# Q.24: a break <= 10 ms must not split a digit, a pause >= 40 ms must separate two. Closing
# after 5 windows (25 ms) without the tones: breaks up to 15 ms never split, pauses from 30 ms
# always do (measured at -3 and -36 dBm0, with and without noise, every 3 samples of offset).
OFF_WINDOWS = 5
# Q.24: tones >= 40 ms are digits, tones <= 20 ms are not: split the difference.
MIN_ON_MS = 30.0
# Consecutive strict window pairs behind the frequency estimate; a 40 ms tone gives 4-6.
MIN_PHASE_PAIRS = 2
# Q.24: frequency error <= 1.5 % accepted, >= 3.5 % rejected. The summed phase advance reads
# within 0.15 % of the truth for 40 ms tones at -36 dBm0: the midpoint leaves 1 % each side.
MAX_DEVIATION = 0.025
# A window's low band is what a 4th-order Butterworth high-pass here takes out of it. The
# lowest tone, 697 Hz, keeps 99 % of its power; 180 Hz hum (3rd harmonic of 60 Hz) and DC
# go to the low band all but -28 dB and nothing, so the hum floor can leave them out.
HUM_HIGHPASS_HZ = 400.0

_NT = 8  # tones: rows 0-3, columns 4-7
_RING = 16  # windows kept: the start edge looks _PRE back and _POST ahead, the end 5 back
_PRE, _POST = 4, 3
# one window in the ring: DFT, tone powers, energy less its hum floor
_F_RE, _F_IM, _F_POW, _F_EN = 0, 8, 16, 24
_NF = 25
_MAX_CHUNK = 4000  # samples per kernel call
# int state: next window, samples in buf, stream index of buf[0], key (-1: none), its first
# strict window, last window on, windows off since, phase pairs, start edge known, qualified,
# previous window's strict digit. Float state: peak powers, phase sums (re, im) row and column,
# start edge (sample); sums over strict windows of row power, column power, window power;
# then, kept across keypresses, the high-pass state and a second of windows' low-band energy.
I_WIN, I_FILL, I_BUF0, I_KEY, I_J0, I_LAST, I_OFF, I_PAIRS, I_EDGE, I_ACTIVE, I_PREV = range(11)
_NI = 11
S_PEAK_R, S_PEAK_C, S_ACC_R, S_ACC_C, S_START, S_SUM_R, S_SUM_C, S_SUM_E = 0, 1, 2, 4, 6, 7, 8, 9
_NS = 10  # the keypress's float state
_TWIST_HI = 10.0 ** (MAX_TWIST_DB / 10.0)
_TWIST_LO = 10.0 ** (MIN_TWIST_DB / 10.0)
_REL_PEAK = 10.0 ** (REL_PEAK_DB / 10.0)
_MIN_ON_SAMPLES = MIN_ON_MS * RATE_HZ / 1000.0
_HUM_WINDOWS = HUM_PERIOD_MS * RATE_HZ // 1000 // HOP_SAMPLES  # windows per hum cycle
_HUM_SOS = highpass_sections(HUM_HIGHPASS_HZ)  # a constant in the kernels: one argument less
_HUM_SLOTS = HIGHPASS_STATE + _HUM_WINDOWS * HUM_PERIODS
_FIRST_WHOLE = WINDOW_SAMPLES // 2 // HOP_SAMPLES  # earlier windows reach before the stream


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One keypress, reported once when it ends; ms since the detector started (samples / 8)."""

    digit: str
    start_ms: float
    duration_ms: float


def analysis_table() -> NDArray[np.float64]:
    """(17, 160): rows 0-7 w[n]cos(w_k n), 8-15 -w[n]sin(w_k n), 16 the Hann window w[n]."""
    n = np.arange(WINDOW_SAMPLES, dtype=np.float64)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * (n + 0.5) / WINDOW_SAMPLES)
    omega = 2.0 * np.pi * np.array(ROW_FREQS_HZ + COL_FREQS_HZ) / RATE_HZ
    return np.vstack([w * np.cos(np.outer(omega, n)), -w * np.sin(np.outer(omega, n)), w])


_HANN = analysis_table()[2 * _NT]
POWER_SCALE = 2.0 / float(np.sum(_HANN)) ** 2  # |X|^2 -> mean power of a sine on the bin
ENERGY_SCALE = 1.0 / float(np.sum(_HANN**2))  # windowed energy -> the window's mean power
MIN_TONE_POWER = sine_amplitude(MIN_TONE_DBM0) ** 2 / 2.0  # int16^2
# nominal phase advance of each tone over one hop (rad)
PHASE_STEPS = tuple(2.0 * math.pi * f * HOP_SAMPLES / RATE_HZ for f in ROW_FREQS_HZ + COL_FREQS_HZ)


@njit(cache=True, nogil=True)
def _dtmf_window_kernel(buf: np.ndarray, start: int, tab: np.ndarray, out: np.ndarray) -> None:
    """out[0:8], out[8:16]: DFT (re, im) of the windowed buf[start:start+160] at the 8 tones;
    out[24]: the windowed energy. Reads buf only."""
    e0 = e1 = 0.0
    for n in range(0, WINDOW_SAMPLES, 2):  # two sums halve the add latency chain
        v0 = buf[start + n] * tab[2 * _NT, n]
        v1 = buf[start + n + 1] * tab[2 * _NT, n + 1]
        e0 += v0 * v0
        e1 += v1 * v1
    out[_F_EN] = e0 + e1
    for k in range(0, _NT, 4):  # four tones per pass: 8 independent sums (measured 1.8x faster)
        r0 = r1 = r2 = r3 = i0 = i1 = i2 = i3 = 0.0
        for n in range(WINDOW_SAMPLES):
            x = buf[start + n]
            r0 += x * tab[k, n]
            r1 += x * tab[k + 1, n]
            r2 += x * tab[k + 2, n]
            r3 += x * tab[k + 3, n]
            i0 += x * tab[_NT + k, n]
            i1 += x * tab[_NT + k + 1, n]
            i2 += x * tab[_NT + k + 2, n]
            i3 += x * tab[_NT + k + 3, n]
        out[k], out[k + 1], out[k + 2], out[k + 3] = r0, r1, r2, r3
        out[_F_IM + k], out[_F_IM + k + 1], out[_F_IM + k + 2], out[_F_IM + k + 3] = i0, i1, i2, i3


@njit(cache=True, nogil=True)
def _best_two(f: np.ndarray, base: int) -> tuple[int, float]:
    """Index of the strongest tone of the group at `base`, and the power of the runner-up."""
    best, second = base, 0.0
    for k in range(base + 1, base + 4):
        if f[_F_POW + k] > f[_F_POW + best]:
            best, second = k, f[_F_POW + best]
        else:
            second = max(second, f[_F_POW + k])
    return best, second


@njit(cache=True, nogil=True)
def _strict_digit(f: np.ndarray) -> int:
    """The digit one window shows by the level, twist, relative peak and share tests, or -1."""
    r, r2 = _best_two(f, 0)
    k, k2 = _best_two(f, 4)
    pr = f[_F_POW + r]
    pc = f[_F_POW + k]
    level_ok = pr >= MIN_TONE_POWER and pc >= MIN_TONE_POWER
    twist_ok = pr * _TWIST_LO <= pc <= pr * _TWIST_HI
    peak_ok = pr >= _REL_PEAK * r2 and pc >= _REL_PEAK * k2
    share_ok = pr + pc >= MIN_TONE_SHARE * f[_F_EN] * ENERGY_SCALE
    return 4 * r + k - 4 if level_ok and twist_ok and peak_ok and share_ok else -1


@njit(cache=True, nogil=True)
def _cover(ring: np.ndarray, i: int, key: int, fs: np.ndarray) -> float:
    """Mean amplitude of the key's two tones in window i relative to the keypress peak."""
    if i < 0:
        return 0.0
    f = ring[i % _RING]
    a_r = math.sqrt(f[_F_POW + key // 4] / max(fs[S_PEAK_R], 1e-30))
    a_c = math.sqrt(f[_F_POW + 4 + key % 4] / max(fs[S_PEAK_C], 1e-30))
    return float(0.5 * (a_r + a_c))


@njit(cache=True, nogil=True)
def _crossing(a0: float, a1: float) -> float:
    """Where between two windows (0: the first, 1: the second) the amplitude crosses one half."""
    return 0.0 if a1 == a0 else min(1.0, max(0.0, (0.5 - a0) / (a1 - a0)))


@njit(cache=True, nogil=True)
def _start_edge(ring: np.ndarray, j_max: int, key: int, fs: np.ndarray, ist: np.ndarray) -> None:
    """Find the keypress start (stream sample) around its first strict window."""
    i = ist[I_J0]
    if _cover(ring, i, key, fs) >= 0.5:
        while i > max(ist[I_J0] - _PRE, 0) and _cover(ring, i - 1, key, fs) >= 0.5:
            i -= 1
    else:
        while i < j_max and _cover(ring, i, key, fs) < 0.5:
            i += 1
    frac = _crossing(_cover(ring, i - 1, key, fs), _cover(ring, i, key, fs))
    fs[S_START] = max(0.0, (i - 1 + frac) * HOP_SAMPLES)
    ist[I_EDGE] = 1


@njit(cache=True, nogil=True)
def _hann_power_gain(d: float) -> float:
    """Power a Hann bin keeps of a tone d bins off its centre: (sinc(d) / (1 - d^2))^2."""
    if abs(d) < 1e-9:
        return 1.0
    g = math.sin(math.pi * d) / (math.pi * d) / (1.0 - d * d)
    return float(g * g)


@njit(cache=True, nogil=True)
def _qualifies(fs: np.ndarray, ist: np.ndarray, duration: float) -> bool:
    """Duration, frequency error and keypress share tests of the open keypress."""
    if duration < _MIN_ON_SAMPLES or ist[I_PAIRS] < MIN_PHASE_PAIRS:
        return False
    tones = 0.0
    for grp in range(2):  # row tone, then column tone
        k = ist[I_KEY] // 4 if grp == 0 else 4 + ist[I_KEY] % 4
        re, im, step = fs[S_ACC_R + 2 * grp], fs[S_ACC_R + 2 * grp + 1], PHASE_STEPS[k]
        # the summed phase advance turned back by the nominal one leaves the error
        err = math.atan2(
            im * math.cos(step) - re * math.sin(step), re * math.cos(step) + im * math.sin(step)
        )
        if abs(err) > MAX_DEVIATION * step:
            return False
        bins = err / (2.0 * math.pi) * WINDOW_SAMPLES / HOP_SAMPLES  # frequency error in bins
        tones += fs[S_SUM_R + grp] / _hann_power_gain(bins)
    return bool(tones >= MIN_KEY_SHARE * fs[S_SUM_E])


@njit(cache=True, nogil=True)
def _finish(ring: np.ndarray, fs: np.ndarray, ist: np.ndarray, ev: np.ndarray) -> None:
    """Close the keypress; append (digit, start, end) in stream samples to ev if it qualifies."""
    key = ist[I_KEY]
    last = ist[I_LAST]
    if ist[I_EDGE] == 0:
        _start_edge(ring, last, key, fs, ist)
    frac = _crossing(_cover(ring, last + 1, key, fs), _cover(ring, last, key, fs))
    end = (last + 1.0 - frac) * HOP_SAMPLES
    n = int(ev[0, 0])  # row 0 holds the count
    if _qualifies(fs, ist, end - fs[S_START]):
        ev[n + 1, 0], ev[n + 1, 1], ev[n + 1, 2] = key, fs[S_START], end
        ev[0, 0] = n + 1
    ist[I_KEY] = -1
    ist[I_ACTIVE] = 0


@njit(cache=True, nogil=True)
def _on_strict(ring: np.ndarray, j: int, fs: np.ndarray, ist: np.ndarray) -> None:
    """Window j is strict for the open key: sum its powers, add phase advances if consecutive."""
    f = ring[j % _RING]
    g = ring[(j - 1) % _RING]
    pair = ist[I_PREV] == ist[I_KEY]
    for grp in range(2):  # row tone, then column tone
        k = ist[I_KEY] // 4 if grp == 0 else 4 + ist[I_KEY] % 4
        fs[S_PEAK_R + grp] = max(fs[S_PEAK_R + grp], f[_F_POW + k])
        fs[S_SUM_R + grp] += f[_F_POW + k]
        if pair:  # X_j conj(X_j-1): its angle is the tone's phase advance over one hop
            acc = S_ACC_R + 2 * grp
            fs[acc] += f[_F_RE + k] * g[_F_RE + k] + f[_F_IM + k] * g[_F_IM + k]
            fs[acc + 1] += f[_F_IM + k] * g[_F_RE + k] - f[_F_RE + k] * g[_F_IM + k]
    fs[S_SUM_E] += f[_F_EN] * ENERGY_SCALE
    ist[I_PAIRS] += pair


@njit(cache=True, nogil=True)
def _continue(ring: np.ndarray, j: int, d: int, fs: np.ndarray, ist: np.ndarray) -> None:
    """Window j while a keypress is open: extend it, or count one more window without it."""
    f = ring[j % _RING]
    kr = ist[I_KEY] // 4
    kc = 4 + ist[I_KEY] % 4
    on = d == ist[I_KEY] or (
        _best_two(f, 0)[0] == kr
        and _best_two(f, 4)[0] == kc
        and f[_F_POW + kr] >= ON_POWER_FRACTION * fs[S_PEAK_R]
        and f[_F_POW + kc] >= ON_POWER_FRACTION * fs[S_PEAK_C]
    )
    ist[I_OFF] = 0 if on else ist[I_OFF] + 1
    if on:
        ist[I_LAST] = j
        if d == ist[I_KEY]:
            _on_strict(ring, j, fs, ist)
    if ist[I_EDGE] == 0 and j >= ist[I_J0] + _POST:
        _start_edge(ring, j, ist[I_KEY], fs, ist)
    if on and ist[I_EDGE] == 1 and ist[I_ACTIVE] == 0:
        ist[I_ACTIVE] = _qualifies(fs, ist, (j + 0.5) * HOP_SAMPLES - fs[S_START])


@njit(cache=True, nogil=True)
def _track_window(
    ring: np.ndarray, j: int, fs: np.ndarray, ist: np.ndarray, ev: np.ndarray
) -> None:
    """Run the keypress state machine over window j, whose DFT is in the ring."""
    f = ring[j % _RING]
    for k in range(_NT):
        f[_F_POW + k] = (f[_F_RE + k] ** 2 + f[_F_IM + k] ** 2) * POWER_SCALE
    d = _strict_digit(f)
    if ist[I_KEY] >= 0 and d >= 0 and d != ist[I_KEY]:
        _finish(ring, fs, ist, ev)  # another digit straight after: close this one
    if ist[I_KEY] >= 0:
        _continue(ring, j, d, fs, ist)
        if ist[I_OFF] >= OFF_WINDOWS:
            _finish(ring, fs, ist, ev)
    elif d >= 0:
        ist[I_KEY], ist[I_J0], ist[I_LAST] = d, j, j
        ist[I_OFF] = ist[I_PAIRS] = ist[I_EDGE] = ist[I_ACTIVE] = 0
        fs[:_NS] = 0.0
        _on_strict(ring, j, fs, ist)
    ist[I_PREV] = d


@njit(cache=True, nogil=True)
def _dtmf_feed_kernel(
    pcm: np.ndarray,
    buf: np.ndarray,
    tab: np.ndarray,
    ring: np.ndarray,
    fs: np.ndarray,
    ist: np.ndarray,
    ev: np.ndarray,
) -> None:
    """Append pcm (int16, <= _MAX_CHUNK) to buf[0] and its high-passed copy to buf[1];
    analyse and track every window now complete. Closed keypresses go to ev[1:] as (digit
    index, start, end) in stream samples; ev[0, 0] counts them and must be 0 on entry."""
    fill = ist[I_FILL]
    for n in range(pcm.shape[0]):
        buf[0, fill + n] = pcm[n]
    _highpass_kernel(pcm, buf[1], fill, _HUM_SOS, fs[_NS : _NS + HIGHPASS_STATE])
    fill += pcm.shape[0]
    high, hann, past = buf[1], tab[2 * _NT], fs[_NS + HIGHPASS_STATE :]
    while True:
        j = ist[I_WIN]
        b = j * HOP_SAMPLES - WINDOW_SAMPLES // 2 - ist[I_BUF0]
        if b + WINDOW_SAMPLES > fill:
            break
        f = ring[j % _RING]
        _dtmf_window_kernel(buf[0], b, tab, f)
        # the share tests' energy leaves out the hum floor (dsp.hum): the energy the
        # high-passed copy lacks, where as much recurred at this point of the hum cycle
        low = max(f[_F_EN] - _windowed_energy_kernel(high, b, hann), 0.0)
        f[_F_EN] -= _hum_floor_kernel(low, past, j, _HUM_WINDOWS, j >= _FIRST_WHOLE)
        _track_window(ring, j, fs, ist, ev)
        ist[I_WIN] = j + 1
    for n in range(fill - b):  # keep the part of the next window already here
        buf[0, n] = buf[0, b + n]
        buf[1, n] = buf[1, b + n]
    ist[I_BUF0] += b
    ist[I_FILL] = fill - b


class DtmfDetector:
    """Q.24 DTMF receiver for 8 kHz int16 blocks of any size (results ignore how they split).

    `feed(pcm)` returns each keypress once, about 33 ms after release. `active_digit` is the key
    sounding now once it has passed every test so far (from ~30 ms after it goes down until it
    ends); `tone_present` is True from the first DTMF-like window, to mute the uplink early.
    """

    def __init__(self, sample_rate: int = RATE_HZ) -> None:
        self.sample_rate = check_rate(sample_rate, "DtmfDetector")
        self._tab = analysis_table()
        self._buf = np.zeros((2, WINDOW_SAMPLES + _MAX_CHUNK), np.float64)  # line, high-passed
        self._ring = np.zeros((_RING, _NF), np.float64)
        self._fs = np.zeros(_NS + _HUM_SLOTS, np.float64)
        self._is = np.zeros(_NI, np.int64)
        self._ev = np.zeros((_MAX_CHUNK // HOP_SAMPLES + 2, 3), np.float64)  # <= 1 per window
        self.reset()

    def reset(self) -> None:
        """Forget all audio and any keypress in progress; time restarts at 0 ms."""
        for arr in (self._buf, self._ring, self._fs, self._is):
            arr[...] = 0
        self._fs[_NS + HIGHPASS_STATE :] = np.inf  # no past low-band energy yet
        self._is[I_KEY] = self._is[I_PREV] = -1
        # Virtual silence before the stream, so window j is centred on sample j * HOP_SAMPLES.
        self._is[I_BUF0] = -(WINDOW_SAMPLES // 2)
        self._is[I_FILL] = WINDOW_SAMPLES // 2

    def feed(self, pcm: NDArray[np.int16]) -> list[DtmfEvent]:
        """Process 1-D int16 samples (any length); return the keypresses that ended, in order."""
        pcm = as_int16(pcm, "DtmfDetector.feed")
        if not pcm.flags.writeable:  # one kernel signature: a read-only array would compile anew
            pcm = pcm.copy()
        out: list[DtmfEvent] = []
        ms = 1000.0 / self.sample_rate
        for at in range(0, pcm.shape[0], _MAX_CHUNK):
            self._ev[0, 0] = 0.0
            chunk = pcm if pcm.shape[0] <= _MAX_CHUNK else pcm[at : at + _MAX_CHUNK]
            _dtmf_feed_kernel(chunk, self._buf, self._tab, self._ring, self._fs, self._is, self._ev)
            for digit, start, end in self._ev[1 : 1 + int(self._ev[0, 0])].tolist():
                out.append(DtmfEvent(DIGITS[int(digit)], start * ms, (end - start) * ms))
        return out

    @property
    def active_digit(self) -> str | None:
        """The digit sounding now, once it has passed every test so far; else None."""
        return DIGITS[int(self._is[I_KEY])] if self._is[I_ACTIVE] else None

    @property
    def tone_present(self) -> bool:
        """True while a DTMF-like tone pair is being tracked (qualified or not yet)."""
        return bool(self._is[I_KEY] >= 0)


def generate(
    digits: str,
    on_ms: float = 100.0,
    off_ms: float = 100.0,
    level_dbm0: float = -10.0,
    sample_rate: int = RATE_HZ,
    *,
    twist_db: float = 0.0,
    freq_offset: float | tuple[float, float] = 0.0,
) -> NDArray[np.int16]:
    """DTMF for `digits` (0-9 * # A-D): per digit `on_ms` of tone, then `off_ms` of silence.

    `level_dbm0` is the low-group tone's level and `level_dbm0 + twist_db` the high-group one's.
    `freq_offset` is a relative frequency error (0.015: 1.5 % high) for both tones or a (low
    group, high group) pair. Returns int16 at `sample_rate` (clipped if the levels overload).
    """
    check_rate(sample_rate, "dtmf.generate", SUPPORTED_RATES_HZ)
    off_r, off_c = freq_offset if isinstance(freq_offset, tuple) else (freq_offset, freq_offset)
    gap = np.zeros(round(off_ms * sample_rate / 1000.0), np.int16)
    parts: list[NDArray[np.int16]] = [np.zeros(0, np.int16)]
    for ch in digits.upper():
        i = DIGITS.find(ch)
        if i < 0:
            raise DspInputError(f"dtmf.generate: {ch!r} is not a DTMF digit (0-9 * # A-D)")
        freqs = [ROW_FREQS_HZ[i // 4] * (1.0 + off_r), COL_FREQS_HZ[i % 4] * (1.0 + off_c)]
        parts += [tone(freqs, on_ms, [level_dbm0, level_dbm0 + twist_db], sample_rate), gap]
    return np.concatenate(parts)
