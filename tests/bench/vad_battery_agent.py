"""Barge-in over the agent through the real echo canceller (`dsp.echo.EchoCanceller`): the
caller starts while the agent talks, and the detector hears the canceller's linear output
(`nlp=False`: the NLP's comfort noise would hide a caller's soft onset, see `dsp.vad`), the
far end, and per frame a residual echo level. Part of the VAD battery (`tests.bench.vad_battery`
holds the line, the utterances and the measures).

For each echo case of `vad_battery_conditions.echo_cases()` (G.168 models 1-8 at ERL 6, 10
and 15 dB, 0-12 ms of bulk delay, four line noises) one *trunk*: the agent says every
shipped clip (34 s) to a fresh canceller, with no caller, and the detector runs on the
output: its turns on are false triggers, counted while the canceller converges (the first
`CONVERGED_S`) and after. At frames of the trunk where the agent is talking, the canceller
and the detector are copied and a caller's utterance starts there (a *branch*): each onset
meets a canceller that has heard only the agent, after convergence (`FORKS_CONVERGED` per
trunk, from `CONVERGED_S` on) or during it (`FORKS_CONVERGING`, from `CONVERGING_FROM_S`).
In a call the barge-in pauses the agent, so the canceller seldom hears long double talk. A
branch runs until the detector turns on or `MISS_MS` after the onset; onsets, strict onsets
and misses are as in `tests.bench.vad_battery`; the agent talks through the whole branch.

The residual echo level the detector is given (`RESIDUAL_SOURCES`):
- "canceller": the canceller's own estimate, its `residual_echo_dbm0` (once it has one);
- "truth": the level of out - caller - line noise: the echo left and the codec's noise
  (knows the frame's misadjustment, and how the caller disturbs the canceller);
- "level": the frame's true echo level less the canceller's ERLE estimate (`stats.erle_db`):
  what an estimate from levels alone knows;
- "none": the far end alone (the detector's fallback).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dsp.echo import EchoCanceller
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.levels import dbm0_to_rms
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from tests.bench.vad_battery import (
    MISS_MS,
    ONSET_MIN_DBM0,
    ONSET_OVER_NOISE_DB,
    STRICT_OVER_NOISE_DB,
    Float,
    Utterance,
    VadFactory,
    VadLike,
    agent_speech,
    clip_power,
    codec,
    delay_stats,
    frame_dbm0,
    line_noise,
    onset_sample,
    percentile,
    speech_band_dbm0,
    triggers,
    utterances,
    whole_frames,
)
from tests.bench.vad_battery_conditions import echo_cases
from tests.signals import all_speech, speech

BARGE_IN_DBM0 = (-35.0, -30.0, -25.0, -20.0)
CONVERGED_S = 3.0  # onsets from here on meet a converged canceller (it needs < 1 s of speech)
CONVERGING_FROM_S = 0.3  # onsets from here to CONVERGED_S meet a converging one
FORKS_CONVERGED = 12  # per trunk
FORKS_CONVERGING = 4
AGENT_ACTIVE_DBM0 = -40.0  # a fork's frame and the next 3 hold echo at least this loud
RESIDUAL_SOURCES = ("canceller", "truth", "level", "none")
_LEAD_FRAMES = 4


class Trunk(NamedTuple):
    """Agent-only audio through a canceller: what we played, its echo, the line noise, the
    canceller's output, per source the residual level per frame, and the canceller as it
    was before each fork frame."""

    name: str
    ref: NDArray[np.int16]
    echo: Float
    noise: Float
    out: NDArray[np.int16]
    residual: dict[str, Float]
    cancellers: dict[int, Any]


def linear_canceller(nlp: bool = False) -> Callable[[], EchoCanceller]:
    """`dsp.echo.EchoCanceller` with its NLP off (the linear stage's output; `nlp`: on)."""
    return functools.partial(EchoCanceller, nlp=nlp)


def _level(x: Float) -> float:
    power = float(np.mean(x * x))
    return 10.0 * math.log10(power / dbm0_to_rms(0.0) ** 2) if power > 0.0 else -math.inf


def _step(canceller: Any, ref: NDArray[np.int16], mic: NDArray[np.int16], echo: Float,
          near: Float) -> tuple[NDArray[np.int16], dict[str, float]]:  # fmt: skip
    """One frame through the canceller; the output and each source's residual level."""
    out = canceller.process(ref.copy(), mic.copy())
    left = {"truth": _level(out - near), "none": math.nan,
            "level": _level(echo) - float(canceller.stats.erle_db)}  # fmt: skip
    estimate = canceller.residual_echo_dbm0  # None before it has converged
    left["canceller"] = math.nan if estimate is None else float(estimate)
    return out, left


class AgentLine(NamedTuple):
    """The agent alone on one echo path: what we played, its echo, the line's noise."""

    name: str
    ref: NDArray[np.int16]
    echo: Float
    noise: Float


def agent_line(path: EchoPath, noise: str, seed: int, seconds: float) -> AgentLine:
    """The agent (every shipped clip, looped) for `seconds` on `path` over `noise`."""
    n = whole_frames(round(seconds * RATE_HZ))
    ref = agent_speech(n)
    echo = EchoFilter(path).process(ref.astype(np.float64))
    name = f"{path.name} ERL {path.erl_db:g} dB, {noise}"
    return AgentLine(name, ref, echo, line_noise(noise, n, seed))


def run_trunk(make: Callable[[], Any], line: AgentLine, forks: list[int]) -> Trunk:
    """`line` through a fresh `make()`, the canceller copied before each frame of `forks`."""
    mic = codec(line.echo + line.noise)
    canceller, out = make(), np.empty_like(mic)
    residual: dict[str, list[float]] = {}
    saved, at = {}, set(forks)
    for k in range(mic.size // FRAME_SAMPLES):
        if k in at:
            saved[k] = copy.deepcopy(canceller)
        f = slice(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        out[f], left = _step(canceller, line.ref[f], mic[f], line.echo[f], line.noise[f])
        for source, value in left.items():
            residual.setdefault(source, []).append(value)
    arrays = {source: np.array(v, np.float64) for source, v in residual.items()}
    return Trunk(line.name, line.ref, line.echo, line.noise, out, arrays, saved)


def fork_frames(echo: Float, rng: np.random.Generator, lo_s: float, hi_s: float, count: int) -> (
    list[int]
):  # fmt: skip
    """`count` frames in [lo_s, hi_s) where the echo of the agent is at least
    `AGENT_ACTIVE_DBM0` in that frame and the next three (the caller starts mid-speech)."""
    level = frame_dbm0(echo)
    lo, hi = round(lo_s * 50), min(round(hi_s * 50), level.size - _LEAD_FRAMES)
    ok = [k for k in range(lo, hi) if level[k : k + _LEAD_FRAMES].min() >= AGENT_ACTIVE_DBM0]
    return sorted(int(k) for k in rng.choice(ok, min(count, len(ok)), replace=False))


class Fork(NamedTuple):
    """Where a caller starts over the agent: the trunk's frame, "converged" or "converging",
    the utterance, and its first sample's offset into that frame."""

    frame: int
    phase: str
    utterance: Utterance
    offset: int


def case_forks(line: AgentLine, seed: int, quick: bool) -> list[Fork]:
    """The forks of one trunk: `FORKS_CONVERGED` from `CONVERGED_S` on and `FORKS_CONVERGING`
    from `CONVERGING_FROM_S` (half each if `quick`), each with its own utterance."""
    rng = np.random.default_rng(seed)
    half = 2 if quick else 1
    frames = [
        (k, "converged")
        for k in fork_frames(
            line.echo, rng, CONVERGED_S, line.ref.size / RATE_HZ - 0.5, FORKS_CONVERGED // half
        )
    ]
    frames += [
        (k, "converging")
        for k in fork_frames(
            line.echo, rng, CONVERGING_FROM_S, CONVERGED_S - 0.2, FORKS_CONVERGING // half
        )
    ]
    picks = rng.choice(len(utterances()), len(frames), replace=False)
    offsets = rng.integers(0, FRAME_SAMPLES, len(frames))
    return [Fork(k, phase, utterances()[int(u)], int(at))
            for (k, phase), u, at in zip(frames, picks, offsets, strict=True)]  # fmt: skip


class Caller(NamedTuple):
    """One utterance placed in a branch: samples from the branch's first sample, its onset
    and strict onset (samples from there)."""

    clean: Float
    offset: int
    onset: int
    strict: int


def place(u: Utterance, level_dbm0: float, idle_dbm0: float, offset: int) -> Caller | None:
    """Utterance `u` at `level_dbm0`, starting `offset` samples into a branch, its onsets
    taken over a line whose idle noise is `idle_dbm0` (speech band)."""
    x = speech(u.voice)[u.begin : u.end].astype(np.float64)
    clean = x * dbm0_to_rms(level_dbm0) / math.sqrt(clip_power(u.voice))
    threshold = min(max(ONSET_MIN_DBM0, idle_dbm0 + ONSET_OVER_NOISE_DB), level_dbm0)
    at = onset_sample(clean, threshold)
    first = onset_sample(clean, idle_dbm0 + STRICT_OVER_NOISE_DB)
    if at is None or first is None:
        return None
    return Caller(clean, offset, offset + at, offset + min(at, first))


def _delay_ms(frame: int, at: int) -> float:
    """From sample `at` to the end of frame `frame` (ms); inf beyond `MISS_MS`."""
    d = ((frame + 1) * FRAME_SAMPLES - at) * 1000.0 / RATE_HZ
    return d if d <= MISS_MS else math.inf


def branch(trunk: Trunk, fork: int, vad: VadLike, caller: Caller, source: str) -> (
    tuple[float, float]
):  # fmt: skip
    """Run copies of the trunk's canceller and `vad` from frame `fork` with the caller added;
    (delay, strict delay) in ms from the onsets to the end of the frame that turned
    `.speaking` on (inf: a miss, or `.speaking` already on)."""
    canceller, vad = copy.deepcopy(trunk.cancellers[fork]), copy.deepcopy(vad)
    start = fork * FRAME_SAMPLES
    last = start + caller.onset + round(MISS_MS * RATE_HZ / 1000.0)
    frames = min(last // FRAME_SAMPLES + 1, trunk.out.size // FRAME_SAMPLES) - fork
    near = np.zeros(frames * FRAME_SAMPLES, np.float64)
    size = min(caller.clean.size, near.size - caller.offset)
    near[caller.offset : caller.offset + size] = caller.clean[:size]
    was = vad.speaking
    for k in range(frames):
        at = start + k * FRAME_SAMPLES
        f, g = slice(at, at + FRAME_SAMPLES), slice(at - start, at - start + FRAME_SAMPLES)
        heard = near[g] + trunk.noise[f]
        mic = codec(trunk.echo[f] + heard)
        out, left = _step(canceller, trunk.ref[f], mic, trunk.echo[f], heard)
        vad.process(out, trunk.ref[f], _given(left.get(source, math.nan)))
        if vad.speaking and not was:
            return _delay_ms(k, caller.onset), _delay_ms(k, caller.strict)
        was = vad.speaking
    return math.inf, math.inf


def _given(value: float) -> float | None:
    return None if math.isnan(value) else value


def trunk_vads(factory: VadFactory, trunk: Trunk, source: str, forks: list[int]) -> (
    tuple[NDArray[np.bool_], dict[int, VadLike]]
):  # fmt: skip
    """`.speaking` after each frame of the trunk, and the detector before each fork frame."""
    vad, saved, at = factory(), {}, set(forks)
    left = trunk.residual.get(source)
    speaking = np.zeros(trunk.out.size // FRAME_SAMPLES, np.bool_)
    for k in range(speaking.size):
        if k in at:
            saved[k] = copy.deepcopy(vad)
        f = slice(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        vad.process(trunk.out[f], trunk.ref[f], None if left is None else _given(float(left[k])))
        speaking[k] = vad.speaking
    return speaking, saved


class CaseResult(NamedTuple):
    """One trunk's results: per onset row name (level, phase) its (delay, strict delay) in
    ms; false triggers while converging and after."""

    delays: dict[str, list[tuple[float, float]]]
    converging_triggers: int
    converged_triggers: int


def run_case(factory: VadFactory, make: Callable[[], Any], source: str, line: AgentLine,
             forks: list[Fork]) -> CaseResult:  # fmt: skip
    """The trunk of `line` through `make()`, and every fork at every level of `BARGE_IN_DBM0`."""
    trunk = run_trunk(make, line, [f.frame for f in forks])
    speaking, vads = trunk_vads(factory, trunk, source, [f.frame for f in forks])
    early = triggers(speaking) < round(CONVERGED_S * 1000.0 / 20.0)
    idle_dbm0 = speech_band_dbm0(codec(line.noise))
    delays: dict[str, list[tuple[float, float]]] = {}
    for level in BARGE_IN_DBM0:
        for fork in forks:
            caller = place(fork.utterance, level, idle_dbm0, fork.offset)
            if caller is not None:
                found = branch(trunk, fork.frame, vads[fork.frame], caller, source)
                delays.setdefault(f"{level:g} dBm0, {fork.phase}", []).append(found)
    return CaseResult(delays, int(np.sum(early)), int(np.sum(~early)))


def _onset_row(found: list[tuple[str, float, float]]) -> dict[str, Any]:
    d, strict = np.array([x for _, x, _ in found]), np.array([x for _, _, x in found])
    by_model = {m: delay_stats(np.array([x for k, x, _ in found if k == m]))
                for m in sorted({k for k, _, _ in found})}  # fmt: skip
    strict_stats = {"strict_median_ms": percentile(strict, 50),
                    "strict_p95_ms": percentile(strict, 95)}  # fmt: skip
    return delay_stats(d) | strict_stats | {"by_model": by_model}


def barge_in_results(factory: VadFactory, quick: bool = False, source: str | None = None,
                     nlp: bool = False) -> dict[str, Any]:  # fmt: skip
    """{"source": the residual source used, "onset": {"-30 dBm0, converged" (and
    "converging", per level of `BARGE_IN_DBM0`): the `delay_stats` keys, strict median and
    p95, and "by_model"}, "false_triggers": {row: minutes, triggers, per_min} of the
    trunks}. `quick`: 4 echo cases, 12 s trunks, half the forks; `nlp`: the canceller's
    NLP on."""
    make = linear_canceller(nlp)
    source = source or "canceller"
    cases = echo_cases()[::6] if quick else echo_cases()
    seconds = 12.0 if quick else all_speech().size / RATE_HZ
    found: dict[str, list[tuple[str, float, float]]] = {}
    counts, minutes = [0, 0], [0.0, 0.0]
    for i, (path, noise) in enumerate(cases):
        line = agent_line(path, noise, i, seconds)
        result = run_case(factory, make, source, line, case_forks(line, 1000 + i, quick))
        for row, delays in result.delays.items():
            found.setdefault(row, []).extend((path.name, d, ds) for d, ds in delays)
        counts[0] += result.converging_triggers
        counts[1] += result.converged_triggers
        minutes[0] += CONVERGED_S / 60.0
        minutes[1] += (seconds - CONVERGED_S) / 60.0
    rows = (trigger_row("converging", nlp), trigger_row("converged", nlp))
    trigger_rows = {row: {"minutes": m, "triggers": n, "per_min": n / m}
                    for row, n, m in zip(rows, counts, minutes, strict=True)}  # fmt: skip
    onset_rows = {row: _onset_row(found[row]) for row in sorted(found, key=_row_order)}
    return {"source": source, "onset": onset_rows, "false_triggers": trigger_rows}


def trigger_row(phase: str, nlp: bool = False) -> str:
    """The false-trigger row of `barge_in_results` for "converging" or "converged"."""
    name = f"residual echo (dsp.echo.EchoCanceller, {'NLP' if nlp else 'linear'} output)"
    span = f"0-{CONVERGED_S:g} s" if phase == "converging" else f"{CONVERGED_S:g} s on"
    return f"{name}, {phase} ({span})"


def _row_order(row: str) -> tuple[float, str]:
    level, phase = row.split(" dBm0, ")
    return float(level), phase
