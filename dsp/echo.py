"""Line echo cancellation: `EchoCanceller` removes the hybrid's echo of what we sent (`ref`)
from what came back (`mic`), one 20 ms frame at a time, and `EchoStats` reports on it.

`gateway.call` owns one per call and runs it on the uplink before the DTMF / tone detectors
and the VAD: without it the cloud hears the agent's own voice 6-20 dB down and the agent
interrupts itself. The design and its measurements are in docs/echo-canceller.md. In brief,
one module per part, all numba kernels run from `dsp.echo_frame._echo_frame_kernel`:
- `dsp.echo_mdf`: the adaptive filter, a partitioned-block frequency-domain filter (4 ms
  blocks, 64-point transforms from `dsp.echo_fft`) with proportionate partition gains and a
  per-bin echo-to-noise weighted step, the codec's noise known from `dsp.echo_floor`;
- `dsp.echo_control`: DC blockers; the two-path (foreground / background) scheme, double
  talk, step size, ERLE and noise-floor bookkeeping;
- `dsp.echo_delay` and `dsp.echo_window`: where the echo is (per-partition coherence, then
  the filter's own taps), the bulk delay the filter skips, and where it spends its step;
- `dsp.echo_nlp`: the non-linear processor and comfort noise (`nlp=True`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.echo_control import (
    CONVERGED,
    DELAY,
    DOUBLE_TALK,
    LAG,
    MU_NOW,
    REPORT_DEN,
    REPORT_NUM,
    _erle_db,
    control_state,
)  # fmt: skip
from dsp.echo_fft import fft_tables
from dsp.echo_floor import codec_noise_table
from dsp.echo_frame import FRAME_ROWS, P_ECHO, POWERS, _echo_frame_kernel
from dsp.echo_mdf import (
    BIN_ROWS,
    BINS,
    BLOCK_SAMPLES,
    E_POW,
    FFT_SIZE,
    N_MIN,
    ROUND_ROBIN_PAIRS,
    TOP_CONSTRAINED,
    WORK_ROWS,
    mdf_params,
)  # fmt: skip
from dsp.echo_nlp import nlp_state
from dsp.errors import DspInputError
from dsp.frame import FRAME_SAMPLES, RATE_HZ, as_int16, check_rate
from dsp.levels import rms_to_dbm0

MIN_TAIL_MS = 16
MAX_TAIL_MS = 256
MAX_BULK_DELAY_MS = 200
DELAY_SEARCH_MS = MAX_BULK_DELAY_MS + 16  # lags the delay estimator ranks (its ring)


@dataclass(frozen=True, slots=True)
class EchoStats:
    """A snapshot of the canceller's state after the last frame.

    erle_db: ERLE estimate of the linear stage (echo power over residual power, the codec's
        noise counted as residual, as tests/bench/echo_battery measures it), over the recent
        frames with far-end speech and no double talk; 0 before any.
    double_talk: both ends talking (adaptation of the output filter frozen).
    converged: the linear stage's own ERLE estimate (codec noise left out) is >= 20 dB.
    delay_ms: where the echo's main tap is, from the reference to the mic: the filter's
        largest tap once it has converged, before that the start of the span the delay
        estimator puts it in; None until it has found one.
    window_ms: the bulk delay the adaptive filter skips: its first tap is this far back.
    step: the background filter's step size (0 in double talk, 0.1 when the codec's noise
        dominates the error, up to 0.8 while converging)."""

    erle_db: float
    double_talk: bool
    converged: bool
    delay_ms: float | None
    window_ms: float
    step: float


class EchoCanceller:
    """G.168-class line echo canceller for 8 kHz, 20 ms frames.

    `process(ref, mic)`: `ref` is what we sent to the line, `mic` what came back over the
    same 20 ms (each 1-D int16, 160 samples); returns the mic with the echo removed, a new
    int16 array of 160. `tail_ms` (16-256, rounded up to 4 ms) is the echo's dispersion the
    filter covers after a bulk delay of up to `MAX_BULK_DELAY_MS`, found on its own.
    `nlp=False` gives the linear stage alone (no residual suppression, no comfort noise).
    `stats` describes the state after the last frame; `reset()` forgets the call.
    `echo_dbm0` and `residual_echo_dbm0` are the last frame's echo estimate and what of it
    the linear stage left (for the VAD's echo guard)."""

    def __init__(self, sample_rate: int = RATE_HZ, tail_ms: float = 128, nlp: bool = True) -> None:
        self.sample_rate = check_rate(sample_rate, "EchoCanceller")
        if not (isinstance(tail_ms, int | float) and MIN_TAIL_MS <= tail_ms <= MAX_TAIL_MS):
            raise DspInputError(
                f"EchoCanceller: tail_ms must be {MIN_TAIL_MS}..{MAX_TAIL_MS}, got {tail_ms!r}"
            )
        block_ms = 1000.0 * BLOCK_SAMPLES / RATE_HZ
        self.parts = math.ceil(tail_ms / block_ms)
        self.tail_ms = self.parts * block_ms
        self.nlp = bool(nlp)
        self._table = codec_noise_table()
        rev, cos_t, sin_t = fft_tables(FFT_SIZE)
        self._rev, self._tw = rev, np.stack([cos_t, sin_t])
        self._allocate(math.ceil(DELAY_SEARCH_MS / block_ms))
        self.reset()

    def _allocate(self, ring: int) -> None:
        p, b = self.parts, BLOCK_SAMPLES
        # the reference history: a frame, the longest bulk delay, the tail, one block more
        hist = FRAME_SAMPLES + MAX_BULK_DELAY_MS * RATE_HZ // 1000 + (p + 1) * b
        self._hist = np.zeros(hist, np.float64)
        self._frame = np.zeros((FRAME_ROWS, FRAME_SAMPLES), np.float64)
        self._fx = np.zeros((2, p, BINS), np.float64)  # the filter's reference spectra
        self._fxp = np.zeros((p, BINS), np.float64)
        self._xs = np.zeros((2, ring, BINS), np.float64)  # the delay estimator's
        self._xp = np.zeros((ring, BINS), np.float64)
        self._w = np.zeros((2, 2, p, BINS), np.float64)
        self._g = np.zeros(p, np.float64)
        self._prior = np.zeros(p, np.float64)
        self._bins = np.zeros((BIN_ROWS, BINS), np.float64)
        self._work = np.zeros((WORK_ROWS, BINS), np.float64)
        self._scr = np.zeros((4, FFT_SIZE), np.float64)
        self._pairs = np.zeros(TOP_CONSTRAINED + 2 * ROUND_ROBIN_PAIRS, np.int64)
        self._taps = np.zeros((2, p * b), np.float64)
        self._cross = np.zeros((2, ring, BINS), np.float64)
        self._psd = np.zeros((2, BINS), np.float64)
        self._gam = np.zeros(ring, np.float64)
        self._pw = np.zeros(POWERS, np.float64)
        self._cn = np.zeros(2 * b, np.float64)

    def reset(self) -> None:
        """Forget everything: filters, delay, statistics, noise floor (a new call)."""
        for arr in (self._hist, self._frame, self._fx, self._fxp, self._xs, self._xp, self._w,
                    self._bins, self._cross, self._psd, self._gam):  # fmt: skip
            arr.fill(0.0)
        self._g.fill(1.0 / self.parts)
        self._prior.fill(1.0 / self.parts)
        self._bins[N_MIN].fill(np.inf)  # the per-bin noise minimum: none yet
        self._bins[E_POW].fill(-1.0)  # nor an error power average
        self._par = mdf_params()
        self._fst, self._ist = control_state()
        self._nst, self._nis = nlp_state()

    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]:
        """Cancel the echo of `ref` in `mic` (both 1-D int16, 160 samples); a new int16 array."""
        ref_pcm = self._checked(ref, "ref")
        mic_pcm = self._checked(mic, "mic")
        out = np.empty(FRAME_SAMPLES, np.int16)
        _echo_frame_kernel(
            ref_pcm, mic_pcm, out, self.nlp, self._table, self._hist, self._frame, self._fx,
            self._fxp, self._xs, self._xp, self._w, self._g, self._prior, self._bins,
            self._par, self._work, self._rev, self._tw, self._scr, self._pairs, self._taps,
            self._cross, self._psd, self._gam, self._pw, self._fst, self._ist, self._nst,
            self._nis, self._cn,
        )  # fmt: skip
        return out

    @staticmethod
    def _checked(pcm: object, name: str) -> NDArray[np.int16]:
        arr = as_int16(pcm, f"EchoCanceller.process {name}")
        if arr.shape[0] != FRAME_SAMPLES:
            raise DspInputError(
                f"EchoCanceller.process {name} wants {FRAME_SAMPLES} samples, got {arr.shape[0]}"
            )
        return arr if arr.flags.writeable else arr.copy()  # one kernel signature

    @property
    def stats(self) -> EchoStats:
        """ERLE estimate, double talk, converged, delay: see `EchoStats`."""
        f, i = self._fst, self._ist
        lag = int(i[LAG])
        return EchoStats(
            erle_db=_erle_db(f[REPORT_NUM], f[REPORT_DEN]) if f[REPORT_NUM] > 0 else 0.0,
            double_talk=bool(i[DOUBLE_TALK]),
            converged=bool(i[CONVERGED]),
            delay_ms=None if lag < 0 else 1000.0 * lag / RATE_HZ,
            window_ms=1000.0 * int(i[DELAY]) / RATE_HZ,
            step=float(f[MU_NOW]),
        )

    @property
    def echo_dbm0(self) -> float:
        """The level of the echo the filter predicted in the last frame (dBm0; -inf: none)."""
        power = float(self._pw[P_ECHO])
        return rms_to_dbm0(math.sqrt(power)) if power > 0.0 else -math.inf

    @property
    def residual_echo_dbm0(self) -> float | None:
        """The echo the linear stage left in the last frame (dBm0), or None before the
        canceller has converged (its echo estimate still misses most of the echo).

        The frame's predicted echo less the reported ERLE (which counts the echo's codec
        noise as residual): a level, not a waveform, and it misses the tail of a loud frame
        before; `dsp.vad` holds it under a falling envelope. Measured against the true
        residual on the agent-only battery (tests/bench/vad_battery_agent.py)."""
        if not self._ist[CONVERGED]:
            return None
        num, den = self._fst[REPORT_NUM], self._fst[REPORT_DEN]
        if num <= 0.0:
            return None
        return self.echo_dbm0 - _erle_db(num, den)
