"""`tipring bench echo`: the echo canceller battery through every canceller, in one run.

From a source checkout, every check of `tests/bench/echo_battery.py` (`CHECKS`) runs through no
canceller, ours (`dsp.echo.EchoCanceller`, picked up as soon as it exists), speexdsp's and
spandsp's (`tests/bench/echo_refs.py`); each scenario is simulated once and the same line is
fed to all four. A canceller that declares an output delay (`delay_samples`: speexdsp's
preprocessor) has its output shifted back by it before the check measures it, so a late but
clean output is not scored as residual echo; the shift is reported with the result. Beside the
checks: the ERLE ceiling of a mu-law line, and each canceller's CPU per 20 ms frame (128 ms
tail, NLP on; ours at 256 ms too, spandsp at 2 ms too), timed in the same run. A canceller that
cannot be built (ours not landed yet, a library not installed) is reported with the reason and
the others still run. Nothing here asserts: it reports.

`--json` prints one object with stable keys:
  "quick", "tail_ms", "cancellers" (column order), "unavailable" ({canceller: why}),
  "checks": [{"name", "unit", "bound", "at_least", "nlp",
              "results": {canceller: value}, "passed": {canceller: bool},
              "delay_ms": {canceller: ms the output was shifted back before measuring}}],
  "ceiling_name", "ceiling_db",
  "cpu_us_per_frame" ({"tipring", "speexdsp", "spandsp", "tipring_256ms", "spandsp_2ms": value}),
  "passed" ({canceller: count}), "check_count", "elapsed_s".
A value is a JSON number; a non-finite one is the string "inf", "-inf" or "nan" (JSON has no
such numbers); where the canceller could not run it is {"error": "why"}.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from gateway.bench.timing import format_table, median_ns_per_call

log = logging.getLogger(__name__)

CANCELLERS = ("none", "tipring", "speexdsp", "spandsp")
TAIL_MS = 128
FLOOR_TAIL_MS = 2
# (key, canceller, tail_ms) of each CPU figure: every canceller at the battery's tail, ours at
# 256 ms, and spandsp at 16 taps: its per-sample cost besides the filter (the debug printf).
CPU_RUNS = (
    ("tipring", "tipring", TAIL_MS),
    ("speexdsp", "speexdsp", TAIL_MS),
    ("spandsp", "spandsp", TAIL_MS),
    ("tipring_256ms", "tipring", 256),
    (f"spandsp_{FLOOR_TAIL_MS}ms", "spandsp", FLOOR_TAIL_MS),
)
# --quick runs the first check of each kind: steady-state ERLE, convergence, double talk, NLP.
QUICK_KINDS = (
    "ERLE, speech, mu-law, G.168 model",
    "time to 20 dB ERLE",
    "caller's speech in double talk",
    "NLP: returned echo",
)
CPU_WARMUP_S = 5.0  # frames fed before timing, so each canceller is timed converged
CPU_FRAMES = 500  # frames per timed run (x5 runs, median); --quick: a fifth
NOTES = (
    "*: output shifted back by the canceller's own delay before measuring (speexdsp's "
    "preprocessor returns each frame one frame late: 20 ms of added latency).",
    "speexdsp: MDF linear stage (with its fixed DC notch on the mic); NLP = its preprocessor's "
    "residual echo suppressor (-40/-15 dB, library defaults) with the denoiser floor at 0 dB.",
    "spandsp 0.0.6: adaption (+ NLP + CNG for the NLP checks); its LMS step is not scaled to "
    "the tail. Debian's build printfs debug lines on every sample: its CPU at a "
    f"{FLOOR_TAIL_MS} ms tail is that fixed part.",
)

Maker = Callable[[bool, int], Any]  # (nlp, tail_ms) -> a canceller with process(ref, mic)


def _source_checkout_module(name: str) -> ModuleType | None:
    """`tests.bench.<name>` when running from a source checkout (the battery and the reference
    libraries are test material, never needed at run time); None in an installed appliance."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "bench" / f"{name}.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"tests.bench.{name}")


def _tipring_maker() -> Maker | str:
    try:
        echo = importlib.import_module("dsp.echo")
    except ImportError as exc:  # not landed yet
        return f"not available: {exc}"
    except Exception as exc:  # landed half-way (a module being written): report, run the rest
        log.warning("dsp.echo failed to import", exc_info=True)
        return f"not available: {type(exc).__name__}: {exc}"
    return lambda nlp, tail_ms: echo.EchoCanceller(sample_rate=RATE_HZ, tail_ms=tail_ms, nlp=nlp)


def _reference_maker(name: str) -> Maker | str:
    try:
        refs = _source_checkout_module("echo_refs")
    except ImportError as exc:
        return f"not available: {exc}"
    if refs is None:
        return "needs a source checkout (tests/bench/echo_refs.py)"
    load = {"speexdsp": refs.speexdsp_library, "spandsp": refs.spandsp_library}[name]
    try:
        load()
    except refs.LibraryMissing as exc:
        return str(exc)
    make = refs.REFERENCES[name]
    return lambda nlp, tail_ms: make(sample_rate=RATE_HZ, tail_ms=tail_ms, nlp=nlp)


def _makers(battery: ModuleType) -> dict[str, Maker | str]:
    """Each canceller's constructor, or why it cannot be built."""
    return {
        "none": lambda nlp, tail_ms: battery.NoCanceller(),
        "tipring": _tipring_maker(),
        "speexdsp": _reference_maker("speexdsp"),
        "spandsp": _reference_maker("spandsp"),
    }


@contextlib.contextmanager
def _closing(canceller: Any) -> Iterator[Any]:
    try:
        yield canceller
    finally:
        if hasattr(canceller, "close"):
            canceller.close()


def _measure(battery: ModuleType, check: Any, line: Any, make: Maker) -> tuple[float, float]:
    """(value, delay_ms): the check's measure on the canceller's output, after aligning the
    output with the line by the delay the canceller declares (`delay_samples`, default 0)."""
    with _closing(make(check.nlp, TAIL_MS)) as canceller:
        out = battery.run(canceller, line)
        delay = int(getattr(canceller, "delay_samples", 0))
    if delay:
        out = np.concatenate([out[delay:], np.zeros(delay, out.dtype)])
    return float(check.measure(line, out)), delay * 1000.0 / RATE_HZ


def _run_check(battery: ModuleType, check: Any, makers: dict[str, Maker | str]) -> dict[str, Any]:
    """One check through every canceller, on one simulation of its scenario."""
    line = battery.simulate(check.build())
    results: dict[str, float | dict[str, str]] = {}
    passed: dict[str, bool] = {}
    delay_ms: dict[str, float] = {}
    for name in CANCELLERS:
        make = makers[name]
        if isinstance(make, str):
            results[name], passed[name] = {"error": make}, False
            continue
        try:
            value, delay_ms[name] = _measure(battery, check, line, make)
        except Exception as exc:  # a row supervisor: one broken canceller must not end the bench
            log.warning("%s: %s raised", check.name, name, exc_info=True)
            results[name], passed[name] = {"error": f"{type(exc).__name__}: {exc}"}, False
            continue
        results[name], passed[name] = value, bool(check.passed(value))
    return {
        "name": check.name,
        "unit": check.unit,
        "bound": check.bound,
        "at_least": check.at_least,
        "nlp": check.nlp,
        "results": results,
        "passed": passed,
        "delay_ms": delay_ms,
    }


def select_checks(checks: list[Any], quick: bool) -> list[Any]:
    """All checks, or with `quick` the first check of each of `QUICK_KINDS`."""
    if not quick:
        return list(checks)
    firsts = (next((c for c in checks if c.name.startswith(kind)), None) for kind in QUICK_KINDS)
    return [c for c in firsts if c is not None]


def _frame_feeder(process: Callable[..., Any], frames: list[Any]) -> Callable[[], object]:
    position = [0]

    def one_frame() -> object:
        position[0] = (position[0] + 1) % len(frames)
        return process(*frames[position[0]])

    return one_frame


def _cpu_us(make: Maker, tail_ms: int, line: Any, calls: int) -> float:
    """us per 20 ms frame, NLP on, on `line` after `CPU_WARMUP_S` of it (median of 5 runs)."""
    frames = [
        (line.ref[k : k + FRAME_SAMPLES].copy(), line.mic[k : k + FRAME_SAMPLES].copy())
        for k in range(0, line.mic.size - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    ]
    warm = round(CPU_WARMUP_S * RATE_HZ / FRAME_SAMPLES)
    with _closing(make(True, tail_ms)) as canceller:
        for ref, mic in frames[:warm]:
            canceller.process(ref, mic)
        return median_ns_per_call(_frame_feeder(canceller.process, frames[warm:]), calls) / 1e3


def _silenced() -> contextlib.AbstractContextManager[None]:
    """C stdout to /dev/null while timing (spandsp's debug printf), if the bindings exist."""
    try:
        refs = _source_checkout_module("echo_refs")
    except ImportError:
        refs = None
    return contextlib.nullcontext() if refs is None else refs.c_stdout_silenced()


def measure_cpu(makers: dict[str, Maker | str], line: Any, quick: bool) -> dict[str, Any]:
    """CPU us per frame of each of `CPU_RUNS`, or why it could not run."""
    calls = CPU_FRAMES // 5 if quick else CPU_FRAMES
    cpu: dict[str, Any] = {}
    for key, name, tail_ms in CPU_RUNS:
        make = makers[name]
        if isinstance(make, str):
            cpu[key] = {"error": make}
            continue
        try:
            with _silenced():
                cpu[key] = _cpu_us(make, tail_ms, line, calls)
        except Exception as exc:  # as in _run_check: report, keep going
            log.warning("CPU of %s raised", key, exc_info=True)
            cpu[key] = {"error": f"{type(exc).__name__}: {exc}"}
    return cpu


def collect(quick: bool) -> dict[str, Any]:
    """Every measurement of `tipring bench echo` (floats as measured, not yet JSON-safe)."""
    battery = _source_checkout_module("echo_battery")
    if battery is None:
        raise FileNotFoundError("tipring bench echo needs a source checkout (tests/bench)")
    start = time.perf_counter()
    makers = _makers(battery)
    checks = [_run_check(battery, c, makers) for c in select_checks(battery.CHECKS, quick)]
    ceiling_name, build = battery.CEILING_SCENARIO
    ceiling_line = battery.simulate(build())
    return {
        "quick": quick,
        "tail_ms": TAIL_MS,
        "cancellers": list(CANCELLERS),
        "unavailable": {n: m for n, m in makers.items() if isinstance(m, str)},
        "checks": checks,
        "ceiling_name": ceiling_name,
        "ceiling_db": battery.ceiling_db(ceiling_line, battery.STEADY_S),
        "cpu_us_per_frame": measure_cpu(makers, ceiling_line, quick),
        "passed": {n: sum(c["passed"][n] for c in checks) for n in CANCELLERS},
        "check_count": len(checks),
        "elapsed_s": time.perf_counter() - start,
    }


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


def _number(value: float, bound: float) -> str:
    """One decimal; two where one would print the bound itself (33.96 shown as 34.0 FAIL)."""
    if value == math.inf:
        return "never"
    return f"{value:.2f}" if f"{value:.1f}" == f"{bound:.1f}" else f"{value:.1f}"


def _cell(check: dict[str, Any], name: str, unavailable: dict[str, str]) -> str:
    value = check["results"][name]
    if isinstance(value, dict):
        return "n/a" if name in unavailable else "error"
    aligned = "*" if check["delay_ms"].get(name) else ""
    return f"{_number(value, check['bound'])}{aligned} {'ok' if check['passed'][name] else 'FAIL'}"


def _cpu_rows(cpu: dict[str, Any]) -> list[list[str]]:
    """One row per tail length timed, a figure under each canceller timed at it."""
    rows = []
    for tail_ms in dict.fromkeys(t for _, _, t in CPU_RUNS):
        keys = {name: key for key, name, t in CPU_RUNS if t == tail_ms}
        cells = [
            "" if n not in keys else "n/a" if isinstance(v := cpu[keys[n]], dict) else f"{v:.1f}"
            for n in CANCELLERS
        ]
        rows.append([f"CPU us per 20 ms frame, {tail_ms} ms tail, NLP on", "", *cells])
    return rows


def _extra_rows(result: dict[str, Any]) -> list[list[str]]:
    total = result["check_count"]
    return [
        [result["ceiling_name"], f"{result['ceiling_db']:.1f} dB", "", "", "", ""],
        *_cpu_rows(result["cpu_us_per_frame"]),
        ["passed", "", *(f"{result['passed'][n]}/{total}" for n in CANCELLERS)],
    ]


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of `collect()`."""
    rows = []
    for c in result["checks"]:
        bound = f"{'>=' if c['at_least'] else '<='} {c['bound']:g} {c['unit']}"
        name = c["name"] + (" [NLP]" if c["nlp"] else "")
        rows.append([name, bound, *(_cell(c, n, result["unavailable"]) for n in CANCELLERS)])
    head = ["check", "bound", *CANCELLERS]
    lines = [
        f"Echo cancellers on the G.168-style battery ({TAIL_MS} ms tail, 8 kHz, one run"
        f"{', quick subset' if result['quick'] else ''})",
        format_table(head, rows + _extra_rows(result)),
    ]
    lines += [f"{n}: {why}" for n, why in result["unavailable"].items()]
    lines += [
        f"{n} on {c['name']}: {c['results'][n]['error']}"
        for c in result["checks"]
        for n in CANCELLERS
        if isinstance(c["results"][n], dict) and n not in result["unavailable"]
    ]
    lines += [*NOTES, f"elapsed: {result['elapsed_s']:.1f} s"]
    return "\n".join(lines)


def run_bench_echo(json_output: bool = False, quick: bool = False) -> int:
    """`tipring bench echo`: print the table (or JSON); returns the exit status."""
    try:
        result = collect(quick)
    except FileNotFoundError as exc:
        print(f"bench echo: {exc}", file=sys.stderr)
        return 2
    if json_output:
        print(json.dumps(json_safe(result), indent=2, allow_nan=False))
    else:
        print(format_report(result))
    return 0
