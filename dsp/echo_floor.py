"""The echo canceller's knowledge of the G.711 codec's own noise (`dsp.echo_mdf` uses it).

What comes back from the line was G.711 decoded, so every sample is one of the 256 levels
of its law and carries that level's quantisation error: uniform over the level's decision
interval, variance width^2 / 12 (G.711 mu-law: 8 at the origin to 1024 at the top, 16-bit
units). That noise is the floor no canceller can go below (about 37 dB under speech,
`tests/bench/echo_battery.ceiling_db`), and it is signal dependent: loud echo carries loud
noise. The adaptive filter's step is weighted by the echo-to-noise ratio of each frequency
bin; with this table the noise part is known sample by sample instead of guessed.

`codec_noise_table()` maps every int16 value to the quantisation noise variance of the
level it is (mu-law first, then A-law), or -1 if it is no G.711 level: a frame with any such
sample came over a linear path, whose only noise is int16 rounding (1/12).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit
from numpy.typing import NDArray

from dsp.g711 import alaw_decode, ulaw_decode

LINEAR_NOISE_VAR = 1.0 / 12.0  # int16 rounding: uniform over one unit


def _level_noise(levels: NDArray[np.int16]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The distinct levels of a law and the variance of the uniform error over each level's
    decision interval (half way to each neighbour; the end levels mirror their inner half)."""
    v = np.unique(levels.astype(np.int64))
    gaps = np.diff(v).astype(np.float64)
    width = np.empty(v.size, np.float64)
    width[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    width[0], width[-1] = gaps[0], gaps[-1]
    return v, width * width / 12.0


@functools.cache
def codec_noise_table() -> NDArray[np.float64]:
    """65 536 float64, indexed by int16 value + 32768: the quantisation noise variance of a
    G.711 level (mu-law where both laws have it), -1 for a value that is no level."""
    table = np.full(65536, -1.0, np.float64)
    codes = np.arange(256, dtype=np.uint8)
    for decoded in (alaw_decode(codes), ulaw_decode(codes)):  # mu-law written last: it wins
        v, var = _level_noise(decoded)
        table[v + 32768] = var
    table.setflags(write=False)
    return table


@njit(cache=True, nogil=True)
def _codec_noise_kernel(mic: np.ndarray, table: np.ndarray, block: int, out: np.ndarray) -> None:
    """Mean codec noise variance of each `block`-sample block of `mic` (int16) into `out`:
    from `table` if every sample of the frame is a G.711 level, else int16 rounding's."""
    linear = False
    for n in range(mic.shape[0]):
        if table[mic[n] + 32768] < 0.0:
            linear = True
    for b in range(out.shape[0]):
        acc = 0.0
        for n in range(b * block, (b + 1) * block):
            acc += LINEAR_NOISE_VAR if linear else table[mic[n] + 32768]
        out[b] = acc / block
