"""The echo canceller battery: G.168-style scenarios on the simulated line, and their measures.

Any canceller with `process(ref, mic) -> out` on 160-sample int16 frames runs through it:
ours (`dsp.echo.EchoCanceller`), the reference libraries' (`tests/bench/echo_refs.py`), or
none. `tests/dsp/test_echo.py` asserts our results against `CHECKS`' bounds; `tipring bench
echo` prints every canceller's results side by side.

The line is the adapter simulator's (`firmware_bridge.sim.echo_paths`): what we send is
mu-law encoded and decoded (the canceller's `ref` is that decoded signal, exactly what the
line carries), it passes the hybrid's echo path, the caller (`near`) and background noise
add to it, and the sum is mu-law encoded and decoded into `mic`, as on a real line.
`law="linear"` skips both codecs (a 16-bit linear path).

What is measured, per 20 ms frame, from the parts the simulation knows apart:
- `echo`: the true echo in `mic`; `q`: the codec's quantisation noise in `mic`
  (mic - echo - near - noise), which bounds any canceller (`ceiling_db`);
- the residual: out - near - noise (the echo left, plus q), for the linear stage;
- ERLE: echo power over residual power, over frames where the echo is above `ACTIVE_DBM0`
  and the caller is silent (energy-weighted: a sum over frames, not a mean of dB).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.g711 import ulaw_decode, ulaw_encode
from dsp.levels import dbm0_to_rms
from dsp.tones import generate as tone_generate
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from tests.signals import all_speech, scale_to_dbm0, speech, white_noise

Law = Literal["ulaw", "linear"]
FAR_DBM0 = -15.0  # the agent's voice as we send it: active speech level
NEAR_DBM0 = -20.0  # the caller, as the line delivers it (talkers arrive 5-15 dB under us)
NOISE_DBM0 = -65.0  # a quiet line's idle noise
ACTIVE_DBM0 = -55.0  # a frame counts for ERLE when its echo is above this
NEAR_ACTIVE_DBM0 = -45.0  # a frame counts for the caller's segmental SNR above this
SEG_SNR_CLIP_DB = (-10.0, 35.0)  # per-frame SNR bounds (the usual segmental-SNR clipping)
CONVERGE_WINDOW_S = 0.1  # convergence is judged on 100 ms windows of active frames
CONVERGE_HOLD_S = 0.5  # ... and must hold for this long after
_FRAME_S = FRAME_SAMPLES / RATE_HZ


class Canceller(Protocol):
    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]: ...


class NoCanceller:
    """The baseline: what reaches the cloud with no echo canceller."""

    def process(self, ref: NDArray[np.int16], mic: NDArray[np.int16]) -> NDArray[np.int16]:
        return mic


@dataclass(frozen=True)
class Scenario:
    """One simulated call: `far` (what we send), `near` (the caller, clean), `noise` (the
    line's), all the same length (whole frames); `paths`: (from sample, echo path) changes."""

    name: str
    far: NDArray[np.int16]
    near: NDArray[np.float64]
    noise: NDArray[np.float64]
    paths: tuple[tuple[int, EchoPath], ...]
    law: Law = "ulaw"


@dataclass
class Line:
    """What the line did in one scenario, frame-aligned arrays (float64 unless said)."""

    ref: NDArray[np.int16]  # what the canceller gets as its reference
    mic: NDArray[np.int16]  # what came back from the line
    echo: NDArray[np.float64]
    near: NDArray[np.float64]
    noise: NDArray[np.float64]
    q: NDArray[np.float64] = field(init=False)  # the codec's noise in mic

    def __post_init__(self) -> None:
        self.q = self.mic - self.echo - self.near - self.noise


def _codec(x: NDArray[np.float64], law: Law) -> NDArray[np.int16]:
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(pcm)) if law == "ulaw" else pcm


def simulate(sc: Scenario) -> Line:
    """Run the scenario's line (no canceller)."""
    ref = _codec(sc.far.astype(np.float64), sc.law)
    echo = np.zeros(ref.size, np.float64)
    bounds = [start for start, _ in sc.paths[1:]] + [ref.size]
    filt = EchoFilter(sc.paths[0][1])
    at = 0
    for (_, path), end in zip(sc.paths, bounds, strict=True):
        filt.set_path(path)
        echo[at:end] = filt.process(ref[at:end].astype(np.float64))
        at = end
    mic = _codec(echo + sc.near + sc.noise, sc.law)
    return Line(ref, mic, echo, sc.near, sc.noise)


def run(canceller: Canceller, line: Line) -> NDArray[np.int16]:
    """The canceller's output for the whole line, one frame at a time."""
    out = np.empty_like(line.mic)
    for k in range(0, line.mic.size, FRAME_SAMPLES):
        f = slice(k, k + FRAME_SAMPLES)
        out[f] = canceller.process(line.ref[f].copy(), line.mic[f].copy())
    return out


# --- measures ----------------------------------------------------------------------------------


def _frame_power(x: NDArray[np.float64]) -> NDArray[np.float64]:
    n = x.size // FRAME_SAMPLES * FRAME_SAMPLES
    power: NDArray[np.float64] = np.mean(x[:n].reshape(-1, FRAME_SAMPLES) ** 2, axis=1)
    return power


def _db(p: float) -> float:
    return 10.0 * math.log10(p) if p > 0 else -math.inf


def _frames(start_s: float, end_s: float | None, total: int) -> slice:
    a = round(start_s / _FRAME_S)
    return slice(a, total if end_s is None else min(total, round(end_s / _FRAME_S)))


def level_dbm0(x: NDArray[np.float64] | NDArray[np.int16]) -> float:
    """RMS level of `x` in dBm0 (-inf for silence)."""
    p = float(np.mean(np.asarray(x, np.float64) ** 2)) if x.size else 0.0
    return _db(p / dbm0_to_rms(0.0) ** 2)


def _echo_frames(line: Line, span: slice) -> NDArray[np.bool_]:
    """Frames of `span` with far-end echo above ACTIVE_DBM0 and the caller silent."""
    floor = dbm0_to_rms(ACTIVE_DBM0) ** 2
    echo_p, near_p = _frame_power(line.echo)[span], _frame_power(line.near)[span]
    return (echo_p > floor) & (near_p < dbm0_to_rms(-70.0) ** 2)  # type: ignore[no-any-return]


def erle_db(line: Line, out: NDArray[np.int16], start_s: float, end_s: float | None = None) -> (
    float
):  # fmt: skip
    """ERLE of the output over the echo frames of [start_s, end_s): echo power / residual
    power, residual = out - near - noise."""
    resid = out.astype(np.float64) - line.near - line.noise
    span = _frames(start_s, end_s, line.mic.size // FRAME_SAMPLES)
    use = _echo_frames(line, span)
    e = float(np.sum(_frame_power(line.echo)[span][use]))
    r = float(np.sum(_frame_power(resid)[span][use]))
    return _db(e / r) if r > 0 else math.inf


def ceiling_db(line: Line, start_s: float, end_s: float | None = None) -> float:
    """The best ERLE this line allows: echo power over the codec's noise, same frames."""
    span = _frames(start_s, end_s, line.mic.size // FRAME_SAMPLES)
    use = _echo_frames(line, span)
    e = float(np.sum(_frame_power(line.echo)[span][use]))
    return _db(e / float(np.sum(_frame_power(line.q)[span][use])))


def convergence_s(line: Line, out: NDArray[np.int16], from_s: float, target_db: float = 20.0) -> (
    float
):  # fmt: skip
    """Seconds from `from_s` until the ERLE of every 100 ms window of echo frames reaches
    `target_db` and stays there for `CONVERGE_HOLD_S` (inf: never)."""
    frames = line.mic.size // FRAME_SAMPLES
    win, hold = round(CONVERGE_WINDOW_S / _FRAME_S), round(CONVERGE_HOLD_S / _FRAME_S)
    resid = _frame_power(out.astype(np.float64) - line.near - line.noise)
    echo = _frame_power(line.echo)
    use = _echo_frames(line, slice(0, frames))
    ok = np.ones(frames, bool)
    for k in range(round(from_s / _FRAME_S), frames - win + 1):
        w = slice(k, k + win)
        e, r = float(np.sum(echo[w][use[w]])), float(np.sum(resid[w][use[w]]))
        ok[k] = e == 0.0 or (r > 0 and _db(e / r) >= target_db) or r == 0
    start = round(from_s / _FRAME_S)
    for k in range(start, frames - hold):
        if ok[k : k + hold].all() and use[k : k + hold].any():
            return (k - start) * _FRAME_S
    return math.inf


def residual_dbm0(line: Line, out: NDArray[np.int16], start_s: float,
                  end_s: float | None = None) -> float:  # fmt: skip
    """Level of what the output holds besides the caller and the line noise."""
    span = _frames(start_s, end_s, line.mic.size // FRAME_SAMPLES)
    x = slice(span.start * FRAME_SAMPLES, span.stop * FRAME_SAMPLES)
    return level_dbm0(out[x].astype(np.float64) - line.near[x] - line.noise[x])


def output_dbm0(out: NDArray[np.int16], start_s: float, end_s: float | None = None) -> float:
    """Level of the output itself (echo, comfort noise, everything)."""
    x = slice(round(start_s * RATE_HZ), None if end_s is None else round(end_s * RATE_HZ))
    return level_dbm0(out[x])


def seg_snr_db(line: Line, out: NDArray[np.int16], start_s: float,
               end_s: float | None = None) -> float:  # fmt: skip
    """Segmental SNR of the output against the clean caller, over frames where the caller
    talks: mean over frames of 10 log10(P(near) / P(out - near)), each clipped."""
    span = _frames(start_s, end_s, line.mic.size // FRAME_SAMPLES)
    near_p = _frame_power(line.near)[span]
    err_p = _frame_power(out.astype(np.float64) - line.near)[span]
    use = near_p > dbm0_to_rms(NEAR_ACTIVE_DBM0) ** 2
    snr = 10.0 * np.log10(near_p[use] / np.maximum(err_p[use], 1e-9))
    return float(np.mean(np.clip(snr, *SEG_SNR_CLIP_DB))) if use.any() else math.nan


# --- signals -----------------------------------------------------------------------------------


def _frames_len(x: NDArray[np.int16]) -> NDArray[np.int16]:
    pad = -x.size % FRAME_SAMPLES
    return np.concatenate([x, np.zeros(pad, np.int16)]) if pad else x


def far_speech(seconds: float, level_dbm0: float = FAR_DBM0) -> NDArray[np.int16]:
    """The agent: the shipped clips back to back (looped), at `level_dbm0`."""
    clips = scale_to_dbm0(all_speech(), level_dbm0)
    n = round(seconds * RATE_HZ)
    return _frames_len(np.resize(clips, n))


def telephone_band(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """`x` through a 300-3400 Hz band-pass (linear phase, 255 taps, Hamming): the caller as
    the PSTN delivers them (G.712 channel). The shipped clips have energy down to a male
    voice's 100 Hz pitch, which no line carries; without the band limit a canceller's own
    DC/high-pass filter (G.168 expects one) would count as damage to the caller."""
    n = np.arange(255) - 127
    lo, hi = 300.0 / RATE_HZ, 3400.0 / RATE_HZ
    taps = (2 * hi * np.sinc(2 * hi * n) - 2 * lo * np.sinc(2 * lo * n)) * np.hamming(255)
    return np.convolve(x, taps, mode="same")


def near_speech(seconds: float, level_dbm0: float = NEAR_DBM0) -> NDArray[np.float64]:
    """The caller: one voice, looped, band-limited as a line delivers it, at `level_dbm0`."""
    clip = telephone_band(speech("en_us_male").astype(np.float64))
    return np.resize(scale_to_dbm0(clip, level_dbm0).astype(np.float64), round(seconds * RATE_HZ))


def css(seconds: float, level_dbm0: float = FAR_DBM0, seed: int = 3) -> NDArray[np.int16]:
    """A composite source signal after ITU-T P.501 / G.168 §6.4.1: a voiced burst (48.6 ms,
    150 Hz harmonics), 200 ms of pseudo-noise, a 101.4 ms pause; polarity alternating."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(0.0486 * RATE_HZ)) / RATE_HZ
    voiced = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 20) if 150 * h < 3400)
    noise = rng.standard_normal(round(0.2 * RATE_HZ))
    period = np.concatenate([voiced / np.std(voiced), noise, np.zeros(round(0.1014 * RATE_HZ))])
    cycles = [period * (-1) ** k for k in range(math.ceil(seconds / (period.size / RATE_HZ)))]
    x = np.concatenate(cycles)[: round(seconds * RATE_HZ)]
    return _frames_len(scale_to_dbm0(x, level_dbm0))


def line_noise(seconds: float, level_dbm0: float = NOISE_DBM0, seed: int = 1) -> (
    NDArray[np.float64]
):  # fmt: skip
    return white_noise(seconds, level_dbm0, seed).astype(np.float64)


def _scenario(name: str, far: NDArray[np.int16], paths: list[tuple[float, EchoPath]], *,
              near: NDArray[np.float64] | None = None, noise_dbm0: float | None = NOISE_DBM0,
              law: Law = "ulaw") -> Scenario:  # fmt: skip
    n = far.size
    seconds = n / RATE_HZ
    near_x = np.zeros(n) if near is None else np.resize(near, n)
    noise = np.zeros(n) if noise_dbm0 is None else line_noise(seconds, noise_dbm0)[:n]
    steps = tuple((round(s * RATE_HZ), p) for s, p in paths)
    return Scenario(name, far, near_x, np.resize(noise, n), steps, law)


def with_near(seconds: float, start_s: float, end_s: float, near: NDArray[np.float64]) -> (
    NDArray[np.float64]
):  # fmt: skip
    """`near` placed from start_s to end_s of a `seconds`-long silence."""
    out = np.zeros(round(seconds * RATE_HZ))
    a, b = round(start_s * RATE_HZ), round(end_s * RATE_HZ)
    out[a:b] = np.resize(near, b - a)
    return out


# --- the checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the battery: a scenario, what is measured on the output, and the bound
    (`at_least` True: the value must be >= bound). `nlp`: run the canceller with its
    non-linear processor (else the linear stage alone)."""

    name: str
    build: Callable[[], Scenario]
    measure: Callable[[Line, NDArray[np.int16]], float]
    bound: float
    unit: str
    at_least: bool
    nlp: bool = False

    def passed(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.bound if self.at_least else value <= self.bound


SPEECH_S = 20.0  # a speech scenario's length
STEADY_S = 5.0  # steady state is measured from here on


def _speech_erle(model: int, erl_db: float, delay_ms: float, law: Law) -> Scenario:
    path = EchoPath.g168(model, delay_ms=delay_ms, erl_db=erl_db)
    noise = None if law == "linear" else NOISE_DBM0
    name = f"speech m{model} erl {erl_db:g} {law}"
    return _scenario(name, far_speech(SPEECH_S), [(0.0, path)], law=law, noise_dbm0=noise)


def _steady(line: Line, out: NDArray[np.int16]) -> float:
    return erle_db(line, out, STEADY_S)


def _pure_delay(delay_ms: float) -> Scenario:
    path = EchoPath.pure_delay(delay_ms, 10.0)
    return _scenario(f"pure delay {delay_ms:g}", far_speech(SPEECH_S), [(0.0, path)])


def _erle_checks() -> list[Check]:
    checks = []
    for model, erl, delay in ((1, 6.0, 5.0), (4, 10.0, 12.0), (7, 15.0, 30.0), (2, 10.0, 0.0),
                              (5, 10.0, 50.0), (8, 6.0, 20.0)):  # fmt: skip
        checks.append(Check(
            f"ERLE, speech, mu-law, G.168 model {model}, ERL {erl:g} dB, {delay:g} ms delay",
            functools.partial(_speech_erle, model, erl, delay, "ulaw"), _steady, 34.0,
            "dB", True))  # fmt: skip
    checks.append(Check("ERLE, speech, 16-bit linear, model 3, ERL 10 dB",
                        lambda: _speech_erle(3, 10.0, 8.0, "linear"), _steady, 42.0, "dB",
                        True))  # fmt: skip
    for delay in (0.0, 32.0, 64.0):
        checks.append(Check(f"ERLE, speech, mu-law, pure delay {delay:g} ms, ERL 10 dB",
                            functools.partial(_pure_delay, delay), _steady, 34.0, "dB",
                            True))  # fmt: skip
    checks.append(Check("ERLE, speech, bulk delay 150 ms + model 1 (128 ms tail)",
                        lambda: _scenario("bulk", far_speech(SPEECH_S),
                                          [(0.0, EchoPath.g168(1, 150.0, 10.0))]),
                        _steady, 34.0, "dB", True))  # fmt: skip
    checks.append(Check("ERLE, composite source signal, model 1, ERL 10 dB",
                        lambda: _scenario("css", css(SPEECH_S),
                                          [(0.0, EchoPath.g168(1, 5.0, 10.0))]),
                        _steady, 30.0, "dB", True))  # fmt: skip
    return checks


def _convergence_checks() -> list[Check]:
    change_at = 10.0
    return [
        Check("time to 20 dB ERLE from the first far-end speech", lambda: _scenario(
            "conv", far_speech(10.0), [(0.0, EchoPath.g168(1, 5.0, 10.0))]),
            lambda line, out: convergence_s(line, out, 0.0), 1.0, "s", False),
        Check("time to 20 dB ERLE after an echo path change", lambda: _scenario(
            "change", far_speech(20.0), [(0.0, EchoPath.g168(1, 5.0, 10.0)),
                                         (change_at, EchoPath.g168(5, 30.0, 8.0))]),
            lambda line, out: convergence_s(line, out, change_at), 1.0, "s", False),
        Check("residual echo after the echo path opens", lambda: _scenario(
            "open", far_speech(20.0), [(0.0, EchoPath.g168(1, 5.0, 10.0)),
                                       (change_at, EchoPath.none())], noise_dbm0=None),
            lambda line, out: residual_dbm0(line, out, change_at + 0.5), -60.0, "dBm0", False),
    ]  # fmt: skip


def _double_talk(near: NDArray[np.float64], nlp: bool = False) -> Scenario:
    seconds, start = 20.0, 8.0
    return _scenario("double talk" + (" nlp" if nlp else ""), far_speech(seconds),
                     [(0.0, EchoPath.g168(1, 5.0, 10.0))],
                     near=with_near(seconds, start, seconds - 4.0, near))  # fmt: skip


def _caller_dtmf() -> NDArray[np.float64]:
    keys = dtmf_generate("1234567890*#ABCD", 100.0, 100.0, NEAR_DBM0)
    return keys.astype(np.float64)


def _robustness_checks() -> list[Check]:
    silence_s = 120.0
    tones = np.concatenate([tone_generate("us", "dial", 3000), dtmf_generate("5551234", 100.0,
                            100.0, -10.0), tone_generate("us", "busy", 3000)])  # fmt: skip
    return [
        Check("caller's speech in double talk: segmental SNR", lambda: _double_talk(
            near_speech(20.0)), lambda line, out: seg_snr_db(line, out, 8.0, 16.0), 22.0,
            "dB", True),
        Check("caller's DTMF in double talk: segmental SNR", lambda: _double_talk(
            _caller_dtmf()), lambda line, out: seg_snr_db(line, out, 8.0, 16.0), 30.0,
            "dB", True),
        Check("ERLE after double talk ends", lambda: _double_talk(near_speech(20.0)),
              lambda line, out: erle_db(line, out, 16.5), 30.0, "dB", True),
        Check("ERLE on speech after far-end tones and DTMF", lambda: _scenario(
            "tones", _frames_len(np.concatenate([far_speech(5.0), _frames_len(tones),
                                                 far_speech(10.0)])),
            [(0.0, EchoPath.g168(1, 5.0, 10.0))]),
            lambda line, out: erle_db(line, out, line.mic.size / RATE_HZ - 8.0), 30.0, "dB",
            True),
        Check("ERLE in the first second after two minutes of silence", lambda: _scenario(
            "silence", _frames_len(np.concatenate([far_speech(8.0), np.zeros(round(
                silence_s * RATE_HZ), np.int16), far_speech(8.0)])),
            [(0.0, EchoPath.g168(1, 5.0, 10.0))]),
            lambda line, out: erle_db(line, out, 8.0 + silence_s, 9.0 + silence_s), 25.0,
            "dB", True),
        Check("ERLE, far end clipping (+3 dBm0 peaks)", lambda: _scenario(
            "clip", _frames_len(np.clip(far_speech(SPEECH_S, -6.0).astype(np.int32) * 2,
                                        -32124, 32124).astype(np.int16)),
            [(0.0, EchoPath.g168(1, 5.0, 10.0))]), _steady, 25.0, "dB", True),
    ]  # fmt: skip


def _nlp_checks() -> list[Check]:
    cn_dbm0 = -55.0
    return [
        Check("NLP: returned echo, far end alone, quiet line", lambda: _scenario(
            "nlp quiet", far_speech(SPEECH_S), [(0.0, EchoPath.g168(1, 5.0, 10.0))],
            noise_dbm0=None), lambda line, out: output_dbm0(out, STEADY_S), -63.0, "dBm0",
            False, nlp=True),
        Check("NLP: comfort noise minus the line's idle noise (-55 dBm0)", lambda: _scenario(
            "nlp cn", far_speech(SPEECH_S), [(0.0, EchoPath.g168(1, 5.0, 10.0))],
            noise_dbm0=cn_dbm0), lambda line, out: abs(output_dbm0(out, STEADY_S) - cn_dbm0),
            3.0, "dB", False, nlp=True),
        Check("NLP: caller's speech in double talk: segmental SNR", lambda: _double_talk(
            near_speech(20.0), nlp=True), lambda line, out: seg_snr_db(line, out, 8.0, 16.0),
            18.0, "dB", True, nlp=True),
    ]  # fmt: skip


def _added_checks() -> list[Check]:
    """Added with dsp.echo (issue #4): the longest bulk delay the canceller is built for, and
    a G.168 model with its precursor behind it."""
    return [
        Check("ERLE, speech, bulk delay 200 ms + model 5 (128 ms tail)", lambda: _scenario(
            "bulk 200", far_speech(SPEECH_S), [(0.0, EchoPath.g168(5, 200.0, 10.0))]),
            _steady, 34.0, "dB", True),
        Check("ERLE, speech, mu-law, G.168 model 6, ERL 10 dB, 90 ms delay", functools.partial(
            _speech_erle, 6, 10.0, 90.0, "ulaw"), _steady, 34.0, "dB", True),
    ]  # fmt: skip


CHECKS: list[Check] = (
    _erle_checks() + _convergence_checks() + _robustness_checks() + _nlp_checks() + _added_checks()
)
# Reported beside the checks: how close the mu-law line lets any canceller get.
CEILING_SCENARIO = ("ERLE ceiling of a mu-law line (echo / codec noise), model 1, ERL 10 dB",
                    lambda: _speech_erle(1, 10.0, 5.0, "ulaw"))  # fmt: skip
