"""Frame and rate constants shared by every DSP module, and the input checks they all use."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dsp.errors import DspInputError

RATE_HZ = 8000
FRAME_S = 0.020
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the audio unit on the line, the adapter and the cloud
SUPPORTED_RATES_HZ = (8000, 16000, 24000, 48000)


def as_int16(pcm: object, what: str) -> NDArray[np.int16]:
    """Return `pcm` as a 1-D C-contiguous int16 array, or raise `DspInputError` naming `what`."""
    arr = np.asarray(pcm)
    if arr.dtype != np.int16 or arr.ndim != 1:
        raise DspInputError(f"{what} wants a 1-D int16 array, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def as_uint8(codes: object, what: str) -> NDArray[np.uint8]:
    """Return `codes` as a 1-D C-contiguous uint8 array, or raise `DspInputError` naming `what`."""
    arr = np.asarray(codes)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise DspInputError(f"{what} wants a 1-D uint8 array, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def check_rate(sample_rate: int, what: str, allowed: tuple[int, ...] = (RATE_HZ,)) -> int:
    """Return `sample_rate` if it is one of `allowed`, else raise `DspInputError`."""
    if sample_rate not in allowed:
        names = ", ".join(str(r) for r in allowed)
        raise DspInputError(f"{what}: sample_rate {sample_rate} Hz is not one of {names}")
    return sample_rate
