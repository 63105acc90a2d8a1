"""ctypes bindings to the reference echo cancellers of `tipring bench echo`: speexdsp's MDF
canceller (Debian libspeexdsp1) and spandsp 0.0.6's G.168 line echo canceller (libspandsp2).

Only the benchmark and its tests import this module; the appliance never loads either library.
Both wrappers have the shape of ours (`dsp.echo.EchoCanceller`) so the battery of
`tests/bench/echo_battery.py` runs them unchanged: `process(ref, mic) -> out` on 160-sample
int16 frames (ref: what we sent to the line, mic: what came back), `nlp=False` for the linear
stage alone, `close()` (idempotent) or a `with` block. The tail is 128 ms by default (1024 taps
at 8 kHz). No compilation: prototypes are declared from the Debian -dev headers
(speex/speex_echo.h, speex/speex_preprocess.h, spandsp/echo.h), the constants copied below.

speexdsp (`SpeexEcho`): `speex_echo_cancellation(st, rec=mic, play=ref, out)` is the linear
stage (it always runs a DC notch, about 130 Hz at 8 kHz, on the mic). speexdsp has no NLP in
the canceller: its users get residual echo suppression from the preprocessor fed the echo
state (`SPEEX_PREPROCESS_SET_ECHO_STATE`), which `nlp=True` adds with the library's suppression
defaults (residual echo down 40 dB, 15 dB while the caller talks). That suppression only runs
with the denoiser on (preprocess.c applies no gain at all when denoise is off), and the
denoiser's default floor would take 15 dB off the line's noise too: we set the floor to 0 dB
(`NLP_NOISE_SUPPRESS_DB`), so the preprocessor does the NLP's job and keeps the line's noise,
as our comfort noise does; `noise_suppress_db=-15` gives the library default. The
preprocessor's overlap-add returns each frame one frame late (measured lag: 160 samples);
`delay_samples` declares it so the bench can align the output with the line.

spandsp (`SpandspEcho`): `echo_can_update(ec, tx=ref, rx=mic)` takes one sample. The calls are
made from a numba loop through the C function pointer, not through ctypes (which would add
about 100 us per frame), so a frame costs what a C caller pays plus one dispatch. Linear:
`ECHO_CAN_USE_ADAPTION`; NLP: adds `ECHO_CAN_USE_NLP | ECHO_CAN_USE_CNG`. No HPF by default:
`ECHO_CAN_USE_TX_HPF` does nothing in `echo_can_update` (it is for `echo_can_hpf_tx()`, which
filters what is sent to the line, and the battery's line is fixed), and `ECHO_CAN_USE_RX_HPF`
(`rx_hpf=True`) high-passes the caller's voice along with the echo. Debian's 0.0.6 build
printfs debugging lines to C stdout on every sample ("echo is %d", "Narrowband score ...");
`process` points C stdout at /dev/null meanwhile (`c_stdout_silenced`), and a frame's cost
includes that formatting.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, Self

import numpy as np
from numba import njit
from numpy.typing import NDArray

from tests.bench import spandsp

RATE_HZ = 8000
FRAME_SAMPLES = 160
TAIL_MS = 128.0

SPEEXDSP_SONAME = "libspeexdsp.so.1"
SPEEXDSP_PACKAGE = "libspeexdsp1"

# speex/speex_echo.h, speex/speex_preprocess.h (speexdsp 1.2.1)
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_NOISE_SUPPRESS = 18
SPEEX_PREPROCESS_SET_ECHO_STATE = 24
SPEEX_DEFAULT_NOISE_SUPPRESS_DB = -15  # preprocess.c's NOISE_SUPPRESS_DEFAULT
NLP_NOISE_SUPPRESS_DB = 0  # no denoising: the preprocessor as a residual echo suppressor only

# spandsp/echo.h (0.0.6) adaption mode bits
ECHO_CAN_USE_ADAPTION = 0x01
ECHO_CAN_USE_NLP = 0x02
ECHO_CAN_USE_CNG = 0x04
ECHO_CAN_USE_CLIP = 0x08
ECHO_CAN_USE_TX_HPF = 0x20
ECHO_CAN_USE_RX_HPF = 0x40
SPANDSP_LINEAR = ECHO_CAN_USE_ADAPTION
SPANDSP_NLP = ECHO_CAN_USE_ADAPTION | ECHO_CAN_USE_NLP | ECHO_CAN_USE_CNG

_VP = ctypes.c_void_p
_INT = ctypes.c_int
_SPEEX_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "speex_echo_state_init": (_VP, [_INT, _INT]),
    "speex_echo_state_destroy": (None, [_VP]),
    "speex_echo_cancellation": (None, [_VP, _VP, _VP, _VP]),
    "speex_echo_ctl": (_INT, [_VP, _INT, _VP]),
    "speex_preprocess_state_init": (_VP, [_INT, _INT]),
    "speex_preprocess_state_destroy": (None, [_VP]),
    "speex_preprocess_run": (_INT, [_VP, _VP]),
    "speex_preprocess_ctl": (_INT, [_VP, _INT, _VP]),
}
_SPANDSP_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "echo_can_init": (_VP, [_INT, _INT]),
    "echo_can_free": (_INT, [_VP]),
}
# int16_t echo_can_update(echo_can_state_t *ec, int16_t tx, int16_t rx), as numba calls it: the
# state pointer goes as a size_t (same register, same width) because numba types a Python int.
_ECHO_CAN_UPDATE = ctypes.CFUNCTYPE(ctypes.c_int16, ctypes.c_size_t, ctypes.c_int16, ctypes.c_int16)


class SpeexdspMissing(RuntimeError):
    """libspeexdsp is not installed, so the comparison cannot run."""


# Either library missing: what the bench catches to report "not installed".
LibraryMissing = (SpeexdspMissing, spandsp.SpandspMissing)


def _declare(lib: ctypes.CDLL, prototypes: dict[str, tuple[Any, list[Any]]]) -> ctypes.CDLL:
    for fn_name, (restype, argtypes) in prototypes.items():
        fn = getattr(lib, fn_name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


@functools.cache
def speexdsp_library() -> ctypes.CDLL:
    """Load libspeexdsp (find_library, else the soname) and declare the prototypes we call;
    `SpeexdspMissing` naming the Debian package if it is not installed."""
    name = ctypes.util.find_library("speexdsp") or SPEEXDSP_SONAME
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SpeexdspMissing(
            f"cannot load speexdsp ({name}): install the Debian package {SPEEXDSP_PACKAGE} "
            f"(apt-get install {SPEEXDSP_PACKAGE}; `make test` installs it)"
        ) from exc
    return _declare(lib, _SPEEX_PROTOTYPES)


@functools.cache
def spandsp_library() -> ctypes.CDLL:
    """libspandsp (loaded by `tests.bench.spandsp`) with the echo canceller declared too."""
    return _declare(spandsp.library(), _SPANDSP_PROTOTYPES)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)  # the C library the process already runs on
    libc.fflush.restype, libc.fflush.argtypes = _INT, [_VP]
    return libc


_silenced = [0]  # nesting depth of c_stdout_silenced


@contextlib.contextmanager
def c_stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for the block, flushing C stdio before it is
    restored, so a library's printf output never reaches our stdout. Nests (inner blocks do
    nothing); Python's own stdout is flushed first and must not be written inside."""
    if _silenced[0]:
        _silenced[0] += 1
        try:
            yield
        finally:
            _silenced[0] -= 1
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        _silenced[0] = 1
        try:
            yield
        finally:
            _silenced[0] = 0
            _libc().fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _frame(pcm: NDArray[np.int16], what: str) -> NDArray[np.int16]:
    arr = np.ascontiguousarray(pcm)
    if arr.dtype != np.int16 or arr.shape != (FRAME_SAMPLES,):
        raise ValueError(f"{what} wants {FRAME_SAMPLES} int16 samples, got {arr.dtype} {arr.shape}")
    return arr


def tail_samples(sample_rate: int, tail_ms: float) -> int:
    """Taps of a `tail_ms` canceller at `sample_rate` (8 kHz only: the line's rate)."""
    if sample_rate != RATE_HZ:
        raise ValueError(f"the reference cancellers run at {RATE_HZ} Hz here, not {sample_rate}")
    if not 0 < tail_ms <= 1000:
        raise ValueError(f"tail_ms {tail_ms} is not in (0, 1000]")
    return round(tail_ms * sample_rate / 1000)


class _Canceller:
    """Common part: one frame in, one frame out; `close()` frees the C state (idempotent)."""

    def __init__(self) -> None:
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")

    def _free(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free the C state; safe to call more than once."""
        if not getattr(self, "_closed", True):  # True also if __init__ failed early
            self._closed = True
            self._free()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class SpeexEcho(_Canceller):
    """speexdsp's MDF echo canceller; with `nlp` its residual echo suppressor (preprocessor)."""

    def __init__(
        self,
        sample_rate: int = RATE_HZ,
        tail_ms: float = TAIL_MS,
        nlp: bool = True,
        noise_suppress_db: int = NLP_NOISE_SUPPRESS_DB,
    ) -> None:
        taps = tail_samples(sample_rate, tail_ms)
        self._lib = speexdsp_library()
        super().__init__()
        self._echo: int | None = self._lib.speex_echo_state_init(FRAME_SAMPLES, taps)
        self._pre: int | None = None
        self.delay_samples = FRAME_SAMPLES if nlp else 0  # output lag behind the line
        if not self._echo:
            raise MemoryError("speex_echo_state_init returned NULL")
        rate = ctypes.c_int32(sample_rate)
        self._lib.speex_echo_ctl(self._echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        if nlp:
            self._pre = self._lib.speex_preprocess_state_init(FRAME_SAMPLES, sample_rate)
            if not self._pre:
                raise MemoryError("speex_preprocess_state_init returned NULL")
            self._ctl(SPEEX_PREPROCESS_SET_DENOISE, 1)  # the default; the suppressor needs it
            self._ctl(SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, noise_suppress_db)
            self._lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_ECHO_STATE, self._echo)

    def _ctl(self, request: int, value: int) -> None:
        arg = ctypes.c_int32(value)
        self._lib.speex_preprocess_ctl(self._pre, request, ctypes.byref(arg))

    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]:
        """One 20 ms frame: `ref` what we sent, `mic` what came back; returns a new array."""
        self._check_open()
        ref_f, mic_f = _frame(ref, "SpeexEcho ref"), _frame(mic, "SpeexEcho mic")
        out = np.empty(FRAME_SAMPLES, np.int16)
        self._lib.speex_echo_cancellation(
            self._echo, mic_f.ctypes.data, ref_f.ctypes.data, out.ctypes.data
        )
        if self._pre is not None:
            self._lib.speex_preprocess_run(self._pre, out.ctypes.data)
        return out

    def _free(self) -> None:
        if self._pre:  # it points at the echo state: free it first
            self._lib.speex_preprocess_state_destroy(self._pre)
        if self._echo:
            self._lib.speex_echo_state_destroy(self._echo)
        self._pre = self._echo = None


@functools.cache
def _spandsp_frame_kernel() -> Callable[..., None]:
    """A numba loop calling `echo_can_update` once per sample (compiled once per process; not
    cached on disk, since the function pointer changes from run to run)."""
    update = _ECHO_CAN_UPDATE(("echo_can_update", spandsp_library()))

    @njit(nogil=True)
    def _echo_can_frame_kernel(
        state: int, tx: NDArray[np.int16], rx: NDArray[np.int16], out: NDArray[np.int16]
    ) -> None:
        for n in range(tx.shape[0]):
            out[n] = update(state, tx[n], rx[n])

    return _echo_can_frame_kernel


class SpandspEcho(_Canceller):
    """spandsp 0.0.6's line echo canceller (`echo_can_init`): adaption, plus NLP and comfort
    noise with `nlp`."""

    def __init__(
        self,
        sample_rate: int = RATE_HZ,
        tail_ms: float = TAIL_MS,
        nlp: bool = True,
        rx_hpf: bool = False,
    ) -> None:
        taps = tail_samples(sample_rate, tail_ms)
        self._lib = spandsp_library()
        self._kernel = _spandsp_frame_kernel()
        super().__init__()
        self.mode = (SPANDSP_NLP if nlp else SPANDSP_LINEAR) | (
            ECHO_CAN_USE_RX_HPF if rx_hpf else 0
        )
        self.delay_samples = 0  # sample in, sample out
        self._state: int | None = self._lib.echo_can_init(taps, self.mode)
        if not self._state:
            raise MemoryError("echo_can_init returned NULL")

    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]:
        """One 20 ms frame: `ref` what we sent, `mic` what came back; returns a new array."""
        self._check_open()
        ref_f, mic_f = _frame(ref, "SpandspEcho ref"), _frame(mic, "SpandspEcho mic")
        out = np.empty(FRAME_SAMPLES, np.int16)
        if _silenced[0]:  # already inside a silenced block (the bench's timing loop)
            self._kernel(self._state, ref_f, mic_f, out)
        else:
            with c_stdout_silenced():
                self._kernel(self._state, ref_f, mic_f, out)
        return out

    def _free(self) -> None:
        if self._state:
            self._lib.echo_can_free(self._state)
        self._state = None


REFERENCES: dict[str, Callable[..., SpeexEcho | SpandspEcho]] = {
    "speexdsp": SpeexEcho,
    "spandsp": SpandspEcho,
}
