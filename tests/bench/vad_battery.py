"""The barge-in VAD battery: caller onsets on the simulated line, and false triggers on what
is not a caller (residual echo, comfort noise, line noise, hum, tones, music).

Any detector with `process(frame, far=None, residual_echo_dbm0=None) -> float` and
`.speaking` runs through it (ours: `dsp.vad.Vad`); `tests/dsp/test_vad.py` asserts its bounds,
`tipring bench vad` prints it. Three modules: this one (the line, the caller's utterances,
onset streams, the measures), `tests.bench.vad_battery_conditions` (the false-trigger
conditions) and `tests.bench.vad_battery_agent` (barge-in over the agent through the real
canceller, `dsp.echo.EchoCanceller`).

The line is the echo battery's: what the caller's side sends (caller, line noise, hum,
tones) and the hybrid's echo of what we play (G.168 models of `firmware_bridge.sim`) add up
and pass mu-law; what we play passes mu-law too. Here the canceller is a stand-in: the true
echo 30 dB down, plus the codec noise of the line (no canceller removes it), plus the line
noise; the level of what it leaves (echo and codec noise) is what a canceller would report
as its residual echo.

Onsets: each utterance of `utterances()` follows >= 1.2 s of line noise alone, at a random
sample offset. Its onset is the start of the first 5 ms window (sliding) of the clean
utterance whose power reaches -50 dBm0 and 20 dB over the idle line's noise in the speech
band, or the utterance's active level if lower (the speech is plainly there); its *strict*
onset is where it first gets 10 dB over that noise. A decision exists at the end of the
frame that made it: the delay is the end of the frame that turned `.speaking` True, minus
the onset (the frame's buffering included). Not detected within `MISS_MS`: a miss,
counted as infinite in the percentiles. A false trigger is any turn of `.speaking` to True
with no caller speech: in the conditions, or between the utterances of an onset stream.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.g711 import ulaw_decode, ulaw_encode
from dsp.levels import dbm0_to_rms
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from tests.signals import (
    all_speech,
    pink_noise,
    scale_to_dbm0,
    speech,
    speech_names,
    white_noise,
    with_hum,
)

Float = NDArray[np.float64]
AGENT_DBM0 = -15.0  # the agent's voice as we send it (active speech level)
STAND_IN_ERLE_DB = 30.0  # "residual echo after a good canceller is ~30+ dB below" the echo
ONSET_MIN_DBM0 = -50.0  # the onset window must be at least this loud,
ONSET_OVER_NOISE_DB = 20.0  # ... and this far over the line's idle noise in the speech band,
STRICT_OVER_NOISE_DB = 10.0  # (the strict onset: the first window this far over the noise)
MISS_MS = 100.0  # later than this a local barge-in is worth nothing: the cloud's VAD is there
LEVELS_DBM0 = (-40.0, -35.0, -30.0, -25.0, -20.0, -15.0)
OVER_AGENT_DBM0 = (-30.0, -20.0)  # barge-in while the agent talks (stand-in residual echo)
# Line noises of the onset streams (the caller's side of the line, before the codec).
ONSET_NOISES = ("white -65", "pink -60", "white -50", "pink -50", "hum 60+120+180 Hz")
LEAD_S = 1.5  # line noise alone before the first utterance
AGENT_LEAD_S = 5.0  # over the agent: its echo guard has settled (`dsp.vad`: 2.7 s of speech)
GAP_S = 1.2  # ... and at least this much between utterances (the hangover has ended)
QUIET_DB = 35.0  # a 5 ms window this far under its clip's active level is a pause
MIN_PAUSE_MS = 30.0  # pauses at least this long start an utterance
MIN_UTTERANCE_MS = 150.0
MAX_UTTERANCE_S = 1.0
_SUB = 40  # samples in 5 ms


class VadLike(Protocol):
    @property
    def speaking(self) -> bool: ...
    def process(self, frame: NDArray[np.int16], far: NDArray[np.int16] | None = None,
                residual_echo_dbm0: float | None = None) -> float: ...  # fmt: skip


VadFactory = Callable[[], VadLike]


class Heard(NamedTuple):
    """What a detector hears: the uplink `line`, the far end (what we played, or None) and
    per frame the residual echo level a canceller reports (dBm0, or None: not given)."""

    line: NDArray[np.int16]
    far: NDArray[np.int16] | None = None
    residual_dbm0: Float | None = None


def codec(x: Float) -> NDArray[np.int16]:
    """The line's mu-law: round to int16, encode, decode."""
    return ulaw_decode(ulaw_encode(np.clip(np.rint(x), -32768, 32767).astype(np.int16)))


def whole_frames(n: int) -> int:
    """`n` samples rounded down to whole frames."""
    return n // FRAME_SAMPLES * FRAME_SAMPLES


def line_noise(kind: str, n: int, seed: int) -> Float:
    """`n` samples of a named line noise: "white -65", "pink -50", or a hum of
    `tests.signals.HUM_KINDS` at -20 dBm0 ("hum 60+120+180 Hz") over white noise at -65."""
    seconds = n / RATE_HZ + 0.01
    if kind.startswith("hum "):
        base = white_noise(seconds, -65.0, seed)[:n]
        return with_hum(base, kind[4:], -20.0).astype(np.float64)
    shape, level = kind.split()
    gen = white_noise if shape == "white" else pink_noise
    return gen(seconds, float(level), seed)[:n].astype(np.float64)


def noise_level_dbm0(kind: str) -> float:
    """The nominal level of a named line noise (hum: of the white noise under it)."""
    return -65.0 if kind.startswith("hum ") else float(kind.split()[1])


# --- the caller's utterances -------------------------------------------------------------------


class Utterance(NamedTuple):
    """Samples [begin, end) of the shipped clip `voice`: quiet before `begin`, speech after."""

    voice: str
    begin: int
    end: int


def _active_power(x: Float) -> float:
    """Mean power over the samples above -50 dB of the peak (as `scale_to_dbm0` levels)."""
    active = x[np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)]
    return float(np.mean(active**2))


@functools.cache
def clip_power(voice: str) -> float:
    return _active_power(speech(voice).astype(np.float64))


def _window_power(x: Float, width: int = _SUB) -> Float:
    """Mean power of x[n : n + width] for every n with a whole window."""
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return (c[width:] - c[:-width]) / width  # type: ignore[no-any-return]


@functools.cache
def utterances() -> tuple[Utterance, ...]:
    """Every utterance start of the shipped clips: the clip's first sound and each sound after a
    pause >= `MIN_PAUSE_MS`; each runs to the next such pause >= 100 ms, at most
    `MAX_UTTERANCE_S`, and is at least `MIN_UTTERANCE_MS` long."""
    out = []
    for voice in speech_names():
        x = speech(voice).astype(np.float64)
        loud = _window_power(x)[::_SUB] >= _active_power(x) * 10 ** (-QUIET_DB / 10)
        starts, pauses, quiet_run = [], [], 0
        for i, is_loud in enumerate(loud):
            if is_loud and (i == quiet_run or quiet_run * _SUB >= MIN_PAUSE_MS * 8):
                starts.append(i * _SUB)
            if not is_loud and quiet_run * _SUB == 100 * 8:
                pauses.append((i - quiet_run) * _SUB)
            quiet_run = 0 if is_loud else quiet_run + 1
        for begin in starts:
            stop = min([p for p in pauses if p > begin] + [x.size])
            end = min(stop, begin + round(MAX_UTTERANCE_S * RATE_HZ))
            if end - begin >= MIN_UTTERANCE_MS * 8:
                out.append(Utterance(voice, max(begin - _SUB, 0), end))
    return tuple(out)


def speech_band_dbm0(pcm: NDArray[np.int16]) -> float:
    """Level of `pcm` in the speech band, 300-3400 Hz (hum and DC under it compete with none)."""
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(pcm.size, 1.0 / RATE_HZ)
    power = 2.0 * float(np.sum(spec[(f >= 300.0) & (f <= 3400.0)])) / pcm.size**2
    return 10.0 * math.log10(max(power, 1e-12) / dbm0_to_rms(0.0) ** 2)


def onset_sample(clean: Float, threshold_dbm0: float) -> int | None:
    """The start of the first 5 ms window of `clean` whose power reaches the threshold."""
    above = np.flatnonzero(_window_power(clean) >= dbm0_to_rms(threshold_dbm0) ** 2)
    return int(above[0]) if above.size else None


# --- onset streams -----------------------------------------------------------------------------


class OnsetStream(NamedTuple):
    """Utterances on a noisy line: `line` (what the detector hears), `far` (what we played, or
    None), per utterance its start, onset, strict onset and end (samples), and per frame the
    residual echo level the detector is given (or None)."""

    name: str
    line: NDArray[np.int16]
    far: NDArray[np.int16] | None
    starts: NDArray[np.int64]
    onsets: NDArray[np.int64]
    strict_onsets: NDArray[np.int64]
    ends: NDArray[np.int64]
    residual_dbm0: Float | None = None


def agent_speech(n: int) -> NDArray[np.int16]:
    """What we play: every shipped clip back to back (looped) at `AGENT_DBM0`, through mu-law."""
    return codec(np.resize(scale_to_dbm0(all_speech(), AGENT_DBM0), n).astype(np.float64))


def frame_dbm0(x: Float | NDArray[np.int16]) -> Float:
    """The level (dBm0) of each whole frame of `x`; -inf for digital silence."""
    n = whole_frames(x.size)
    power = np.mean(np.asarray(x[:n], np.float64).reshape(-1, FRAME_SAMPLES) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power / dbm0_to_rms(0.0) ** 2)  # type: ignore[no-any-return]


def stand_in(ref: NDArray[np.int16], path: EchoPath, near: Float) -> tuple[NDArray[np.int16],
                                                                            Float]:  # fmt: skip
    """The stand-in canceller's output: echo of `ref` through `path` 30 dB down, plus the
    codec noise of the line carrying that echo and `near` (everything else), plus `near`;
    and per frame the level of what it leaves besides `near` (its residual echo, dBm0)."""
    echo = EchoFilter(path).process(ref.astype(np.float64))
    mic = codec(echo + near)
    left = echo * 10 ** (-STAND_IN_ERLE_DB / 20) + (mic - echo - near)
    out = np.clip(np.rint(left + near), -32768, 32767).astype(np.int16)
    return out, frame_dbm0(out - near)


def onset_stream(level_dbm0: float, noise: str, seed: int, count: int | None = None,
                 over_agent: bool = False, residual: bool = False) -> OnsetStream:  # fmt: skip
    """The utterances (all, or `count` picked at random) at `level_dbm0` on `noise`; with
    `over_agent`, the agent talks throughout (G.168 model 1, ERL 10 dB, stand-in residual),
    and with `residual` the detector is also given the level of the echo the stand-in left."""
    rng = np.random.default_rng(seed)
    picked = list(utterances())
    if count is not None:
        picked = [picked[i] for i in rng.choice(len(picked), count, replace=False)]
    gap = round(GAP_S * RATE_HZ)
    lead = round((AGENT_LEAD_S if over_agent else LEAD_S) * RATE_HZ)
    n = lead + sum(u.end - u.begin + gap + FRAME_SAMPLES for u in picked)
    near = line_noise(noise, whole_frames(n), seed)
    idle_dbm0 = speech_band_dbm0(codec(near))
    threshold = min(max(ONSET_MIN_DBM0, idle_dbm0 + ONSET_OVER_NOISE_DB), level_dbm0)
    strict = idle_dbm0 + STRICT_OVER_NOISE_DB
    pos, rows = lead, []
    for u in picked:
        x = speech(u.voice)[u.begin : u.end].astype(np.float64)
        clean = x * dbm0_to_rms(level_dbm0) / math.sqrt(clip_power(u.voice))
        at, first = onset_sample(clean, threshold), onset_sample(clean, strict)
        pos += int(rng.integers(0, FRAME_SAMPLES))
        if at is not None and first is not None:
            near[pos : pos + clean.size] += clean
            rows.append((pos, pos + at, pos + min(at, first), pos + clean.size))
            pos += clean.size + gap
    far = agent_speech(near.size) if over_agent else None
    path = EchoPath.g168(1, 5.0, 10.0)
    line, left = (codec(near), None) if far is None else stand_in(far, path, near)
    name = f"{level_dbm0:g} dBm0 on {noise}" + (" over the agent" if over_agent else "")
    cols = np.array(rows, np.int64).reshape(-1, 4).T
    starts, onsets, strict_onsets, ends = cols
    return OnsetStream(
        name, line, far, starts, onsets, strict_onsets, ends, left if residual else None
    )


def run_vad(factory: VadFactory, line: NDArray[np.int16], far: NDArray[np.int16] | None,
            residual_dbm0: Float | None = None) -> NDArray[np.bool_]:  # fmt: skip
    """`.speaking` after each whole frame of `line` (and `far` and the frame's residual echo
    level, if given)."""
    vad = factory()
    frames = line.size // FRAME_SAMPLES
    out = np.zeros(frames, np.bool_)
    for k in range(frames):
        f = slice(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        left = None if residual_dbm0 is None else float(residual_dbm0[k])
        vad.process(line[f], None if far is None else far[f], left)
        out[k] = vad.speaking
    return out


def triggers(speaking: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Frames whose processing turned `.speaking` True."""
    was = np.concatenate([[False], speaking[:-1]])
    return np.flatnonzero(speaking & ~was)


def onset_delays(speaking: NDArray[np.bool_], stream: OnsetStream, strict: bool = False) -> (
    tuple[Float, int]
):  # fmt: skip
    """Per utterance the detection delay in ms (inf: a miss) from its onset (`strict`: its
    strict onset), and the false triggers in the noise between utterances."""
    at_ms = (triggers(speaking) + 1) * FRAME_SAMPLES / 8.0  # decisions exist at frame ends
    delays, claimed = [], np.zeros(at_ms.size, np.bool_)
    onsets = stream.strict_onsets if strict else stream.onsets
    for start, onset, end in zip(stream.starts, onsets, stream.ends, strict=True):
        lo, hi = start / 8.0, end / 8.0 + 300.0  # the utterance, with its hangover
        mine = (at_ms >= lo) & (at_ms <= hi)
        claimed |= mine
        first = at_ms[mine][0] - onset / 8.0 if mine.any() else math.inf
        delays.append(first if first <= MISS_MS else math.inf)
    return np.array(delays), int(np.sum(~claimed))


# --- results -----------------------------------------------------------------------------------


def percentile(x: Float, q: float) -> float:
    return float(np.percentile(x, q, method="higher")) if x.size else math.nan


def delay_stats(d: Float) -> dict[str, Any]:
    top = float(np.max(d, initial=-math.inf))
    return {"onsets": int(d.size), "median_ms": percentile(d, 50), "p95_ms": percentile(d, 95),
            "max_ms": top, "misses": int(np.sum(np.isinf(d)))}  # fmt: skip


def onset_row(factory: VadFactory, streams: list[OnsetStream]) -> dict[str, Any]:
    """Delays over all the streams' utterances: count, median, p95, max (ms), misses; the
    median and p95 from the strict onsets; false triggers in the noise between utterances;
    and the same per stream ("by_stream")."""
    delays, strict, between, by_stream = [], [], 0, {}
    for stream in streams:
        speaking = run_vad(factory, stream.line, stream.far, stream.residual_dbm0)
        d, extra = onset_delays(speaking, stream)
        ds, _ = onset_delays(speaking, stream, strict=True)
        delays.append(d)
        strict.append(ds)
        between += extra
        by_stream[stream.name] = delay_stats(d) | {"false_triggers_between": extra}
    row, firsts = delay_stats(np.concatenate(delays)), np.concatenate(strict)
    row |= {"strict_median_ms": percentile(firsts, 50), "strict_p95_ms": percentile(firsts, 95)}
    return row | {"false_triggers_between": between, "by_stream": by_stream}


def onset_results(factory: VadFactory, quick: bool = False) -> dict[str, dict[str, Any]]:
    """One row per caller level (every noise of `ONSET_NOISES`, every utterance), then barge-in
    over the agent's residual echo (stand-in) at two levels, the detector given the far end
    alone, then also the residual level. `quick`: 8 utterances per stream."""
    count = 8 if quick else None
    rows = {}
    for level in LEVELS_DBM0:
        streams = [onset_stream(level, noise, seed, count) for seed, noise in
                   enumerate(ONSET_NOISES)]  # fmt: skip
        rows[f"{level:g} dBm0"] = onset_row(factory, streams)
    for given in (False, True):
        for level in OVER_AGENT_DBM0:
            stream = onset_stream(level, "white -65", 11, count, True, given)
            name = f"{level:g} dBm0 over the agent" + (", residual level given" if given else "")
            rows[name] = onset_row(factory, [stream])
    return rows
