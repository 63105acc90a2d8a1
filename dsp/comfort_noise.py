"""Comfort noise at a set level, to fill the gaps in what we send to the line.

Owns `ComfortNoise`. It runs the echo canceller's comfort noise kernel
(`dsp.echo_nlp._comfort_noise_kernel`: a 31-bit LCG, two uniforms per sample, so a triangular
excitation of exactly the asked power) with the flat spectrum of a fresh NLP state, at a fixed
level in dBm0. The playout of a call (`gateway.playout`) mixes it into the agent's silences,
so the caller hears the line's hiss rather than digital silence (which sounds like a drop).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.echo_nlp import RNG, _comfort_noise_kernel, nlp_state
from dsp.errors import DspInputError
from dsp.levels import MAX_SINE_DBM0, dbm0_to_rms

DEFAULT_SEED = 12345
SEED_LIMIT = 2**31  # the LCG's state is 31 bits


class ComfortNoise:
    """White noise of power `level_dbm0` (RMS `dbm0_to_rms(level_dbm0)` int16 units), the
    same sequence for the same `seed`. `fill(out)` writes float64 samples into `out`."""

    def __init__(self, level_dbm0: float, seed: int = DEFAULT_SEED) -> None:
        if not math.isfinite(level_dbm0) or level_dbm0 > MAX_SINE_DBM0:
            raise DspInputError(
                f"ComfortNoise level must be a finite dBm0 up to {MAX_SINE_DBM0}, got {level_dbm0}"
            )
        if not 0 <= seed < SEED_LIMIT:
            raise DspInputError(f"ComfortNoise seed must be in 0..2**31-1, got {seed}")
        self.level_dbm0 = level_dbm0
        self._power = dbm0_to_rms(level_dbm0) ** 2
        self._nst, self._nis = nlp_state()  # LPC 1, 0, ...: no colouring, white noise
        self._nis[RNG] = seed

    def fill(self, out: NDArray[np.float64]) -> None:
        """Write the next `len(out)` samples (1-D float64, int16 scale) into `out`."""
        if out.dtype != np.float64 or out.ndim != 1:
            raise DspInputError(
                f"ComfortNoise.fill wants a 1-D float64 array, got {out.dtype} {out.shape}"
            )
        _comfort_noise_kernel(self._power, self._nst, self._nis, out)
