"""`tipring bench vad`: the barge-in VAD (`dsp.vad.Vad`) on its battery, and its cost here.

From a source checkout, the battery (`tests/bench/vad_battery*.py`) runs: caller onsets at
-40 to -15 dBm0 over five line noises (delay from onset to `.speaking`, median and p95,
misses), barge-in over the agent's stand-in residual echo (the far end given, then also the
residual level), barge-in over the agent through `dsp.echo.EchoCanceller`'s linear output
at -35 to -20 dBm0 after its convergence and during it (given the canceller's residual echo
estimate once it has converged, the far end alone before; then the far end alone), and false
triggers per minute of agent-only audio through the G.168 echo paths (stand-in canceller, the real
one's NLP output and linear output), line noise, hum, call-progress tones, DTMF and music.
Beside it: microseconds per `Vad.process` call on this box. Nothing here asserts: it
reports (`tests/dsp/test_vad.py` holds the bounds).

`--json` prints one object with stable keys:
  "quick", "elapsed_s",
  "onset": {row: {"onsets", "median_ms", "p95_ms", "max_ms", "misses", "strict_median_ms",
            "strict_p95_ms", "false_triggers_between", "by_stream": {stream: {...}}}},
  "barge_in": {row: {"onsets", "median_ms", "p95_ms", "max_ms", "misses",
               "strict_median_ms", "strict_p95_ms", "by_model": {model: {...}}}},
  "barge_in_residual_source": "canceller" | "truth",
  "false_triggers_per_min": {row: value}, "false_triggers": {row: {"minutes", "triggers",
  "per_min"}}, "us_per_frame", "us_per_frame_with_far", "us_per_frame_with_residual".
Rows are caller levels ("-40 dBm0", ...; "-30 dBm0, converged", "-30 dBm0, converging",
"..., far end only") and conditions ("dial tone", ...). A non-finite number (a percentile
over misses) is the string "inf"; without a source checkout "onset", "barge_in" and
"false_triggers" are {"error": "why"} .
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.vad import Vad
from gateway.bench.timing import format_table, median_ns_per_call


def _source_checkout_module(name: str) -> ModuleType | None:
    """`tests.bench.<name>` when running from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "bench" / f"{name}.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"tests.bench.{name}")


def _busy_line(seconds: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of line-like input (noise with bursts of tone-like and speech-like sound) and of
    a far end, so every branch of the detector runs while it is timed."""
    rng = np.random.default_rng(3)
    n = round(seconds * RATE_HZ) // FRAME_SAMPLES * FRAME_SAMPLES
    t = np.arange(n) / RATE_HZ
    envelope = (np.sin(2 * np.pi * 0.7 * t) > 0.3) * 3000.0
    voiced = sum(np.sin(2 * np.pi * 130.0 * h * t) / h for h in range(1, 12))
    line = rng.standard_normal(n) * 30.0 + envelope * voiced
    far = rng.standard_normal(n) * 2000.0 * (np.sin(2 * np.pi * 0.4 * t) > 0)
    frames = [np.clip(x, -32768, 32767).astype(np.int16).reshape(-1, FRAME_SAMPLES) for x in
              (line, far)]  # fmt: skip
    return list(frames[0]), list(frames[1])


def measure_cost(quick: bool) -> dict[str, float]:
    """Median microseconds per `Vad.process` call: the frame alone, with a far end, and with
    a far end and a residual echo level (-55 dBm0 while the far end talks, -inf between)."""
    line, far = _busy_line(4.0)
    left = [-55.0 if np.any(f) else -math.inf for f in far]
    calls = 200 if quick else 2000
    out = {}
    for key, given in (("us_per_frame", 0), ("us_per_frame_with_far", 1),
                       ("us_per_frame_with_residual", 2)):  # fmt: skip
        vad, at = Vad(), [0]

        def one_frame(vad: Vad = vad, at: list[int] = at, given: int = given) -> float:
            at[0] = (at[0] + 1) % len(line)
            k = at[0]
            return vad.process(line[k], far[k] if given else None, left[k] if given > 1 else None)

        out[key] = median_ns_per_call(one_frame, calls) / 1e3
    return out


def _barge_in(agent: ModuleType, quick: bool) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Barge-in rows and false-trigger rows through the real canceller: given its residual
    estimate (or the truth), then the far end alone; and the residual source used."""
    given = agent.barge_in_results(Vad, quick)
    if "error" in given:
        return given, {}, None
    alone = agent.barge_in_results(Vad, quick, "none")
    rows = given["onset"] | {f"{k}, far end only": r for k, r in alone["onset"].items()}
    triggers = given["false_triggers"] | {
        f"{k}, far end only": r for k, r in alone["false_triggers"].items()
    }
    return rows, triggers, given["source"]


def collect(quick: bool) -> dict[str, Any]:
    """Every measurement of `tipring bench vad`, as one JSON-ready object."""
    started = time.perf_counter()
    result: dict[str, Any] = {"quick": quick}
    battery, conditions, agent = (_source_checkout_module(f"vad_battery{part}")
                                  for part in ("", "_conditions", "_agent"))  # fmt: skip
    if battery is None or conditions is None or agent is None:
        why = {"error": "the battery needs a source checkout (tests/bench/vad_battery.py)"}
        result |= {"onset": why, "false_triggers": why, "false_triggers_per_min": why,
                   "barge_in": why, "barge_in_residual_source": None}  # fmt: skip
    else:
        result["onset"] = battery.onset_results(Vad, quick)
        rows = conditions.false_trigger_results(Vad, quick)
        barge_in, more, source = _barge_in(agent, quick)
        result |= {"barge_in": barge_in, "barge_in_residual_source": source}
        result["false_triggers"] = rows | more
        result["false_triggers_per_min"] = {k: r["per_min"] for k, r in (rows | more).items()}
    result |= measure_cost(quick)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float written as the string "inf", "-inf" or "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def _ms(value: float) -> str:
    return "-" if math.isinf(value) else f"{value:.1f}"


def _onset_table(onset: dict[str, Any], between: bool = True) -> str:
    rows = [
        [name, str(r["onsets"]), _ms(r["median_ms"]), _ms(r["p95_ms"]), _ms(r["max_ms"]),
         str(r["misses"]), _ms(r["strict_median_ms"]), _ms(r["strict_p95_ms"])]
        + ([str(r["false_triggers_between"])] if between else [])
        for name, r in onset.items()
    ]  # fmt: skip
    head = ["caller level", "onsets", "median ms", "p95 ms", "max ms", "misses",
            "strict median", "strict p95"] + (["false triggers"] if between else [])  # fmt: skip
    return format_table(head, rows)


def _trigger_table(rows: dict[str, Any]) -> str:
    body = [[name, f"{r['minutes']:.1f}", str(r["triggers"]), f"{r['per_min']:.2f}"]
            for name, r in rows.items()]  # fmt: skip
    return format_table(["no caller speech", "minutes", "false triggers", "per minute"], body)


def _barge_in_part(rows: dict[str, Any], source: str | None) -> list[str]:
    if "error" in rows:
        return [f"Barge-in through the real canceller: {rows['error']}"]
    given = ("the canceller's residual echo estimate" if source == "canceller" else
             "the true residual echo level (the canceller has no estimate yet)")  # fmt: skip
    return [
        "Barge-in over the agent (-15 dBm0) through dsp.echo.EchoCanceller's linear output,",
        "G.168 models 1-8 at ERL 6/10/15 dB: the caller starts while the agent talks, after",
        f"the canceller's first 3 s (converged) or in them (converging); given {given},",
        "or the far end only. Onsets as above; a miss: none within 100 ms.",
        _onset_table(rows, between=False),
    ]


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of `collect()`."""
    parts = [
        f"Barge-in VAD (dsp.vad.Vad), 8 kHz 20 ms frames{', quick' if result['quick'] else ''}"
    ]
    if "error" in result["onset"]:
        parts.append(result["onset"]["error"])
    else:
        parts += [
            "",
            "Onset delay: end of the frame that turned .speaking on, minus the onset (first 5 ms",
            "at >= -50 dBm0 and 20 dB over the line noise); strict: from the first 5 ms 10 dB",
            "over it. Five line noises per level, through mu-law; a miss: none within 100 ms.",
            _onset_table(result["onset"]),
            "",
            *_barge_in_part(result["barge_in"], result["barge_in_residual_source"]),
            "",
            _trigger_table(result["false_triggers"]),
        ]
    parts += [
        "",
        f"Vad.process: {result['us_per_frame']:.1f} us per 20 ms frame, "
        f"{result['us_per_frame_with_far']:.1f} us with the far end, "
        f"{result['us_per_frame_with_residual']:.1f} us with the far end and residual level",
    ]
    return "\n".join(parts)


def run_bench_vad(json_output: bool = False, quick: bool = False) -> int:
    """`tipring bench vad`: print the report (or JSON); returns the exit status."""
    result = collect(quick)
    print(json.dumps(json_safe(result), indent=2) if json_output else format_report(result))
    return 0
