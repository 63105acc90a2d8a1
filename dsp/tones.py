"""Call-progress tones: names dial tone, ringback, busy, reorder and SIT on a line, and plays them.

Owns `ToneDetector` and its event `ToneDetected`, and re-exports the generator
(`ToneGenerator`, `generate` from `dsp.tone_gen`). The call's uplink feeds every received
20 ms frame to `ToneDetector.feed`; on an FXO line "busy" or "reorder" means the far end has
hung up. The FXS side plays dial tone to the phone with `ToneGenerator`.

One kernel call per `feed` runs, per 20 ms frame:
- `dsp.tone_frames`: which of the plan's tone sets (or SIT band) the frame holds, by
  least-squares fits at the plan's frequencies (+-2 %) and a purity test (>= 80 % of the
  frame's energy) that speech and music practically never pass for two frames in a row;
  the energy leaves out DC and mains hum (`dsp.hum`: what of it below 200 Hz repeats);
- `dsp.tone_cadence`: on/off segments matched against each cadence (+-15 %; ringback +-20 %,
  UK busy/congestion +-10 %; plus 40 ms for the frame edges): two cycles for busy and
  reorder, on-off-on for ringback, one cycle and a burst for UK's four-segment cadences;
  dial tone after 1 s of steady tone (1.26 s where ringback is the same 425 Hz tone);
- `dsp.tone_sit`: the three rising SIT segments.
Each tone is reported once per onset. The plans are data in `dsp.tone_plans`.

Decision delays from the start of a clean tone (us / uk / de / etsi, ms): dial 1000 / 1000 /
1260 / 1260, busy 1900 / 1420 / 1820 / 1900, reorder 920 / 1820 / 900 / 920, ringback 7560 /
3280 / 5760 / 5760, SIT 740 / 880 / 880 / 880; unchanged at -40 dBm0, +-1.5 %, 20 dB SNR,
through mu-law, and over 50/60 Hz hum at -20 dBm0 or a DC offset of 3000
(tests/dsp/test_tones.py). With `hangup_watch`, after 200 ms of quiet: busy 900 / 1060 /
1340 / 1400, reorder 680 / 1420 / 660 / 680, the same in noise at 20 dB SNR and through
mu-law (tests/dsp/test_tone_hangup_watch.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES, RATE_HZ, BlockStream, as_int16, check_rate
from dsp.hum import HUM_PERIOD_MS
from dsp.tone_cadence import (
    E_AT,
    E_CODE,
    E_NSEG,
    E_ONSET,
    E_SEG,
    EVENT_COLS,
    FRAME_MS,
    FRAME_SLOT,
    FSTATE_SLOTS,
    HIST_COLS,
    HISTORY,
    NEG_SLOTS,
    STATE_SLOTS,
    _hold_kernel,
    _tone_step_kernel,
)
from dsp.tone_cadence_tables import CadenceTables, build_cadence_tables
from dsp.tone_frames import (
    AMP_SLOTS,
    I_LEVEL,
    I_PURITY,
    I_SIT_LEVEL,
    INFO_SLOTS,
    LOW_BAND_VECTORS,
    P_FLOOR,
    P_PURITY,
    FrameTables,
    _classify_kernel,
    _correlate_kernel,
    _less_hum_kernel,
    _sit_band_kernel,
    build_frame_tables,
)
from dsp.tone_gen import ToneGenerator, generate
from dsp.tone_plans import PLANS, TONE_NAMES, TonePlan, get_plan
from dsp.tone_sit import (
    SIT_FSTATE_SLOTS,
    SIT_NEG_SLOTS,
    SIT_STATE_SLOTS,
    _sit_step_kernel,
    build_sit_params,
)

__all__ = [
    "PLANS",
    "TONE_NAMES",
    "ToneDetected",
    "ToneDetector",
    "ToneGenerator",
    "generate",
]

MAX_EVENTS = 16  # per kernel call; the wrapper calls again when it could fill
HUM_FRAMES = HUM_PERIOD_MS // FRAME_MS  # frames per hum cycle


@dataclass(frozen=True, slots=True)
class ToneDetected:
    """A call-progress tone was recognised. Times are ms since the detector started (or was
    reset): `at_ms` when it was decided, `onset_ms` where the matched segments began.
    `segments_ms` are the on/off durations matched (the last still running); `level_dbm0` is
    the mean level per frequency over the tone's frames."""

    tone: str
    at_ms: int
    onset_ms: int
    level_dbm0: float
    segments_ms: tuple[int, ...]


@njit(cache=True, nogil=True)
def _above_low_band_kernel(corr: np.ndarray, energy: float, floor: float) -> float:
    """The frame's energy above the low band (its correlations with the last
    LOW_BAND_VECTORS columns, orthonormal), what the cadence tracker judges a pause's quiet
    by: no hum or DC, whose estimate lags a burst's end; 0 under `floor`."""
    if energy < floor:
        return 0.0
    for j in range(corr.shape[0] - LOW_BAND_VECTORS, corr.shape[0]):
        energy -= corr[j] * corr[j]
    return max(energy, 0.0)


@njit(cache=True, nogil=True)
def _detect_kernel(
    pcm: np.ndarray, basis: np.ndarray, sig_cols: np.ndarray, sig_ginv: np.ndarray,
    sig_shape: np.ndarray, sit_cols: np.ndarray, sit_ginv: np.ndarray, sit_nbins: np.ndarray,
    fparams: np.ndarray, cad: np.ndarray, cad_ms: np.ndarray, quick: np.ndarray,
    limits: np.ndarray,
    tparams: np.ndarray, state: np.ndarray, fstate: np.ndarray, hist: np.ndarray,
    sit_params: np.ndarray, sit_state: np.ndarray, sit_fstate: np.ndarray,
    hum_past: np.ndarray, scratch: np.ndarray, events: np.ndarray, ev_level: np.ndarray,
) -> tuple[int, int]:  # fmt: skip
    """Run the whole frames of `pcm` through the frame analysis and both trackers, stopping
    early when `events` could overflow. `hum_past` keeps the last hum cycle's low-band
    correlations, a row per frame; `scratch` holds the correlations, amplitudes and per-frame
    info. Returns (frames consumed, events written)."""
    m = basis.shape[1]
    corr = scratch[:m]
    amps = scratch[m : m + AMP_SLOTS]
    info = scratch[m + AMP_SLOTS : m + AMP_SLOTS + INFO_SLOTS]
    frames = pcm.shape[0] // basis.shape[0]
    n_ev = 0
    for f in range(frames):
        if n_ev + cad.shape[0] + 2 > events.shape[0]:
            return f, n_ev
        energy = _correlate_kernel(pcm, f * basis.shape[0], basis, fparams[P_FLOOR], corr)
        past = hum_past[state[FRAME_SLOT] % hum_past.shape[0]]
        fresh = state[FRAME_SLOT] < hum_past.shape[0]
        quiet_energy = _above_low_band_kernel(corr, energy, fparams[P_FLOOR])
        energy = _less_hum_kernel(corr, energy, fparams[P_FLOOR], past, fresh)
        hold_sig, hold_level = _hold_kernel(state, fstate)
        raw = _classify_kernel(
            corr, energy, sig_cols, sig_ginv, sig_shape, fparams, hold_sig, hold_level, amps, info
        )
        clean = raw >= 0 and info[I_PURITY] >= fparams[P_PURITY]
        band = _sit_band_kernel(corr, energy, sit_cols, sit_ginv, sit_nbins, fparams, amps, info)
        n_ev = _tone_step_kernel(
            raw, info[I_LEVEL], quiet_energy, clean, cad, cad_ms, quick, limits, tparams, state,
            fstate, hist, events, ev_level, n_ev,
        )  # fmt: skip
        n_ev = _sit_step_kernel(
            band, info[I_SIT_LEVEL], state[FRAME_SLOT], sit_params, sit_state, sit_fstate,
            events, ev_level, n_ev,
        )  # fmt: skip
        state[FRAME_SLOT] += 1
    return frames, n_ev


class ToneDetector:
    """Names the call-progress tones of `plan` ("us", "uk", "de", "etsi" or a `TonePlan`) in
    8 kHz int16 audio. `feed` takes any number of samples (normally one 20 ms frame) and
    returns the `ToneDetected` events decided in them; a tail shorter than a frame waits for
    the next call. One kernel call per feed, no allocation in it.

    `hangup_watch` (an FXO line in a call, where busy or reorder means the far end has hung
    up): busy and reorder are also named on fewer segments when their pauses are quiet
    (`dsp.tone_cadence_tables`): US busy from its start in 0.9 s instead of 1.9 s."""

    def __init__(
        self, plan: str | TonePlan = "us", sample_rate: int = RATE_HZ, *,
        hangup_watch: bool = False,
    ) -> None:  # fmt: skip
        check_rate(sample_rate, "ToneDetector")
        self.plan = get_plan(plan)
        self._frames: FrameTables = build_frame_tables(self.plan)
        self._cadence: CadenceTables = build_cadence_tables(
            self.plan, self._frames.signatures, hangup_watch
        )
        self._state = np.zeros(STATE_SLOTS, np.int64)
        self._fstate = np.zeros(FSTATE_SLOTS, np.float64)
        self._hist = np.zeros((HISTORY, HIST_COLS), np.int64)
        self._sit_params = build_sit_params(self.plan)
        self._sit_state = np.zeros(SIT_STATE_SLOTS, np.int64)
        self._sit_fstate = np.zeros(SIT_FSTATE_SLOTS, np.float64)
        self._hum_past = np.zeros((HUM_FRAMES, LOW_BAND_VECTORS), np.float64)
        self._scratch = np.zeros(self._frames.basis.shape[1] + AMP_SLOTS + INFO_SLOTS, np.float64)
        self._events = np.zeros((MAX_EVENTS, EVENT_COLS), np.int64)
        self._ev_level = np.zeros(MAX_EVENTS, np.float64)
        self._blocks = BlockStream(FRAME_SAMPLES)
        f, c = self._frames, self._cadence
        self._args = (
            f.basis, f.sig_cols, f.sig_ginv, f.sig_shape, f.sit_cols, f.sit_ginv, f.sit_nbins,
            f.params, c.cad, c.cad_ms, c.quick, c.limits, c.params, self._state, self._fstate,
            self._hist, self._sit_params, self._sit_state, self._sit_fstate, self._hum_past,
            self._scratch, self._events, self._ev_level,
        )  # fmt: skip
        self.reset()

    def reset(self) -> None:
        """Forget everything heard; times restart at 0."""
        self._state[:] = 0
        self._state[list(NEG_SLOTS)] = -1
        self._fstate[:] = 0.0
        self._hist[:] = 0
        self._sit_state[:] = 0
        self._sit_state[list(SIT_NEG_SLOTS)] = -1
        self._sit_fstate[:] = 0.0
        self._hum_past[:] = 0.0
        self._blocks.reset()

    def feed(self, pcm: NDArray[np.int16]) -> list[ToneDetected]:
        """Process `pcm` (1-D int16, any length); returns the tones recognised, oldest first."""
        x = as_int16(pcm, "ToneDetector.feed")
        if not x.flags.writeable:  # np.frombuffer: numba would compile a second kernel for it
            x = x.copy()
        out: list[ToneDetected] = []
        for run in self._blocks.runs(x):
            self._run(run, out)
        return out

    def _run(self, pcm: NDArray[np.int16], out: list[ToneDetected]) -> None:
        frames, n_ev = _detect_kernel(pcm, *self._args)
        while True:
            for i in range(n_ev):
                out.append(self._event(i))
            pcm = pcm[frames * FRAME_SAMPLES :]
            if pcm.shape[0] < FRAME_SAMPLES:
                return
            frames, n_ev = _detect_kernel(pcm, *self._args)  # the event buffer had filled

    def _event(self, i: int) -> ToneDetected:
        row = self._events[i]
        return ToneDetected(
            tone=TONE_NAMES[row[E_CODE]],
            at_ms=int(row[E_AT] + 1) * FRAME_MS,
            onset_ms=int(row[E_ONSET]) * FRAME_MS,
            level_dbm0=round(float(self._ev_level[i]), 1),
            segments_ms=tuple(int(d) for d in row[E_SEG : E_SEG + row[E_NSEG]]),
        )
