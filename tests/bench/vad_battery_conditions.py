"""The barge-in VAD battery's false-trigger conditions: audio with no caller speech (residual
echo of the agent, comfort noise, line noise, hum, call-progress tones, DTMF, music).

`tests.bench.vad_battery` holds the line, the detector protocol and the measures;
`false_trigger_results` runs a detector through every condition here (`tests/dsp/test_vad.py`
asserts the bounds, `tipring bench vad` prints the rows). Agent-only audio through the real
canceller's linear output, converging and converged, is `tests.bench.vad_battery_agent`'s.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dsp.dtmf import DIGITS
from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.levels import dbm0_to_rms
from dsp.tones import generate as tone_generate
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from tests.bench.vad_battery import (
    Heard,
    VadFactory,
    agent_speech,
    codec,
    line_noise,
    noise_level_dbm0,
    run_vad,
    stand_in,
    triggers,
    whole_frames,
)
from tests.signals import HUM_KINDS, all_speech, music


class Condition(NamedTuple):
    """Audio with no caller speech: `build(seconds)` returns what the detector hears; `blind`
    runs the detector without the far end. Conditions of the same `row` are summed."""

    row: str
    build: Callable[[float], Heard]
    seconds: float
    blind: bool = False


ECHO_NOISES = ("white -65", "pink -60", "white -55", "pink -50")


def echo_cases() -> list[tuple[EchoPath, str]]:
    """Each G.168 model at each ERL of 6, 10 and 15 dB, 0-12 ms of bulk delay, and a line
    noise taken in turn from `ECHO_NOISES`."""
    pairs = [(m, e) for m in range(1, 9) for e in (6.0, 10.0, 15.0)]
    return [(EchoPath.g168(m, delay_ms=(i % 4) * 4.0, erl_db=e), ECHO_NOISES[i % 4])
            for i, (m, e) in enumerate(pairs)]  # fmt: skip


def stand_in_line(path: EchoPath, noise: str, seed: int, comfort: str, seconds: float,
                  residual: bool = False) -> Heard:  # fmt: skip
    """The stand-in canceller's output on agent-only audio (`residual`: with the level of the
    echo it leaves, as a canceller reports it). `comfort`: like an NLP, comfort noise at the
    line noise's level in every frame where echo returns ("matched": the line noise's own
    spectrum; "white": a crude generator's), or "" for none."""
    n = whole_frames(round(seconds * RATE_HZ))
    ref = agent_speech(n)
    out, left_dbm0 = stand_in(ref, path, line_noise(noise, n, seed))
    if comfort:
        echo = EchoFilter(path).process(ref.astype(np.float64)).reshape(-1, FRAME_SAMPLES)
        level = noise_level_dbm0(noise)
        loud = np.repeat(np.mean(echo**2, axis=1) > dbm0_to_rms(level + 10.0) ** 2, FRAME_SAMPLES)
        kind = noise if comfort == "matched" else f"white {level:g}"
        out = np.where(loud, codec(line_noise(kind, n, seed + 99)), out)
    return Heard(out, ref, left_dbm0 if residual else None)


def canceller_line(make: Callable[[], Any], path: EchoPath, noise: str, seed: int,
                   seconds: float) -> Heard:  # fmt: skip
    """A real canceller's output (`make()`: one with process(ref, mic)) on agent-only audio."""
    n = whole_frames(round(seconds * RATE_HZ))
    ref = agent_speech(n)
    mic = codec(EchoFilter(path).process(ref.astype(np.float64)) + line_noise(noise, n, seed))
    canceller, out = make(), np.empty_like(mic)
    for k in range(0, n, FRAME_SAMPLES):
        f = slice(k, k + FRAME_SAMPLES)
        out[f] = canceller.process(ref[f].copy(), mic[f].copy())
    return Heard(out, ref)


def real_canceller() -> Callable[[], Any] | None:
    """`dsp.echo.EchoCanceller` (NLP on, its default) once it exists, else None."""
    try:
        return importlib.import_module("dsp.echo").EchoCanceller  # type: ignore[no-any-return]
    except (ImportError, AttributeError):  # not written yet
        return None


def noise_line(kind: str, seed: int, seconds: float) -> Heard:
    return Heard(codec(line_noise(kind, whole_frames(round(seconds * RATE_HZ)), seed)))


def caller_side_line(make: Callable[[float], NDArray[np.int16]], seed: int, seconds: float) -> (
    Heard
):  # fmt: skip
    """`make(seconds)` (tones, music) over white noise at -65 dBm0, through mu-law, from 0.5 s
    in (the detector first hears the idle line)."""
    n = whole_frames(round(seconds * RATE_HZ))
    x = line_noise("white -65", n, seed)
    sig = make(seconds).astype(np.float64)[: n - 4000]
    x[4000 : 4000 + sig.size] += sig
    return Heard(codec(x))


def dtmf_keys(level_dbm0: float, seed: int, seconds: float) -> NDArray[np.int16]:
    """Random keys at `level_dbm0`, 40-120 ms on, 40-300 ms off, twist -4..+4 dB."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    while total < seconds * RATE_HZ:
        on, off, key = rng.uniform(40, 120), rng.uniform(40, 300), DIGITS[rng.integers(16)]
        parts.append(dtmf_generate(key, on, off, level_dbm0, twist_db=rng.uniform(-4, 4)))
        total += parts[-1].size
    return np.concatenate(parts)


def _tone(plan: str, tone: str, seconds: float) -> NDArray[np.int16]:
    return tone_generate(plan, tone, seconds * 1000.0)


ECHO_ROWS = (  # row, blind, comfort noise, residual level given
    ("residual echo (stand-in)", False, "", False),
    ("residual echo (stand-in), residual level given", False, "", True),
    ("residual echo + comfort noise (stand-in NLP)", False, "matched", False),
    ("residual echo + white comfort noise over pink line noise", False, "white", False),
    ("residual echo (stand-in), detector not given the far end", True, "", False),
)


def _echo_conditions(quick: bool) -> list[Condition]:
    cases = echo_cases()[::6] if quick else echo_cases()
    agent_s = 10.0 if quick else all_speech().size / RATE_HZ  # the agent says every clip
    part = functools.partial
    out = [Condition(row, part(stand_in_line, path, noise, i, comfort, residual=given), agent_s,
                     blind)
           for row, blind, comfort, given in ECHO_ROWS for i, (path, noise) in enumerate(cases)
           if comfort != "white" or noise.startswith("pink")]  # fmt: skip
    if (make := real_canceller()) is not None:
        out += [Condition("residual echo (dsp.echo.EchoCanceller)",
                          part(canceller_line, make, path, noise, i), agent_s)
                for i, (path, noise) in enumerate(cases)]  # fmt: skip
    return out


def conditions(quick: bool = False) -> list[Condition]:
    """Every false-trigger condition, rows in report order; `quick`: fewer and shorter."""
    out, part = _echo_conditions(quick), functools.partial
    noise_s, tone_s = (10.0, 10.0) if quick else (60.0, 30.0)
    for i, kind in enumerate(("white -65", "white -50", "pink -60", "pink -50")):
        out.append(Condition(f"line noise, {kind} dBm0", part(noise_line, kind, i), noise_s))
    for i, hum in enumerate(HUM_KINDS):
        out.append(Condition(f"hum {hum} (-20 dBm0)", part(noise_line, f"hum {hum}", i), noise_s))
    for tone in ("dial", "ringback", "busy", "reorder", "sit"):
        for plan in ("us",) if quick else ("us", "uk", "de"):
            build = part(caller_side_line, part(_tone, plan, tone), 7)
            out.append(Condition(f"{tone} tone", build, tone_s))
    for level in (-10.0, -25.0, -40.0):
        build = part(caller_side_line, part(dtmf_keys, level, int(-level)), 8)
        out.append(Condition(f"DTMF keys at {level:g} dBm0", build, tone_s))
    for level in (-18.0, -30.0):
        build = part(caller_side_line, part(music, level_dbm0=level, seed=int(-level)), 9)
        out.append(Condition(f"music at {level:g} dBm0 (bonus)", build, noise_s))
    return out


def condition_triggers(factory: VadFactory, cond: Condition) -> tuple[int, float]:
    """False triggers of the detector in one condition, and the condition's minutes."""
    heard = cond.build(cond.seconds)
    far = None if cond.blind else heard.far
    speaking = run_vad(factory, heard.line, far, heard.residual_dbm0)
    return int(triggers(speaking).size), heard.line.size / RATE_HZ / 60.0


def false_trigger_results(factory: VadFactory, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Per row of `conditions()`: minutes heard, false triggers, false triggers per minute."""
    rows: dict[str, dict[str, Any]] = {}
    for cond in conditions(quick):
        n, minutes = condition_triggers(factory, cond)
        row = rows.setdefault(cond.row, {"minutes": 0.0, "triggers": 0})
        row["minutes"] += minutes
        row["triggers"] += n
    for row in rows.values():
        row["per_min"] = row["triggers"] / row["minutes"]
    return rows
