"""What one 20 ms frame holds: which of a plan's tone sets, if any, and which SIT band.

Owns the per-frame kernels of `dsp.tones.ToneDetector` and the tables they read
(`FrameTables`, built once per plan by `build_frame_tables`). `dsp.tones` calls them once per
frame; they keep no state of their own (the tone set being held and the last hum cycle's low
band come in as arguments).

Method: the frame is correlated with cos/sin of every analysed frequency (one matrix-vector
product), then each tone set of the plan (a "signature": 425, 400+450, 480+620 Hz ...) is
fitted by least squares, each frequency tried at -1.33, 0 and +1.33 % (9 mixes for a pair)
so that an offset up to +-2 % keeps > 97 % of the tone's power. A frame is that signature
when the fit holds >= 80 % of the frame's energy less its hum (its purity), every component
lies in -46..0 dBm0 and a pair's twist is <= 10 dB. The fits are made outside the frame's
low band (its projection on `LOW_BAND_VECTORS` Slepian sequences below `LOW_BAND_HZ`): the
cos/sin columns have that part taken out, so DC and hum do not bias the fitted amplitudes,
and the purity counts the fitted sinusoids' whole energy, their part in the low band too.
The same product gives the low band's coefficients; what of them repeats one hum cycle
later (`dsp.hum`) is left out of the energy. Once a burst is under way, a frame
keeps it if the purity is >= 50 % and the level is within 3 dB of the burst's: speech 6 dB
under the tone then rarely breaks it. SIT bands are scanned on a 25 Hz grid of single-tone
fits.

Measured on the shipped clips (all plans' signatures): speech reaches purity 0.75 for at
most 2 frames in a row and 0.8 for at most 1; tones at 20 dB SNR, +-2 % off, keep >= 0.95.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.hum import _hum_repeat_kernel, low_band_basis
from dsp.levels import FULL_SCALE, MAX_SINE_DBM0, sine_amplitude
from dsp.tone_plans import TonePlan

PURITY_MIN = 0.80  # to start a burst (see the module docstring for the measurements)
HOLD_PURITY = 0.50  # to continue one, at the burst's level
HOLD_DB = 3.0  # with speech 6 dB under a tone, 99 % of frames fit within 3 dB of its level
# (measured: DE dial tone, p99 2.9 dB; 19 % of those frames fall under 0.8 purity, 4 % under 0.5)
SIT_PURITY_MIN = 0.70  # a SIT tone halfway between two 25 Hz grid bins keeps >= 0.81
TONE_MIN_DBM0 = -46.0  # the brief asks for -40 dBm0 per frequency; 6 dB margin
TONE_MAX_DBM0 = 0.0  # tones are sent at -13..-24 dBm0; 0 dBm0 leaves room for line gain
TWIST_MAX_DB = 10.0  # UK dial tone is sent with 3-4 dB twist; lines add a few dB of slope
OFFSET_STEP = 0.0133  # tried offsets 0, +-1.33 %: within 0.67 % of any offset up to +-2 %
OFFSETS = (1.0 - OFFSET_STEP, 1.0, 1.0 + OFFSET_STEP)
SIT_GRID_HZ = 25.0  # a SIT tone is at most 12.5 Hz from a bin: -0.9 dB over 20 ms
ENERGY_FLOOR_DBM0 = -50.0  # quieter frames are never tone (and skip the fits)
MAX_TONES = 2  # tones per signature
# The low band of a 20 ms frame: 10 Slepian sequences below 200 Hz, the fewest that hold
# every hum line at any phase to 25 dB (DC 31, 50 Hz 28, 60 Hz 34, 100-150 Hz >= 30, 180 Hz
# 25 dB; with 9, 60 Hz gets 20 dB and 120 Hz 17). What hum they miss stays in the energy.
LOW_BAND_HZ = 200.0
LOW_BAND_VECTORS = 10

# params slots (float64)
P_PURITY, _P_HOLD_PURITY, _P_HOLD_DB, _P_SIT_PURITY = 0, 1, 2, 3
_P_MIN_DBM0, _P_MAX_DBM0, _P_TWIST, P_FLOOR = 4, 5, 6, 7
_PARAM_SLOTS = 8
# info slots (float64, written per frame): tone level and purity, SIT level
I_LEVEL, I_PURITY, I_SIT_LEVEL = 0, 1, 2
INFO_SLOTS = 3
AMP_SLOTS = 2 * MAX_TONES


@njit(cache=True, nogil=True)
def _correlate_kernel(
    pcm: np.ndarray, start: int, basis: np.ndarray, floor: float, corr: np.ndarray
) -> float:
    """Returns the frame's energy sum(x^2); if it reaches `floor`, also fills
    corr[j] = sum_n pcm[start + n] * basis[n, j] (else corr is left as it was)."""
    energy = 0.0
    for n in range(basis.shape[0]):
        x = float(pcm[start + n])
        energy += x * x
    if energy < floor:  # silence between words and bursts: most frames of a call
        return energy
    for j in range(corr.shape[0]):
        corr[j] = 0.0
    for n in range(basis.shape[0]):
        x = float(pcm[start + n])
        for j in range(corr.shape[0]):  # independent sums: vectorises without fastmath
            corr[j] += x * basis[n, j]
    return energy


@njit(cache=True, nogil=True)
def _less_hum_kernel(
    corr: np.ndarray, energy: float, floor: float, past: np.ndarray, fresh: bool
) -> float:
    """`energy` less the part of the frame's low band (its correlations with the last
    LOW_BAND_VECTORS columns, orthonormal) that repeats the frame one hum cycle back, whose
    correlations `past` holds and gets this frame's (all of it while `fresh`: see
    `dsp.hum`). Frames under `floor` were not correlated: they count as an empty low band."""
    low = corr[corr.shape[0] - LOW_BAND_VECTORS :]
    if energy < floor:
        low[:] = 0.0
    return energy - _hum_repeat_kernel(low, past, fresh)


@njit(cache=True, nogil=True)
def _coef(grams: np.ndarray, corr: np.ndarray, cols: np.ndarray, i: int, dim: int) -> float:
    """Coefficient i of the least-squares fit (0 past the fit's `dim` columns); grams[0] is
    the inverse Gram matrix."""
    if i >= dim:
        return 0.0
    coef = 0.0
    for j in range(dim):
        coef += grams[0, i, j] * corr[cols[j]]
    return coef


@njit(cache=True, nogil=True)
def _fit_kernel(
    corr: np.ndarray, cols: np.ndarray, grams: np.ndarray, ntones: int, amps: np.ndarray
) -> float:
    """Least-squares fit of `ntones` sinusoids, with the frame's low band, whose low-band-free
    cos/sin correlations sit at corr[cols]; grams[0] is the inverse Gram matrix of those
    columns. Writes each tone's amplitude into amps[:ntones] and returns the energy the
    sinusoids add to the fit, c^T G0^-1 c (what least squares maximises)."""
    dim = 2 * ntones
    ginv = grams[0]
    for k in range(ntones):
        amps[k] = 0.0
    energy = 0.0
    for i in range(dim):
        coef = 0.0
        for j in range(dim):
            coef += ginv[i, j] * corr[cols[j]]
        energy += coef * corr[cols[i]]
        amps[i // 2] += coef * coef
    for k in range(ntones):
        amps[k] = math.sqrt(amps[k])
    return energy


@njit(cache=True, nogil=True)
def _tone_energy_kernel(corr: np.ndarray, cols: np.ndarray, grams: np.ndarray, ntones: int) -> (
    float
):  # fmt: skip
    """The energy of the sinusoids `_fit_kernel` fits, c^T G c with G = grams[1] the Gram
    matrix of the plain cos/sin columns: all of a clean tone's. The fit's own energy lacks
    the tone's part in the low band: up to 12 % at 343 Hz, 7 % at 400 Hz (worst phase)."""
    dim = 2 * ntones
    c = (  # MAX_TONES cos/sin pairs at most
        _coef(grams, corr, cols, 0, dim), _coef(grams, corr, cols, 1, dim),
        _coef(grams, corr, cols, 2, dim), _coef(grams, corr, cols, 3, dim),
    )  # fmt: skip
    energy = 0.0
    for i in range(dim):
        row = 0.0
        for j in range(dim):
            row += grams[1, i, j] * c[j]
        energy += c[i] * row
    return energy


@njit(cache=True, nogil=True)
def _levels_kernel(amps: np.ndarray, ntones: int, params: np.ndarray) -> float:
    """Mean level (dBm0) of the tones if each is in range and the twist is bounded, else nan."""
    lo = math.inf
    hi = -math.inf
    total = 0.0
    for k in range(ntones):
        level = 20.0 * math.log10(max(amps[k], 1e-9) / FULL_SCALE) + MAX_SINE_DBM0
        lo = min(lo, level)
        hi = max(hi, level)
        total += level
    if lo < params[_P_MIN_DBM0] or hi > params[_P_MAX_DBM0] or hi - lo > params[_P_TWIST]:
        return math.nan
    return total / ntones


@njit(cache=True, nogil=True)
def _best_fit(
    corr: np.ndarray, s: int, sig_cols: np.ndarray, sig_ginv: np.ndarray,
    sig_shape: np.ndarray, amps: np.ndarray,
) -> float:  # fmt: skip
    """Tone energy of signature s at its best offset mix (by least squares); its amplitudes
    go to amps[ntones:2 * ntones]."""
    ntones = sig_shape[s, 0]
    fit = -1.0
    best = 0
    for c in range(sig_shape[s, 1]):
        e = _fit_kernel(corr, sig_cols[s, c], sig_ginv[s, c], ntones, amps)
        if e > fit:
            fit = e
            best = c
            for k in range(ntones):
                amps[ntones + k] = amps[k]
    return _tone_energy_kernel(corr, sig_cols[s, best], sig_ginv[s, best], ntones)


@njit(cache=True, nogil=True)
def _classify_kernel(
    corr: np.ndarray, energy: float, sig_cols: np.ndarray, sig_ginv: np.ndarray,
    sig_shape: np.ndarray, params: np.ndarray, hold_sig: int, hold_level: float,
    amps: np.ndarray, info: np.ndarray,
) -> int:  # fmt: skip
    """Signature this frame holds, or -1; info gets its level and purity. `hold_sig` (-1 for
    none) is the burst under way at `hold_level` dBm0: it wins whenever it still qualifies."""
    info[I_LEVEL] = 0.0
    info[I_PURITY] = 0.0
    if energy < params[P_FLOOR]:
        return -1
    best = -1
    best_purity = -1.0
    for s in range(sig_shape.shape[0]):
        ntones = sig_shape[s, 0]
        purity = _best_fit(corr, s, sig_cols, sig_ginv, sig_shape, amps) / energy
        held = s == hold_sig
        if purity < (params[_P_HOLD_PURITY] if held else params[P_PURITY]):
            continue
        level = _levels_kernel(amps[ntones:], ntones, params)
        if math.isnan(level):
            continue
        clean = purity >= params[P_PURITY]
        if held and (clean or abs(level - hold_level) <= params[_P_HOLD_DB]):
            info[I_LEVEL] = level
            info[I_PURITY] = purity
            return s
        if clean and not held and purity > best_purity:
            best = s
            best_purity = purity
            info[I_LEVEL] = level
            info[I_PURITY] = purity
    return best


@njit(cache=True, nogil=True)
def _sit_band_kernel(
    corr: np.ndarray, energy: float, sit_cols: np.ndarray, sit_ginv: np.ndarray,
    sit_nbins: np.ndarray, params: np.ndarray, amps: np.ndarray, info: np.ndarray,
) -> int:  # fmt: skip
    """SIT band (0, 1, 2) holding a pure single tone in this frame, or -1; info gets its level."""
    info[I_SIT_LEVEL] = 0.0
    if energy < params[P_FLOOR]:
        return -1
    best = -1
    best_purity = -1.0
    for b in range(sit_nbins.shape[0]):
        for i in range(sit_nbins[b]):
            _fit_kernel(corr, sit_cols[b, i], sit_ginv[b, i], 1, amps)
            purity = _tone_energy_kernel(corr, sit_cols[b, i], sit_ginv[b, i], 1) / energy
            if purity >= params[_P_SIT_PURITY] and purity > best_purity:
                level = _levels_kernel(amps, 1, params)
                if not math.isnan(level):
                    best = b
                    best_purity = purity
                    info[I_SIT_LEVEL] = level
    return best


@dataclass(frozen=True, slots=True)
class FrameTables:
    """A plan compiled for the frame kernels."""

    signatures: tuple[tuple[float, ...], ...]  # the plan's distinct tone sets (Hz)
    # (160, 2 * frequencies + LOW_BAND_VECTORS): cos, sin of each analysed frequency with the
    # low band taken out, then the low band's orthonormal columns
    basis: NDArray[np.float64]
    sig_cols: NDArray[np.int64]  # (signatures, 9 offset mixes, 4): basis columns of each fit
    # (signatures, 9, 2, 4, 4): per fit, the inverse Gram matrix of its columns in `basis`
    # and the Gram matrix of the plain cos/sin columns (see `_fit_kernel`)
    sig_ginv: NDArray[np.float64]
    sig_shape: NDArray[np.int64]  # (signatures, 2): tones, offset mixes used
    sit_cols: NDArray[np.int64]  # (3, bins, 2)
    sit_ginv: NDArray[np.float64]  # (3, bins, 2, 2, 2)
    sit_nbins: NDArray[np.int64]  # (3,)
    params: NDArray[np.float64]


def basis_for(freqs_hz: list[float]) -> NDArray[np.float64]:
    """(160, 2 * len(freqs_hz)) cos/sin columns, n = 0..159 at 8 kHz."""
    w = 2.0 * np.pi * np.outer(np.arange(FRAME_SAMPLES), freqs_hz) / RATE_HZ
    out = np.empty((FRAME_SAMPLES, 2 * len(freqs_hz)), np.float64)
    out[:, 0::2] = np.cos(w)
    out[:, 1::2] = np.sin(w)
    return out


def _grams(
    basis: NDArray[np.float64], plain: NDArray[np.float64], cols: list[int]
) -> NDArray[np.float64]:
    """(2, d, d): the inverse Gram matrix of basis[:, cols], the Gram matrix of plain[:, cols]."""
    b, p = basis[:, cols], plain[:, cols]
    return np.stack([np.linalg.inv(b.T @ b), p.T @ p]).astype(np.float64)


def sit_bins(plan: TonePlan) -> list[list[float]]:
    """A grid no coarser than SIT_GRID_HZ over each SIT band, tolerance included."""
    tol = plan.sit.band_tolerance_hz
    out = []
    for band in plan.sit.bands_hz:
        lo, hi = min(band) - tol, max(band) + tol
        n = math.ceil((hi - lo) / SIT_GRID_HZ) + 1
        out.append([float(f) for f in np.linspace(lo, hi, n)])
    return out


def _params() -> NDArray[np.float64]:
    params = np.zeros(_PARAM_SLOTS, np.float64)
    params[P_PURITY] = PURITY_MIN
    params[_P_HOLD_PURITY] = HOLD_PURITY
    params[_P_HOLD_DB] = HOLD_DB
    params[_P_SIT_PURITY] = SIT_PURITY_MIN
    params[_P_MIN_DBM0] = TONE_MIN_DBM0
    params[_P_MAX_DBM0] = TONE_MAX_DBM0
    params[_P_TWIST] = TWIST_MAX_DB
    params[P_FLOOR] = FRAME_SAMPLES * sine_amplitude(ENERGY_FLOOR_DBM0) ** 2 / 2.0
    return params


def build_frame_tables(plan: TonePlan) -> FrameTables:
    """Fit tables for every tone set of `plan` and its SIT bands."""
    sigs = tuple(dict.fromkeys(t.freqs_hz for t in plan.tones))
    if any(not 1 <= len(sig) <= MAX_TONES for sig in sigs):
        raise DspInputError(f"tone plan {plan.name}: a tone needs 1 to {MAX_TONES} frequencies")
    freqs = sorted({f * o for sig in sigs for f in sig for o in OFFSETS})
    col = {f: 2 * i for i, f in enumerate(freqs)}
    bins = sit_bins(plan)
    low = low_band_basis(FRAME_SAMPLES, LOW_BAND_HZ, LOW_BAND_VECTORS)
    plain = basis_for(freqs + [f for band in bins for f in band])
    basis = np.hstack([plain - low @ (low.T @ plain), low])
    sig_cols = np.zeros((len(sigs), 3**MAX_TONES, AMP_SLOTS), np.int64)
    sig_ginv = np.zeros((len(sigs), 3**MAX_TONES, 2, AMP_SLOTS, AMP_SLOTS), np.float64)
    for s, sig in enumerate(sigs):
        for c, mix in enumerate(itertools.product(OFFSETS, repeat=len(sig))):
            cols = [col[f * o] + j for f, o in zip(sig, mix, strict=True) for j in (0, 1)]
            sig_cols[s, c, : len(cols)] = cols
            sig_ginv[s, c, :, : len(cols), : len(cols)] = _grams(basis, plain, cols)
    sit_cols = np.zeros((3, max(len(b) for b in bins), 2), np.int64)
    sit_ginv = np.zeros((*sit_cols.shape[:2], 2, 2, 2), np.float64)
    first = 2 * len(freqs)
    for b, band in enumerate(bins):
        for i in range(len(band)):
            sit_cols[b, i] = (first, first + 1)
            sit_ginv[b, i] = _grams(basis, plain, [first, first + 1])
            first += 2
    return FrameTables(
        signatures=sigs, basis=basis, sig_cols=sig_cols, sig_ginv=sig_ginv,
        sig_shape=np.array([(len(s), 3 ** len(s)) for s in sigs], np.int64),
        sit_cols=sit_cols, sit_ginv=sit_ginv,
        sit_nbins=np.array([len(b) for b in bins], np.int64), params=_params(),
    )  # fmt: skip
