"""G.711 speed: `dsp.g711` against Python's `audioop`, on 1-second blocks and 20 ms frames.

Run `python -m gateway.bench.g711` for this table alone; `tipring bench dsp` calls `measure_g711`.
Both sides get their native input: numpy arrays for us, `bytes` for audioop (the extra
column prices audioop as a numpy caller would use it: `tobytes` in, `frombuffer` out).
The signal is Gaussian noise at -20 dBm0 (a speech-like level, so the encoder table is hit
the way speech hits it). Reports only; asserts nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import g711
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.levels import dbm0_to_rms
from gateway.bench.timing import format_table, median_ns_per_call

with warnings.catch_warnings():  # deprecated since 3.11; we compare against it on purpose
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

BLOCK_SAMPLES = RATE_HZ  # 1 second


def _signal(n: int) -> NDArray[np.int16]:
    x = np.random.default_rng(7).standard_normal(n) * dbm0_to_rms(-20.0)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _cases(
    pcm: NDArray[np.int16],
) -> list[tuple[str, Callable[[Any], Any], Callable[[Any, Any], Any], Callable[[Any], Any], Any]]:
    """(op, ours, ours_into, audioop's, input array) for the four operations."""
    ulaw, alaw = g711.ulaw_encode(pcm), g711.alaw_encode(pcm)
    return [
        ("ulaw_encode", g711.ulaw_encode, g711.ulaw_encode_into, _bytes_op(audioop.lin2ulaw), pcm),
        ("alaw_encode", g711.alaw_encode, g711.alaw_encode_into, _bytes_op(audioop.lin2alaw), pcm),
        ("ulaw_decode", g711.ulaw_decode, g711.ulaw_decode_into, _bytes_op(audioop.ulaw2lin), ulaw),
        ("alaw_decode", g711.alaw_decode, g711.alaw_decode_into, _bytes_op(audioop.alaw2lin), alaw),
    ]


def _bytes_op(fn: Callable[[bytes, int], bytes]) -> Callable[[bytes], bytes]:
    return lambda data: fn(data, 2)


def _numpy_caller(
    fn: Callable[[bytes], bytes], out_dtype: type[np.generic]
) -> Callable[[Any], Any]:
    return lambda arr: np.frombuffer(fn(arr.tobytes()), out_dtype)


def measure_g711(quick: bool) -> list[dict[str, Any]]:
    """One row per operation: Msamples/s on 8000-sample blocks and ns per 160-sample frame,
    ours and audioop's (plus ours via `*_into`, and audioop with numpy conversions)."""
    pcm = _signal(BLOCK_SAMPLES)
    return [_measure_one(*case, quick=quick) for case in _cases(pcm)]


def _measure_one(
    op: str,
    ours: Callable[[Any], Any],
    ours_into: Callable[[Any, Any], Any],
    theirs: Callable[[bytes], bytes],
    block: NDArray[Any],
    *,
    quick: bool,
) -> dict[str, Any]:
    block_calls, frame_calls, runs = (200, 2000, 3) if quick else (2000, 20000, 7)
    frame = block[:FRAME_SAMPLES].copy()
    out = np.empty(FRAME_SAMPLES, np.uint8 if op.endswith("encode") else np.int16)
    block_b, frame_b = block.tobytes(), frame.tobytes()
    via_numpy = _numpy_caller(theirs, out.dtype.type)

    def ns(fn: Callable[[], object], calls: int) -> float:
        return median_ns_per_call(fn, calls, runs)

    return {
        "op": op,
        "block": BLOCK_SAMPLES,
        "tipring_msps": BLOCK_SAMPLES / ns(lambda: ours(block), block_calls) * 1e3,
        "audioop_msps": BLOCK_SAMPLES / ns(lambda: theirs(block_b), block_calls) * 1e3,
        "frame_ns_tipring": ns(lambda: ours(frame), frame_calls),
        "frame_ns_audioop": ns(lambda: theirs(frame_b), frame_calls),
        "frame_ns_tipring_into": ns(lambda: ours_into(frame, out), frame_calls),
        "frame_ns_audioop_numpy": ns(lambda: via_numpy(frame), frame_calls),
    }


def format_g711(rows: list[dict[str, Any]]) -> str:
    headers = ["op", "tipring Msps", "audioop Msps", "ratio", "tipring ns/frame",
               "audioop ns/frame", "ratio", "tipring _into", "audioop+numpy"]  # fmt: skip
    body = [
        [
            r["op"],
            f"{r['tipring_msps']:.0f}",
            f"{r['audioop_msps']:.0f}",
            f"{r['tipring_msps'] / r['audioop_msps']:.2f}x",
            f"{r['frame_ns_tipring']:.0f}",
            f"{r['frame_ns_audioop']:.0f}",
            f"{r['frame_ns_tipring'] / r['frame_ns_audioop']:.2f}x",
            f"{r['frame_ns_tipring_into']:.0f}",
            f"{r['frame_ns_audioop_numpy']:.0f}",
        ]
        for r in rows
    ]
    return format_table(headers, body)


if __name__ == "__main__":
    print(f"G.711, {BLOCK_SAMPLES}-sample blocks and {FRAME_SAMPLES}-sample frames")
    print("(block ratio: throughput, higher is better; frame ratio: time, lower is better)")
    print(format_g711(measure_g711(quick=False)))
