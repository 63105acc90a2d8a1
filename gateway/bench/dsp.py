"""`tipring bench dsp`: what the DSP core costs on this box, and how it compares.

Prints, from one run: the throughput of every streaming DSP wrapper and codec on 1-second
blocks; the cost in microseconds of each streaming detector per 20 ms frame; G.711 against
Python's `audioop`; and, from a source checkout, the detector battery against Debian's
spandsp (`tests/bench/dsp_compare.py`) and the PLC PESQ table (`tests/bench/plc.py`).
Nothing here asserts a timing: it reports.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import callerid, dtmf, g711, levels, plc, resample, tones
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from gateway.bench.g711 import measure_g711
from gateway.bench.timing import format_table, median_ns_per_call

BLOCK_SAMPLES = RATE_HZ  # throughput is measured on 1-second blocks


def _busy_line_signal(seconds: float) -> NDArray[np.int16]:
    """Line-like input for the detectors: noise, a DTMF key and busy tone, so every path runs."""
    rng = np.random.default_rng(1)
    n = round(seconds * RATE_HZ)
    x = rng.standard_normal(n) * levels.dbm0_to_rms(-30.0)
    keys = dtmf.generate("5", on_ms=80, off_ms=80, level_dbm0=-10.0).astype(np.float64)
    busy = tones.generate("us", "busy", 1000).astype(np.float64)
    x[: keys.size] += keys
    x[n // 2 : n // 2 + busy.size] += busy[: n - n // 2]
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _streaming_cases() -> list[tuple[str, Callable[[], Callable[[NDArray[np.int16]], object]]]]:
    """(name, factory) pairs: each factory returns a fresh `feed(pcm) -> ...` callable."""
    return [
        ("LevelMeter.process", lambda: levels.LevelMeter().process),
        ("DtmfDetector.feed", lambda: dtmf.DtmfDetector().feed),
        ("ToneDetector.feed (us)", lambda: tones.ToneDetector("us").feed),
        ("ToneDetector.feed (de)", lambda: tones.ToneDetector("de").feed),
        ("CallerIdDecoder.feed (bell202)", lambda: callerid.CallerIdDecoder("bell202").feed),
        ("CallerIdDecoder.feed (v23)", lambda: callerid.CallerIdDecoder("v23").feed),
        ("CallerIdDecoder.feed (dtmf)", lambda: callerid.CallerIdDecoder("dtmf").feed),
        ("Resampler 8k->16k", lambda: resample.Resampler(8000, 16000).process),
        ("Resampler 8k->24k", lambda: resample.Resampler(8000, 24000).process),
        ("Resampler 8k->48k", lambda: resample.Resampler(8000, 48000).process),
        ("Concealer.good", lambda: plc.Concealer().good),
    ]


def measure_streaming(quick: bool) -> list[dict[str, Any]]:
    """Samples/s on 1-second blocks and us per 160-sample frame for each streaming wrapper."""
    signal = _busy_line_signal(2.0)
    block = signal[:BLOCK_SAMPLES]
    frame_list = [signal[i : i + FRAME_SAMPLES] for i in range(0, signal.size, FRAME_SAMPLES)]
    reps = 20 if quick else 200
    rows = []
    for name, make in _streaming_cases():
        feed_block = make()
        block_ns = median_ns_per_call(lambda f=feed_block: f(block), max(2, reps // 10))
        feed_frame = make()
        it = iter(range(1 << 62))

        def one_frame(f: Callable[[NDArray[np.int16]], object] = feed_frame) -> object:
            return f(frame_list[next(it) % len(frame_list)])

        frame_ns = median_ns_per_call(one_frame, reps * 5)
        rows.append({
            "kernel": name,
            "msamples_per_s": BLOCK_SAMPLES / block_ns * 1e3,
            "us_per_frame": frame_ns / 1e3,
        })
    rows.append(_concealer_lost_row(reps))
    rows.append(_resampler_down_row(reps))
    return rows


def _concealer_lost_row(reps: int) -> dict[str, Any]:
    concealer = plc.Concealer()
    speech_like = _busy_line_signal(0.1)
    for i in range(0, speech_like.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        concealer.good(speech_like[i : i + FRAME_SAMPLES])
    ns = median_ns_per_call(concealer.lost, reps * 5)
    return {"kernel": "Concealer.lost", "msamples_per_s": FRAME_SAMPLES / ns * 1e3,
            "us_per_frame": ns / 1e3}


def _resampler_down_row(reps: int) -> dict[str, Any]:
    """24 kHz -> 8 kHz: the cloud's PCM16 output to the line; 480 input samples per frame."""
    up = resample.Resampler(8000, 24000).process(_busy_line_signal(1.0))
    down = resample.Resampler(24000, 8000)
    block_ns = median_ns_per_call(lambda: down.process(up), max(2, reps // 10))
    frame_ns = median_ns_per_call(lambda: down.process(up[:480]), reps * 5)
    return {"kernel": "Resampler 24k->8k", "msamples_per_s": up.size / block_ns * 1e3,
            "us_per_frame": frame_ns / 1e3}
