"""The echo guard of `dsp.vad`: how much of a frame of the echo-cancelled uplink the agent's
echo can explain, so that only the rest counts as the caller.

`dsp.vad._vad_frame_kernel` calls `_allowance_kernel` before it scores a frame and
`_learn_kernel` after it has decided; the state lives in the arrays `Vad` owns (`ECHO_SLOTS`
floats, a ring of far-end frame powers, `COMMIT_FRAMES` pending ratios). Two ways to know
the echo, per frame:

- *The canceller's estimate* (`residual_echo_dbm0`, given by the call pipeline from
  `dsp.echo.EchoCanceller`): the level of the agent's echo left in this very frame, aligned
  with it (the canceller knows the echo path), conservative before convergence. It is a
  level, not a waveform, and a frame's residual also holds the tail of the loud frames
  before it, which a per-frame estimate can miss. So the echo allowed for is the estimate
  held by an envelope falling `RESIDUAL_DECAY_DB` a frame, times `residual_margin_db`.
  Measured on the agent-only audio of the 24 G.168 cases through the canceller's linear
  output (`tests/bench/vad_battery_agent.py`): the frame's 300-3400 Hz power over noise
  floor plus the true residual (out - line noise) reaches +2.6 dB at most, with or without
  the envelope; over an estimate from levels alone (frame echo level less the canceller's
  ERLE) +9.4 dB, held by the envelope +4.6 dB; both under the SNR threshold (6 dB), so the
  margin defaults to 0 dB. A caller 15 dB under the agent is ~20 dB over this residual.
- *The far end alone* (the fallback, and the state kept warm meanwhile): the far end's
  loudest frame power over `echo_span_ms`, times a coupling, times `echo_margin_db`. The
  coupling starts at 0 dB (the canceller has not converged), falls by `ECHO_SETTLE_DB` per
  frame of far speech to `-echo_loss_db`, and is raised to what the uplink holds over the
  floor in frames with far speech and no caller, decaying from there by `ECHO_DECAY_DB` a
  frame. Those frames count `COMMIT_FRAMES` late and not at all if speech is declared
  before: a caller's first soft frames must not teach the guard to ignore them. It must
  allow for the agent's loudest syllables, so a caller 15 dB under the agent is heard late.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dsp.frame import FRAME_SAMPLES
from dsp.levels import dbm0_to_rms

FAR_ACTIVE_DBM0 = -50.0  # far end frames louder than this are agent speech
ECHO_SETTLE_DB = 0.3  # per frame of far speech: 0 dB to -40 dB in 2.7 s of agent speech
ECHO_DECAY_DB = 0.25  # per frame: a learned coupling halves in 12 frames
COMMIT_FRAMES = 3  # an echo-only frame teaches the guard 3 frames later, if still echo-only
NO_ECHO_DB = -300.0
# The residual estimate's envelope: 3 dB a frame (1.5 dB: +2.9 dB over it at most, above;
# slower holds a caller's onset after a loud syllable longer for little gain).
RESIDUAL_DECAY_DB = 3.0
# Echo state (floats): far coupling settling and learned peak (dB), coupling (power ratio),
# the far end's loudest frame power, the residual estimate and its envelope (power per
# sample, -1: none given), and the echo power the last frame allowed for.
E_SETTLE_DB, E_PEAK_DB, E_COUPLING, E_FAR, E_RESIDUAL, E_ENVELOPE, E_ALLOWED = range(7)
ECHO_SLOTS = 7
_FAR_ACTIVE = dbm0_to_rms(FAR_ACTIVE_DBM0) ** 2
_DBM0_POWER = dbm0_to_rms(0.0) ** 2  # power per sample of a 0 dBm0 signal
_RESIDUAL_DECAY = 10.0 ** (-RESIDUAL_DECAY_DB / 10.0)


def reset_echo_state(es: np.ndarray, pend: np.ndarray) -> None:
    """Fresh guard state: coupling 0 dB (echo as loud as the far end), nothing learned."""
    es[:] = 0.0
    es[E_PEAK_DB] = NO_ECHO_DB
    es[E_COUPLING] = 1.0
    es[E_RESIDUAL] = -1.0
    pend[:] = NO_ECHO_DB


@njit(cache=True, nogil=True)
def _db(power: float) -> float:
    return 10.0 * math.log10(max(power, 1e-30))


@njit(cache=True, nogil=True)
def _far_power(far: np.ndarray, has_far: bool) -> float:
    power = 0.0
    if has_far:
        for n in range(FRAME_SAMPLES):
            power += float(far[n]) * float(far[n])
    return power / FRAME_SAMPLES


@njit(cache=True, nogil=True)
def _allowance_kernel(
    far: np.ndarray, has_far: bool, residual_dbm0: float, frame_no: int, far_ring: np.ndarray,
    es: np.ndarray, echo_margin: float, residual_margin: float,
) -> float:  # fmt: skip
    """Take the frame's far end (if `has_far`) and residual estimate (dBm0; NaN: none given)
    into the state; return the echo power per sample the frame's SNR allows for."""
    far_ring[frame_no % far_ring.shape[0]] = _far_power(far, has_far)
    loudest = 0.0
    for k in range(far_ring.shape[0]):
        loudest = max(loudest, far_ring[k])
    es[E_FAR] = loudest
    if math.isnan(residual_dbm0):
        es[E_RESIDUAL] = -1.0
        es[E_ALLOWED] = es[E_COUPLING] * loudest * echo_margin
    else:
        es[E_RESIDUAL] = _DBM0_POWER * 10.0 ** (residual_dbm0 / 10.0)  # -inf: 0
        es[E_ENVELOPE] = max(es[E_RESIDUAL], es[E_ENVELOPE] * _RESIDUAL_DECAY)
        es[E_ALLOWED] = es[E_ENVELOPE] * residual_margin
    return float(es[E_ALLOWED])


@njit(cache=True, nogil=True)
def _learn_kernel(
    frame_power: float, floor: float, speaking: bool, was: bool, frame_no: int,
    pend: np.ndarray, es: np.ndarray, echo_floor_db: float,
) -> None:  # fmt: skip
    """Update the far end's coupling after the frame's decision (`speaking` now, `was`
    before it; see the module docstring): kept up with the residual estimate given too."""
    loud_far = es[E_FAR] >= _FAR_ACTIVE
    ratio = NO_ECHO_DB
    if loud_far and not speaking and not was:
        ratio = _db(max(frame_power - floor, 1e-30) / es[E_FAR])
    if speaking and not was:  # an onset: the frames just before were the caller's
        pend[:] = NO_ECHO_DB
    slot = frame_no % COMMIT_FRAMES
    es[E_PEAK_DB] = max(es[E_PEAK_DB] - ECHO_DECAY_DB, pend[slot])
    pend[slot] = ratio
    if loud_far:
        es[E_SETTLE_DB] = max(es[E_SETTLE_DB] - ECHO_SETTLE_DB, echo_floor_db)
    coupling = max(es[E_SETTLE_DB], es[E_PEAK_DB], echo_floor_db)
    es[E_COUPLING] = 10.0 ** (coupling / 10.0)
