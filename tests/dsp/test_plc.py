"""Tests of `dsp.plc`: kernels against the numpy reference, known answers on periodic signals,
no clicks at loss edges, the fade to exact silence, saturation, and PESQ against two baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.plc import (
    DELAY_SAMPLES,
    HISTORY_SAMPLES,
    SILENT_AFTER_SAMPLES,
    Concealer,
    _fade_gain_kernel,
    _find_pitch_kernel,
)
from tests.bench.plc import (
    PATTERNS,
    conceal_half_repeat,
    conceal_plc,
    conceal_zero_fill,
    format_table,
    measure_pattern,
)
from tests.dsp.reference.plc import RefState, ref_fade_gain, ref_find_pitch, ref_good, ref_lost
from tests.signals import frames, speech, speech_names

F = 160
PESQ_SEEDS = 3  # 6 clips x 3 masks per pattern: ~270 PESQ calls, about 10 s
EDGE_BOUND = 1.25  # speech: edge jump / the original's local max jump (measured 1.03)
TONE_EDGE_BOUND = 1.1  # tones: edge jump / the tone's own jump (measured 1.03)


def harmonic(period: int, n: int, amplitude: float = 8000.0) -> NDArray[np.int16]:
    """A voiced-like signal of exactly `period` samples: 6 harmonics with 1/h amplitudes."""
    t = np.arange(n)
    x: NDArray[np.float64] = np.sum(
        [np.sin(2 * np.pi * h * t / period + h) / h for h in range(1, 7)], axis=0
    )
    peak = float(np.max(np.abs(x)))
    out: NDArray[np.int16] = np.round(amplitude * x / peak).astype(np.int16)
    return out


def run(plc: Concealer, pcm: NDArray[np.int16], mask: NDArray[np.bool_]) -> NDArray[np.int16]:
    """Frames of `pcm` through `plc` (lost where `mask`), realigned by the delay."""
    n = plc.frame_samples
    parts = [plc.lost() if m else plc.good(f) for f, m in zip(frames(pcm, n), mask, strict=True)]
    parts.append(plc.good(np.zeros(n, np.int16)))
    return np.concatenate(parts)[DELAY_SAMPLES : DELAY_SAMPLES + pcm.size]


def max_jump(x: NDArray[np.int16]) -> int:
    return int(np.max(np.abs(np.diff(x.astype(np.int64)))))


def loss_edges(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first lost sample, first sample after the loss) of every burst."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1) * F, np.flatnonzero(d == -1) * F, strict=True))


histories = hnp.arrays(np.int16, HISTORY_SAMPLES, elements=st.integers(-32768, 32767))


@given(history=histories)
def test_find_pitch_kernel_matches_reference_on_random_input(history: NDArray[np.int16]) -> None:
    h = history.astype(np.float64)
    assert _find_pitch_kernel(h) == ref_find_pitch(h)


def test_find_pitch_kernel_matches_reference_on_speech_and_edge_input() -> None:
    cases = [
        speech(n)[i : i + HISTORY_SAMPLES] for n in speech_names() for i in range(0, 43000, 397)
    ]
    cases += [np.zeros(HISTORY_SAMPLES, np.int16), np.full(HISTORY_SAMPLES, -32768, np.int16)]
    cases.append(np.where(np.arange(HISTORY_SAMPLES) % 2, 32767, -32768).astype(np.int16))
    periods = [_find_pitch_kernel(c.astype(np.float64)) for c in cases]
    assert periods == [ref_find_pitch(c.astype(np.float64)) for c in cases]
    assert min(periods) >= 40
    assert max(periods) <= 120


@pytest.mark.parametrize("period", [40, 57, 64, 80, 101, 120])
def test_find_pitch_returns_a_multiple_of_the_period(period: int) -> None:
    found = _find_pitch_kernel(harmonic(period, HISTORY_SAMPLES).astype(np.float64))
    print(f"period {period}: found {found}")
    assert found % period == 0
    assert 40 <= found <= 120


def test_fade_gain_matches_reference_and_the_appendix_then_floor() -> None:
    k = np.arange(0, 2 * SILENT_AFTER_SAMPLES)
    kernel = np.array([_fade_gain_kernel(int(i)) for i in k])
    np.testing.assert_array_equal(kernel, ref_fade_gain(k))
    # App. I: 1 for 10 ms, then -20 % per 10 ms; our floor 0.2 from 50 to 150 ms; 0 at 200 ms.
    expected = {0: 1.0, 79: 1.0, 160: 0.8, 240: 0.6, 400: 0.2, 800: 0.2, 1199: 0.2, 1400: 0.1}
    for i, g in expected.items():
        assert kernel[i] == pytest.approx(g, abs=1e-12)
    assert np.all(kernel[SILENT_AFTER_SAMPLES:] == 0.0)
    assert np.all(np.diff(kernel) <= 0.0)


@given(
    frame_samples=st.sampled_from([80, 160, 240]),
    plan=st.lists(st.booleans(), min_size=1, max_size=24),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0, 1, 300, 32768]),
)
def test_concealer_matches_reference_bit_exact(
    frame_samples: int, plan: list[bool], seed: int, scale: int
) -> None:
    rng = np.random.default_rng(seed)
    plc, ref = Concealer(frame_samples), RefState()
    for lost in plan:
        if lost:
            np.testing.assert_array_equal(plc.lost(), ref_lost(ref, frame_samples))
        else:
            x = np.clip(rng.normal(0, scale, frame_samples), -32768, 32767).astype(np.int16)
            np.testing.assert_array_equal(plc.good(x), ref_good(ref, x))


def test_concealer_matches_reference_on_speech() -> None:
    for c, name in enumerate(speech_names()):
        pcm = speech(name)
        for p in (PATTERNS[2], PATTERNS[4]):
            mask = p.mask(-(-pcm.size // F), (7, c, 0))
            plc, ref = Concealer(), RefState()
            for f, m in zip(frames(pcm), mask, strict=True):
                got, want = (plc.lost(), ref_lost(ref, F)) if m else (plc.good(f), ref_good(ref, f))
                np.testing.assert_array_equal(got, want)


def test_good_frames_come_out_unchanged_and_delayed() -> None:
    pcm = speech("fr_male")
    out = run(Concealer(), pcm, np.zeros(-(-pcm.size // F), np.bool_))
    np.testing.assert_array_equal(out, pcm)


def test_periodic_signal_is_continued_closely() -> None:
    pcm = harmonic(80, 40 * F)
    mask = np.zeros(40, np.bool_)
    mask[[10, 20, 21]] = True  # one 20 ms loss, one 40 ms loss
    out = run(Concealer(), pcm, mask)
    for start, n in ((10 * F, F), (20 * F, 2 * F)):
        first_10_ms = slice(start, start + 80)
        err = out[first_10_ms].astype(float) - pcm[first_10_ms]
        snr_db = 10 * np.log10(np.sum(pcm[first_10_ms].astype(float) ** 2) / max(np.sum(err**2), 1))
        print(f"loss at {start}: SNR over the first 10 ms {snr_db:.1f} dB (bound 30)")
        assert snr_db > 30.0
        after = slice(start + n + 80, start + n + F)  # the end cross-fade is over by then
        np.testing.assert_array_equal(out[after], pcm[after])


@pytest.mark.parametrize("tone_hz", [97.3, 8000 / 70, 173.0])
def test_no_clicks_on_a_tone_where_the_baselines_click(tone_hz: float) -> None:
    t = np.arange(60 * F)
    pcm = np.round(10000 * np.sin(2 * np.pi * tone_hz * t / 8000)).astype(np.int16)
    mask = np.zeros(60, np.bool_)
    mask[[10, 20, 21, *range(30, 42)]] = True  # 20, 40 and 240 ms losses
    bound = TONE_EDGE_BOUND * max_jump(pcm)
    outputs = {
        "plc": run(Concealer(), pcm, mask),
        "zero": conceal_zero_fill(pcm, mask),
        "half": conceal_half_repeat(pcm, mask),
    }
    worst = {}
    for name, out in outputs.items():
        worst[name] = max(max_jump(out[a - 40 : a + 90]) for e in loss_edges(mask) for a in e)
        print(f"{tone_hz:.1f} Hz {name}: worst edge jump {worst[name]}, bound {bound:.0f}")
    assert worst["plc"] <= bound
    assert worst["zero"] > bound
    assert worst["half"] > bound


def edge_ratios(
    pcm: NDArray[np.int16], out: NDArray[np.int16], mask: NDArray[np.bool_]
) -> list[float]:
    """Largest jump at each loss start and end over the original's largest jump near it: the
    48.75 ms the repetition is made from, and 50 ms past the edge."""
    ratios = []
    for start, end in loss_edges(mask):
        if start < HISTORY_SAMPLES or end + 400 > pcm.size:
            continue
        local = max(max_jump(pcm[start - HISTORY_SAMPLES : start + 400]), 1)
        ratios.append(max_jump(out[start - DELAY_SAMPLES : start + 10]) / local)
        local = max(local, max_jump(pcm[end - 400 : end + 400]))
        ratios.append(max_jump(out[end - 1 : end + 80]) / local)
    return ratios


def test_no_clicks_at_loss_edges_on_speech() -> None:
    ratios: dict[str, list[float]] = {"plc": [], "zero": []}
    for c, name in enumerate(speech_names()):
        pcm = speech(name)
        for p in PATTERNS:
            mask = p.mask(-(-pcm.size // F), (0, c, PATTERNS.index(p)))
            ratios["plc"] += edge_ratios(pcm, conceal_plc(pcm, mask), mask)
            ratios["zero"] += edge_ratios(pcm, conceal_zero_fill(pcm, mask), mask)
    for name, r in ratios.items():
        print(
            f"{name}: {len(r)} edges, worst jump / local max jump {max(r):.2f} (bound {EDGE_BOUND})"
        )
    assert max(ratios["plc"]) <= EDGE_BOUND
    assert max(ratios["zero"]) > EDGE_BOUND  # the measure does see a hard edge


def test_long_loss_stays_under_the_fade_and_ends_in_exact_silence() -> None:
    pcm = speech("en_us_male")
    mask = np.zeros(-(-pcm.size // F), np.bool_)
    first, count = 100, 15  # a 300 ms loss
    mask[first : first + count] = True
    out = run(Concealer(), pcm, mask).astype(np.float64)
    start = first * F
    peak = np.max(np.abs(pcm[start - HISTORY_SAMPLES : start]))
    k = np.arange(count * F)
    envelope = ref_fade_gain(k) * peak + 0.5
    worst = np.max(np.abs(out[start : start + k.size]) - envelope)
    print(f"history peak {peak}; worst excess over the fade envelope {worst:.2f} (bound 0)")
    assert worst <= 0.0
    silent = out[start + SILENT_AFTER_SAMPLES : start + k.size]
    assert silent.size == count * F - SILENT_AFTER_SAMPLES
    assert np.all(silent == 0.0)
    assert np.any(out[start + SILENT_AFTER_SAMPLES - 80 : start + SILENT_AFTER_SAMPLES] != 0.0)


@given(
    sign=st.sampled_from([1, -1]),
    plan=st.lists(st.booleans(), max_size=20),
    seed=st.integers(0, 99),
)
def test_output_never_wraps(sign: int, plan: list[bool], seed: int) -> None:
    rng = np.random.default_rng(seed)
    plc = Concealer()
    for lost in plan:
        # Full-scale one-signed input: every output is a convex mix of it, so a sign flip
        # would be a wrap.
        x = (sign * rng.integers(0, 32768, F)).clip(-32768, 32767).astype(np.int16)
        out = plc.lost() if lost else plc.good(x)
        assert np.all(out * sign >= 0)


def test_full_scale_square_wave_is_continued_without_wrapping() -> None:
    square = np.where(np.arange(30 * F) % 80 < 40, 32767, -32768).astype(np.int16)
    mask = np.zeros(30, np.bool_)
    mask[5:9] = True
    out = run(Concealer(), square, mask)
    loss = slice(5 * F, 5 * F + 80)  # gain 1: the square comes out at full scale
    np.testing.assert_array_equal(out[loss], square[loss])
    sounding = out != 0
    flips = np.count_nonzero(np.sign(out[sounding]) != np.sign(square[sounding]))
    print(f"sign flips against the square: {flips} (bound 0)")
    assert flips == 0


def test_counter_reset_and_ownership() -> None:
    pcm = speech("de_female")[: 10 * F]
    plc = Concealer()
    frame = pcm[:F].copy()
    first = plc.good(frame)
    np.testing.assert_array_equal(frame, pcm[:F])  # input untouched
    a, b = plc.lost(), plc.lost()
    assert plc.concealed_frames == 2
    assert plc.concealing
    a[:] = 12345  # caller owns the returned arrays
    assert not np.shares_memory(a, b)
    assert not np.any(b == 12345)
    assert first is not a
    plc.good(pcm[F : 2 * F])
    assert not plc.concealing
    plc.reset()
    assert plc.concealed_frames == 0
    fresh = Concealer()
    for f in frames(pcm):
        np.testing.assert_array_equal(plc.good(f), fresh.good(f))
    np.testing.assert_array_equal(plc.lost(), fresh.lost())


def test_rejects_bad_input() -> None:
    plc = Concealer()
    for bad in (np.zeros(F, np.float32), np.zeros(F - 1, np.int16), np.zeros((2, F), np.int16)):
        with pytest.raises(DspInputError):
            plc.good(bad)  # type: ignore[arg-type]  # deliberately wrong
    for n in (0, 100, -160):
        with pytest.raises(DspInputError):
            Concealer(n)


@pytest.mark.sweep
def test_pesq_beats_zero_fill_and_half_repeat_on_every_pattern() -> None:
    rows = [measure_pattern(p, speech_names(), PESQ_SEEDS) for p in PATTERNS]
    print("\n" + format_table(rows))
    for r in rows:
        ours, zero, half = (float(r[k]) for k in ("plc_mos", "zero_fill_mos", "half_repeat_mos"))
        assert ours > zero, r["pattern"]
        assert ours > half, r["pattern"]
