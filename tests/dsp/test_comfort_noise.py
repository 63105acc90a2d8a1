"""dsp.comfort_noise: the level asked for, the same sequence for the same seed, the samples of
the echo canceller's comfort noise reference (`ref_comfort_noise`), bad input refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp import echo_nlp as nlp
from dsp.comfort_noise import ComfortNoise
from dsp.errors import DspInputError
from dsp.levels import dbm0_to_rms, rms_to_dbm0
from tests.dsp.reference.echo import ref_comfort_noise


@pytest.mark.parametrize("level", [-70.0, -55.0, -30.0])
def test_level_is_the_one_asked_for(level: float) -> None:
    out = np.zeros(8000)
    ComfortNoise(level).fill(out)
    measured = rms_to_dbm0(float(np.sqrt(np.mean(out**2))))
    print(f"asked {level} dBm0, measured {measured:.2f} dBm0")
    assert measured == pytest.approx(level, abs=0.2)
    assert abs(float(np.mean(out))) < 0.05 * dbm0_to_rms(level)


def test_same_seed_same_noise_and_matches_reference() -> None:
    a, b, c = np.zeros(500), np.zeros(500), np.zeros(500)
    ComfortNoise(-50.0, seed=7).fill(a)
    ComfortNoise(-50.0, seed=7).fill(b)
    ComfortNoise(-50.0, seed=8).fill(c)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    nst, _ = nlp.nlp_state()
    want, _ = ref_comfort_noise(dbm0_to_rms(-50.0) ** 2, nst, 7, 500)
    np.testing.assert_allclose(a, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    ("level", "seed", "message"),
    [(math.nan, 1, "level"), (10.0, 1, "level"), (-60.0, -1, "seed"), (-60.0, 2**31, "seed")],
)
def test_bad_settings_are_refused(level: float, seed: int, message: str) -> None:
    with pytest.raises(DspInputError, match=message):
        ComfortNoise(level, seed)


def test_fill_wants_float64() -> None:
    with pytest.raises(DspInputError, match="float64"):
        ComfortNoise(-60.0).fill(np.zeros(160, np.float32))
