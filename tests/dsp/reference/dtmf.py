"""Plain numpy reference for `dsp.dtmf`: the window DFT and the whole keypress state machine.

Written from the module's description, not its code: windows by matrix DFT over the whole
signal, the high-pass as one 4th-order difference equation designed from the analog
Butterworth poles, the hum floor as a minimum over an array of every window's low-band
energy, the tracker as a small Python class over per-window arrays. Only the public tuning
constants are shared with the module.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dsp import dtmf, hum

N = dtmf.WINDOW_SAMPLES
H = dtmf.HOP_SAMPLES
FREQS_HZ = np.array(dtmf.ROW_FREQS_HZ + dtmf.COL_FREQS_HZ)
RATE_HZ = 8000


def ref_hann() -> NDArray[np.float64]:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(N) + 0.5) / N)


def ref_dtmf_window(x: NDArray[np.float64]) -> tuple[NDArray[np.complex128], float]:
    """DFT of the Hann-windowed 160 samples at the 8 tones (time origin at x[0]), energy."""
    xw = x * ref_hann()
    basis = np.exp(-2j * np.pi * np.outer(np.arange(N), FREQS_HZ) / RATE_HZ)
    spec: NDArray[np.complex128] = (xw @ basis).astype(np.complex128)
    return spec, float(np.sum(xw * xw))


def ref_highpass(x: NDArray[np.float64], cutoff_hz: float) -> NDArray[np.float64]:
    """4th-order Butterworth high-pass from rest: the analog poles mapped by the bilinear
    transform (prewarped at the cutoff), run as one direct-form difference equation."""
    k = np.arange(4)
    lowpass_poles = np.exp(1j * np.pi * (2 * k + 5) / 8)  # left half plane, unit cutoff
    wc = 2 * RATE_HZ * np.tan(np.pi * cutoff_hz / RATE_HZ)
    s_poles = wc / lowpass_poles  # low-pass to high-pass: s -> wc / s; four zeros at s = 0
    z_poles = (1 + s_poles / (2 * RATE_HZ)) / (1 - s_poles / (2 * RATE_HZ))
    a = np.real(np.poly(z_poles))
    b = np.poly(np.ones(4))  # zeros at z = 1
    b *= np.sum(a * (-1.0) ** np.arange(5)) / np.sum(b * (-1.0) ** np.arange(5))  # 1 at Nyquist
    y = np.zeros(x.size)
    for n in range(x.size):
        acc = sum(b[i] * x[n - i] for i in range(5) if n >= i)
        y[n] = acc - sum(a[i] * y[n - i] for i in range(1, 5) if n >= i)
    return y


def _window_rows(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The stream with virtual silence before it, cut into windows (one per row)."""
    x = np.concatenate([np.zeros(N // 2), x])
    n_win = (x.size - N) // H + 1 if x.size >= N else 0
    return np.array([x[j * H : j * H + N] for j in range(n_win)]).reshape(n_win, N)


def ref_hum_floor(low: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per window: the least low-band energy among it and the windows 1..HUM_PERIODS hum
    cycles back; windows reaching before the stream are never looked back at."""
    cycle = hum.HUM_PERIOD_MS * RATE_HZ // 1000 // H
    floor = low.copy()
    for j in range(low.size):
        for k in range(1, hum.HUM_PERIODS + 1):
            if j - k * cycle >= N // 2 // H:
                floor[j] = min(floor[j], low[j - k * cycle])
    return floor


def ref_dtmf_windows(pcm: NDArray[np.int16]) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
    """Every complete window of the stream: window j covers samples [40 j - 80, 40 j + 80).
    Returns the DFT at the 8 tones and the windowed energy less the hum floor."""
    x = pcm.astype(np.float64)
    xw = _window_rows(x) * ref_hann()
    basis = np.exp(-2j * np.pi * np.outer(np.arange(N), FREQS_HZ) / RATE_HZ)
    spec: NDArray[np.complex128] = (xw @ basis).astype(np.complex128)
    energy = np.sum(xw * xw, axis=1)
    yw = _window_rows(ref_highpass(x, dtmf.HUM_HIGHPASS_HZ)) * ref_hann()
    low = np.maximum(energy - np.sum(yw * yw, axis=1), 0.0)
    return spec, energy - ref_hum_floor(low)


class _RefTracker:
    """The keypress state machine over precomputed window powers."""

    def __init__(self, spec: NDArray[np.complex128], energy: NDArray[np.float64]) -> None:
        w = ref_hann()
        self.x = spec
        self.p = np.abs(spec) ** 2 * 2.0 / np.sum(w) ** 2
        self.e = energy / np.sum(w * w)
        self.events: list[tuple[int, float, float]] = []
        self.trace: list[tuple[int, bool]] = []  # (key or -1, qualified) after each window
        self.key = -1
        self.prev = -1
        self.active = False

    def strict(self, j: int) -> int:
        p = self.p[j]
        r, c = int(np.argmax(p[:4])), 4 + int(np.argmax(p[4:]))
        second_r = max(p[k] for k in range(4) if k != r)
        second_c = max(p[k] for k in range(4, 8) if k != c)
        floor = (32768.0 * 10 ** ((dtmf.MIN_TONE_DBM0 - 3.14) / 20)) ** 2 / 2
        rel = 10 ** (dtmf.REL_PEAK_DB / 10)
        ok = p[r] >= floor and p[c] >= floor
        ok &= p[r] * 10 ** (dtmf.MIN_TWIST_DB / 10) <= p[c] <= p[r] * 10 ** (dtmf.MAX_TWIST_DB / 10)
        ok &= p[r] >= rel * second_r and p[c] >= rel * second_c
        ok &= p[r] + p[c] >= dtmf.MIN_TONE_SHARE * self.e[j]
        return 4 * r + c - 4 if ok else -1

    def cover(self, i: int) -> float:
        if i < 0:
            return 0.0
        a_r = np.sqrt(self.p[i, self.kr] / max(self.peak[0], 1e-30))
        a_c = np.sqrt(self.p[i, self.kc] / max(self.peak[1], 1e-30))
        return float(0.5 * (a_r + a_c))

    @staticmethod
    def crossing(a0: float, a1: float) -> float:
        return 0.0 if a1 == a0 else min(1.0, max(0.0, (0.5 - a0) / (a1 - a0)))

    def find_start(self, j_max: int) -> None:
        i = self.j0
        if self.cover(i) >= 0.5:
            while i > max(self.j0 - 4, 0) and self.cover(i - 1) >= 0.5:
                i -= 1
        else:
            while i < j_max and self.cover(i) < 0.5:
                i += 1
        self.start = max(0.0, (i - 1 + self.crossing(self.cover(i - 1), self.cover(i))) * H)

    def deviation(self, g: int) -> float:
        step = 2 * np.pi * FREQS_HZ[self.kr if g == 0 else self.kc] * H / RATE_HZ
        return float(np.angle(self.acc[g] * np.exp(-1j * step)) / step)

    def qualifies(self, duration: float) -> bool:
        if duration < dtmf.MIN_ON_MS * 8 or self.pairs < dtmf.MIN_PHASE_PAIRS:
            return False
        devs = [self.deviation(0), self.deviation(1)]
        if max(abs(d) for d in devs) > dtmf.MAX_DEVIATION:
            return False
        tones = 0.0
        for g, k in enumerate((self.kr, self.kc)):
            d = devs[g] * FREQS_HZ[k] * N / RATE_HZ  # offset in bins
            gain = 1.0 if abs(d) < 1e-9 else (np.sinc(d) / (1 - d * d)) ** 2
            tones += self.sums[g] / gain
        return bool(tones >= dtmf.MIN_KEY_SHARE * self.sums[2])

    def begin(self, j: int, d: int) -> None:
        self.key, self.kr, self.kc = d, d // 4, 4 + d % 4
        self.j0 = self.last = j
        self.off = self.pairs = 0
        self.edge = self.active = False
        self.peak = [0.0, 0.0]
        self.acc = [0j, 0j]
        self.sums = [0.0, 0.0, 0.0]
        self.start = 0.0
        self.add_strict(j)

    def add_strict(self, j: int) -> None:
        pair = self.prev == self.key
        for g, k in enumerate((self.kr, self.kc)):
            self.peak[g] = max(self.peak[g], self.p[j, k])
            self.sums[g] += self.p[j, k]
            if pair:
                self.acc[g] += self.x[j, k] * np.conj(self.x[j - 1, k])
        self.sums[2] += self.e[j]
        self.pairs += pair

    def finish(self) -> None:
        if not self.edge:
            self.find_start(self.last)
        end = (self.last + 1 - self.crossing(self.cover(self.last + 1), self.cover(self.last))) * H
        if self.qualifies(end - self.start):
            self.events.append((self.key, self.start, end))
        self.key = -1
        self.active = False

    def step(self, j: int) -> None:
        d = self.strict(j)
        if self.key >= 0 and d >= 0 and d != self.key:
            self.finish()
        if self.key >= 0:
            p = self.p[j]
            on = d == self.key or (
                int(np.argmax(p[:4])) == self.kr
                and 4 + int(np.argmax(p[4:])) == self.kc
                and p[self.kr] >= dtmf.ON_POWER_FRACTION * self.peak[0]
                and p[self.kc] >= dtmf.ON_POWER_FRACTION * self.peak[1]
            )
            self.off = 0 if on else self.off + 1
            if on:
                self.last = j
                if d == self.key:
                    self.add_strict(j)
            if not self.edge and j >= self.j0 + 3:
                self.find_start(j)
                self.edge = True
            if on and self.edge and not self.active:
                self.active = self.qualifies((j + 0.5) * H - self.start)
            if self.off >= dtmf.OFF_WINDOWS:
                self.finish()
        elif d >= 0:
            self.begin(j, d)
        self.prev = d
        self.trace.append((self.key, self.active))


def ref_dtmf_detect(
    pcm: NDArray[np.int16],
) -> tuple[list[tuple[int, float, float]], list[tuple[int, bool]]]:
    """Keypresses (digit index, start, end in samples) and the per-window (key, qualified)."""
    spec, energy = ref_dtmf_windows(pcm)
    tracker = _RefTracker(spec, energy)
    for j in range(spec.shape[0]):
        tracker.step(j)
    return tracker.events, tracker.trace
