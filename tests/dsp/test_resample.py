"""dsp.resample: the reference, any-split streaming, exact output counts, the prototype's
response, tones and sweeps end to end, saturation and the group delay."""

import math
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import SUPPORTED_RATES_HZ
from dsp.levels import sine_amplitude, tone
from dsp.resample import CHUNK_SAMPLES, Resampler, resample
from tests.dsp.reference.resample import ref_quantize, ref_resample

PAIRS = [(a, b) for a in SUPPORTED_RATES_HZ for b in SUPPORTED_RATES_HZ if a != b]
DOWN_PAIRS = [(a, b) for a, b in PAIRS if b < a]
UP_PAIRS = [(a, b) for a, b in PAIRS if b > a]
REJECT_DB = 60.0  # the brief: what must not come through is at least 60 dB down
PROTOTYPE_REJECT_DB = 70.0  # design aim, 10 dB over the brief; measured 74 dB
PASSBAND_RIPPLE_DB = 0.1  # telephone band flat within +-0.1 dB
TONE_LEVEL_DB = 0.2  # end to end, a passband tone keeps its level within 0.2 dB
PASS_FRACTION = 3400 / 4000  # of the lower Nyquist: the telephone band's top at 8 kHz


Sample = TypeVar("Sample", bound=np.generic)


def _noise(n: int, seed: int) -> NDArray[np.int16]:
    x = np.random.default_rng(seed).standard_normal(n) * 8000.0
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _db(ratio: float) -> float:
    return 20.0 * math.log10(max(ratio, 1e-12))


def _rms(x: NDArray[np.floating] | NDArray[np.integer]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def _fit_tone(y: NDArray[np.int16], freq_hz: float, rate_hz: int) -> tuple[float, float]:
    """Least-squares amplitude of the tone at `freq_hz` and the RMS of everything else."""
    w = 2.0 * np.pi * freq_hz * np.arange(y.shape[0]) / rate_hz
    basis = np.column_stack([np.sin(w), np.cos(w)])
    coef = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)[0]
    return float(np.hypot(*coef)), _rms(y - basis @ coef)


def _steady(r: Resampler, y: NDArray[Sample]) -> NDArray[Sample]:
    return y[2 * r.delay_samples + 1 :]  # past the filter's start-up transient


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_kernel_matches_reference_on_noise_and_edge_inputs(from_hz: int, to_hz: int) -> None:
    full = np.array([32767, -32768] * 150, np.int16)
    inputs = [_noise(2 * CHUNK_SAMPLES + 333, 1), full, np.zeros(0, np.int16), full[:1]]
    worst_int = worst_float = 0.0
    for x in inputs:
        r = Resampler(from_hz, to_hz)
        ref = ref_resample(x, r.prototype, r.up, r.down)
        got = Resampler(from_hz, to_hz).process(x)
        got_f = Resampler(from_hz, to_hz).process(x.astype(np.float32))
        assert got.shape == got_f.shape == ref.shape
        assert got.dtype == np.int16
        assert got_f.dtype == np.float32
        if x.size:
            worst_int = max(worst_int, float(np.max(np.abs(got.astype(int) - ref_quantize(ref)))))
            worst_float = max(worst_float, float(np.max(np.abs(got_f - ref))))
    print(f"{from_hz}->{to_hz}: int16 max diff {worst_int} LSB (== 0), float {worst_float:.2e}")
    assert worst_int == 0.0  # same products, same rounding: only the summation order differs
    assert worst_float <= 0.01


@given(
    pair=st.sampled_from(PAIRS),
    n=st.integers(0, 3 * CHUNK_SAMPLES),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 3 * CHUNK_SAMPLES), max_size=8),
    as_float=st.booleans(),
)
def test_any_split_gives_the_same_output(
    pair: tuple[int, int], n: int, seed: int, cuts: list[int], as_float: bool
) -> None:
    x: NDArray[Any] = _noise(n, seed).astype(np.float32) if as_float else _noise(n, seed)
    whole = Resampler(*pair).process(x)
    r = Resampler(*pair)
    parts = [r.process(p) for p in np.split(x, sorted(c for c in cuts if c <= n))]
    assert np.array_equal(np.concatenate(parts), whole)


@given(pair=st.sampled_from(PAIRS), lengths=st.lists(st.integers(0, 1500), max_size=20))
def test_total_output_is_ceil_of_input_times_ratio(
    pair: tuple[int, int], lengths: list[int]
) -> None:
    from_hz, to_hz = pair
    r = Resampler(from_hz, to_hz)
    total_in = total_out = 0
    for n in lengths:
        predicted = r.output_count(n)
        got = r.process(np.zeros(n, np.int16)).size
        total_in += n
        total_out += got
        assert got == predicted
        assert total_out == -(-total_in * to_hz // from_hz)


def test_frames_give_exact_counts_over_a_long_stream() -> None:
    up = Resampler(8000, 24000)
    assert all(up.process(np.zeros(160, np.int16)).size == 480 for _ in range(3000))
    down = Resampler(24000, 8000)
    rng = np.random.default_rng(7)
    total_in = total_out = 0
    for _ in range(3000):
        n = int(rng.integers(0, 700)) | 1  # odd deltas, as the cloud sends them
        total_out += down.process(np.zeros(n, np.int16)).size
        total_in += n
        assert total_out == -(-total_in // 3)
    print(f"24k->8k: {total_in} in, {total_out} out")


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_prototype_is_flat_in_the_passband_and_rejects_the_stopband(
    from_hz: int, to_hz: int
) -> None:
    r = Resampler(from_hz, to_hz)
    h = r.prototype
    assert h.size % 2 == 1
    assert np.array_equal(h, h[::-1])
    assert ((h.size - 1) // 2) % (r.up * r.down) == 0  # delay: whole samples at both rates
    nfft = 1 << 18
    gain = np.abs(np.fft.rfft(h, nfft)) / r.up
    freq_hz = np.fft.rfftfreq(nfft, 1.0 / (r.up * from_hz))
    nyquist_hz = min(from_hz, to_hz) / 2
    pass_db = 20 * np.log10(gain[freq_hz <= PASS_FRACTION * nyquist_hz])
    stop_db = -20 * np.log10(np.max(gain[freq_hz >= nyquist_hz]))
    ripple_db = float(np.max(np.abs(pass_db)))
    print(f"{from_hz}->{to_hz}: {h.size} taps, {r.taps_per_phase}/phase, ripple {ripple_db:.4f} dB")
    print(f"  (<= {PASSBAND_RIPPLE_DB}), stopband {stop_db:.1f} dB (>= {PROTOTYPE_REJECT_DB})")
    assert ripple_db <= PASSBAND_RIPPLE_DB
    assert stop_db >= PROTOTYPE_REJECT_DB


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_passband_tones_keep_their_level_and_nothing_else_comes_out(
    from_hz: int, to_hz: int
) -> None:
    pass_hz = PASS_FRACTION * min(from_hz, to_hz) / 2
    amplitude = sine_amplitude(-10.0)
    for freq_hz in pass_hz * np.array([0.03, 0.3, 0.61, 0.9, 1.0]):
        r = Resampler(from_hz, to_hz)
        y = _steady(r, r.process(tone([freq_hz], 200, -10.0, from_hz)))
        got, rest_rms = _fit_tone(y, freq_hz, to_hz)
        level_db, rest_db = _db(got / amplitude), _db(rest_rms / (amplitude / math.sqrt(2)))
        print(
            f"{from_hz}->{to_hz} {freq_hz:7.1f} Hz: level {level_db:+.4f} dB, rest {rest_db:.1f} dB"
        )
        assert abs(level_db) <= TONE_LEVEL_DB
        assert rest_db <= -REJECT_DB  # images (up) or aliases (rational) and rounding


@pytest.mark.parametrize(("from_hz", "to_hz"), DOWN_PAIRS)
def test_tones_above_the_output_nyquist_are_rejected(from_hz: int, to_hz: int) -> None:
    for freq_hz in to_hz / 2 + (from_hz - to_hz) / 2 * np.array([0.005, 0.1, 0.43, 0.7, 0.98]):
        r = Resampler(from_hz, to_hz)
        x = tone([freq_hz], 200, 0.0, from_hz).astype(np.float32)  # float: no rounding floor
        out_db = _db(_rms(_steady(r, r.process(x))) / _rms(x))
        print(f"{from_hz}->{to_hz} {freq_hz:7.1f} Hz: out {out_db:.1f} dB (<= {-REJECT_DB})")
        assert out_db <= -REJECT_DB


def _sweep(f0_hz: float, f1_hz: float, seconds: float, rate_hz: int) -> NDArray[np.int16]:
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    phase = 2 * np.pi * (f0_hz * t + (f1_hz - f0_hz) * t**2 / (2 * seconds))
    return np.round(sine_amplitude(-10.0) * np.sin(phase)).astype(np.int16)


@pytest.mark.parametrize(("from_hz", "to_hz"), UP_PAIRS)
def test_sweep_images_are_rejected_when_upsampling(from_hz: int, to_hz: int) -> None:
    pass_hz = PASS_FRACTION * from_hz / 2
    r = Resampler(from_hz, to_hz)
    y = _steady(r, r.process(_sweep(50.0, pass_hz, 0.5, from_hz))).astype(np.float64)
    power = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    freq_hz = np.fft.rfftfreq(y.size, 1.0 / to_hz)
    images = power[freq_hz >= from_hz - pass_hz].sum()  # the lowest image of the passband
    image_db = 10 * math.log10(images / power[freq_hz <= pass_hz].sum())
    print(f"{from_hz}->{to_hz}: sweep 50-{pass_hz:.0f} Hz, images {image_db:.1f} dB")
    assert image_db <= -REJECT_DB


@pytest.mark.parametrize(("from_hz", "to_hz"), DOWN_PAIRS)
def test_sweep_through_the_stopband_is_rejected_when_downsampling(from_hz: int, to_hz: int) -> None:
    r = Resampler(from_hz, to_hz)
    x = _sweep(to_hz / 2, from_hz / 2, 0.5, from_hz)
    out_db = _db(_rms(_steady(r, r.process(x))) / _rms(x))
    print(f"{from_hz}->{to_hz}: sweep {to_hz / 2:.0f}-{from_hz / 2:.0f} Hz, out {out_db:.1f} dB")
    assert out_db <= -REJECT_DB


@pytest.mark.parametrize(("from_hz", "to_hz"), [(8000, 24000), (24000, 8000), (16000, 48000)])
def test_full_scale_overshoot_saturates_instead_of_wrapping(from_hz: int, to_hz: int) -> None:
    square = np.tile(np.repeat(np.array([32767, -32768], np.int16), 8), 200)
    r = Resampler(from_hz, to_hz)
    ref = ref_resample(square, r.prototype, r.up, r.down)
    got = r.process(square)
    over = ref > 32767.0
    print(f"{from_hz}->{to_hz}: overshoot to {ref.max():.0f}, {over.sum()} samples clipped")
    under = ref < -32768.0
    assert over.any()  # the Gibbs overshoot really is out of range, both ways
    assert under.any()
    assert np.all(got[over] == 32767)
    assert np.all(got[under] == -32768)
    assert np.max(np.abs(got.astype(int) - ref_quantize(ref))) <= 1


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_impulse_peaks_after_the_group_delay(from_hz: int, to_hz: int) -> None:
    r = Resampler(from_hz, to_hz)
    x = np.zeros(r.prototype.size + 20 * r.down, np.float32)  # room for the whole response
    x[10 * r.down] = 1000.0
    peak = int(np.argmax(r.process(x)))
    half = (r.prototype.size - 1) // 2
    print(f"{from_hz}->{to_hz}: peak at {peak}, expected {10 * r.up + r.delay_samples}")
    assert peak == 10 * r.up + r.delay_samples
    assert r.delay_ms == pytest.approx(1000.0 * half / (r.up * from_hz))
    assert r.delay_ms == pytest.approx(1000.0 * r.delay_samples / to_hz)


@pytest.mark.parametrize(("from_hz", "to_hz"), PAIRS)
def test_framed_sine_is_the_delayed_sine_at_every_sample_and_frame_edge(
    from_hz: int, to_hz: int
) -> None:
    r = Resampler(from_hz, to_hz)
    x = tone([1004.0], 400, -10.0, from_hz)
    y = np.concatenate([r.process(f) for f in np.split(x, x.size // (from_hz // 50))])
    n = np.arange(y.size)
    amplitude = sine_amplitude(-10.0)
    want = amplitude * np.sin(2 * np.pi * 1004.0 * (n - r.delay_samples) / to_hz)
    err = np.abs(y - want)[2 * r.delay_samples + 1 :]
    bound = amplitude * 10 ** (-REJECT_DB / 20)
    edges = err[(n[2 * r.delay_samples + 1 :] % (to_hz // 50)) == 0]
    print(f"{from_hz}->{to_hz}: max error {err.max():.2f}, at frame edges {edges.max():.2f}")
    print(f"  (bound {bound:.2f} = -60 dB of the amplitude)")
    assert err.max() <= bound


def test_reset_starts_a_new_stream() -> None:
    x = _noise(1000, 3)
    r = Resampler(24000, 16000)
    first = r.process(x)
    r.process(_noise(517, 4))
    r.reset()
    assert np.array_equal(r.process(x), first)


def test_one_shot_equals_streaming_and_same_rate_is_a_copy() -> None:
    x = _noise(999, 5)
    r = Resampler(16000, 24000)
    assert np.array_equal(
        resample(x, 16000, 24000), np.concatenate([r.process(x[:400]), r.process(x[400:])])
    )
    same = Resampler(8000, 8000)
    y = same.process(x)
    assert np.array_equal(y, x)
    assert same.delay_samples == 0
    y[0] += 1
    assert y[0] != x[0]
    assert resample(x.astype(np.float32), 48000, 48000).dtype == np.float32


@pytest.mark.parametrize(
    "bad", [np.zeros(160, np.float64), np.zeros(160, np.int32), np.zeros((2, 80), np.int16)]
)
def test_process_rejects_wrong_arrays(bad: NDArray[np.generic]) -> None:
    with pytest.raises(DspInputError, match="wants a 1-D int16 or float32 array"):
        Resampler(8000, 24000).process(bad)  # type: ignore[arg-type]


def test_unsupported_rates_are_refused() -> None:
    with pytest.raises(DspInputError, match="from_hz: sample_rate 44100 Hz is not one of"):
        Resampler(44100, 8000)
    with pytest.raises(DspInputError, match="to_hz: sample_rate 11025 Hz is not one of"):
        resample(np.zeros(10, np.int16), 8000, 11025)
