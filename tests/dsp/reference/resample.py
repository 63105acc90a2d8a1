"""Plain numpy reference for `dsp.resample`: zero-stuff by `up`, convolve, keep every `down`."""

import numpy as np
from numpy.typing import NDArray


def ref_resample(
    pcm: NDArray[np.int16] | NDArray[np.float32], prototype: NDArray[np.float64], up: int, down: int
) -> NDArray[np.float64]:
    """Unrounded output of a stream that starts in silence: ceil(len * up / down) samples."""
    stuffed = np.zeros(pcm.shape[0] * up, np.float64)
    stuffed[::up] = pcm
    if stuffed.size == 0:
        return stuffed  # np.convolve refuses empty input
    return np.convolve(stuffed, prototype)[: stuffed.shape[0]][::down]


def ref_quantize(y: NDArray[np.float64]) -> NDArray[np.int16]:
    """Round half up and saturate to int16, as the kernel does for int16 input."""
    return np.clip(np.floor(y + 0.5), -32768, 32767).astype(np.int16)
