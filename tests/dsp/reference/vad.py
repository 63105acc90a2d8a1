"""Plain numpy reference for `dsp.vad` and `dsp.vad_features`.

Written apart from the kernels, from what their docstrings say: the high-pass is
`ref_highpass` of the DTMF reference (a difference equation from the analog poles) run twice
over the whole signal; the spectrum is numpy's FFT; the minimum statistics are a minimum over
the slice of frames the windows cover; the decision and the echo guard are plain Python over
per-frame arrays, the guard's late commit a look back over the frames' ratios and onsets,
the residual estimate's envelope a running maximum. Only the modules' constants are shared.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp import vad, vad_echo, vad_features
from dsp.levels import dbm0_to_rms
from tests.dsp.reference.dtmf import ref_highpass

F = vad_features
E = vad_echo
N = 160
EDGES = np.array(F.BAND_EDGES)


def ref_highpassed(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    """The whole line through both high-pass sections, from rest."""
    x = pcm.astype(np.float64)
    return ref_highpass(ref_highpass(x, F.HIGHPASS_HZ), F.HIGHPASS_HZ)


def ref_segment(y: NDArray[np.float64], floor_power: float) -> tuple[int, int]:
    """The active part of one frame: blocks within SEGMENT_DB of the loudest and over the
    floor, edges refined to where one mean sample's energy has come in."""
    e = np.sum(y.reshape(F.BLOCKS, F.BLOCK_SAMPLES) ** 2, axis=1)
    threshold = max(e.max() * 10 ** (-F.SEGMENT_DB / 10), F.SEGMENT_OVER_FLOOR * 8 * floor_power)
    on = np.flatnonzero(e >= threshold) if e.max() > 0 else np.zeros(0, int)
    if on.size == 0:
        return 0, N
    a, b = 8 * on[0], 8 * (on[-1] + 1)
    mean = e[on[0] : on[-1] + 1].sum() / (b - a)

    def inward(samples: NDArray[np.float64]) -> int:
        reached = np.flatnonzero(np.cumsum(samples**2) >= mean)
        return int(reached[0]) if reached.size else 7

    if a > 0:
        a += inward(y[a : a + 8])
    if b < N:
        b -= inward(y[b - 8 : b][::-1])
    return int(a), int(b)


def ref_spectrum(y: NDArray[np.float64], a: int, b: int) -> NDArray[np.float64]:
    """Power per bin (LO_BIN..HI_BIN) of the Hann-windowed y[a:b], a band's bins summing to its
    mean power per sample."""
    length = b - a
    w = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(length) + 0.5) / length)
    spec = np.abs(np.fft.fft(y[a:b] * w, F.FFT_SIZE)) ** 2 * 2 / (F.FFT_SIZE * np.sum(w * w))
    return np.asarray(spec[F.LO_BIN : F.HI_BIN], np.float64)


def ref_bands(spec: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([spec[EDGES[j] : EDGES[j + 1]].sum() for j in range(F.BANDS)])


def ref_floors(values: NDArray[np.float64], least: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row n: the floors after frame n, from `values` (frames x quantities): the least value
    over the last 8 complete windows of 8 frames and the running window, times the bias."""
    return np.array([ref_floor_at(values, n, least) for n in range(values.shape[0])])


def ref_floor_at(values: NDArray[np.float64], n: int, least: NDArray[np.float64]) -> (
    NDArray[np.float64]
):  # fmt: skip
    """The floors after frame n (see `ref_floors`)."""
    start = max(0, F.MIN_STATS_FRAMES * ((n + 1) // F.MIN_STATS_FRAMES - F.MIN_STATS_WINDOWS))
    lowest = values[start : n + 1].min(axis=0)
    return np.asarray(np.maximum(np.array(F.FLOOR_BIAS) * lowest, least), np.float64)


def _peak(spec: NDArray[np.float64], taken: float, half: float) -> float:
    k = np.arange(spec.size)
    free = np.abs(k - taken) > half
    if not free.any():
        return taken
    i = int(np.flatnonzero(free)[np.argmax(spec[free])])
    if 0 < i < spec.size - 1 and spec[i - 1] > 0 and spec[i + 1] > 0:
        lo, mid, hi = np.log(spec[i - 1 : i + 2])
        if lo - 2 * mid + hi < 0:
            return float(i + 0.5 * (lo - hi) / (lo - 2 * mid + hi))
    return float(i)


def ref_tonality(spec: NDArray[np.float64], band_floors: NDArray[np.float64], length: int) -> (
    float
):  # fmt: skip
    """Remainder after the two strongest Hann mainlobes over the whole, less their noise (dB)."""
    half = F.LOBE * 2 * F.FFT_SIZE / length
    f1 = _peak(spec, -1e9, half)
    f2 = _peak(spec, f1, half)
    per_bin = np.repeat(band_floors[: F.BANDS] / np.diff(EDGES), np.diff(EDGES))
    k = np.arange(spec.size)
    rest = (np.abs(k - f1) > half) & (np.abs(k - f2) > half)
    margin = 1 + F.NOISE_SIGMAS * math.sqrt(8000 / (F.REMAINDER_HZ * length))
    total = float(np.sum(spec - per_bin))
    left = float(np.sum(spec[rest] - margin * per_bin[rest]))
    return 10 * math.log10(left / total) if total > 0 and left > 0 else F.NO_TONALITY_DB


def _score(x: float, threshold: float, slope: float) -> float:
    return 1 / (1 + math.exp(-min(max(slope * (x - threshold), -60), 60)))


def _db(p: float) -> float:
    return 10 * math.log10(max(p, 1e-30))


class RefVad:
    """The whole detector, frame after frame, over a whole signal (and far end)."""

    def __init__(self, config: vad.VadConfig | None = None) -> None:
        self.cfg = config or vad.VadConfig()
        self.least = np.full(F.VALUES, dbm0_to_rms(vad.FLOOR_MIN_DBM0) ** 2)
        self.least[: F.BANDS] /= F.BANDS

    def run(self, line: NDArray[np.int16], far: NDArray[np.int16] | None = None,
            residual_dbm0: NDArray[np.float64] | None = None) -> (
        tuple[NDArray[np.float64], NDArray[np.bool_]]
    ):  # fmt: skip
        """Per frame: the probability and `.speaking` after it (`residual_dbm0`: the
        canceller's estimate per frame, dBm0)."""
        cfg = self.cfg
        frames = line.size // N
        y = ref_highpassed(line[: frames * N]).reshape(frames, N)
        far_power = np.zeros(frames)
        if far is not None:
            far_power = np.mean(far[: frames * N].astype(np.float64).reshape(frames, N) ** 2, 1)
        span = max(1, round(cfg.echo_span_ms / 20))
        values = np.zeros((frames, F.VALUES))
        probs, speaking = np.zeros(frames), np.zeros(frames, np.bool_)
        st = {"speaking": False, "hang": 0, "pending": False, "active": False, "pure": False,
              "prev_db": 0.0, "settle": 0.0, "peak": E.NO_ECHO_DB, "coupling": 1.0,
              "envelope": 0.0, "explained": E.NO_ECHO_DB}  # fmt: skip
        ratios, onsets = np.full(frames, E.NO_ECHO_DB), np.zeros(frames, np.bool_)
        floors = self.least.copy()
        for n in range(frames):
            a, b = ref_segment(y[n], floors[F.FRAME_SLOT] if n else 0.0)
            spec = ref_spectrum(y[n], a, b)
            values[n, : F.BANDS], values[n, F.FRAME_SLOT] = ref_bands(spec), np.mean(y[n] ** 2)
            part = float(np.mean(y[n, a:b] ** 2))
            loudest = float(far_power[max(0, n - span + 1) : n + 1].max())
            echo = self._echo(st, loudest, None if residual_dbm0 is None else residual_dbm0[n])
            floor = float(floors[F.FRAME_SLOT]) if n else math.inf
            tonality = ref_tonality(spec, floors, b - a)
            probs[n] = self._probability(st, part, b - a, floor + echo, tonality)
            was = st["speaking"]
            self._decide(st, probs[n], a, b)
            onsets[n] = st["speaking"] and not was
            snr = _db(part / (floor + echo)) - vad.LENGTH_PENALTY * _db(N / (b - a))
            st["active"] = snr >= cfg.snr_db and b - a >= vad.RISE_MIN_SAMPLES
            st["pure"] = st["active"] and tonality < cfg.tonality_db - vad.CONTINUE_TONALITY_DB
            st["prev_db"] = _db(part)
            audible = residual_dbm0 is not None and echo >= vad.AGENT_AUDIBLE * floor
            st["explained"] = _db(floor + echo) if audible else E.NO_ECHO_DB
            loud_far = loudest >= dbm0_to_rms(E.FAR_ACTIVE_DBM0) ** 2
            if loud_far and not st["speaking"] and not was:
                ratios[n] = _db(max(values[n, F.FRAME_SLOT] - floor, 1e-30) / loudest)
            self._learn(st, n, ratios, onsets, loud_far)
            speaking[n] = st["speaking"]
            floors = ref_floor_at(values, n, self.least)
        return probs, speaking

    def _echo(self, st: dict[str, float], loudest: float, residual_dbm0: float | None) -> float:
        """The echo power allowed for: the residual estimate's envelope times the margin, or
        the far end's loudest power times the coupling and margin."""
        if residual_dbm0 is None:
            return st["coupling"] * loudest * 10 ** (self.cfg.echo_margin_db / 10)
        power = dbm0_to_rms(0.0) ** 2 * 10 ** (residual_dbm0 / 10)
        st["envelope"] = max(power, st["envelope"] * 10 ** (-E.RESIDUAL_DECAY_DB / 10))
        return st["envelope"] * 10 ** (self.cfg.residual_margin_db / 10)

    def _probability(self, st: dict[str, float], part: float, length: int, noise: float,
                     tonality: float) -> float:  # fmt: skip
        cfg = self.cfg
        snr = _db(part / noise) - vad.LENGTH_PENALTY * _db(N / length)
        over_echo = not st["active"] and st["explained"] > E.NO_ECHO_DB
        rise = _db(part) - (st["prev_db"] if st["active"] else st["explained"])
        rise = rise if st["active"] or over_echo else 0.0
        shape = _score(tonality, cfg.tonality_db, vad.TONALITY_SLOPE)
        if st["active"] or over_echo:
            shape = max(shape, _score(rise, vad.RISE_DB, vad.RISE_SLOPE))
        if st["pure"]:
            shape *= _score(abs(rise), vad.CONTINUE_DB, vad.RISE_SLOPE)
        if part < dbm0_to_rms(cfg.min_level_dbm0) ** 2:
            return 0.0
        return _score(snr, cfg.snr_db, vad.SNR_SLOPE) * shape

    def _decide(self, st: dict[str, float], p: float, a: int, b: int) -> None:
        cfg = self.cfg
        hang = round(cfg.hangover_ms / 20)
        judged = b - a >= vad.MIN_SEGMENT_SAMPLES and not (a == 0 and b < N and st["pure"])
        if st["speaking"]:
            st["hang"] = hang if p >= cfg.off_probability else st["hang"] - 1
            st["speaking"] = st["hang"] > 0
        elif p >= cfg.on_probability and (judged or st["pending"]):
            st["speaking"], st["hang"] = True, hang
        st["pending"] = not st["speaking"] and p >= cfg.on_probability and not judged

    def _learn(self, st: dict[str, float], n: int, ratios: NDArray[np.float64],
               onsets: NDArray[np.bool_], loud_far: bool) -> None:  # fmt: skip
        """The ratio of frame n - 3 counts now, unless an onset came in frames n - 2 .. n."""
        late = E.COMMIT_FRAMES
        committed = E.NO_ECHO_DB
        if n >= late and not onsets[n - late + 1 : n + 1].any():
            committed = ratios[n - late]
        st["peak"] = max(st["peak"] - E.ECHO_DECAY_DB, committed)
        if loud_far:
            st["settle"] = max(st["settle"] - E.ECHO_SETTLE_DB, -self.cfg.echo_loss_db)
        coupling = max(st["settle"], st["peak"], -self.cfg.echo_loss_db)
        st["coupling"] = 10 ** (coupling / 10)
