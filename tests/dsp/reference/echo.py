"""Plain numpy reference for `dsp.echo*`: the same echo canceller, written from the modules'
descriptions with whole-array operations (numpy's FFT, complex arrays, boolean masks) and
functions that return new values, instead of the kernels' loops over real/imaginary arrays
and in-place state. Shared constants and slot indices come from the modules themselves.

`RefEchoCanceller` runs a whole frame from the pieces; `tests/dsp/test_echo.py` compares each
piece and the whole with the kernels. Not bit exact: numpy's FFT rounds differently from the
kernels' radix-2 one (about 1e-15 relative), and sums are taken in another order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import echo_control as ctl
from dsp import echo_delay as dly
from dsp import echo_frame as frm
from dsp import echo_mdf as mdf
from dsp import echo_nlp as nlp
from dsp import echo_window as win
from dsp.g711 import alaw_decode, ulaw_decode

F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]
B = mdf.BLOCK_SAMPLES
N = mdf.FFT_SIZE


# --- transforms ---------------------------------------------------------------------------------


def ref_rfft2(a: F64, b: F64) -> F64:
    """(4, N/2+1): Re A, Im A, Re B, Im B of two real blocks."""
    fa, fb = np.fft.rfft(a), np.fft.rfft(b)
    return np.stack([fa.real, fa.imag, fb.real, fb.imag])


def ref_irfft2(spec: F64, n: int) -> tuple[F64, F64]:
    """The two real blocks of half spectra spec[0] + j spec[1], spec[2] + j spec[3]."""
    return np.fft.irfft(spec[0] + 1j * spec[1], n), np.fft.irfft(spec[2] + 1j * spec[3], n)


def cplx(pair: F64) -> C128:
    """A (2, ...) real/imaginary pair as one complex array."""
    z: C128 = pair[0] + 1j * pair[1]
    return z


# --- codec noise --------------------------------------------------------------------------------


def ref_codec_noise_table() -> F64:
    """Variance of the uniform error over each G.711 level's decision interval (between the
    midpoints to its neighbours; the outermost mirror their inner half); -1 off the levels."""
    table = np.full(65536, -1.0)
    for decode in (alaw_decode, ulaw_decode):
        levels = np.unique(decode(np.arange(256, dtype=np.uint8)).astype(np.int64))
        mids = (levels[1:] + levels[:-1]) / 2.0
        lower = np.concatenate([[2 * levels[0] - mids[0]], mids])
        upper = np.concatenate([mids, [2 * levels[-1] - mids[-1]]])
        table[levels + 32768] = (upper - lower) ** 2 / 12.0
    return table


def ref_codec_noise(mic: NDArray[np.int16], table: F64, block: int) -> F64:
    """Per-block mean codec noise variance; 1/12 everywhere if any sample is no level."""
    var = table[mic.astype(np.int64) + 32768]
    if np.any(var < 0):
        return np.full(mic.size // block, 1.0 / 12.0)
    means: F64 = var.reshape(-1, block).mean(axis=1)
    return means


# --- the adaptive filter (dsp.echo_mdf) ---------------------------------------------------------


def lagged(ring: NDArray[Any], head: int, count: int, start: int = 0) -> NDArray[Any]:
    """Ring entries from `start` to `start + count - 1` blocks back from `head`, in lag order."""
    return ring[..., (head - start - np.arange(count)) % ring.shape[-2], :]


def ref_outputs(x: C128, w: C128) -> C128:
    """(2, K): foreground and background output spectra, sum over partitions of W X."""
    y: C128 = np.sum(w * x[None], axis=1)
    return y


def ref_errors(dd: F64, y: C128) -> tuple[F64, F64, C128, C128, C128]:
    """Errors (foreground, background) from the output spectra, and the spectra of the
    zero-padded background error, background estimate and mic block."""
    half = np.zeros(B)
    yf = np.fft.irfft(y[0], N)[B:]
    yb = np.fft.irfft(y[1], N)[B:]
    ef, eb = dd - yf, dd - yb
    e_spec = np.fft.rfft(np.concatenate([half, eb]))
    y_spec = np.fft.rfft(np.concatenate([half, yb]))
    return ef, eb, e_spec, y_spec, e_spec + y_spec


def ref_bin_stats(e: C128, y: C128, d: C128, xpow: F64, par: F64, bins: F64) -> F64:
    """New per-bin statistics: smoothed min(|Y|^2 + floor |X|^2 / 2, |D|^2), smoothed |E|^2
    (seeded by the first block), and its running minimum rising by NOISE_RISE."""
    out = bins.copy()
    a = par[mdf.SMOOTH]
    s_in = np.minimum(np.abs(y) ** 2 + par[mdf.ECHO_FLOOR] * xpow / 2.0, np.abs(d) ** 2)
    out[mdf.S_ECHO] = bins[mdf.S_ECHO] + a * (s_in - bins[mdf.S_ECHO])
    e2 = np.abs(e) ** 2
    prev = np.where(bins[mdf.E_POW] < 0, e2, bins[mdf.E_POW])
    out[mdf.E_POW] = prev + a * (e2 - prev)
    falls = out[mdf.E_POW] < bins[mdf.N_MIN]
    out[mdf.N_MIN] = np.where(falls, out[mdf.E_POW], bins[mdf.N_MIN] * par[mdf.NOISE_RISE])
    return out


def ref_step(xpow: F64, g: F64, codec_var: float, par: F64, bins: F64) -> F64:
    """New bins with D_HELD and STEP: the gain-weighted regressor power, held, and the
    echo-to-noise weighted normalised step 2 mu a / (D + beta mean D + delta)."""
    out = bins.copy()
    d = g @ xpow
    out[mdf.D_HELD] = np.maximum(d, par[mdf.D_HOLD] * bins[mdf.D_HELD])
    s = bins[mdf.S_ECHO]
    weight = s / (s + bins[mdf.N_MIN] + B * codec_var + 1e-9)
    den = out[mdf.D_HELD] + par[mdf.BETA] * out[mdf.D_HELD].mean() + par[mdf.DELTA]
    out[mdf.STEP] = 2.0 * par[mdf.MU] * weight / den
    return out


def ref_adapt(x: C128, g: F64, e: C128, step: F64, wb: C128) -> C128:
    """Background after one gradient step: W_j + g_j step conj(X_j) E."""
    return wb + g[:, None] * step[None, :] * np.conj(x) * e[None, :]


def ref_constrain(w: C128) -> C128:
    """Partitions with their time-domain taps past the first block zeroed."""
    taps = np.fft.irfft(w, N, axis=-1)
    taps[..., B:] = 0.0
    return np.fft.rfft(taps, axis=-1)


def ref_gains(wb: C128, prior: F64, prior_weight: float, alpha: float) -> F64:
    """IPNLMS partition gains on the partition norms, mixed with the prior."""
    norm = np.sqrt(np.sum(np.abs(wb) ** 2, axis=1))
    parts = norm.size
    ipnlms = (1 - alpha) / (2 * parts) + (1 + alpha) * norm / (2 * norm.sum() + 1e-9)
    result: F64 = (1 - prior_weight) * ipnlms + prior_weight * prior
    return result


def ref_constrain_schedule(g: F64, turn: int) -> NDArray[np.int64]:
    """The largest gains (first index on ties), then the round-robin partitions."""
    top = np.argsort(-g, kind="stable")[: mdf.TOP_CONSTRAINED]
    more = (turn + np.arange(2 * mdf.ROUND_ROBIN_PAIRS)) % g.size
    return np.concatenate([top, more]).astype(np.int64)


# --- the delay estimator (dsp.echo_delay) -------------------------------------------------------


BAND = slice(*dly.BAND)


def ref_cross(x: C128, d: C128, xpow: F64, blocks: int, cross: C128, psd: F64) -> tuple[C128, F64]:
    """Smoothed D conj(X_p) for all lag partitions and the two power spectra (BAND only):
    the mean of the first blocks, then exponential."""
    a = max(1.0 - dly.SMOOTHING, 1.0 / (blocks + 1))
    new_cross, new_psd = cross.copy(), psd.copy()
    new_cross[:, BAND] += a * (d[None, BAND] * np.conj(x[:, BAND]) - cross[:, BAND])
    new_psd[0, BAND] += a * (np.abs(d[BAND]) ** 2 - psd[0, BAND])
    new_psd[1, BAND] += a * (xpow[BAND] - psd[1, BAND])
    return new_cross, new_psd


def ref_coherence(cross: C128, psd: F64) -> F64:
    """Band mean of |C_p|^2 / (S_dd S_xx) per lag partition."""
    msc = np.abs(cross[:, BAND]) ** 2 / (psd[0, BAND] * psd[1, BAND] + 1e-6)
    result: F64 = msc.mean(axis=1)
    return result


def ref_explained(cross: C128, psd: F64, gam: F64) -> float:
    """Share of the mic's band power the reference explains at the most coherent partition."""
    c = cross[int(np.argmax(gam)), BAND]
    return float(np.sum(np.abs(c) ** 2 / (2 * psd[1, BAND] + 1e-6)) / (psd[0, BAND].sum() + 1e-6))


def ref_best_partition(gam: F64, blocks: int) -> int:
    """Most coherent partition, if it stands out enough; else -1."""
    best = int(np.argmax(gam))
    floor = max(dly.MIN_COHERENCE, dly.NOISE_COHERENCE / max(blocks, 1))
    ok = gam[best] >= floor and gam[best] >= dly.CONFIDENCE_RATIO * gam.mean()
    return best if ok else -1


def ref_track(part: int, track: list[int]) -> bool:
    """Candidate / held count / accepted partition; True when the accepted one moves."""
    if part < 0:
        return False
    near = track[1] > 0 and abs(part - track[0]) <= dly.TRACK_TOLERANCE
    track[0], track[1] = (track[0], track[1] + 1) if near else (part, 1)
    moves = track[2] < 0 or abs(track[2] - track[0]) > dly.TRACK_TOLERANCE
    if track[1] >= dly.HOLD_UPDATES and moves:
        track[2] = track[0]
        return True
    return False


def ref_prior(first: int, last: int, delay: int, parts: int) -> F64:
    """Per-partition coverage of the echo's span (plus skirts either side), summing to 1."""
    lag = np.arange(parts * B) + delay
    inside = (lag >= first - dly.PRIOR_PRE_SAMPLES) & (lag < last + dly.PRIOR_POST_SAMPLES)
    prior = inside.reshape(parts, B).sum(axis=1) / B
    used = np.flatnonzero(prior > 0)
    if used.size == 0:
        return np.full(parts, 1.0 / parts)
    top = prior.max()
    for j in (used[0] - 1, used[-1] + 1):
        if 0 <= j < parts:
            prior[j] = dly.PRIOR_SKIRT * top
    result: F64 = prior / prior.sum()
    return result


# --- the window (dsp.echo_window) ---------------------------------------------------------------


def ref_taps(w: C128) -> F64:
    """Time-domain taps (first block of each partition, concatenated) of partition spectra."""
    taps: F64 = np.fft.irfft(w, N, axis=-1)[..., :B]
    return taps.reshape(*w.shape[:-2], -1)


def ref_spectra(taps: F64, parts: int) -> C128:
    """Partition spectra of a tap vector (the inverse of `ref_taps`)."""
    blocks = taps.reshape(*taps.shape[:-1], parts, B)
    pad = np.concatenate([blocks, np.zeros_like(blocks)], axis=-1)
    return np.fft.rfft(pad, axis=-1)


def ref_filter_peak(wb: C128, parts: int) -> int:
    """Index of the largest background tap (magnitude) among the first `parts` partitions."""
    return int(np.argmax(np.abs(ref_taps(wb[:parts]))))


def ref_retime(w: C128, shift: int) -> C128:
    """Both filters' taps moved `shift` samples earlier (zero-filled)."""
    taps = ref_taps(w)
    moved = np.zeros_like(taps)
    n = taps.shape[-1]
    if 0 <= shift < n:
        moved[..., : n - shift] = taps[..., shift:]
    elif -n < shift < 0:
        moved[..., -shift:] = taps[..., : n + shift]
    return ref_spectra(moved, w.shape[-2])


def ref_refill(hist: F64, delay: int, parts: int) -> C128:
    """Spectra of the last `parts` blocks of the reference delayed by `delay`, lag order."""
    end = hist.size - delay - B * np.arange(parts)
    idx = end[:, None] - 2 * B + np.arange(2 * B)[None, :]
    block = np.where(idx >= 0, hist[np.clip(idx, 0, None)], 0.0)
    return np.fft.rfft(block, axis=1)


# --- the per-frame decisions (dsp.echo_control) -------------------------------------------------


def ref_dc_block(x: NDArray[np.int16], x1: float, y1: float) -> tuple[F64, float, float]:
    """y[n] = x[n] - x[n-1] + 0.999 y[n-1]; returns y and the new (x1, y1)."""
    y = np.empty(x.size)
    for n, v in enumerate(x.astype(np.float64)):
        y1 = v - x1 + 0.999 * y1
        x1 = v
        y[n] = y1
    return y, x1, y1


def ref_erle_db(num: float, den: float) -> float:
    return 10.0 * math.log10((num + 1e-9) / (max(den, num / ctl.ERLE_CAP) + 1e-9))


def ref_two_path(sff: float, see: float, dbf: float, suspect: bool, dt: bool, fst: F64) -> int:
    """The two-path decision (1 copy, -1 reset, 0 neither); its averages updated in `fst`."""
    d, spread = sff - see, sff * dbf
    s, lg, slow = ctl.TWO_PATH_SHORT, ctl.TWO_PATH_LONG, ctl.TWO_PATH_SLOW
    fst[ctl.AVG_SHORT] = s * fst[ctl.AVG_SHORT] + (1 - s) * d
    fst[ctl.AVG_LONG] = lg * fst[ctl.AVG_LONG] + (1 - lg) * d
    fst[ctl.VAR_SHORT] = s * s * fst[ctl.VAR_SHORT] + (1 - s) ** 2 * spread
    fst[ctl.VAR_LONG] = lg * lg * fst[ctl.VAR_LONG] + (1 - lg) ** 2 * spread
    fst[ctl.SLOW_FG] = slow * fst[ctl.SLOW_FG] + (1 - slow) * sff
    fst[ctl.SLOW_BG] = slow * fst[ctl.SLOW_BG] + (1 - slow) * see

    def signed_square(x: float) -> float:
        return x * abs(x)

    significant = (
        signed_square(d) > spread
        or signed_square(fst[ctl.AVG_SHORT]) > 0.5 * fst[ctl.VAR_SHORT]
        or signed_square(fst[ctl.AVG_LONG]) > 0.25 * fst[ctl.VAR_LONG]
    )
    averages = [ctl.AVG_SHORT, ctl.AVG_LONG, ctl.VAR_SHORT, ctl.VAR_LONG]
    steady = not suspect and fst[ctl.SLOW_BG] < ctl.SLOW_MARGIN * fst[ctl.SLOW_FG]
    if dt:
        fst[averages] = 0.0
        fst[ctl.SLOW_BG] = fst[ctl.SLOW_FG]
        action = 0
    else:
        clear = not suspect or see < ctl.SUSPECT_COPY_RATIO * sff
        action = 1 if (significant and clear) or steady else 0
    if action == 0 and -signed_square(d) > 4 * spread and see > ctl.BACKTRACK_RATIO * sff:
        action = -1
    if action:
        fst[averages] = 0.0
        fst[ctl.SLOW_FG] = fst[ctl.SLOW_BG]
    return action


def ref_noise_floor(sff: float, noise: float) -> float:
    """Next noise floor: the first frame's error, then down at most 3 dB a frame, up slowly."""
    if noise < 0 or sff < ctl.NOISE_FALL * noise:
        return max(sff, ctl.NOISE_FALL * noise)
    return sff if sff < noise else noise * ctl.NOISE_RISE


def ref_talk_state(
    pw: F64, codec_var: float, coherence: float, fst: F64, ist: NDArray[np.int64]
) -> None:
    """Noise floor, far activity, suspect and double talk (in place)."""
    fst[ctl.NOISE] = ref_noise_floor(pw[frm.P_FG], fst[ctl.NOISE])
    fst[ctl.FAR_POWER] = max(pw[frm.P_REF], ctl.FAR_DECAY * fst[ctl.FAR_POWER])
    far = fst[ctl.FAR_POWER] > ctl.FAR_ACTIVE_POWER
    erle = (fst[ctl.ERLE_NUM] + 1e-9) / (fst[ctl.ERLE_DEN] + 1e-9)
    expected = pw[frm.P_ECHO] / erle + fst[ctl.NOISE] + codec_var
    suspect = far and pw[frm.P_FG] > ctl.SUSPECT_RATIO * expected
    coherent = coherence > ctl.DT_COHERENCE_RATIO * fst[ctl.COH_REF]
    low = coherence < ctl.DT_COHERENCE_RATIO * fst[ctl.COH_REF]
    ist[ctl.SUSPECT], ist[ctl.DOUBLE_TALK] = suspect, suspect and low
    if far and not suspect and coherent:
        fst[ctl.COH_REF] += (1 - ctl.COH_SMOOTHING) * (coherence - fst[ctl.COH_REF])


def ref_step_size(erle_db: float, residual: float, floor: float, suspect: bool) -> float:
    if suspect or erle_db <= ctl.MU_FULL_BELOW_DB:
        return ctl.MU_CONVERGE
    return max(ctl.MU_MAX * residual / (residual + floor + 1e-9), ctl.MU_MIN)


def ref_stats(pw: F64, codec_var: float, copied: bool, fst: F64, ist: NDArray[np.int64]) -> None:
    """ERLE estimates, converged flag and the next step (in place)."""
    floor = fst[ctl.NOISE] + codec_var
    far = fst[ctl.FAR_POWER] > ctl.FAR_ACTIVE_POWER
    ist[ctl.SINCE_COPY] = 0 if copied else ist[ctl.SINCE_COPY] + 1
    if far and pw[frm.P_ECHO] > 4 * floor and (copied or not ist[ctl.SUSPECT]):
        a = 1 - ctl.ERLE_SMOOTHING
        for slot, value in (
            (ctl.ERLE_NUM, pw[frm.P_MIC] - floor),
            (ctl.ERLE_DEN, pw[frm.P_FG] - floor),
            (ctl.REPORT_NUM, pw[frm.P_MIC] - fst[ctl.NOISE]),
            (ctl.REPORT_DEN, pw[frm.P_FG] - fst[ctl.NOISE]),
        ):
            fst[slot] += a * (max(value, 0.0) - fst[slot])
        fst[ctl.FLOOR_AVG] += a * (floor - fst[ctl.FLOOR_AVG])
    erle_db = ref_erle_db(fst[ctl.ERLE_NUM], fst[ctl.ERLE_DEN])
    ist[ctl.CONVERGED] = erle_db >= ctl.CONVERGED_DB
    fst[ctl.MU_NOW] = (
        0.0
        if ist[ctl.DOUBLE_TALK]
        else ref_step_size(erle_db, fst[ctl.ERLE_DEN], fst[ctl.FLOOR_AVG], bool(ist[ctl.SUSPECT]))
    )


# --- the non-linear processor (dsp.echo_nlp) ----------------------------------------------------


def ref_levinson(r: F64) -> tuple[F64, float]:
    """LPC polynomial [1, a1..ap] solving the normal equations for autocorrelation r (its
    r[0] raised by the white-noise correction), and the prediction error over r[0]."""
    p = r.size - 1
    if r[0] <= 0:
        return np.eye(1, p + 1)[0], 1.0
    r0 = r[0] * nlp.WHITE_NOISE_CORRECTION
    toeplitz = np.array([[r0 if i == j else r[abs(i - j)] for j in range(p)] for i in range(p)])
    a = np.linalg.solve(toeplitz, -r[1:])
    err = r0 + float(np.dot(a, r[1:]))
    return np.concatenate([[1.0], a]), err / r[0]


def ref_noise_shape(e: F64, nst: F64) -> None:
    """Fold a noise-only frame into the smoothed autocorrelation; refit the LPC (in place)."""
    order, n = nlp.LPC_ORDER, e.size
    ac = np.array([np.dot(e[i:], e[: n - i]) / n for i in range(order + 1)])
    sl = slice(nlp.AC, nlp.AC + order + 1)
    nst[sl] += (1 - nlp.AC_SMOOTHING) * (ac - nst[sl])
    a, err = ref_levinson(nst[sl])
    nst[nlp.LPC : nlp.LPC + order + 1] = a
    nst[nlp.PRED_ERROR] = err


def ref_lcg(seed: int, count: int) -> tuple[F64, int]:
    """`count` uniforms in [0, 1) from the 31-bit LCG x' = 1103515245 x + 12345, and its state."""
    out = np.empty(count)
    for i in range(count):
        seed = (seed * 1103515245 + 12345) % 2**31
        out[i] = seed / 2**31
    return out, seed


def ref_comfort_noise(power: float, nst: F64, seed: int, count: int) -> tuple[F64, int]:
    """`count` samples of comfort noise (updating the synthesis memory in nst) and the seed."""
    u, seed = ref_lcg(seed, 2 * count)
    white = math.sqrt(max(power, 0.0) * nst[nlp.PRED_ERROR] * 6.0) * (u[0::2] + u[1::2] - 1.0)
    a = nst[nlp.LPC + 1 : nlp.LPC + 1 + nlp.LPC_ORDER]
    past = list(nst[nlp.MEM : nlp.MEM + nlp.LPC_ORDER])  # y[n-1], y[n-2], ...
    out = np.empty(count)
    for n in range(count):
        out[n] = white[n] - float(np.dot(a, past))
        past = [out[n], *past[:-1]]
    nst[nlp.MEM : nlp.MEM + nlp.LPC_ORDER] = past
    return out, seed


def ref_nlp_block(
    e: F64, y: F64, codec_var: float, noise: float, erle: float, nst: F64, nis: NDArray[np.int64]
) -> F64:
    """One block through the NLP: suppressed to comfort noise when it is residual echo and
    noise only, else passed; the gain ramps linearly over the block (state in place)."""
    pe, py = float(np.mean(e * e)), float(np.mean(y * y))
    floor = noise + codec_var
    expected = nlp.RESIDUAL_MARGIN * py / erle + floor
    near = pe >= nlp.NLP_RATIO * expected and pe > nlp.NLP_RATIO * floor
    suppress = py > floor and pe < nlp.NLP_RATIO * expected and nis[nlp.HANG] == 0
    if not suppress and near:
        nis[nlp.HANG] = nlp.HANG_BLOCKS
    nis[nlp.HANG] = max(nis[nlp.HANG] - 1, 0)
    cn, nis[nlp.RNG] = ref_comfort_noise(noise, nst, int(nis[nlp.RNG]), e.size)
    target = 0.0 if suppress else 1.0
    g = nst[nlp.GAIN] + (target - nst[nlp.GAIN]) * np.arange(1, e.size + 1) / e.size
    nst[nlp.GAIN] = target
    result: F64 = g * e + np.sqrt(1 - g * g) * cn
    return result


# --- one frame (dsp.echo_frame), the state in one object ----------------------------------------


@dataclass
class RefState:
    """The canceller's state with the filter's and estimator's rings in lag order (newest
    block first) and complex spectra."""

    parts: int
    ring: int
    hist: F64
    nlp: bool
    fx: C128 = None  # type: ignore[assignment]
    xs: C128 = None  # type: ignore[assignment]
    w: C128 = None  # type: ignore[assignment]
    cross: C128 = None  # type: ignore[assignment]
    bins: F64 = None  # type: ignore[assignment]
    psd: F64 = None  # type: ignore[assignment]
    g: F64 = None  # type: ignore[assignment]
    prior: F64 = None  # type: ignore[assignment]
    par: F64 = None  # type: ignore[assignment]
    fst: F64 = None  # type: ignore[assignment]
    ist: NDArray[np.int64] = None  # type: ignore[assignment]
    nst: F64 = None  # type: ignore[assignment]
    nis: NDArray[np.int64] = None  # type: ignore[assignment]
    turn: int = 0

    def __post_init__(self) -> None:
        k = mdf.BINS
        self.fx = np.zeros((self.parts, k), complex)
        self.xs = np.zeros((self.ring, k), complex)
        self.w = np.zeros((2, self.parts, k), complex)
        self.cross = np.zeros((self.ring, k), complex)
        self.bins = np.zeros((mdf.BIN_ROWS, k))
        self.bins[mdf.N_MIN], self.bins[mdf.E_POW] = np.inf, -1.0
        self.psd = np.zeros((2, k))
        self.g = np.full(self.parts, 1.0 / self.parts)
        self.prior = np.full(self.parts, 1.0 / self.parts)
        self.par = mdf.mdf_params()
        self.fst, self.ist = ctl.control_state()
        self.nst, self.nis = nlp.nlp_state()


def ref_prior_weight(st: RefState) -> float:
    if st.ist[ctl.COARSE + 2] < 0:
        return 0.0
    lo, hi = frm.PRIOR_FADE_DB
    t = min(max((ref_erle_db(st.fst[ctl.ERLE_NUM], st.fst[ctl.ERLE_DEN]) - lo) / (hi - lo), 0), 1)
    return frm.PRIOR_WEIGHT + t * (frm.PRIOR_LATE - frm.PRIOR_WEIGHT)


def ref_block(st: RefState, k: int, d: F64, codec: float, prior_weight: float) -> tuple[F64, F64]:
    """Block k of the frame: push the spectra, filter, adapt, constrain, gains, estimator."""
    end = st.hist.size - 160 + (k + 1) * B
    delay = int(st.ist[ctl.DELAY])
    st.fx = np.concatenate([[np.fft.rfft(st.hist[end - 2 * B - delay : end - delay])], st.fx[:-1]])
    st.xs = np.concatenate([[np.fft.rfft(st.hist[end - 2 * B : end])], st.xs[:-1]])
    dd = d[k * B : (k + 1) * B]
    ef, eb, e, yb, dspec = ref_errors(dd, ref_outputs(st.fx, st.w))
    st.bins = ref_bin_stats(e, yb, dspec, np.abs(st.fx[0]) ** 2, st.par, st.bins)
    if st.par[mdf.MU] > 0:  # (no adaptation in double talk)
        st.bins = ref_step(np.abs(st.fx) ** 2, st.g, codec, st.par, st.bins)
        st.w[1] = ref_adapt(st.fx, st.g, e, st.bins[mdf.STEP], st.w[1])
        chosen = ref_constrain_schedule(st.g, st.turn)
        st.w[1, chosen] = ref_constrain(st.w[1, chosen])
    st.turn = (st.turn + 2 * mdf.ROUND_ROBIN_PAIRS) % st.parts
    st.g = ref_gains(st.w[1], st.prior, prior_weight, st.par[mdf.ALPHA])
    if np.sum(st.hist[end - B : end] ** 2) > ctl.FAR_ACTIVE_POWER * B:
        blocks = int(st.ist[ctl.EVIDENCE])
        st.cross, st.psd = ref_cross(st.xs, dspec, np.abs(st.xs[0]) ** 2, blocks, st.cross, st.psd)
        st.ist[ctl.EVIDENCE] = min(blocks + 1, frm.EVIDENCE_CAP)
    return ef, eb


def ref_move_window(st: RefState, delay: int, keep: bool) -> None:
    if delay == st.ist[ctl.DELAY]:
        return
    if keep:
        st.w = ref_retime(st.w, delay - int(st.ist[ctl.DELAY]))
    else:
        st.w[:] = 0.0
        st.g[:] = 1.0 / st.parts
    st.fx = ref_refill(st.hist, delay, st.parts)
    st.ist[ctl.DELAY] = delay


def ref_coarse(st: RefState, max_delay: int) -> None:
    """The estimator's accepted partition moved (see `echo_window._coarse_kernel`)."""
    ist, agree = st.ist, win.AGREE_SAMPLES
    part = int(ist[ctl.COARSE + 2])
    lo, hi = max(part - win.COARSE_BEFORE_PARTS, 0) * B, (part + 1) * B
    lag, span = int(ist[ctl.LAG]), int(ist[ctl.SPAN])

    def placement(first_tap: int) -> int:
        return min(max(first_tap - win.LEAD_SAMPLES, 0), max_delay)

    if ist[ctl.PEAK_HELD] >= win.PEAK_HOLD_FRAMES:
        inside = ist[ctl.DELAY] <= hi and lo < ist[ctl.DELAY] + st.parts * B
        if lo - agree <= lag <= hi + agree or (
            ist[ctl.CONVERGED] and (inside or not ist[ctl.SUSPECT])
        ):
            return
    elif lag >= 0 and lag - agree <= hi and lo <= lag + span + agree:
        lo, hi = min(lag, lo), max(lag + span, hi)
        if placement(lo) < ist[ctl.DELAY]:
            ref_move_window(st, placement(lo), True)
        ist[ctl.LAG], ist[ctl.SPAN] = lo, hi - lo
        st.prior = ref_prior(lo, hi, int(ist[ctl.DELAY]), st.parts)
        st.w[:, st.prior == 0] = 0.0
        return
    first = lag < 0
    st.fst[ctl.ERLE_NUM] = st.fst[ctl.ERLE_DEN] = 0.0
    ist[ctl.CONVERGED] = 0
    ref_move_window(st, placement(lo), first)
    ist[ctl.LAG], ist[ctl.SPAN], ist[ctl.PEAK], ist[ctl.PEAK_HELD] = lo, hi - lo, -1, 0
    st.prior = ref_prior(lo, hi, placement(lo), st.parts)
    st.w[:, st.prior == 0] = 0.0


def ref_delay_frame(st: RefState, gam: F64) -> None:
    """Coarse tracking and fine refinement of the window (see `echo_window`)."""
    ist = st.ist
    max_delay = st.hist.size - 160 - (st.parts + 1) * B
    track = [int(v) for v in ist[ctl.COARSE : ctl.COARSE + 3]]
    enough = ist[ctl.EVIDENCE] >= dly.MIN_EVIDENCE_BLOCKS
    best = ref_best_partition(gam, min(int(ist[ctl.EVIDENCE]), 33)) if enough else -1
    moved = ref_track(best, track)
    ist[ctl.COARSE : ctl.COARSE + 3] = track
    if moved:
        ref_coarse(st, max_delay)
        return
    erle_db = ref_erle_db(st.fst[ctl.ERLE_NUM], st.fst[ctl.ERLE_DEN])
    if track[2] < 0 or erle_db < win.REFINE_DB or ist[ctl.SUSPECT]:
        return
    lag = int(ist[ctl.DELAY]) + ref_filter_peak(st.w[1], min(win.REFINE_PARTS, st.parts))
    if abs(lag - ist[ctl.PEAK]) > win.REFINE_TOLERANCE_SAMPLES:
        ist[ctl.PEAK], ist[ctl.PEAK_HELD] = lag, 0
        return
    ist[ctl.PEAK_HELD] += 1
    if ist[ctl.PEAK_HELD] < win.PEAK_HOLD_FRAMES:
        return
    first = ist[ctl.SPAN] > 0 or ist[ctl.PEAK_HELD] == win.PEAK_HOLD_FRAMES
    ist[ctl.LAG], ist[ctl.SPAN] = lag, 0
    target = min(max(lag - win.LEAD_SAMPLES, 0), max_delay)
    if abs(target - ist[ctl.DELAY]) > win.REFINE_TOLERANCE_SAMPLES:
        ref_move_window(st, target, True)
    st.prior = ref_prior(lag, lag, int(ist[ctl.DELAY]), st.parts)
    if first:
        st.w[:, st.prior == 0] = 0.0


class RefEchoCanceller:
    """The whole canceller, frame by frame, from the reference pieces above."""

    def __init__(self, parts: int, ring: int, hist: int, with_nlp: bool) -> None:
        self.st = RefState(parts, ring, np.zeros(hist), with_nlp)
        self.table = ref_codec_noise_table()

    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]:
        st, fst = self.st, self.st.fst
        x, fst[ctl.DC_REF], fst[ctl.DC_REF_OUT] = ref_dc_block(
            ref, fst[ctl.DC_REF], fst[ctl.DC_REF_OUT]
        )
        d, fst[ctl.DC_MIC], fst[ctl.DC_MIC_OUT] = ref_dc_block(
            mic, fst[ctl.DC_MIC], fst[ctl.DC_MIC_OUT]
        )
        st.hist = np.concatenate([st.hist[160:], x])
        codec = ref_codec_noise(mic, self.table, B)
        st.par[mdf.MU] = fst[ctl.MU_NOW]
        prior_weight = ref_prior_weight(st)
        ef, eb = (
            np.concatenate(p)
            for p in zip(
                *[ref_block(st, k, d, codec[k], prior_weight) for k in range(5)], strict=True
            )
        )
        out = self._decide(x, d, ef, eb, codec)
        return np.clip(np.floor(out + 0.5), -32768, 32767).astype(np.int16)

    def _decide(self, x: F64, d: F64, ef: F64, eb: F64, blocks_codec: F64) -> F64:
        st, codec = self.st, float(np.sum(blocks_codec / 5))
        pw = np.array(
            [
                np.mean(d * d),
                np.mean(ef * ef),
                np.mean(eb * eb),
                np.mean((ef - eb) ** 2) + 1.0,
                np.mean((d - ef) ** 2),
                np.mean(x * x),
            ]
        )
        gam = ref_coherence(st.cross, st.psd)
        ref_talk_state(pw, codec, ref_explained(st.cross, st.psd, gam), st.fst, st.ist)
        action = ref_two_path(
            pw[1], pw[2], pw[3], bool(st.ist[ctl.SUSPECT]), bool(st.ist[ctl.DOUBLE_TALK]), st.fst
        )
        if action < 0:
            st.w[1] = st.w[0]
        elif action > 0:
            st.w[0] = st.w[1]
            t = np.arange(1, 161) / 160.0
            ef = (1 - t) * ef + t * eb
            pw[1], pw[4] = np.mean(ef * ef), np.mean((d - ef) ** 2)
        ref_stats(pw, codec, action > 0, st.fst, st.ist)
        ref_delay_frame(st, gam)
        out = d.copy() if pw[1] > pw[0] else ef.copy()
        if st.nlp:
            out = self._nlp(out, d, pw[1], blocks_codec)
        return out

    def _nlp(self, out: F64, d: F64, sff: float, blocks_codec: F64) -> F64:
        st, fst = self.st, self.st.fst
        if fst[ctl.FAR_POWER] <= ctl.FAR_ACTIVE_POWER and sff <= 2 * fst[ctl.NOISE]:
            ref_noise_shape(out, st.nst)
        erle = (fst[ctl.ERLE_NUM] + 1e-9) / (fst[ctl.ERLE_DEN] + 1e-9)
        noise = max(fst[ctl.NOISE], 0.0)
        blocks = []
        for k in range(5):
            e = out[k * B : (k + 1) * B]
            y = d[k * B : (k + 1) * B] - e
            blocks.append(ref_nlp_block(e, y, blocks_codec[k], noise, erle, st.nst, st.nis))
        return np.concatenate(blocks)
