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
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import callerid, dtmf, levels, line_signals, plc, resample, tones
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from gateway.bench.g711 import format_g711, measure_g711
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
        ("LineSignalDetector.feed", lambda: line_signals.LineSignalDetector().feed),
        ("CallerIdDecoder.feed (bell202)", lambda: callerid.CallerIdDecoder("bell202").feed),
        ("CallerIdDecoder.feed (v23)", lambda: callerid.CallerIdDecoder("v23").feed),
        ("CallerIdDecoder.feed (dtmf)", lambda: callerid.CallerIdDecoder("dtmf").feed),
        ("Resampler 8k->16k", lambda: resample.Resampler(8000, 16000).process),
        ("Resampler 8k->24k", lambda: resample.Resampler(8000, 24000).process),
        ("Resampler 8k->48k", lambda: resample.Resampler(8000, 48000).process),
    ]


def _frame_feeder(
    feed: Callable[[NDArray[np.int16]], object], frame_list: list[NDArray[np.int16]]
) -> Callable[[], object]:
    """A no-argument call that feeds the next frame of `frame_list` (cycling) to `feed`."""
    position = [0]

    def one_frame() -> object:
        position[0] = (position[0] + 1) % len(frame_list)
        return feed(frame_list[position[0]])

    return one_frame


def measure_streaming(quick: bool) -> list[dict[str, Any]]:
    """Samples/s on 1-second blocks and us per 160-sample frame for each streaming wrapper."""
    signal = _busy_line_signal(2.0)
    block = signal[:BLOCK_SAMPLES]
    frame_list = [signal[i : i + FRAME_SAMPLES] for i in range(0, signal.size, FRAME_SAMPLES)]
    reps = 20 if quick else 200
    rows = []
    for name, make in _streaming_cases():
        block_ns = median_ns_per_call(_frame_feeder(make(), [block]), max(2, reps // 10))
        frame_ns = median_ns_per_call(_frame_feeder(make(), frame_list), reps * 5)
        rows.append(
            {
                "kernel": name,
                "msamples_per_s": BLOCK_SAMPLES / block_ns * 1e3,
                "us_per_frame": frame_ns / 1e3,
            }
        )
    rows.extend(_concealer_rows(reps))
    rows.append(_resampler_down_row(reps))
    return rows


def _concealer_rows(reps: int) -> list[dict[str, Any]]:
    """Concealer.good and .lost take exactly one frame, so throughput is per frame too."""
    concealer = plc.Concealer()
    speech_like = _busy_line_signal(1.0)
    frame_list = [speech_like[i : i + FRAME_SAMPLES] for i in range(0, 8000, FRAME_SAMPLES)]
    rows = []
    for name, call in (
        ("Concealer.good", _frame_feeder(concealer.good, frame_list)),
        ("Concealer.lost", concealer.lost),
    ):
        ns = median_ns_per_call(call, reps * 5)
        rows.append(
            {"kernel": name, "msamples_per_s": FRAME_SAMPLES / ns * 1e3, "us_per_frame": ns / 1e3}
        )
    return rows


def _resampler_down_row(reps: int) -> dict[str, Any]:
    """24 kHz -> 8 kHz: the cloud's PCM16 output to the line; 480 input samples per frame."""
    up = resample.Resampler(8000, 24000).process(_busy_line_signal(1.0))
    down = resample.Resampler(24000, 8000)
    block_ns = median_ns_per_call(lambda: down.process(up), max(2, reps // 10))
    frame_ns = median_ns_per_call(lambda: down.process(up[:480]), reps * 5)
    return {
        "kernel": "Resampler 24k->8k",
        "msamples_per_s": up.size / block_ns * 1e3,
        "us_per_frame": frame_ns / 1e3,
    }


def _source_checkout_module(name: str) -> ModuleType | None:
    """`tests.bench.<name>` when running from a source checkout (the comparison libraries and
    PESQ are test dependencies, never needed at run time); None in an installed appliance."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "bench" / f"{name}.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"tests.bench.{name}")


def measure_spandsp(quick: bool) -> dict[str, Any]:
    """The detector battery on ours and Debian's spandsp, or why it could not run."""
    try:
        compare = _source_checkout_module("dsp_compare")
    except ImportError as exc:
        return {"error": f"comparison unavailable: {exc}"}
    if compare is None:
        return {"error": "comparison needs a source checkout (tests/bench/dsp_compare.py)"}
    try:
        rows = compare.compare_detectors(quick=quick)
    except compare.spandsp.SpandspMissing as exc:
        return {"error": str(exc)}
    return {
        "rows": rows,
        "table": compare.format_table(rows),
        "tipring_passed": sum(r["tipring_pass"] for r in rows),
        "spandsp_passed": sum(r["spandsp_pass"] for r in rows),
        "checks": len(rows),
        "us_per_frame": _spandsp_frame_costs(compare.spandsp, quick),
    }


def _spandsp_frame_costs(spandsp: ModuleType, quick: bool) -> dict[str, float]:
    """spandsp's own cost per 20 ms frame on the same input, for the table beside ours."""
    frame_list = [f for f in np.split(_busy_line_signal(2.0), 2 * RATE_HZ // FRAME_SAMPLES)]
    reps = 100 if quick else 1000
    receivers = {
        "DtmfDetector.feed": spandsp.SpandspDtmfRx(),
        "ToneDetector.feed (us)": spandsp.SpandspToneRx("us"),
        "CallerIdDecoder.feed (bell202)": spandsp.SpandspCallerIdRx("bell202"),
    }
    costs = {}
    for name, rx in receivers.items():
        with rx:
            costs[name] = median_ns_per_call(_frame_feeder(rx.feed, frame_list), reps) / 1e3
    return costs


def measure_plc_pesq(quick: bool) -> dict[str, Any]:
    """The PLC PESQ table (ours vs zero-fill vs half-level repeat), or why it could not run."""
    try:
        bench = _source_checkout_module("plc")
    except ImportError as exc:  # pesq is in the test extras only
        return {"error": f"PESQ table unavailable ({exc}): `make test` installs the test extras"}
    if bench is None:
        return {"error": "PESQ table needs a source checkout (tests/bench/plc.py)"}
    rows = bench.measure_plc(quick=quick)
    return {"rows": rows, "table": bench.format_table(rows)}


def collect(quick: bool) -> dict[str, Any]:
    """Every measurement of `tipring bench dsp`, as one JSON-ready object."""
    streaming = measure_streaming(quick)
    by_name = {r["kernel"]: r["us_per_frame"] for r in streaming}
    return {
        "quick": quick,
        "streaming": streaming,
        "dtmf_plus_tones_us_per_frame": by_name["DtmfDetector.feed"]
        + by_name["ToneDetector.feed (us)"],
        "g711": measure_g711(quick),
        "spandsp": measure_spandsp(quick),
        "plc": measure_plc_pesq(quick),
    }


def _streaming_table(result: dict[str, Any]) -> str:
    theirs = result["spandsp"].get("us_per_frame", {})
    rows = [
        [
            r["kernel"],
            f"{r['msamples_per_s']:.1f}",
            f"{r['us_per_frame']:.2f}",
            f"{theirs[r['kernel']]:.2f}" if r["kernel"] in theirs else "",
        ]
        for r in result["streaming"]
    ]
    headers = ["streaming kernel", "Msamples/s (1 s blocks)", "us per 20 ms frame", "spandsp us"]
    return format_table(headers, rows)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of `collect()`."""
    parts = [
        "DSP kernels (8 kHz; 1 s blocks for throughput, 160-sample frames for cost)",
        _streaming_table(result),
        f"DTMF + tone detectors together: {result['dtmf_plus_tones_us_per_frame']:.2f} us "
        "per 20 ms frame",
        "",
        "G.711 against audioop (block ratio: throughput, higher is better; frame ratio: time)",
        format_g711(result["g711"]),
        "",
        "Detectors against Debian's spandsp 0.0.6 (same signals, same run)",
        result["spandsp"].get("table") or result["spandsp"]["error"],
        "",
        "Packet loss concealment, PESQ MOS (P.862 narrowband) over the shipped speech clips",
        result["plc"].get("table") or result["plc"]["error"],
    ]
    return "\n".join(parts)


def run_bench_dsp(json_output: bool, quick: bool) -> int:
    """`tipring bench dsp`: print the report (or JSON); returns the exit status."""
    result = collect(quick)
    if json_output:
        result["spandsp"].pop("table", None)
        result["plc"].pop("table", None)
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0
