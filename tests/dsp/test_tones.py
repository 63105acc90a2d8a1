"""dsp.tones: the plans' figures, the generator (frequencies, levels, cadence, streaming), the
kernels against the numpy reference, and the detector: every tone of every plan at -10..-40
dBm0, +-1.5 % off, in white or pink noise at 20 dB SNR and through mu-law; hang-up after
speech; double talk; and no event at all on speech, music or noise."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.g711 import ulaw_decode, ulaw_encode
from dsp.tone_frames import OFFSETS as TRIED_OFFSETS
from dsp.tone_frames import (
    P_FLOOR,
    _classify_kernel,
    _correlate_kernel,
    _fit_kernel,
    _sit_band_kernel,
    _tone_energy_kernel,
    build_frame_tables,
)
from dsp.tone_gen import _segments
from dsp.tone_plans import PLANS, TonePlan, get_plan
from dsp.tones import (
    TONE_NAMES,
    ToneDetected,
    ToneDetector,
    ToneGenerator,
    _detect_kernel,
    generate,
)
from tests.dsp.reference.tones import (
    RefDetector,
    ref_classify,
    ref_correlate,
    ref_fit,
    ref_sit_band,
    ref_synth,
    ref_tone_energy,
)
from tests.signals import (
    HUM_KINDS,
    add_noise,
    all_speech,
    music,
    pink_noise,
    scale_to_dbm0,
    speech,
    speech_names,
    white_noise,
    with_hum,
)

PLAN_NAMES = list(PLANS)
CADENCED = ("ringback", "busy", "reorder")
DIAL_BOUND_MS = 1300  # the brief: dial tone after a 1-1.5 s hold
LEVELS_DBM0 = (-10.0, -25.0, -40.0)  # per frequency, the brief's range
OFFSETS = (0.985, 1.0, 1.015)  # the brief: +-1.5 %
SNR_DB = 20.0


def _events(plan: str | TonePlan, x: NDArray[np.int16], chunk: int = 160) -> list[ToneDetected]:
    det = ToneDetector(plan)
    return [e for i in range(0, x.size, chunk) for e in det.feed(x[i : i + chunk])]


def _bound_ms(plan: TonePlan, tone: str) -> float:
    """The brief's deadline from the tone's first burst: two cadence cycles."""
    if tone == "dial":
        return DIAL_BOUND_MS
    if tone == "sit":
        return sum(plan.sit.send_ms)
    return 2 * sum(plan.tone(tone).cadence_ms)


def _scaled(plan: TonePlan, factor: float) -> TonePlan:
    """The plan with every frequency off by `factor` (what a drifting exchange sends)."""
    tones = tuple(
        dataclasses.replace(t, freqs_hz=tuple(f * factor for f in t.freqs_hz)) for t in plan.tones
    )
    a, b, c = plan.sit.send_hz
    sit = dataclasses.replace(plan.sit, send_hz=(a * factor, b * factor, c * factor))
    return dataclasses.replace(plan, tones=tones, sit=sit)


def _mix(a: NDArray[np.int16], b: NDArray[np.int16] | NDArray[np.float64]) -> NDArray[np.int16]:
    return np.clip(a.astype(np.float64) + b, -32768, 32767).astype(np.int16)


def _impair(x: NDArray[np.int16], kind: str, seed: int = 0) -> NDArray[np.int16]:
    if kind == "white":
        return add_noise(x, SNR_DB, seed)
    if kind == "pink":
        noise = pink_noise(x.size / 8000, 0.0, seed).astype(np.float64)
        power = float(np.mean(x.astype(np.float64) ** 2))
        return _mix(x, noise * np.sqrt(power / 10 ** (SNR_DB / 10) / np.mean(noise**2)))
    if kind == "ulaw":
        return ulaw_decode(ulaw_encode(x))
    return x


def _tone_at(plan: TonePlan, tone: str, ms: float, level: float | None) -> NDArray[np.int16]:
    if tone == "sit":
        return generate(plan, tone, ms)  # SIT is sent at one level, -24 dBm0
    return generate(plan, tone, ms, level_dbm0=level)


# --- plans ------------------------------------------------------------------------------


def test_plans_carry_the_standard_figures() -> None:
    def table(plan: str) -> dict[str, tuple[tuple[float, ...], tuple[int, ...]]]:
        return {t.name: (t.freqs_hz, t.cadence_ms) for t in PLANS[plan].tones}

    assert table("us") == {  # Precise Tone Plan
        "dial": ((350.0, 440.0), ()),
        "ringback": ((440.0, 480.0), (2000, 4000)),
        "busy": ((480.0, 620.0), (500, 500)),
        "reorder": ((480.0, 620.0), (250, 250)),
    }
    assert table("uk") == {  # BT SIN 350
        "dial": ((350.0, 440.0), ()),
        "ringback": ((400.0, 450.0), (400, 200, 400, 2000)),
        "busy": ((400.0,), (375, 375)),
        "reorder": ((400.0,), (400, 350, 225, 525)),
    }
    assert table("de") == {  # E.180 Suppl. 2, Germany
        "dial": ((425.0,), ()),
        "ringback": ((425.0,), (1000, 4000)),
        "busy": ((425.0,), (480, 480)),
        "reorder": ((425.0,), (240, 240)),
    }
    assert table("etsi") == {  # TR 101 041 / ES 201 970
        "dial": ((425.0,), ()),
        "ringback": ((425.0,), (1000, 4000)),
        "busy": ((425.0,), (500, 500)),
        "reorder": ((425.0,), (250, 250)),
    }
    assert [t.levels_dbm0 for t in PLANS["us"].tones] == [(-13.0,) * 2, (-19.0,) * 2] + [
        (-24.0,) * 2
    ] * 2
    assert PLANS["us"].sit.bands_hz == ((913.8, 985.2), (1370.6, 1428.5), (1776.7,))  # Telcordia
    assert PLANS["us"].sit.send_ms == (274, 274, 380)
    for name in ("uk", "de", "etsi"):  # E.180: 950/1400/1800 Hz, 330 +-70 ms, -24 dBm0
        sit = PLANS[name].sit
        assert sit.bands_hz == ((950.0,), (1400.0,), (1800.0,))
        assert (sit.segment_min_ms, sit.segment_max_ms, sit.level_dbm0) == (260.0, 400.0, -24.0)
    for plan in PLANS.values():
        assert sorted(t.name for t in plan.tones) == sorted(TONE_NAMES[:4])
        assert all(len(t.freqs_hz) == len(t.levels_dbm0) for t in plan.tones)


def test_unknown_names_are_input_errors() -> None:
    with pytest.raises(DspInputError, match="unknown tone plan 'fr'"):
        ToneDetector("fr")
    with pytest.raises(DspInputError, match="tone 'howler' is not one of"):
        ToneGenerator("us", "howler")
    with pytest.raises(DspInputError, match="sample_rate 16000 Hz"):
        ToneDetector("us", sample_rate=16000)
    with pytest.raises(DspInputError, match="wants a 1-D int16 array"):
        ToneDetector("us").feed(np.zeros(160, np.float32))
    with pytest.raises(DspInputError, match="duration_ms must be >= 0"):
        generate("us", "dial", -1.0)
    with pytest.raises(DspInputError, match="n_samples must be >= 0"):
        ToneGenerator("us", "dial").read(-1)
    bad = dataclasses.replace(PLANS["us"].tone("busy"), cadence_ms=(500, 500, 500))
    with pytest.raises(DspInputError, match="cadence"):
        ToneDetector(dataclasses.replace(PLANS["us"], tones=(bad,)))


# --- generator --------------------------------------------------------------------------


def _fit_levels(y: NDArray[np.int16], freqs_hz: tuple[float, ...]) -> tuple[list[float], float]:
    """Least-squares levels (dBm0) of sinusoids at `freqs_hz`, and the share of y they explain."""
    n = np.arange(y.size)
    cols = [g(2 * np.pi * f * n / 8000) for f in freqs_hz for g in (np.cos, np.sin)]
    b = np.column_stack(cols)
    x = y.astype(np.float64)
    coef = np.linalg.lstsq(b, x, rcond=None)[0]
    amps = np.hypot(coef[0::2], coef[1::2])
    fitted = b @ coef
    return [20 * np.log10(a / 32768) + 3.14 for a in amps], float(fitted @ fitted / (x @ x))


@pytest.mark.parametrize(("plan", "tone"), list(itertools.product(PLAN_NAMES, TONE_NAMES[:4])))
def test_generated_bursts_have_the_plan_frequencies_levels_and_cadence(
    plan: str, tone: str
) -> None:
    spec = PLANS[plan].tone(tone)
    cadence = spec.cadence_ms * 2 or (1000, 0, 1000, 0)  # two cycles, or 2 s of steady tone
    x = generate(plan, tone, sum(cadence))
    ramp = 16  # 2 ms
    start = 0
    for i, ms in enumerate(cadence):
        seg = x[start : start + ms * 8]
        if i % 2:
            assert not seg.any(), f"{tone} pause {i} is not silent"
        else:
            levels, share = _fit_levels(seg[ramp:-ramp], spec.freqs_hz)
            print(f"{plan} {tone} burst {i}: {levels} dBm0, fit {share:.6f}")
            assert share > 0.9999
            assert levels == pytest.approx(list(spec.levels_dbm0), abs=0.02)
        start += ms * 8
    louder = generate(plan, tone, 300, level_dbm0=-10.0)
    assert _fit_levels(louder[ramp:1600], spec.freqs_hz)[0] == pytest.approx(  # first 200 ms
        [-10.0] * len(spec.freqs_hz), abs=0.02
    )


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_generated_sit_is_three_rising_segments_then_silence(plan: str) -> None:
    sit = PLANS[plan].sit
    x = generate(plan, "sit", sum(sit.send_ms) + sit.silence_ms)
    start = 0
    for f, ms in zip(sit.send_hz, sit.send_ms, strict=True):
        levels, share = _fit_levels(x[start + 16 : start + ms * 8 - 16], (f,))
        print(f"{plan} SIT {f} Hz {ms} ms: {levels[0]:.3f} dBm0, fit {share:.6f}")
        assert share > 0.9999
        assert levels[0] == pytest.approx(-24.0, abs=0.02)
        start += ms * 8
    assert not x[start:].any()


@given(
    plan=st.sampled_from(PLAN_NAMES),
    tone=st.sampled_from(TONE_NAMES),
    sizes=st.lists(st.integers(0, 5000), max_size=12),
)
def test_generator_streams_the_same_samples_for_any_chunking(
    plan: str, tone: str, sizes: list[int]
) -> None:
    gen = ToneGenerator(plan, tone)
    parts = [gen.read(n) for n in sizes] + [gen.frame()]
    whole = generate(plan, tone, (sum(sizes) + 160) / 8)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rate_hz", [8000, 16000, 48000])
@pytest.mark.parametrize("tone", TONE_NAMES)
def test_synth_kernel_matches_reference(tone: str, rate_hz: int) -> None:
    for plan in PLANS.values():
        freqs, amps, lengths, masks = _segments(plan, tone, rate_hz, None)
        n = 7 * rate_hz
        ramp = round(0.002 * rate_hz)
        got = generate(plan, tone, 7000, rate_hz)
        want = ref_synth(freqs, amps, lengths, masks, ramp, n, rate_hz)
        diff = int(np.max(np.abs(got.astype(int) - want)))
        print(f"{plan.name} {tone} @ {rate_hz} Hz: max diff {diff} LSB (<= 1)")
        assert diff <= 1


def test_generator_frames_and_reset() -> None:
    gen = ToneGenerator("us", "busy", sample_rate=16000)
    first = gen.frame()
    assert first.shape == (320,)
    assert first.dtype == np.int16
    gen.reset()
    np.testing.assert_array_equal(gen.frame(), first)
    assert generate("us", "busy", 0).shape == (0,)


# --- kernels against the reference ------------------------------------------------------


def _probe_frames(plan: TonePlan) -> list[NDArray[np.int16]]:
    """Frames that exercise every branch: tones (clean, off-frequency, partial, under speech
    or noise), SIT, speech, noise, silence, full scale."""
    rng = np.random.default_rng(7)
    sp = scale_to_dbm0(speech("en_us_female"), -20)
    signals = [_tone_at(plan, t, 2000, -20.0) for t in TONE_NAMES]
    signals += [_tone_at(_scaled(plan, 1.02), "busy", 1000, -44.0)]
    signals += [_mix(_tone_at(plan, "dial", 1000, -20.0), sp[8000:16000].astype(np.float64) * 0.4)]
    signals += [sp[:8000], white_noise(0.5, -30, 1), np.zeros(800, np.int16)]
    signals += [rng.integers(-32768, 32768, 800).astype(np.int16)]
    signals += [np.tile(np.array([32767, -32768], np.int16), 400)]
    frames = []
    for x in signals:
        frames += [x[i : i + 160] for i in range(37, x.size - 160, 97)]  # straddle bursts too
    return frames


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_correlate_and_fit_kernels_match_reference(plan: str) -> None:
    t = build_frame_tables(get_plan(plan))
    corr = np.zeros(t.basis.shape[1])
    amps = np.zeros(4)
    worst_corr = worst_fit = 0.0
    for k, frame in enumerate(_probe_frames(get_plan(plan))):
        energy = _correlate_kernel(frame, 0, t.basis, 0.0, corr)
        want_corr, want_energy = ref_correlate(frame, t.basis)
        assert energy == want_energy
        worst_corr = max(worst_corr, float(np.max(np.abs(corr - want_corr))))
        corr_before = corr.copy()
        assert _correlate_kernel(frame, 0, t.basis, energy + 1.0, corr) == energy
        np.testing.assert_array_equal(corr, corr_before)  # below the floor: left alone
        s = k % len(t.signatures)
        mixes = list(itertools.product(TRIED_OFFSETS, repeat=len(t.signatures[s])))
        c = k % len(mixes)
        fit = _fit_kernel(corr, t.sig_cols[s, c], t.sig_ginv[s, c], len(t.signatures[s]), amps)
        freqs = [f * o for f, o in zip(t.signatures[s], mixes[c], strict=True)]
        want_fit, want_amps = ref_fit(frame, freqs)
        worst_fit = max(worst_fit, abs(fit - want_fit) / max(want_energy, 1.0))
        np.testing.assert_allclose(amps[: want_amps.size], want_amps, rtol=1e-6, atol=1e-6)
    print(f"{plan}: worst |corr| diff {worst_corr:.2e}, fit diff / energy {worst_fit:.2e}")
    assert worst_corr < 1e-6
    assert worst_fit < 1e-9


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_classify_and_sit_band_kernels_match_reference(plan: str) -> None:
    p = get_plan(plan)
    t = build_frame_tables(p)
    corr = np.zeros(t.basis.shape[1])
    amps = np.zeros(4)
    info = np.zeros(3)
    bins = RefDetector(p).bins
    worst_level = 0.0
    named = 0
    for k, frame in enumerate(_probe_frames(p)):
        energy = _correlate_kernel(frame, 0, t.basis, t.params[P_FLOOR], corr)
        hold = (k // 3) % (len(t.signatures) + 1) - 1  # no hold, then each signature held
        hold_level = -20.0 + (k % 5)
        args = (t.sig_cols, t.sig_ginv, t.sig_shape, t.params, hold, hold_level, amps, info)
        raw = _classify_kernel(corr, energy, *args)
        want = ref_classify(frame, list(t.signatures), hold, hold_level)
        assert (raw, round(info[1], 9)) == (want[0], round(want[2], 9))
        worst_level = max(worst_level, abs(info[0] - want[1]))
        band = _sit_band_kernel(
            corr, energy, t.sit_cols, t.sit_ginv, t.sit_nbins, t.params, amps, info
        )
        want_band, want_level = ref_sit_band(frame, bins)
        assert band == want_band
        worst_level = max(worst_level, abs(info[2] - want_level))
        named += (raw >= 0) + (band >= 0)
    print(f"{plan}: {named} frames named, worst level diff {worst_level:.2e} dB")
    assert worst_level < 1e-6
    assert named > 50  # the probe frames do reach the named branches


def _as_tuples(events: list[ToneDetected]) -> list[tuple[str, int, int, float, tuple[int, ...]]]:
    return [(e.tone, e.at_ms, e.onset_ms, e.level_dbm0, e.segments_ms) for e in events]


def _ref_events(
    plan: str, x: NDArray[np.int16]
) -> list[tuple[str, int, int, float, tuple[int, ...]]]:
    ref = RefDetector(get_plan(plan))
    return [(t, at, on, round(lv, 1), s) for t, at, on, lv, s in ref.feed(x)]


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_detector_matches_reference_on_a_call(plan: str) -> None:
    parts = [scale_to_dbm0(speech("fr_male"), -20)[:6000]]
    for tone, ms in (("dial", 1500), ("busy", 2500), ("reorder", 2500), ("sit", 1200)):
        parts += [_tone_at(PLANS[plan], tone, ms, -30.0), np.zeros(16000, np.int16)]
    x = add_noise(np.concatenate(parts), 25, 3)
    got = _as_tuples(_events(plan, x))
    print(plan, got)
    assert [e[0] for e in got] == ["dial", "busy", "reorder", "sit"]
    assert got == _ref_events(plan, x)


@settings(max_examples=30)
@given(
    plan=st.sampled_from(PLAN_NAMES),
    tone=st.sampled_from(CADENCED),
    jitter=st.lists(st.floats(0.7, 1.3), min_size=9, max_size=9),
    cut_ms=st.integers(0, 400),
    level=st.floats(-44, -8),
)
def test_detector_matches_reference_on_jittered_cadences(
    plan: str, tone: str, jitter: list[float], cut_ms: int, level: float
) -> None:
    """A cadence with every segment stretched by 0.7..1.3 (around the +-15 % windows) and
    joined `cut_ms` into its first burst."""
    p = PLANS[plan]
    spec = p.tone(tone)
    steady = dataclasses.replace(p, tones=(dataclasses.replace(spec, cadence_ms=()),))
    gen = ToneGenerator(steady, tone, level_dbm0=level)
    parts = []
    for i, j in enumerate(jitter):
        n = round(spec.cadence_ms[i % len(spec.cadence_ms)] * j * 8)
        parts.append(gen.read(n) if i % 2 == 0 else np.zeros(n, np.int16))
    x = np.concatenate(parts)[cut_ms * 8 :]
    got = _as_tuples(_events(plan, x))
    assert got == _ref_events(plan, x)
    if all(0.87 <= j <= 1.13 for j in jitter):  # inside the +-15 % tolerance: named, once
        assert [e[0] for e in got] == [tone]


@given(cuts=st.lists(st.integers(0, 60000), max_size=10), plan=st.sampled_from(PLAN_NAMES))
def test_any_split_gives_the_same_events(cuts: list[int], plan: str) -> None:
    x = np.concatenate([generate(plan, "busy", 2500), generate(plan, "dial", 1500)])
    det = ToneDetector(plan)
    bounds = [0, *sorted(c % x.size for c in cuts), x.size]
    split = [e for a, b in itertools.pairwise(bounds) for e in det.feed(x[a:b])]
    assert split == _events(plan, x, chunk=x.size)
    assert [e.tone for e in split] == ["busy", "dial"]


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tone_energy_kernel_matches_reference(plan: str) -> None:
    p = get_plan(plan)
    t = build_frame_tables(p)
    corr = np.zeros(t.basis.shape[1])
    probes = _probe_frames(p)
    probes += [with_hum(f, kind, -20.0) for f, kind in zip(probes, itertools.cycle(HUM_KINDS))]
    worst = 0.0
    for k, frame in enumerate(probes):
        energy = _correlate_kernel(frame, 0, t.basis, 0.0, corr)
        s = k % len(t.signatures)
        mixes = list(itertools.product(TRIED_OFFSETS, repeat=len(t.signatures[s])))
        c = k % len(mixes)
        got = _tone_energy_kernel(corr, t.sig_cols[s, c], t.sig_ginv[s, c], len(t.signatures[s]))
        freqs = [f * o for f, o in zip(t.signatures[s], mixes[c], strict=True)]
        worst = max(worst, abs(got - ref_tone_energy(frame, freqs)) / max(energy, 1.0))
    print(f"{plan}: worst tone energy diff / frame energy {worst:.2e} (bound 1e-9)")
    assert worst < 1e-9


@pytest.mark.parametrize(("plan", "kind"), list(zip(PLAN_NAMES, HUM_KINDS, strict=True)))
def test_detector_matches_reference_over_hum(plan: str, kind: str) -> None:
    parts = [scale_to_dbm0(speech("de_female"), -20)[:6000]]
    for tone, ms in (("dial", 1500), ("busy", 2500), ("reorder", 2500), ("sit", 1200)):
        parts += [_tone_at(PLANS[plan], tone, ms, -30.0), np.zeros(16000, np.int16)]
    x = with_hum(add_noise(np.concatenate(parts), 25, 3), kind, -25.0)
    got = _as_tuples(_events(plan, x))
    print(plan, kind, got)
    assert [e[0] for e in got] == ["dial", "busy", "reorder", "sit"]
    assert got == _ref_events(plan, x)


# --- detection --------------------------------------------------------------------------


def _run_ms(plan: TonePlan, tone: str) -> int:
    return int(_bound_ms(plan, tone)) + 1500  # past the deadline, short of a third cycle


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_every_tone_is_named_once_within_two_cycles(plan: str) -> None:
    p = PLANS[plan]
    for tone in TONE_NAMES:
        events = _events(plan, _tone_at(p, tone, 3 * _run_ms(p, tone), None))
        delay = events[0].at_ms if events else None
        print(f"{plan} {tone}: named after {delay} ms (bound {_bound_ms(p, tone):.0f})")
        assert [e.tone for e in events] == [tone]
        assert events[0].onset_ms == 0
        assert events[0].at_ms <= _bound_ms(p, tone)
        want = -24.0 if tone == "sit" else np.mean(p.tone(tone).levels_dbm0)
        assert events[0].level_dbm0 == pytest.approx(want, abs=0.2)


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tones_are_named_at_any_level_offset_noise_and_through_mu_law(plan: str) -> None:
    """-10/-25/-40 dBm0 per frequency x 0.985/1/1.015 x white, pink (20 dB SNR), mu-law."""
    worst: dict[str, int] = {}
    seed = 0
    for tone, level, factor in itertools.product(TONE_NAMES, LEVELS_DBM0, OFFSETS):
        p = _scaled(PLANS[plan], factor)
        clean = _tone_at(p, tone, _run_ms(p, tone), level)
        for kind in ("white", "pink", "ulaw"):
            seed += 1
            events = _events(plan, _impair(clean, kind, seed))
            where = f"{plan} {tone} {level} dBm0 x{factor} {kind}"
            assert [e.tone for e in events] == [tone], where
            assert events[0].at_ms <= _bound_ms(p, tone), where
            worst[tone] = max(worst.get(tone, 0), events[0].at_ms)
    print(f"{plan}: slowest decision per tone (ms) {worst}")


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_a_cadence_joined_mid_cycle_is_named_within_two_cycles_of_a_whole_burst(
    plan: str,
) -> None:
    p = PLANS[plan]
    for tone in CADENCED:
        cadence = p.tone(tone).cadence_ms
        cycle = sum(cadence)
        for join_ms in range(0, cycle, max(cycle // 7, 20)):
            x = generate(plan, tone, 3 * cycle + join_ms)[join_ms * 8 :]
            events = _events(plan, x)
            # the first burst that starts after the join
            starts = np.cumsum((0, *cadence))[0:-1:2]
            whole = min(s + k * cycle for k in (0, 1) for s in starts if s + k * cycle >= join_ms)
            first_whole = whole - join_ms
            assert [e.tone for e in events] == [tone], f"{plan} {tone} joined at {join_ms} ms"
            print(f"{plan} {tone} joined {join_ms} ms in: named at {events[0].at_ms} ms")
            assert events[0].at_ms - first_whole <= 2 * cycle


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_far_end_hang_up_after_speech_is_named(plan: str) -> None:
    p = PLANS[plan]
    for name, tone in zip(speech_names(), itertools.cycle(("busy", "reorder")), strict=False):
        talk = scale_to_dbm0(speech(name), -15)
        x = np.concatenate([talk, _tone_at(p, tone, _run_ms(p, tone), None)])
        events = _events(plan, x)
        assert [e.tone for e in events] == [tone], f"{plan}: {name} then {tone}"
        delay = events[0].at_ms - talk.size // 8
        print(f"{plan}: {name} then {tone}: named {delay} ms into the tone")
        assert 0 < delay <= _bound_ms(p, tone)


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tone_under_speech_is_named_once(plan: str) -> None:
    """Double talk: speech 10 dB and 6 dB under the tone, for the whole tone."""
    p = PLANS[plan]
    for tone, below_db in itertools.product(TONE_NAMES[:4], (10.0, 6.0)):
        x = _tone_at(p, tone, 14000, None)
        level = float(np.mean(p.tone(tone).levels_dbm0))
        talk = np.resize(scale_to_dbm0(all_speech(), level - below_db), x.size).astype(np.int16)
        events = _events(plan, _mix(x, talk))
        print(
            f"{plan} {tone} with speech {below_db} dB under: {[(e.tone, e.at_ms) for e in events]}"
        )
        assert [e.tone for e in events] == [tone]


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_each_onset_is_reported_once(plan: str) -> None:
    p = PLANS[plan]
    long_busy = _events(plan, generate(plan, "busy", 60_000))
    assert [e.tone for e in long_busy] == ["busy"]
    assert [e.tone for e in _events(plan, generate(plan, "sit", 20_000))] == ["sit"]
    pause = np.zeros(6000 * 8, np.int16)  # past 3 of the longest busy pauses
    seq = [generate(plan, "busy", 3000), pause, generate(plan, "busy", 3000), pause]
    seq += [generate(plan, "dial", 3000), generate(plan, "reorder", 3000)]
    seq += [generate(plan, "dial", 3000), pause, generate(plan, "sit", 1500)]
    events = _events(plan, np.concatenate(seq))
    print(plan, [(e.tone, e.onset_ms, e.at_ms) for e in events])
    assert [e.tone for e in events] == ["busy", "busy", "dial", "reorder", "dial", "sit"]
    assert p.tone("busy").cadence_ms  # the pause above is sized for a cadenced busy tone


def test_read_only_input_gives_the_same_events() -> None:
    x = np.concatenate([generate("us", "busy", 2500), generate("us", "dial", 1500)])
    frozen = np.frombuffer(x.tobytes(), np.int16)
    assert not frozen.flags.writeable
    assert ToneDetector("us").feed(frozen) == _events("us", x, chunk=x.size)
    assert all(sig[0].mutable for sig in _detect_kernel.signatures)  # no second compile


def test_reset_forgets_and_restarts_time() -> None:
    det = ToneDetector("de")
    det.feed(generate("de", "busy", 1500))
    det.reset()
    events = det.feed(generate("de", "busy", 2500))
    assert [(e.tone, e.onset_ms) for e in events] == [("busy", 0)]


def test_foreign_tones_are_never_named_as_another_tone() -> None:
    for own, other in itertools.permutations(PLAN_NAMES, 2):
        for tone in TONE_NAMES[:4]:
            events = _events(own, generate(other, tone, 14000))
            assert {e.tone for e in events} <= {tone}, f"{other} {tone} heard by {own}"


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tones_are_named_over_hum_or_dc_offset(plan: str) -> None:
    """Every tone at the plan's level, hum at -20 dBm0 (or DC 3000) from the stream's start
    or 1 s before the tone: named as on a clean line. Before dsp.hum busy and reorder were
    missed from -25 dBm0 of hum or a DC offset of 1000."""
    p = PLANS[plan]
    worst_db = 0.0
    for tone, kind, lead_ms in itertools.product(TONE_NAMES, HUM_KINDS, (0, 1000)):
        x = np.concatenate(
            [np.zeros(lead_ms * 8, np.int16), _tone_at(p, tone, _run_ms(p, tone), None)]
        )
        events = _events(plan, with_hum(x, kind, -20.0))
        where = f"{plan} {tone} over {kind}, hum from {lead_ms} ms before"
        assert [e.tone for e in events] == [tone], where
        assert events[0].at_ms - lead_ms <= _bound_ms(p, tone), where
        want = -24.0 if tone == "sit" else float(np.mean(p.tone(tone).levels_dbm0))
        worst_db = max(worst_db, abs(events[0].level_dbm0 - want))
    print(f"{plan}: every tone named in time over all hum; worst level error {worst_db:.1f} dB")
    assert worst_db <= 0.2


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tones_10_db_under_the_hum_are_named(plan: str) -> None:
    p = PLANS[plan]
    for tone, kind in itertools.product(("busy", "reorder"), HUM_KINDS):
        x = with_hum(_tone_at(p, tone, _run_ms(p, tone), -30.0), kind, -20.0)
        assert [e.tone for e in _events(plan, x)] == [tone], f"{plan} {tone} -30 dBm0, {kind}"
    print(f"{plan}: busy and reorder at -30 dBm0 named under every hum at -20 dBm0")


# --- silence on everything else ---------------------------------------------------------


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_no_event_on_any_speech_clip(plan: str) -> None:
    checked_s = 0.0
    for name in speech_names():
        for level in (-10.0, -20.0, -30.0):
            x = scale_to_dbm0(speech(name), level)
            for y in (x, ulaw_decode(ulaw_encode(x))):
                assert _events(plan, y) == [], f"{plan}: {name} at {level} dBm0"
                checked_s += y.size / 8000
    for level in (-10.0, -20.0, -30.0):
        x = scale_to_dbm0(all_speech(), level)
        assert _events(plan, x) == [], f"{plan}: all speech at {level} dBm0"
        checked_s += x.size / 8000
    print(f"{plan}: 0 events in {checked_s:.0f} s of speech (bound 0)")


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_no_event_on_music_or_noise(plan: str) -> None:
    for seed in range(6):
        assert _events(plan, music(30, -18 + 4 * (seed % 3), seed)) == [], f"music seed {seed}"
    for seed in range(2):
        assert _events(plan, white_noise(20, -30, seed)) == []
        assert _events(plan, pink_noise(20, -20, seed)) == []
    print(f"{plan}: 0 events in 180 s of music and 80 s of noise (bound 0)")


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_no_event_on_speech_or_music_over_hum(plan: str) -> None:
    checked_s = 0.0
    sources = {n: speech(n) for n in speech_names()} | {"music": music(30, -18)}
    for (name, pcm), level, kind in itertools.product(
        sources.items(), (-10.0, -20.0, -30.0), HUM_KINDS
    ):
        x = with_hum(scale_to_dbm0(pcm, level), kind, -20.0)
        assert _events(plan, x) == [], f"{plan}: {name} at {level} dBm0 over {kind}"
        checked_s += x.size / 8000
    print(f"{plan}: 0 events in {checked_s:.0f} s of speech and music over hum (bound 0)")
