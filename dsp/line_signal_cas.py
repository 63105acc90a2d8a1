"""Turns `dsp.line_signal_blocks` rows into call_waiting "cas" `LineSignal` events: the CPE
alerting signal that comes before caller ID on call waiting (type 2). Plain Python over the
rows' two 10 ms halves; a block without the CAS's low tone and no CAS under way costs two
comparisons.

A half is CAS when 2130 and 2750 Hz together hold >= `CAS_SHARE` of its power, each at
>= `MIN_TONE_DBM0` and within `CAS_TWIST_DB` of the other. A run of such halves
`CAS_MIN_MS`..`CAS_MAX_MS` long (its edges interpolated from the halves just outside it, as
`dsp.line_signal_track` does) whose tones' phase advance from half to half puts both within
`CAS_TOL` of their frequencies is reported 10 ms after it ends.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

from dsp.frame import RATE_HZ
from dsp.line_signal_blocks import (
    C_IM1,
    C_IM2,
    C_POWER,
    C_RE1,
    C_RE2,
    C_TONE1,
    C_TONE2,
    CAS_COL,
    CAS_COLS,
    CAS_FREQS_HZ,
    HALF_SAMPLES,
)
from dsp.line_signal_track import MIN_TONE_POWER, LineSignal, lasts, level_dbm0

# SR-TSV-002476: the CAS is 2130 + 2750 Hz, each +-0.5 %, 80 +-5 ms. A tone 0.5 % off keeps
# 94 % of its power in a 10 ms DFT; tones 1.5 % off still pass the share test, the phase
# advance turns them away.
CAS_SHARE = 0.75
CAS_TWIST_DB = 8.0  # sent at one level; the line's slope between 2130 and 2750 Hz
CAS_TOL = 0.01
CAS_MIN_MS, CAS_MAX_MS = 70.0, 90.0

_HALF_MS = HALF_SAMPLES * 1000.0 / RATE_HZ
_TWIST = 10.0 ** (CAS_TWIST_DB / 10.0)


@dataclass(slots=True)
class _CasRun:
    """CAS halves from `first` on (consecutive); the phase advance sums of both tones."""

    first: int
    pre_tone: float  # both tones' power in the half before
    n: int = 0
    tone1_sum: float = 0.0
    tone2_sum: float = 0.0
    acc1: complex = 0j
    acc2: complex = 0j
    prev1: complex = 0j
    prev2: complex = 0j


class CasTracker:
    """The CAS state machine over block rows; `step` takes the next block's row."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything; half 0 is next."""
        self._half = 0
        self._run: _CasRun | None = None
        self._prev_tone = 0.0

    @property
    def pending(self) -> bool:
        """The last half looked like the CAS: one may be under way (not decided yet)."""
        return self._run is not None

    def step(self, row: list[float], out: list[LineSignal]) -> None:
        """Track both halves of one block; append a decided CAS to `out`."""
        k = self._half
        self._half += 2
        h0, h1 = CAS_COL, CAS_COL + CAS_COLS
        if (
            self._run is None
            and row[h0 + C_TONE1] < MIN_TONE_POWER
            and row[h1 + C_TONE1] < MIN_TONE_POWER
        ):
            self._prev_tone = row[h1 + C_TONE1] + row[h1 + C_TONE2]
            return
        self._half_step(k, row, h0, out)
        self._half_step(k + 1, row, h1, out)

    def _half_step(self, k: int, row: list[float], col: int, out: list[LineSignal]) -> None:
        """Half k of the stream (10 ms), its columns at `col`."""
        t1, t2 = row[col + C_TONE1], row[col + C_TONE2]
        ok = (
            t1 >= MIN_TONE_POWER
            and t2 >= MIN_TONE_POWER
            and t1 + t2 >= CAS_SHARE * row[col + C_POWER]
            and t1 <= _TWIST * t2
            and t2 <= _TWIST * t1
        )
        run = self._run
        if ok:
            x1 = complex(row[col + C_RE1], row[col + C_IM1])
            x2 = complex(row[col + C_RE2], row[col + C_IM2])
            if run is None:
                run = self._run = _CasRun(k, self._prev_tone)
            else:  # X_k conj(X_k-1): its angle is the tone's phase advance over 10 ms
                run.acc1 += x1 * run.prev1.conjugate()
                run.acc2 += x2 * run.prev2.conjugate()
            run.n += 1
            run.tone1_sum += t1
            run.tone2_sum += t2
            run.prev1, run.prev2 = x1, x2
        elif run is not None:
            self._run = None
            self._close(run, k, t1 + t2, out)
        self._prev_tone = t1 + t2

    def _close(self, run: _CasRun, k: int, post_tone: float, out: list[LineSignal]) -> None:
        """The run ended: half k is the first after it, with `post_tone` of both tones."""
        mean = (run.tone1_sum + run.tone2_sum) / run.n
        lead = min(1.0, math.sqrt(run.pre_tone / mean))
        tail = min(1.0, math.sqrt(post_tone / mean))
        ms = (run.n + lead + tail) * _HALF_MS
        if run.n < 2 or not lasts(ms, CAS_MIN_MS, CAS_MAX_MS):
            return
        freqs = []
        for f, acc in zip(CAS_FREQS_HZ, (run.acc1, run.acc2), strict=True):
            step = 2.0 * math.pi * f * HALF_SAMPLES / RATE_HZ
            error = cmath.phase(acc * cmath.exp(-1j * step))  # the advance less the nominal
            freqs.append(f + error * RATE_HZ / (2.0 * math.pi * HALF_SAMPLES))
        if any(abs(m / f - 1.0) > CAS_TOL for m, f in zip(freqs, CAS_FREQS_HZ, strict=True)):
            return
        level = (level_dbm0(run.tone1_sum / run.n, freqs[0])
                 + level_dbm0(run.tone2_sum / run.n, freqs[1])) / 2.0  # fmt: skip
        out.append(
            LineSignal(
                signal="call_waiting",
                variant="cas",
                at_ms=round((k + 1) * _HALF_MS),
                onset_ms=round((run.first - lead) * _HALF_MS, 1),
                duration_ms=round(ms, 1),
                freqs_hz=(round(freqs[0], 1), round(freqs[1], 1)),
                level_dbm0=round(level, 1),
            )
        )
