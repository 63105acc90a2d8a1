"""dsp.levels: the dBm0 scale and the streaming meter, against known answers and the reference."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dsp.errors import DspInputError
from dsp.levels import (
    SILENCE_DBM0,
    LevelMeter,
    _power_peak_kernel,
    dbm0_to_rms,
    rms_to_dbm0,
    sine_amplitude,
    tone,
)
from tests.dsp.reference.levels import ref_power_peak


def test_zero_dbm0_sine_is_3_14_db_below_full_scale() -> None:
    assert sine_amplitude(0.0) == pytest.approx(32768 * 10 ** (-3.14 / 20))
    assert 20 * math.log10(32768 / sine_amplitude(0.0)) == pytest.approx(3.14)


@pytest.mark.parametrize("level_dbm0", [3.0, 0.0, -10.0, -36.0, -60.0])
def test_meter_reads_the_level_of_a_sine(level_dbm0: float) -> None:
    meter = LevelMeter()
    x = tone([1004.0], 1000, level_dbm0)  # 1004 Hz: the test tone that avoids 8 kHz sub-harmonics
    readings = [meter.process(x[i : i + 160]) for i in range(0, x.size, 160)]
    print(f"sine at {level_dbm0} dBm0: meter {readings[-1]:.3f}, peak {meter.peak_dbm0:.3f}")
    assert readings[-1] == pytest.approx(level_dbm0, abs=0.05 if level_dbm0 > -50 else 0.3)
    assert meter.peak_dbm0 == pytest.approx(level_dbm0, abs=0.05 if level_dbm0 > -50 else 0.3)
    assert meter.smoothed_dbm0 == pytest.approx(level_dbm0, abs=0.1 if level_dbm0 > -50 else 0.3)


def test_smoothed_level_follows_a_step_with_its_time_constant() -> None:
    meter = LevelMeter(tau_ms=100.0)
    loud = tone([1004.0], 20, -10.0)
    for _ in range(5):  # 100 ms: power reaches 1 - 1/e of the step
        meter.process(loud)
    expected = rms_to_dbm0(dbm0_to_rms(-10.0) * math.sqrt(1 - math.exp(-1)))
    print(f"after one tau: {meter.smoothed_dbm0:.2f} dBm0, expected {expected:.2f}")
    assert meter.smoothed_dbm0 == pytest.approx(expected, abs=0.3)


def test_silence_reads_the_floor_and_reset_forgets() -> None:
    meter = LevelMeter()
    meter.process(tone([1004.0], 20, -10.0))
    meter.reset()
    assert meter.process(np.zeros(160, np.int16)) == SILENCE_DBM0
    assert meter.smoothed_dbm0 == SILENCE_DBM0


def test_meter_rejects_wrong_dtype_with_a_clear_message() -> None:
    with pytest.raises(DspInputError, match=r"LevelMeter\.process wants a 1-D int16 array"):
        LevelMeter().process(np.zeros(160, np.float32))  # type: ignore[arg-type]


@given(arrays(np.int16, st.integers(0, 400)))
def test_power_peak_kernel_matches_reference(pcm: np.ndarray) -> None:
    out = np.zeros(2, np.float64)
    _power_peak_kernel(pcm, out)
    power, peak = ref_power_peak(pcm)
    assert out[0] == pytest.approx(power, rel=1e-12)
    assert out[1] == peak


def test_power_peak_kernel_on_full_scale_edges() -> None:
    for pcm in (np.full(160, -32768, np.int16), np.full(160, 32767, np.int16)):
        out = np.zeros(2, np.float64)
        _power_peak_kernel(pcm, out)
        assert (out[0], out[1]) == ref_power_peak(pcm)
