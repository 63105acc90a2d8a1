"""How far one call can trust its echo canceller, frame by frame: `EchoGuard`.

The call's audio step (`gateway.call_audio`) asks it, each frame, for the residual echo the VAD
must allow for, and whether the frame to the cloud must be silenced. Both depend on whether
the canceller is doing its job now, which its own statistics do not always say: it reports
nothing before it first converges, and (measured in tests/gateway/test_call.py's set-ups) a
caller talking over a quiet reference, a barge-in, or a DTMF tone over the agent can throw its
filter off while its ERLE estimate and "converged" flag stay where they were; its output then
carries the agent's echo 10-30 dB louder than it says.

So the guard keeps its own trust. Whenever the near end is active (the caller talks, a DTMF
tone sounds: the canceller may have adapted on it), trust is withdrawn. It is earned again by
measurement from outside: over frames where the agent's echo is there and the near end is
quiet, the attenuation from the received frame to the canceller's output (smoothed; a working
canceller gives 20-35 dB) must reach `HEALTHY_DB`, with the canceller converged. Low
attenuation alone never withdraws trust: the first frame of a caller's barge-in looks just
like that, and the VAD must judge it with the canceller's estimate. Untrusted, the VAD is told
to allow for the loudest recent reference less `MIN_ERL_DB` (the echo as the hybrid returns
it, uncancelled), and the cloud hears silence instead of the agent's echo while the caller is
not talking: else the cloud's VAD takes the agent's own words for the caller and barges in.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.echo import EchoCanceller
from dsp.levels import SILENCE_DBM0, rms_to_dbm0

ECHO_SPAN_FRAMES = 10  # 200 ms: the echo of a frame lasts the echo path's delay + 128 ms tail
MIN_ERL_DB = 6.0  # G.168: a hybrid returns its input at least 6 dB down
HEALTHY_DB = 12.0  # the attenuation a trusted canceller keeps (working: 20-35 dB)
SMOOTHING = 0.7  # per frame: about 3 frames of memory
AUDIBLE_OVER_NOISE_DB = 15.0  # the echo must stand this far over the line noise to be judged
FAR_ACTIVE_DBM0 = -50.0  # a quieter reference has no echo worth cancelling


def _level_dbm0(pcm: NDArray[np.int16]) -> tuple[float, float]:
    """(power in int16^2, level in dBm0) of a frame."""
    power = float(np.mean(np.square(pcm, dtype=np.float64)))
    return power, rms_to_dbm0(math.sqrt(power)) if power > 0.0 else SILENCE_DBM0


class EchoGuard:
    """See the module docstring. `update` once per frame, then read `trusted`."""

    def __init__(self) -> None:
        self._ref_power = np.zeros(ECHO_SPAN_FRAMES)
        self._slot = 0
        self.attenuation_db = 0.0  # smoothed, over frames of echo without the caller
        self.trusted = False

    def update(
        self,
        ec: EchoCanceller,
        ref: NDArray[np.int16],
        mic: NDArray[np.int16],
        clean: NDArray[np.int16],
        near_active: bool,
        noise_dbm0: float,
    ) -> float | None:
        """After `ec.process(ref, mic) -> clean`, with `near_active` the caller talking or a
        DTMF tone sounding (the last frame's decision): update the trust; return the residual
        echo level (dBm0) the VAD should allow for in `clean`, None if the reference is silent."""
        self._ref_power[self._slot] = float(np.mean(np.square(ref, dtype=np.float64)))
        self._slot = (self._slot + 1) % ECHO_SPAN_FRAMES
        loudest = float(self._ref_power.max())
        far_dbm0 = rms_to_dbm0(math.sqrt(loudest)) if loudest > 0.0 else SILENCE_DBM0
        _, mic_dbm0 = _level_dbm0(mic)
        echo_audible = far_dbm0 > FAR_ACTIVE_DBM0 and mic_dbm0 > noise_dbm0 + AUDIBLE_OVER_NOISE_DB
        estimate = ec.residual_echo_dbm0
        if near_active:  # the canceller may adapt on the near end: trust is earned again
            self.attenuation_db, self.trusted = 0.0, False
        elif echo_audible:
            _, clean_dbm0 = _level_dbm0(clean)
            measured = mic_dbm0 - clean_dbm0
            self.attenuation_db += (1.0 - SMOOTHING) * (measured - self.attenuation_db)
            self.trusted = self.trusted or self.attenuation_db >= HEALTHY_DB
        self.trusted = self.trusted and estimate is not None
        if self.trusted:
            return estimate
        return far_dbm0 - MIN_ERL_DB if loudest > 0.0 else None
