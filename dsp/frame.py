"""Frame and rate constants shared by every DSP module, and the input checks they all use."""

from __future__ import annotations

from collections.abc import Iterator

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


class BlockStream:
    """Cuts a stream of int16 samples fed in pieces of any length into runs of whole blocks of
    `size` samples, for a detector whose kernel works block by block. `runs(x)` yields them in
    order (the samples held back from the last feed completed first); a tail shorter than a
    block is kept for the next feed once the caller has gone through every run."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._stash = np.zeros(size, np.int16)
        self._held = 0

    def reset(self) -> None:
        self._held = 0

    def runs(self, x: NDArray[np.int16]) -> Iterator[NDArray[np.int16]]:
        size = self.size
        if x.shape[0] == size and not self._held:  # the usual call: one frame
            yield x
            return
        pos = 0
        if self._held:
            pos = min(size - self._held, x.shape[0])
            self._stash[self._held : self._held + pos] = x[:pos]
            self._held += pos
            if self._held < size:
                return
            yield self._stash
            self._held = 0
        whole = (x.shape[0] - pos) // size * size
        if whole:
            yield x[pos : pos + whole]
        tail = x.shape[0] - pos - whole
        if tail:
            self._stash[:tail] = x[pos + whole :]
            self._held = tail
