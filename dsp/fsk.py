"""1200 baud FSK for on-hook caller ID: the Bell 202 and V.23 modulator and receiver kernels.

Owns the physical layer of caller ID data: phase-continuous modulation of a bit sequence,
and `FskReceiver`, which turns audio into byte events. `dsp.callerid` is its only user: it
makes the bits from a message and turns the byte events into caller ID records.

Receiver front end, per sample: a high-pass (ringing, hum), mixing to the centre frequency
(1700 Hz for both standards, so mark is at -dev and space at +dev), a 4th order complex
low-pass, two zeros on the images of the tones (the real signal's negative frequencies: the
low-pass leaves the mark's image 45 dB down, but the discriminator's response grows with the
offset of an interferer, and without the zeros 1 Bell 202 burst in 8 fails at 20 dB SNR and
+10 dB twist), then the phase step between samples in units of the deviation (+1 space,
-1 mark; independent of amplitude, so twist cancels), averaged over one bit. `dsp.fsk_framer`
does the rest (bit clock, UART, burst detection); its `EV_*` codes are the receiver's events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import SUPPORTED_RATES_HZ, as_int16, check_rate
from dsp.fsk_framer import (
    _fsk_framer_kernel,
    framer_params,
    new_framer_state,
    reset_framer_state,
)
from dsp.levels import dbm0_to_rms, sine_amplitude


@dataclass(frozen=True, slots=True)
class FskStandard:
    """Tone pair and bit rate of one FSK variant."""

    name: str
    mark_hz: float  # binary 1
    space_hz: float  # binary 0
    baud: float


# Telcordia GR-30-CORE: Bell 202 tones, 1200 +/- 12 bit/s.
BELL202 = FskStandard("bell202", mark_hz=1200.0, space_hz=2200.0, baud=1200.0)
# ETSI EN 300 659-1 data transmission uses ITU-T V.23 mode 2: 1300 / 2100 Hz, 1200 bit/s.
V23 = FskStandard("v23", mark_hz=1300.0, space_hz=2100.0, baud=1200.0)
STANDARDS = {s.name: s for s in (BELL202, V23)}

CARRIER_ON_DBM0 = -50.0  # in-band power: 12 dB under the weakest burst we must decode
CARRIER_OFF_DBM0 = -53.0
LEVEL_TAU_MS = 2.0  # in-band level smoothing: follows a burst's start and end within 3 bits
DROP_BITS = 3.0  # carrier bad this long (bits) ends a burst
# Complex low-pass after mixing to the centre: passes the +/-500 Hz deviation and the inner
# keying sidebands. Measured against 900-1100 Hz: 2-5 % more bursts decoded at +10 dB twist
# and 12-16 dB SNR, none lost elsewhere.
LOWPASS_HZ = 800.0
HIGHPASS_HZ = 400.0  # removes ringing (20-50 Hz), hum and DC before the level detector
MAX_BLOCK_SAMPLES = 1024  # feed() works in blocks of this size (state arrays sized for it)
_BUTTERWORTH4_Q = (0.5411961001461971, 1.3065629648763766)  # pole pairs of a 4th order

# Front end float state: biquads (2 each), two past low-pass outputs and the past image-FIR
# output (re, im each), the moving-average sum and the level.
_F_HP, _F_LPI, _F_LPQ, _F_Z1, _F_Z2 = 0, 2, 6, 10, 12
_F_W, _F_SUM, _F_LEVEL, _F_SIZE = 14, 16, 17, 18
# Front end coefficients: 3 biquads, 1 / deviation (rad/sample), level alpha, image FIR taps.
_C_INV_DEV, _C_LEVEL, _C_FIR, _C_SIZE = 15, 16, 17, 21


def biquad_lowpass(cutoff_hz: float, q: float, rate_hz: float) -> NDArray[np.float64]:
    """RBJ cookbook low-pass: [b0, b1, b2, a1, a2] normalised by a0."""
    w0 = 2.0 * math.pi * cutoff_hz / rate_hz
    alpha, c = math.sin(w0) / (2.0 * q), math.cos(w0)
    b = np.array([(1 - c) / 2, 1 - c, (1 - c) / 2])
    return np.concatenate([b, [-2 * c, 1 - alpha]]) / (1 + alpha)


def biquad_highpass(cutoff_hz: float, q: float, rate_hz: float) -> NDArray[np.float64]:
    """RBJ cookbook high-pass: [b0, b1, b2, a1, a2] normalised by a0."""
    w0 = 2.0 * math.pi * cutoff_hz / rate_hz
    alpha, c = math.sin(w0) / (2.0 * q), math.cos(w0)
    b = np.array([(1 + c) / 2, -(1 + c), (1 + c) / 2])
    return np.concatenate([b, [-2 * c, 1 - alpha]]) / (1 + alpha)


@njit(cache=True, nogil=True)
def _biquad(x: float, c: np.ndarray, ci: int, s: np.ndarray, si: int) -> float:
    """One transposed direct form II section; coefficients c[ci:ci+5], state s[si:si+2]."""
    y: float = c[ci] * x + s[si]
    s[si] = c[ci + 1] * x - c[ci + 3] * y + s[si + 1]
    s[si + 1] = c[ci + 2] * x - c[ci + 4] * y
    return y


@njit(cache=True, nogil=True)
def _fsk_mod_kernel(
    bits: np.ndarray, samples_per_bit: float, steps: np.ndarray, amps: np.ndarray, out: np.ndarray
) -> None:
    phase = 0.0
    last = bits.shape[0] - 1
    for n in range(out.shape[0]):
        k = min(int(n / samples_per_bit), last)
        b = 1 if bits[k] else 0
        out[n] = amps[b] * math.sin(phase)
        phase += steps[b]
        if phase > 2.0 * math.pi:
            phase -= 2.0 * math.pi


def modulate(
    bits: Iterable[int],
    standard: FskStandard,
    sample_rate: int = 8000,
    *,
    level_dbm0: float = -13.5,
    twist_db: float = 0.0,
    baud_offset_pct: float = 0.0,
    freq_offset_pct: float = 0.0,
) -> NDArray[np.int16]:
    """Phase-continuous FSK of `bits` (1 = mark) as int16 at `sample_rate`.

    `level_dbm0` is the mean of the mark and space levels in dB and `twist_db` the mark level
    minus the space level, so mark = level + twist/2 and space = level - twist/2 (dBm0).
    The offsets scale the bit rate and both tones by (1 + pct/100): a transmitter off nominal.
    """
    check_rate(sample_rate, "fsk.modulate", SUPPORTED_RATES_HZ)
    b = np.asarray(list(bits), np.uint8)
    if b.size == 0:
        return np.zeros(0, np.int16)
    baud = standard.baud * (1.0 + baud_offset_pct / 100.0)
    scale = 2.0 * math.pi * (1.0 + freq_offset_pct / 100.0) / sample_rate
    steps = np.array([standard.space_hz * scale, standard.mark_hz * scale])
    amps = np.array(
        [sine_amplitude(level_dbm0 - twist_db / 2.0), sine_amplitude(level_dbm0 + twist_db / 2.0)]
    )
    out = np.zeros(round(b.size * sample_rate / baud), np.float64)
    _fsk_mod_kernel(b, sample_rate / baud, steps, amps, out)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


@njit(cache=True, nogil=True)
def _fsk_front_end_kernel(
    pcm: np.ndarray,
    coefs: np.ndarray,
    nco: np.ndarray,
    state: np.ndarray,
    istate: np.ndarray,
    ma: np.ndarray,
    disc: np.ndarray,
    level: np.ndarray,
) -> None:
    half = nco.shape[0] // 2  # nco holds cos then sin of the centre frequency, one period
    taps = ma.shape[0]
    c1r, c1i, c2r, c2i = coefs[_C_FIR], coefs[_C_FIR + 1], coefs[_C_FIR + 2], coefs[_C_FIR + 3]
    for n in range(pcm.shape[0]):
        x = _biquad(float(pcm[n]), coefs, 0, state, _F_HP)
        k = istate[0]
        zi = _biquad(x * nco[k], coefs, 5, state, _F_LPI)
        zi = _biquad(zi, coefs, 10, state, _F_LPI + 2)
        zq = _biquad(-x * nco[half + k], coefs, 5, state, _F_LPQ)
        zq = _biquad(zq, coefs, 10, state, _F_LPQ + 2)
        istate[0] = k + 1 if k + 1 < half else 0
        # Zeros on the images of the two tones (the real signal's negative frequencies).
        z1r, z1i, z2r, z2i = state[_F_Z1], state[_F_Z1 + 1], state[_F_Z2], state[_F_Z2 + 1]
        wr = zi + c1r * z1r - c1i * z1i + c2r * z2r - c2i * z2i
        wi = zq + c1r * z1i + c1i * z1r + c2r * z2i + c2i * z2r
        state[_F_Z2], state[_F_Z2 + 1], state[_F_Z1], state[_F_Z1 + 1] = z1r, z1i, zi, zq
        re = wr * state[_F_W] + wi * state[_F_W + 1]
        im = wi * state[_F_W] - wr * state[_F_W + 1]
        state[_F_W], state[_F_W + 1] = wr, wi
        f = min(2.0, max(-2.0, math.atan2(im, re) * coefs[_C_INV_DEV]))  # +1 space, -1 mark
        j = istate[1]
        state[_F_SUM] += f - ma[j]
        ma[j] = f
        istate[1] = j + 1 if j + 1 < taps else 0
        disc[n] = state[_F_SUM] / taps
        # |z|^2 is a quarter of the power of a real tone: 2|z|^2 tracks the in-band power.
        state[_F_LEVEL] += coefs[_C_LEVEL] * (2.0 * (zi * zi + zq * zq) - state[_F_LEVEL])
        level[n] = state[_F_LEVEL]


def front_end_coefs(standard: FskStandard, rate_hz: int) -> NDArray[np.float64]:
    """Coefficients of `_fsk_front_end_kernel` for one standard and sample rate."""
    centre_hz = (standard.mark_hz + standard.space_hz) / 2.0
    dev_rad = 2.0 * math.pi * (standard.space_hz - standard.mark_hz) / 2.0 / rate_hz
    q1, q2 = _BUTTERWORTH4_Q
    r1 = np.exp(-2j * math.pi * (standard.mark_hz + centre_hz) / rate_hz)
    r2 = np.exp(-2j * math.pi * (standard.space_hz + centre_hz) / rate_hz)
    c1, c2 = -(r1 + r2), r1 * r2  # (1 - r1 z^-1)(1 - r2 z^-1)
    return np.concatenate(
        [
            biquad_highpass(HIGHPASS_HZ, math.sqrt(0.5), rate_hz),
            biquad_lowpass(LOWPASS_HZ, q1, rate_hz),
            biquad_lowpass(LOWPASS_HZ, q2, rate_hz),
            [1.0 / dev_rad, 1.0 - math.exp(-1000.0 / (LEVEL_TAU_MS * rate_hz))],
            [c1.real, c1.imag, c2.real, c2.imag],
        ]
    )


def centre_oscillator(standard: FskStandard, rate_hz: int) -> NDArray[np.float64]:
    """One whole period of cos then sin of the centre frequency (80 samples each at 8 kHz)."""
    centre_hz = round((standard.mark_hz + standard.space_hz) / 2.0)
    n = np.arange(rate_hz // math.gcd(rate_hz, centre_hz))
    w = 2.0 * math.pi * centre_hz * n / rate_hz
    return np.concatenate([np.cos(w), np.sin(w)])


class FskReceiver:
    """Streaming caller ID FSK receiver: int16 audio of any length in, event codes out.

    `known_types` are the message type bytes that open a burst that had no channel seizure.
    Events: data bytes 0-255 and the `EV_*` codes of `dsp.fsk_framer`, in stream order.
    """

    def __init__(
        self, standard: FskStandard, sample_rate: int = 8000, known_types: Iterable[int] = ()
    ) -> None:
        rate = check_rate(sample_rate, "FskReceiver", SUPPORTED_RATES_HZ)
        self.standard = standard
        self._coefs = front_end_coefs(standard, rate)
        self._nco = centre_oscillator(standard, rate)
        on, off = dbm0_to_rms(CARRIER_ON_DBM0) ** 2, dbm0_to_rms(CARRIER_OFF_DBM0) ** 2
        self._params = framer_params(standard.baud, rate, on, off, DROP_BITS)
        self._known = np.zeros(256, np.uint8)
        for t in known_types:
            if not 0 <= t <= 255:
                raise DspInputError(f"FskReceiver: message type {t} is not a byte")
            self._known[t] = 1
        self._ma = np.zeros(round(rate / standard.baud), np.float64)
        self._front = np.zeros(_F_SIZE, np.float64)
        self._front_i = np.zeros(2, np.int64)
        self._frame_f, self._frame_i = new_framer_state()
        self._disc = np.zeros(MAX_BLOCK_SAMPLES, np.float64)
        self._level = np.zeros(MAX_BLOCK_SAMPLES, np.float64)
        self._out = np.zeros(4 * MAX_BLOCK_SAMPLES, np.int32)
        self.reset()

    def reset(self) -> None:
        """Forget all state: filters, clock and any burst in progress."""
        self._ma[:] = 0.0
        self._front[:] = 0.0
        self._front_i[:] = 0
        reset_framer_state(self._frame_f, self._frame_i)

    def feed(self, pcm: NDArray[np.int16]) -> list[int]:
        """Process int16 samples of any length; returns the events they completed."""
        pcm = as_int16(pcm, "FskReceiver.feed")
        events: list[int] = []
        for i in range(0, pcm.shape[0], MAX_BLOCK_SAMPLES):
            block = pcm[i : i + MAX_BLOCK_SAMPLES]
            disc, level = self._disc[: block.shape[0]], self._level[: block.shape[0]]
            _fsk_front_end_kernel(
                block, self._coefs, self._nco, self._front, self._front_i, self._ma, disc, level
            )
            n = _fsk_framer_kernel(
                disc, level, self._params, self._known, self._frame_f, self._frame_i, self._out
            )
            events.extend(self._out[:n].tolist())
        return events
