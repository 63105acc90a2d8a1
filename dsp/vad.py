"""Caller speech detection on the echo-cancelled uplink, for local barge-in: `Vad`.

`gateway.call` feeds every 20 ms uplink frame after the echo canceller to `Vad.process`,
with the frame we played (`far`, the canceller's reference) and the canceller's estimate of
the residual echo left in that frame (`residual_echo_dbm0`, from
`dsp.echo.EchoCanceller.residual_echo_dbm0`); when `.speaking` turns True the call pauses
the agent's playout, and the cloud's own VAD confirms or not. The budget is 50 ms from
speech onset at the line to a paused playout, so the decision must come from the frame the
speech starts in, or the next one.

Which output: the canceller's linear stage (its output with the NLP off, or the frame it
hands its NLP), not what the NLP returns. The NLP replaces everything within 6 dB of its
expected residual with comfort noise while the far end talks, a caller's soft onset
included, and lets the residual through in bursts when it errs; measured on the barge-in
battery (`tests/bench/vad_battery_agent.py`), the NLP's output gives the detector either
many misses (with the echo guard) or ~6 false triggers a minute (without).

Design (`dsp.vad_features` computes the per-frame features, `dsp.vad_echo` the echo guard):
- *Noise floor* by minimum statistics over 1.28 s, per band and for the frame: a rise over
  it is new sound; stationary noise of any colour, hum (high-passed away first) and a tone
  lasting over 1.3 s (dial tone) are not.
- *Active part*: the features are taken over the part of the frame that holds the sound, so
  a word starting 5 ms before the frame ends already counts at full strength (the SNR then
  loses half the dB of the part's shortness, against noise bursts) and a tone that starts
  mid-frame is seen without the step that would splatter it over the band.
- *SNR* of the active part over the noise floor plus the residual echo allowed for: the
  canceller's estimate held by a short envelope, or without it the far end's loudest power
  times a learned coupling (`dsp.vad_echo`). Residual echo is the agent's speech, so no
  feature of the uplink alone tells it from a quiet caller (measured: with neither, the
  stand-in residual triggers ~55 times a minute).
- *Tonality guard*: call-progress tones, DTMF and hum are one or two sinusoids; speech has
  harmonics and formants all over the band. What the spectrum holds besides its two
  strongest mainlobes separates them (`dsp.vad_features`). Some voiced frames of the
  shipped clips look as pure as a tone for 2-4 frames; they are let through once their level
  rises (`RISE_DB` in a frame: a tone's level does not move once it is on) over the last
  frame if it was active, or, while the canceller reports the agent's echo, over what the
  last frame's floor and echo explained (a vowel starting under the agent). A frame whose
  active part is shorter than `MIN_SEGMENT_SAMPLES` (a click, or a tone's first samples:
  too short to judge) waits for the next frame's judgement. After a pure frame, the next
  needs a level change of `CONTINUE_DB` (SIT tones change frequency without a gap).
- *Probability*: a soft AND of logistic scores, p = s(SNR) x max(s(tonality), s(rise)):
  1/(1 + exp(-slope (x - threshold))) for each, with thresholds from `VadConfig`; 0 under
  `min_level_dbm0`. It is a score in [0, 1], not a calibrated probability.
- *Decision*: on in the first frame with p >= `on_probability` (and a long enough active
  part), off after `hangover_ms` of p < `off_probability`.

Measured on the battery (`tests/bench/vad_battery*.py`, `tipring bench vad`;
`tests/dsp/test_vad.py` holds the bounds). Caller alone: the 38 utterance starts of the six
shipped clips, each over five line noises, through mu-law: onset to `.speaking` at
-40..-15 dBm0 with the noise >= 20 dB under the caller, median 8-18 ms, p95 <= 29.8 ms, no
misses; at -40 dBm0 over -50 dBm0 white noise, p95 49 ms and 1 miss in 38. No false
trigger on line noise, hum, US/UK/DE call-progress tones (SIT included) or DTMF at
-10..-40 dBm0; music-like audio triggers ~25 times a minute.
Barge-in over the agent (-15 dBm0) through `dsp.echo.EchoCanceller`'s linear output, G.168
models 1-8 at ERL 6/10/15 dB, given the true residual level per frame, after convergence:
MEASURED_BARGE_IN
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import FRAME_S, FRAME_SAMPLES, RATE_HZ, check_rate
from dsp.hum import HIGHPASS_STATE
from dsp.levels import dbm0_to_rms, rms_to_dbm0
from dsp.vad_echo import (
    COMMIT_FRAMES,
    E_ALLOWED,
    E_COUPLING,
    E_RESIDUAL,
    ECHO_SLOTS,
    NO_ECHO_DB,
    _allowance_kernel,
    _learn_kernel,
    reset_echo_state,
)
from dsp.vad_features import (
    BANDS,
    FFT_SIZE,
    FLOOR_BIAS,
    FRAME_SLOT,
    HP_ROWS,
    MIN_STATS_WINDOWS,
    SPEC_BINS,
    VALUES,
    WORK_ROWS,
    _analyse_kernel,
    _floor_kernel,
    _tonality_kernel,
    fft_tables,
    filter_sections,
)

SNR_SLOPE = 1.0  # per dB: the SNR score goes 0.27 -> 0.73 within +-1 dB of its threshold
TONALITY_SLOPE = 0.5  # per dB: judged tone frames sit at <= -20 dB: scores <= 0.18
LENGTH_PENALTY = 0.5  # dB of SNR lost per dB the active part is shorter than the frame
RISE_DB = 6.0  # a frame this much louder than the last (both active) is not a steady tone
RISE_SLOPE = 0.7
RISE_MIN_SAMPLES = 80  # the last frame's level counts if measured over >= 10 ms
CONTINUE_DB = 3.0  # after a pure frame, the level must move this much ...
CONTINUE_TONALITY_DB = 8.0  # ... "pure": this far under the tonality threshold
MIN_SEGMENT_SAMPLES = 32  # shorter active parts (< 4 ms) wait for the next frame
FLOOR_MIN_DBM0 = -75.0  # the floor is never taken lower (digital silence)
# The agent talks (for the rise over what a frame's floor and echo explained) while the
# residual echo allowed for is within 10 dB of the noise floor, or over it.
AGENT_AUDIBLE = 0.1
# Float state: the last frame's level (dB, its active part) and what its floor and echo
# explained (dB, NO_ECHO_DB: the agent's echo was not audible or not reported), the last
# frame's features, samples in its active part
F_PREV_DB, F_EXPLAINED_DB, F_SNR, F_TONALITY, F_RISE, F_PROB, F_ACTIVE = range(7)
_NF = 7
# Int state: frame count, speaking, hangover frames left, onset pending, last frame active,
# last frame pure, frame of the last onset (-1: none)
I_FRAME, I_SPEAKING, I_HANG, I_PENDING, I_PREV_ACTIVE, I_PREV_PURE, I_ONSET = range(7)
_NI = 7
# Kernel parameters from VadConfig
C_SNR, C_TONALITY, C_ON, C_OFF, C_HANG, C_MIN_POWER, C_ECHO_FLOOR_DB, C_ECHO_MARGIN = range(8)
C_RESIDUAL_MARGIN = 8
_NC = 9


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Thresholds of `Vad` (defaults: what the battery was measured with).

    `snr_db`: active part over noise floor (+ allowed echo) where the SNR score is 0.5;
    `tonality_db`: non-tonal share (dB) where the tonality score is 0.5; `on_probability`,
    `off_probability`: p to turn speaking on / keep it on; `hangover_ms`: p under
    `off_probability` this long turns it off; `min_level_dbm0`: quieter sound is never speech;
    `residual_margin_db`: the margin over the canceller's residual echo estimate (its
    envelope); without the estimate, the far end alone: `echo_loss_db`: the most echo loss
    (echo return loss plus the canceller's) the guard ever assumes; `echo_margin_db`: the
    guard's margin over the echo it expects; `echo_span_ms`: how far back the far end's
    loudest frame counts (echo path delay plus dispersion)."""

    snr_db: float = 6.0
    tonality_db: float = -17.0
    on_probability: float = 0.5
    off_probability: float = 0.3
    hangover_ms: float = 200.0
    min_level_dbm0: float = -55.0
    residual_margin_db: float = 0.0
    echo_loss_db: float = 40.0
    echo_margin_db: float = 6.0
    echo_span_ms: float = 200.0

    def __post_init__(self) -> None:
        limits = {
            "on_probability": (1e-6, 1.0),
            "off_probability": (0.0, self.on_probability),
            "hangover_ms": (0.0, 10_000.0),
            "residual_margin_db": (-20.0, 40.0),
            "echo_loss_db": (0.0, 100.0),
            "echo_span_ms": (FRAME_S * 1000.0, 2000.0),
        }
        for name in ("snr_db", "tonality_db", "min_level_dbm0", "echo_margin_db", *limits):
            value = getattr(self, name)
            lo, hi = limits.get(name, (-math.inf, math.inf))
            if not (math.isfinite(value) and lo <= value <= hi):
                raise DspInputError(f"VadConfig: {name} = {value} is out of range {lo:g}..{hi:g}")

    def params(self) -> NDArray[np.float64]:
        """The kernel's parameter vector (C_* slots)."""
        p = np.zeros(_NC, np.float64)
        p[C_SNR], p[C_TONALITY] = self.snr_db, self.tonality_db
        p[C_ON], p[C_OFF] = self.on_probability, self.off_probability
        p[C_HANG] = round(self.hangover_ms / (FRAME_S * 1000.0))
        p[C_MIN_POWER] = dbm0_to_rms(self.min_level_dbm0) ** 2
        p[C_ECHO_FLOOR_DB] = -self.echo_loss_db
        p[C_ECHO_MARGIN] = 10.0 ** (self.echo_margin_db / 10.0)
        p[C_RESIDUAL_MARGIN] = 10.0 ** (self.residual_margin_db / 10.0)
        return p


@njit(cache=True, nogil=True)
def _db(power: float) -> float:
    return 10.0 * math.log10(max(power, 1e-30))


@njit(cache=True, nogil=True)
def _score(x: float, threshold: float, slope: float) -> float:
    """Logistic score of x around threshold: 0.5 there, `slope` per unit."""
    return 1.0 / (1.0 + math.exp(-min(max(slope * (x - threshold), -60.0), 60.0)))


@njit(cache=True, nogil=True)
def _probability_kernel(
    part_power: float, length: int, floor: float, echo: float, tonality: float, fs: np.ndarray,
    ist: np.ndarray, config: np.ndarray,
) -> float:  # fmt: skip
    """The frame's speech probability from its active part (power, length in samples), the
    noise floor, the echo allowed for and the tonality; the features go to fs."""
    snr = _db(part_power / (floor + echo)) - LENGTH_PENALTY * _db(FRAME_SAMPLES / length)
    rise = 0.0
    if ist[I_PREV_ACTIVE]:
        rise = _db(part_power) - fs[F_PREV_DB]
    elif fs[F_EXPLAINED_DB] > NO_ECHO_DB:  # out of the agent's echo: rise over it
        rise = _db(part_power) - fs[F_EXPLAINED_DB]
    shape = _score(tonality, config[C_TONALITY], TONALITY_SLOPE)
    if ist[I_PREV_ACTIVE] or fs[F_EXPLAINED_DB] > NO_ECHO_DB:
        shape = max(shape, _score(rise, RISE_DB, RISE_SLOPE))
    if ist[I_PREV_PURE]:  # a tone going on (or changing frequency) adds no energy
        shape *= _score(abs(rise), CONTINUE_DB, RISE_SLOPE)
    prob = _score(snr, config[C_SNR], SNR_SLOPE) * shape
    if part_power < config[C_MIN_POWER]:
        prob = 0.0
    fs[F_SNR], fs[F_TONALITY], fs[F_RISE], fs[F_PROB] = snr, tonality, rise, prob
    return prob


@njit(cache=True, nogil=True)
def _decide_kernel(prob: float, a: int, b: int, ist: np.ndarray, config: np.ndarray) -> None:
    """Onset / hangover: speaking turns on at p >= on if the active part can be judged (>= 4 ms
    and not the tail of an active frame before), or if the last frame waited for this one."""
    tail = a == 0 and b < FRAME_SAMPLES and ist[I_PREV_PURE]  # a tone ending in this frame
    judged = b - a >= MIN_SEGMENT_SAMPLES and not tail
    if ist[I_SPEAKING]:
        if prob >= config[C_OFF]:
            ist[I_HANG] = int(config[C_HANG])
        else:
            ist[I_HANG] -= 1
            ist[I_SPEAKING] = ist[I_HANG] > 0
    elif prob >= config[C_ON] and (judged or ist[I_PENDING]):
        ist[I_SPEAKING], ist[I_HANG], ist[I_ONSET] = 1, int(config[C_HANG]), ist[I_FRAME]
    ist[I_PENDING] = not ist[I_SPEAKING] and prob >= config[C_ON] and not judged


@njit(cache=True, nogil=True)
def _remember_kernel(
    part: float, length: int, floor: float, echo: float, tonality: float, fs: np.ndarray,
    es: np.ndarray, ist: np.ndarray, config: np.ndarray,
) -> None:  # fmt: skip
    """What the next frame's rise and tone tests need of this one."""
    ist[I_PREV_ACTIVE] = fs[F_SNR] >= config[C_SNR] and length >= RISE_MIN_SAMPLES
    ist[I_PREV_PURE] = ist[I_PREV_ACTIVE] and tonality < config[C_TONALITY] - CONTINUE_TONALITY_DB
    fs[F_PREV_DB], fs[F_ACTIVE] = _db(part), length
    audible = es[E_RESIDUAL] >= 0.0 and echo >= AGENT_AUDIBLE * floor
    fs[F_EXPLAINED_DB] = _db(floor + echo) if audible else NO_ECHO_DB


@njit(cache=True, nogil=True)
def _vad_frame_kernel(
    frame: np.ndarray, far: np.ndarray, has_far: bool, residual_dbm0: float, sos: np.ndarray,
    rev: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray, bias: np.ndarray,
    least: np.ndarray, config: np.ndarray, hp: np.ndarray, work: np.ndarray, spec: np.ndarray,
    values: np.ndarray, rings: np.ndarray, floors: np.ndarray, far_ring: np.ndarray,
    pend: np.ndarray, es: np.ndarray, fs: np.ndarray, ist: np.ndarray,
) -> float:  # fmt: skip
    """One 20 ms frame (int16), the far frame (used if `has_far`) and the canceller's residual
    echo estimate (dBm0, NaN: none): update every state array and return the frame's speech
    probability."""
    n = ist[I_FRAME]
    a, b, part = _analyse_kernel(frame, n, sos, rev, cos_t, sin_t, hp, work, spec, values, floors)
    echo = _allowance_kernel(
        far, has_far, residual_dbm0, n, far_ring, es, config[C_ECHO_MARGIN],
        config[C_RESIDUAL_MARGIN],
    )  # fmt: skip
    floor = floors[FRAME_SLOT] if n > 0 else np.inf  # no floor before the first frame
    tonality = _tonality_kernel(spec, floors, b - a)
    prob = _probability_kernel(part, b - a, floor, echo, tonality, fs, ist, config)
    was = ist[I_SPEAKING] != 0
    _decide_kernel(prob, a, b, ist, config)
    _remember_kernel(part, b - a, floor, echo, tonality, fs, es, ist, config)
    speaking = ist[I_SPEAKING] != 0
    _learn_kernel(values[FRAME_SLOT], floor, speaking, was, n, pend, es, config[C_ECHO_FLOOR_DB])
    _floor_kernel(values, n, bias, least, rings, floors)
    ist[I_FRAME] = n + 1
    return prob


class Vad:
    """Frame-level caller speech detector for 8 kHz, 20 ms frames (see the module docstring).

    `process(frame, far=None, residual_echo_dbm0=None)` takes one uplink frame after the echo
    canceller (160 int16), if given the frame we played in the same 20 ms (the canceller's
    reference) and the canceller's estimate of the agent's echo left in `frame` (dBm0, -inf:
    none), and returns the frame's speech probability in [0, 1]; `.speaking` is the onset /
    hangover decision after it. With the estimate the guard allows for that echo; with `far`
    alone, for the far end's loudest recent power times a learned coupling (later onsets over
    the agent); with neither it assumes no echo, and residual echo counts as speech. One
    kernel call per frame, no allocation in it.
    """

    def __init__(self, sample_rate: int = RATE_HZ, config: VadConfig | None = None) -> None:
        self.sample_rate = check_rate(sample_rate, "Vad")
        self.config = config if config is not None else VadConfig()
        span = max(1, round(self.config.echo_span_ms / (FRAME_S * 1000.0)))
        rev, cos_t, sin_t = fft_tables()
        least = np.full(VALUES, dbm0_to_rms(FLOOR_MIN_DBM0) ** 2, np.float64)
        least[:BANDS] /= BANDS
        self._floors = np.zeros(VALUES, np.float64)
        self._far_ring = np.zeros(span, np.float64)
        self._pend = np.zeros(COMMIT_FRAMES, np.float64)
        self._es = np.zeros(ECHO_SLOTS, np.float64)
        self._fs = np.zeros(_NF, np.float64)
        self._is = np.zeros(_NI, np.int64)
        self._rings = np.zeros((MIN_STATS_WINDOWS + 1, VALUES), np.float64)
        self._hp = np.zeros((HP_ROWS, HIGHPASS_STATE), np.float64)
        self._no_far = np.zeros(FRAME_SAMPLES, np.int16)
        self._args = (
            filter_sections(), rev, cos_t, sin_t, np.array(FLOOR_BIAS, np.float64), least,
            self.config.params(), self._hp, np.zeros((WORK_ROWS, FFT_SIZE), np.float64),
            np.zeros(SPEC_BINS, np.float64), np.zeros(VALUES, np.float64), self._rings,
            self._floors, self._far_ring, self._pend, self._es, self._fs, self._is,
        )  # fmt: skip
        self._least = least
        self.reset()

    def reset(self) -> None:
        """Forget everything heard (noise floor, echo coupling, decision); time restarts."""
        for arr in (self._hp, self._rings, self._far_ring, self._fs, self._is):
            arr[...] = 0
        self._floors[:] = self._least
        reset_echo_state(self._es, self._pend)
        self._fs[F_EXPLAINED_DB] = NO_ECHO_DB
        self._is[I_ONSET] = -1

    def process(self, frame: NDArray[np.int16], far: NDArray[np.int16] | None = None,
                residual_echo_dbm0: float | None = None) -> float:  # fmt: skip
        """Speech probability of one 20 ms uplink frame (160 int16); `far`: what we played in
        the same 20 ms (160 int16) or None; `residual_echo_dbm0`: the canceller's estimate of
        the agent's echo left in `frame` (dBm0, -inf for none) or None. Updates `.speaking`."""
        x = self._checked(frame, "frame")
        f = self._no_far if far is None else self._checked(far, "far")
        left = math.nan if residual_echo_dbm0 is None else self._level(residual_echo_dbm0)
        return float(_vad_frame_kernel(x, f, far is not None, left, *self._args))

    @staticmethod
    def _checked(pcm: object, what: str) -> NDArray[np.int16]:
        if (
            not isinstance(pcm, np.ndarray)
            or pcm.dtype != np.int16
            or pcm.shape != (FRAME_SAMPLES,)
        ):
            got = f"{pcm.dtype} {pcm.shape}" if isinstance(pcm, np.ndarray) else type(pcm).__name__
            raise DspInputError(
                f"Vad.process: {what} must be {FRAME_SAMPLES} int16 samples (20 ms at "
                f"{RATE_HZ} Hz), got {got}"
            )
        if not (pcm.flags.c_contiguous and pcm.flags.writeable):  # one kernel signature
            return np.array(pcm, np.int16)
        return pcm

    @staticmethod
    def _level(value: object) -> float:
        if (
            not isinstance(value, int | float | np.floating)
            or math.isnan(value)
            or value == math.inf
        ):
            raise DspInputError(
                f"Vad.process: residual_echo_dbm0 must be a level in dBm0 (-inf: no echo) or "
                f"None, got {value!r}"
            )
        return float(value)

    @property
    def speaking(self) -> bool:
        """The caller is speaking (onset seen, hangover not yet run out)."""
        return bool(self._is[I_SPEAKING])

    @property
    def onset_ms(self) -> float | None:
        """When `.speaking` last turned True: the end of that frame, ms since reset; or None."""
        frame = int(self._is[I_ONSET])
        return None if frame < 0 else (frame + 1) * FRAME_SAMPLES * 1000.0 / RATE_HZ

    @property
    def frames(self) -> int:
        """Frames processed since reset."""
        return int(self._is[I_FRAME])

    @property
    def noise_dbm0(self) -> float:
        """The noise floor of the high-passed line (300 Hz up), dBm0."""
        return rms_to_dbm0(math.sqrt(self._floors[FRAME_SLOT]))

    @property
    def echo_loss_db(self) -> float:
        """The echo loss the far-end guard assumes now: far end level minus residual echo level
        (dB); learned also while the canceller's estimate is given (ready as a fallback)."""
        return -10.0 * math.log10(self._es[E_COUPLING])

    @property
    def features(self) -> dict[str, float]:
        """The last frame's features (a new dict): snr_db, tonality_db, rise_db, probability,
        active_ms (the length of the frame's active part) and echo_dbm0 (the residual echo it
        allowed for)."""
        fs = self._fs
        return {
            "snr_db": float(fs[F_SNR]),
            "tonality_db": float(fs[F_TONALITY]),
            "rise_db": float(fs[F_RISE]),
            "probability": float(fs[F_PROB]),
            "active_ms": float(fs[F_ACTIVE]) / (RATE_HZ / 1000.0),
            "echo_dbm0": rms_to_dbm0(math.sqrt(self._es[E_ALLOWED])),
        }
