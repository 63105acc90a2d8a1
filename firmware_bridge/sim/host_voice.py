"""Is the host talking, as the far party hears it: per-ms voice decisions for the simulated
line's reactive script (`line_script`'s host waits) and for measuring, after a call, when the
agent started and stopped talking at the line (`LineCore.host_voice_after`,
`LineCore.host_quiet_after`). `firmware_bridge.sim.caller` measures the caller's own audio
with the same rule.

Voice is power: a whole ms (8 samples) is voiced when its mean power is at least
`HOST_VOICE_DBM0`. No band filter: what the host sends is digital (the agent's speech, the
playout's comfort noise, digital silence), with no hum or line noise to reject. Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.frame import RATE_HZ
from dsp.levels import dbm0_to_rms

__all__ = ["HOST_VOICE_DBM0", "MS_SAMPLES", "STOPPED_QUIET_MS", "first_run", "voiced_ms"]

MS_SAMPLES = RATE_HZ // 1000
# gateway.playout's comfort noise is -65 dBm0 and the shipped prompts talk at about -20 dBm0:
# 20 dB either side. At this level and 1 ms resolution the prompts are voiced 60-80 % of the
# time between their first and last word (the rest is the quiet between words).
HOST_VOICE_DBM0 = -45.0
# The agent counts as stopped once it stays this quiet: measured on the shipped prompts, a
# quiet run of >= 10 ms starts within 50 ms of a random instant of their speech 19 % of the
# time (pauses between words), one of >= 200 ms 2 % of the time. After a real barge-in the
# agent stays quiet for the caller's whole utterance, far longer.
STOPPED_QUIET_MS = 200.0


def voiced_ms(
    pcm: NDArray[np.int16] | NDArray[np.float64], threshold_dbm0: float = HOST_VOICE_DBM0
) -> NDArray[np.bool_]:
    """Per whole ms of `pcm` (1-D, 8 kHz, int16 or float64 in int16 units; a partial ms at
    the end is left out): True where its mean power is at least `threshold_dbm0`."""
    whole = pcm.shape[0] - pcm.shape[0] % MS_SAMPLES
    blocks = np.asarray(pcm[:whole], np.float64).reshape(-1, MS_SAMPLES)
    power = np.mean(np.square(blocks), axis=1)
    voiced: NDArray[np.bool_] = power >= dbm0_to_rms(threshold_dbm0) ** 2
    return voiced


def first_run(flags: NDArray[np.bool_], start: int, length_ms: float, value: bool) -> int | None:
    """The first index >= `start` from which `flags` holds `value` for `length_ms` entries
    (rounded up) in a row; None if there is no such run (yet)."""
    length = max(1, math.ceil(length_ms))
    hits = flags[max(0, start) :] == value
    if hits.shape[0] < length:
        return None
    counts = np.concatenate(([0], np.cumsum(hits, dtype=np.int64)))
    full = np.flatnonzero(counts[length:] - counts[:-length] == length)
    return max(0, start) + int(full[0]) if full.shape[0] else None
