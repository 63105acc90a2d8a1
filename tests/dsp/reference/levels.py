"""Plain numpy reference for `dsp.levels`."""

import numpy as np


def ref_power_peak(pcm: np.ndarray) -> tuple[float, float]:
    x = pcm.astype(np.float64)
    return float(np.mean(x * x)) if x.size else 0.0, float(np.max(np.abs(x))) if x.size else 0.0
