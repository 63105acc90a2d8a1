"""Line echo paths for the simulated line: `EchoPath` (what the hybrid returns of our own
transmitted audio) and `EchoFilter` (its streaming convolution). `firmware_bridge.sim.line`
owns one `EchoFilter` per line; echo canceller tests build paths here directly.

The eight hybrid models are the impulse responses of ITU-T G.168 Annex D (clauses D.2 to D.9;
`EchoPath.g168(1)` is D.2, ..., `g168(8)` is D.9), 8 kHz taps. The numbers were transcribed
from spandsp's `g168models.h`, which gives them as the tables of G.168 D.2-D.9 (the same
tables in the xrg/spandsp and FreeSWITCH revisions); they were not checked against the
Recommendation's own text. Their overall scale does not matter: `EchoPath` rescales every
response to the ERL it is asked for. Lengths: 64, 96, 96, 128, 96, 120, 96 and 99 taps
(8-16 ms of dispersion).

ERL is as in G.168 §3.12: level of the signal sent into the echo path minus the level of the
echo that returns, here for a white input: the response is scaled so its energy is
10^(-ERL/10). Speech, whose spectrum is not flat, sees another loss through a frequency-shaped
model: measured on tests/signals.all_speech() at ERL 12 dB (white), models 1-8 give 10.7,
9.0, 10.7, 11.2, 8.4, 12.9, 16.8 and 15.8 dB (`pure_delay` gives 12.0). Echo tests that need
a given speech ERL must measure it on their own signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.frame import RATE_HZ
from dsp.levels import sine_amplitude

# An echo path's bulk delay plus dispersion may reach this far back (500 ms): well beyond the
# 128 ms tail the echo canceller is held to, so tail-overrun tests fit too.
MAX_SPAN_SAMPLES = 4000

# G.168 Annex D, D.2 to D.9: the hybrid models 1-8 (8 kHz taps, integer scale of the table).
G168_MODELS: tuple[tuple[int, ...], ...] = (
    (  # D.2, model 1
        -436, -829, -2797, -4208, -17968, -11215, 46150, 34480, -10427, 9049, -1309, -6320,
        390, -8191, -1751, -6051, -3796, -4055, -3948, -2557, -3372, -1808, -2259, -1300,
        -1098, -618, -340, -61, 323, 419, 745, 716, 946, 880, 1014, 976, 1033, 1091, 1053,
        1042, 794, 831, 899, 716, 390, 313, 304, 304, 73, -119, -109, -176, -359, -407, -512,
        -580, -704, -618, -685, -791, -772, -820, -839, -724,
    ),
    (  # D.3, model 2
        -381, 658, 1730, -51, -3511, -1418, 7660, 8861, -8106, -21370, -5307, 23064, 24020,
        1020, -12374, -16296, -19524, -7480, 13509, 17115, 13952, 13952, 97, -9326, -9046,
        -15208, -9853, -3858, -1979, 6029, 5616, 7214, 6820, 3935, 3919, 921, 1316, -693,
        -759, -1517, -2176, -2028, -2654, -1814, -2077, -1468, -1221, -842, -463, -298, -68,
        64, 493, 723, 789, 954, 756, 839, 872, 1020, 789, 822, 558, 658, 476, 377, 377, 262,
        97, -68, -183, -232, -331, -347, -430, -314, -430, -463, -463, -414, -381, -479, -479,
        -512, -479, -397, -430, -397, -298, -265, -249, -216, -249, -265, -166, -232,
    ),
    (  # D.4, model 3
        -448, -436, 2230, 2448, -4178, -7050, 5846, 18581, 2322, -26261, -16249, 21637, 25649,
        -2267, -10311, -4693, -12690, -7428, 14164, 13467, 4438, 8627, 456, -11879, -6352,
        -5104, -7496, 3271, 6566, 4277, 11131, 7562, 1475, 3728, -3525, -7301, -3101, -9269,
        -6146, -2553, -6272, 811, 124, 788, 5147, 2172, 5387, 4598, 3535, 4004, 2311, 2150,
        1017, 330, -139, -573, -1100, -1157, -1180, -1455, -1123, -1386, -1123, -1066, -1020,
        -1100, -1008, -1077, -1088, -917, -917, -963, -814, -871, -734, -642, -562, -356,
        -379, -345, -230, -233, -333, -356, -390, -310, -265, -368, -310, -310, -390, -482,
        -459, -482, -551, -573,
    ),
    (  # D.5, model 4
        160, 312, -241, -415, 897, 908, -1326, -1499, 2405, 3347, -3624, -7733, 4041, 14484,
        -1477, -21739, -4470, 25356, 11458, -19696, -11800, 5766, 789, 6633, 14624, -6975,
        -17156, -187, 149, 1515, 14907, 4345, -7128, -2757, -10185, -7083, 6850, 3944, 6969,
        8694, -4068, -3852, -5793, -9371, 453, 1060, 3965, 9463, 2393, 2784, -892, -7366,
        -3376, -5847, -2399, 3011, 1537, 6623, 4205, 1602, 1592, -4752, -3646, -5207, -5577,
        -501, -1174, 4041, 5647, 4628, 7252, 2123, 2654, -881, -4113, -3244, -7289, -3830,
        -4600, -2508, 431, -144, 4184, 2372, 4617, 3576, 2382, 2839, -404, 539, -1803, -1401,
        -1705, -2269, -783, -1608, -220, -306, 257, 615, 225, 561, 8, 344, 127, -57, 182, 41,
        203, -111, 95, -79, 30, 84, -13, -68, -241, -68, -24, 19, -57, -24, 30, -68, 84, -155,
        -68, 19,
    ),
    (  # D.6, model 5
        293, 268, 475, 460, 517, 704, 581, 879, 573, 896, 604, 787, 561, 538, 440, 97, 265,
        -385, 20, -938, -523, -1438, -1134, -1887, -1727, -1698, -4266, -22548, -43424, 2743,
        25897, 7380, 21499, 11983, 10400, 11667, 3889, 7241, 925, 2018, -821, -2068, -2236,
        -4283, -3406, -5022, -4039, -4842, -4104, -4089, -3582, -2978, -2734, -1805, -1608,
        -645, -495, 279, 471, 947, 1186, 1438, 1669, 1640, 1901, 1687, 1803, 1543, 1566, 1342,
        1163, 963, 733, 665, 323, 221, -14, -107, -279, -379, -468, -513, -473, -588, -612,
        -652, -616, -566, -515, -485, -404, -344, -290, -202, -180, -123,
    ),
    (  # D.7, model 6
        29, 109, -83, 198, -294, -135, -415, -202, -444, -337, -313, -450, -105, -503, 145,
        -490, 267, -231, 340, 77, 343, 783, 158, 1341, 195, 1798, 344, 1845, 629, 1604, 1182,
        940, 5163, 19522, 8421, -50953, -9043, 18046, -13553, 13336, -3471, -107, 1788, -7409,
        2469, -7994, 490, -3860, -837, 490, -636, 3682, 1141, 5019, 2635, 5025, 3946, 4414,
        4026, 3005, 3380, 1616, 2007, 158, 388, -1198, -1117, -2134, -2547, -2589, -3310,
        -2778, -3427, -2779, -3116, -2502, -2399, -1956, -1539, -1239, -570, -377, 251, 331,
        964, 1177, 1449, 1564, 1724, 1871, 1767, 1802, 1630, 1632, 1379, 1271, 1063, 856, 711,
        482, 289, 54, -137, -321, -490, -638, -764, -836, -800, -859, -838, -837, -834, -740,
        -673, -581, -493, -436, -327, -201,
    ),
    (  # D.8, model 7
        258, -111, 337, -319, 347, -434, 192, -450, -108, -343, -596, -177, -1187, -52, -1781,
        -147, -1959, -326, -1601, -1389, -13620, -720, 33818, -10683, -6742, 12489, -9862,
        8950, -1574, 758, 3526, -3118, 2421, -8966, -4901, 11385, 18072, -14410, -7473, 19836,
        -16854, -3115, 9483, -17799, 7399, -4342, -7415, 7929, -10726, 6239, -2526, -1317,
        5345, -4565, 6868, -2195, 3425, 1969, -109, 3963, -1275, 3087, -892, 1239, 2, -427,
        596, -1184, 551, -1244, 141, -743, -415, -372, -769, -183, -785, -270, -659, -377,
        -523, -325, -245, -255, -60, 35, 218, 149, 340, 233, 365, 303, 251, 230, 209, 179,
    ),
    (  # D.9, model 8
        80, 31, 4, 42, 42, -61, -81, -64, 121, -102, -26, 1002, -9250, -22562, 39321, 35681,
        -35289, 25312, -1457, -229, 15659, -6786, 16791, 3860, 2239, -28730, -11885, 33871,
        -176, -16421, 18173, -9669, -10163, 9941, -19365, 3592, -5907, -10257, 5336, -12933,
        4348, -4802, -1791, 3035, -4433, 5553, -2596, 3992, 1255, 1450, 4079, 324, 4340, 1059,
        3083, 1917, 1756, 2478, 1027, 1871, 845, 1284, 813, 806, 869, 471, 646, 438, 449, 432,
        473, 394, 452, 538, 717, 723, 850, 756, 753, 899, 555, 669, 619, 500, 650, 615, 516,
        492, 427, 291, 356, 147, 107, -50, -88, -59, -238, -165, -183,
    ),
)  # fmt: skip


def _delay_samples(delay_ms: float) -> int:
    if not math.isfinite(delay_ms) or delay_ms < 0:
        raise ValueError(f"echo path delay must be a finite number of ms >= 0, got {delay_ms}")
    return round(delay_ms * RATE_HZ / 1000.0)


@dataclass(frozen=True, slots=True)
class EchoPath:
    """One hybrid echo path: `taps` (impulse response at 8 kHz, any scale: only its shape
    counts), `delay_samples` of pure (bulk) delay before it, and the echo return loss
    `erl_db` the whole path has for white input (math.inf: an open path, no echo).
    `saturation_dbm0` (None: linear) soft-clips the signal entering the path at that sine
    peak level, a non-linear hybrid driver for G.168 §6.4.3-style tests."""

    taps: tuple[float, ...]
    delay_samples: int
    erl_db: float
    name: str = "custom"
    saturation_dbm0: float | None = None

    def __post_init__(self) -> None:
        energy = math.fsum(t * t for t in self.taps)
        if self.erl_db != math.inf and (not math.isfinite(self.erl_db) or energy <= 0.0):
            raise ValueError(f"echo path {self.name}: needs finite erl_db and non-zero taps")
        if self.delay_samples < 0 or self.delay_samples + len(self.taps) > MAX_SPAN_SAMPLES:
            raise ValueError(
                f"echo path {self.name}: delay {self.delay_samples} + {len(self.taps)} taps "
                f"must fit in 0..{MAX_SPAN_SAMPLES} samples"
            )

    @classmethod
    def g168(cls, model: int, delay_ms: float = 0.0, erl_db: float = 6.0) -> EchoPath:
        """G.168 Annex D hybrid model `model` (1-8: clauses D.2-D.9) after `delay_ms` of pure
        delay, scaled to `erl_db`."""
        if not 1 <= model <= len(G168_MODELS):
            raise ValueError(f"G.168 echo path model {model} is not one of 1..8")
        taps = tuple(float(t) for t in G168_MODELS[model - 1])
        return cls(taps, _delay_samples(delay_ms), erl_db, f"g168-m{model}")

    @classmethod
    def pure_delay(cls, delay_ms: float = 0.0, erl_db: float = 6.0) -> EchoPath:
        """A flat echo: the input `delay_ms` later, `erl_db` weaker (one tap)."""
        return cls((1.0,), _delay_samples(delay_ms), erl_db, "pure-delay")

    @classmethod
    def none(cls) -> EchoPath:
        """The open echo path: no echo at all."""
        return cls((0.0,), 0, math.inf, "open")

    @property
    def span_samples(self) -> int:
        """Samples from an input sample to the end of its echo: delay + number of taps."""
        return self.delay_samples + len(self.taps)

    def response(self) -> NDArray[np.float64]:
        """The whole impulse response, scaled to `erl_db`: `delay_samples` zeros, then the
        taps; energy 10^(-erl_db/10) (zeros for the open path). A new array."""
        h = np.zeros(self.span_samples, np.float64)
        if self.erl_db != math.inf:
            taps = np.asarray(self.taps, np.float64)
            h[self.delay_samples :] = taps * (10.0 ** (-self.erl_db / 20.0)) / np.linalg.norm(taps)
        return h


def _saturate(x: NDArray[np.float64], saturation_dbm0: float | None) -> NDArray[np.float64]:
    if saturation_dbm0 is None:
        return x
    peak = sine_amplitude(saturation_dbm0)
    out: NDArray[np.float64] = peak * np.tanh(x / peak)
    return out


class EchoFilter:
    """Streams audio through an `EchoPath`: `process(x)` returns the echo of x (float64, same
    length) with the history carried between calls, so any split gives the output of one
    `np.convolve` over the whole input. `set_path` swaps the path at once: the samples
    already sent echo through the new path from then on (an echo path change)."""

    def __init__(self, path: EchoPath) -> None:
        self._history = np.zeros(MAX_SPAN_SAMPLES, np.float64)  # newest input last
        self.set_path(path)

    @property
    def path(self) -> EchoPath:
        """The echo path in use."""
        return self._path

    def set_path(self, path: EchoPath) -> None:
        """Use `path` from the next sample on."""
        self._path = path
        self._taps = path.response()[path.delay_samples :]
        self._open = path.erl_db == math.inf

    def reset(self) -> None:
        """Forget the input history (silence on the line since forever)."""
        self._history[:] = 0.0

    def process(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """The echo of `x` (1-D float64, any length; saturated first if the path says so)."""
        x = _saturate(np.asarray(x, np.float64), self._path.saturation_dbm0)
        n, d, t = x.shape[0], self._path.delay_samples, self._taps.shape[0]
        if self._open or n == 0:  # (np.convolve would swap a shorter input with the taps)
            out = np.zeros(n, np.float64)
        else:
            # y[k] = sum_j h[j] x[k - d - j]: the inputs from d + t - 1 samples back up to
            # d samples back, which is the joined buffer without its newest d samples
            joined = np.concatenate((self._history[MAX_SPAN_SAMPLES - (d + t - 1) :], x))
            out = np.convolve(joined[: n + t - 1], self._taps, mode="valid")
        self._push(x)
        return out

    def _push(self, x: NDArray[np.float64]) -> None:
        n = x.shape[0]
        if n >= MAX_SPAN_SAMPLES:
            self._history[:] = x[-MAX_SPAN_SAMPLES:]
        elif n:
            self._history[:-n] = self._history[n:]
            self._history[-n:] = x
