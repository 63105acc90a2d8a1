"""Plain numpy / Python references for the caller ID FSK kernels in `dsp.fsk` and
`dsp.fsk_framer`, written from the description of each step rather than from the kernels."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dsp import fsk_framer as fr


def ref_fsk_mod_kernel(
    bits: NDArray[np.uint8],
    samples_per_bit: float,
    steps: NDArray[np.float64],
    amps: NDArray[np.float64],
    n: int,
) -> NDArray[np.float64]:
    """Phase-continuous FSK: sample k carries bit floor(k / samples_per_bit); phase starts at
    0 and advances by the step of the bit the sample carries."""
    which = bits[np.minimum((np.arange(n) / samples_per_bit).astype(np.int64), bits.size - 1)]
    step = np.where(which > 0, steps[1], steps[0])
    phase = np.concatenate([[0.0], np.cumsum(step)[:-1]])
    out: NDArray[np.float64] = np.where(which > 0, amps[1], amps[0]) * np.sin(phase)
    return out


def _biquad_df1(
    b: NDArray[np.float64], a: NDArray[np.float64], x: NDArray[np.complex128]
) -> NDArray[np.complex128]:
    """Direct form I biquad (a[0] == 1), zero initial state."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0 * x[:1].sum()
    for i in range(x.size):
        y[i] = b[0] * x[i] + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, x[i], y1, y[i]
    return y


def ref_fsk_front_end_kernel(
    pcm: NDArray[np.int16], coefs: NDArray[np.float64], nco: NDArray[np.float64], taps: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """From rest: high-pass, mix with exp(-j w_c n), two low-pass sections, FIR zeros at the
    images, phase step / deviation clipped to +-2, a `taps`-long moving average, and a one-pole
    average of 2|z|^2 taken before the FIR. Returns (discriminator, level) per sample."""

    def sec(i: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return coefs[i : i + 3], np.concatenate([[1.0], coefs[i + 3 : i + 5]])

    x = _biquad_df1(*sec(0), pcm.astype(np.complex128))
    half = nco.size // 2
    k = np.arange(pcm.size) % half
    z = x * (nco[k] - 1j * nco[half + k])
    z = _biquad_df1(*sec(10), _biquad_df1(*sec(5), z))
    c1, c2 = coefs[17] + 1j * coefs[18], coefs[19] + 1j * coefs[20]
    zp = np.concatenate([[0.0, 0.0], z])
    w = z + c1 * zp[1:-1] + c2 * zp[:-2]
    step = np.angle(w * np.conj(np.concatenate([[0.0], w[:-1]])))
    f = np.clip(step * coefs[15], -2.0, 2.0)
    disc = np.convolve(f, np.ones(taps))[: f.size] / taps
    power = 2.0 * np.abs(z) ** 2
    level = np.zeros(pcm.size)
    acc = 0.0
    for i in range(pcm.size):
        acc = acc + coefs[16] * (power[i] - acc)
        level[i] = acc
    return disc, level


class RefFramer:
    """The framer as a readable state machine: DPLL bit clock, seizure / mark hunting, UART
    and burst bookkeeping, emitting the same event codes as `_fsk_framer_kernel`."""

    def __init__(self, params: NDArray[np.float64], known: NDArray[np.uint8]) -> None:
        self.inc, self.on, self.off, self.drop = (float(v) for v in params)
        self.known = {i for i in range(256) if known[i]}
        self.level_on, self.bad = False, 0
        self.g_prev, self.phase, self.dfreq = 0.0, 0.0, 0.0
        self.quality = fr.QUALITY_NOISE_BITS
        self.prev_bit = 0
        self.events: list[int] = []
        self.hunt()

    def hunt(self) -> None:
        self.mode, self.alt, self.marks, self.seizure, self.open = "hunt", 0, 0, False, False
        self.uart, self.shift, self.nbytes, self.expected, self.idle = -1, 0, 0, 0, 0

    def lose(self) -> None:
        if self.open:
            self.events.append(fr.EV_LOST)
        self.hunt()
        self.quality, self.dfreq = fr.QUALITY_NOISE_BITS, 0.0

    def run(self, disc: NDArray[np.float64], level: NDArray[np.float64]) -> list[int]:
        for g, lv in zip(disc.tolist(), level.tolist(), strict=True):
            self.level_on = lv >= (self.off if self.level_on else self.on)
            hunting = self.mode == "hunt" and not self.open
            if self.level_on and (hunting or self.quality <= fr.QUALITY_MAX_BITS):
                self.bad = 0
            else:
                self.bad += 1
                if self.bad == self.drop + 1:
                    self.lose()
            if not self.level_on and hunting:
                self.g_prev = g
                continue
            if self.tick(g):
                self.bit(g)
        return self.events

    def tick(self, g: float) -> bool:
        gp = self.g_prev
        self.phase += self.inc * (1.0 + self.dfreq)
        if (gp > 0.0) != (g > 0.0) and gp != g:
            e = self.phase - (1.0 - gp / (gp - g)) * self.inc - 0.5
            if g > 0.0 and self.marks >= fr.SNAP_AFTER_MARKS:
                self.phase -= e
            else:
                self.quality += fr.QUALITY_ALPHA * (abs(e) - self.quality)
                self.phase -= fr.DPLL_GAIN * e
                self.dfreq = min(
                    fr.DPLL_MAX_FREQ, max(-fr.DPLL_MAX_FREQ, self.dfreq - fr.DPLL_FREQ_GAIN * e)
                )
        self.g_prev = g
        if self.phase >= 1.0:
            self.phase -= 1.0
            return True
        return False

    def bit(self, g: float) -> None:
        b = 1 if g < 0.0 else 0
        self.alt = self.alt + 1 if b != self.prev_bit and abs(g) > fr.SEIZURE_MIN_SWING else 0
        self.marks = self.marks + 1 if abs(g + 1.0) < fr.MARK_TOLERANCE else 0
        self.prev_bit = b
        if self.mode == "data":
            self.uart_bit(b)
        elif self.mode == "armed":
            if b == 0:
                self.mode, self.uart, self.shift, self.idle = "data", 0, 0, 0
        else:
            if not self.seizure and self.alt >= fr.SEIZURE_MIN_BITS:
                self.seizure = self.open = True
                self.events.append(fr.EV_SEIZURE)
            need = fr.MARK_MIN_AFTER_SEIZURE_BITS if self.seizure else fr.MARK_MIN_ALONE_BITS
            if self.marks >= need:
                self.mode = "armed"
                if not self.seizure:
                    self.quality = 0.0

    def uart_bit(self, b: int) -> None:
        if self.uart < 0:
            if b == 0:
                self.uart, self.shift, self.idle = 0, 0, 0
            else:
                self.idle += 1
                if self.idle > fr.MAX_IDLE_BITS:
                    self.lose()
        elif self.uart < 8:
            self.shift |= b << self.uart
            self.uart += 1
        else:
            self.uart = -1
            self.byte(self.shift, b == 0)

    def byte(self, value: int, bad_stop: bool) -> None:
        if not self.open:
            if value not in self.known:
                self.hunt()
                return
            self.open = True
            self.events.append(fr.EV_MARK_BURST)
        if bad_stop:
            self.events.append(fr.EV_FRAMING)
        self.events.append(value)
        self.nbytes += 1
        if self.nbytes == 2:
            self.expected = value + 3
        if self.nbytes >= 2 and self.nbytes >= self.expected:
            self.events.append(fr.EV_COMPLETE)
            self.hunt()


def ref_fsk_framer_kernel(
    disc: NDArray[np.float64],
    level: NDArray[np.float64],
    params: NDArray[np.float64],
    known: NDArray[np.uint8],
) -> list[int]:
    """Events of the framer run from its reset state over `disc` / `level`."""
    return RefFramer(params, known).run(disc, level)
