"""Turns `dsp.line_signal_blocks` rows into the steady-tone `LineSignal` events: the timing
half of `dsp.line_signals` (the CAS has its own, `dsp.line_signal_cas`). Plain Python over a
few numbers per 20 ms block; a block with no tone and nothing under way costs one comparison.

Tones (one sinusoid, 40 ms purity >= `MIN_PURITY`, >= `MIN_TONE_DBM0`) form *runs*: blocks
whose frequency stays within `STEP` of the run's and level within `HOLD_DB` of it, bridging up
to `MAX_GAP_BLOCKS` that are not (a /ANS phase reversal spoils one or two blocks' purity). The
run's edges are interpolated from the tone power of the blocks at and just outside them (a
block the tone covers a fraction c of shows c^2 of its power): lengths are good to a few ms.
Then:
- ced: 2100 Hz +-`CED_TOL_HZ`, reported once `CED_ON_MS` into the run (ANS, ANSam, /ANS);
- cng: 1100 Hz +-`CNG_TOL_HZ`, `CNG_MIN_MS`..`CNG_MAX_MS` long, reported after `QUIET_MS` of
  quiet, or at the end of the next burst `CNG_PERIOD_MS` later (T.30 cadence); once a series;
- call_waiting "sas": 440 Hz +-`SAS_TOL`, `SAS_MIN_MS`..`SAS_MAX_MS`, reported when it ends;
- am_beep: any other run in `BEEP_MIN_HZ`..`BEEP_MAX_HZ`, `BEEP_MIN_MS`..`BEEP_MAX_MS` long,
  followed by `QUIET_MS` of blocks `QUIET_DB` under it (or under `QUIET_FLOOR_DBM0`).
"""

from __future__ import annotations

import cmath
import dataclasses
import math
from collections import deque
from dataclasses import dataclass

from dsp.frame import RATE_HZ
from dsp.levels import rms_to_dbm0, sine_amplitude
from dsp.line_signal_blocks import (
    BLOCK_SAMPLES,
    F_COARSE,
    F_FREQ,
    F_POWER,
    F_PURITY,
    F_TONE,
    block_sections,
)

SIGNALS = ("cng", "ced", "am_beep", "call_waiting")

# Block tests. Shipped speech, prompts and caller voice: 40 ms purity >= 0.8 in up to 4 % of
# a clip's blocks, never in two in a row within STEP of each other's frequency; tones at
# -40 dBm0 over -65 dBm0 noise keep >= 0.97 (ANSam), >= 0.99 (steady), through mu-law too.
MIN_PURITY = 0.80
MIN_TONE_DBM0 = -45.0  # the brief: -40 dBm0; T.30 and V.25 receivers work to -43 dBm
STEP = 0.01  # the same tones read within +-0.2 Hz from block to block
HOLD_DB = 6.0  # ANSam's 15 Hz modulation (0.8..1.2) moves block powers +-1.5 dB (measured)
MAX_GAP_BLOCKS = 2  # a phase reversal spoils the purity of the two 40 ms windows over it
EDGE_STEP = 0.06  # an edge block counts this far off (coarse; partly filled: 3 % at 400 Hz)
# V.25: 2100 +-15 Hz; 2050 Hz must not pass (runs read to +-0.5 Hz: about halfway). The
# brief: decide after 0.5 s.
CED_HZ, CED_TOL_HZ, CED_ON_MS = 2100.0, 30.0, 500.0
# T.30: CNG is 1100 +-38 Hz, 0.5 s on (+-15 %), 3 s off; 1200 Hz must not pass (about
# halfway again). The brief: one burst of 0.4-0.7 s and quiet, or two bursts.
CNG_HZ, CNG_TOL_HZ, CNG_MIN_MS, CNG_MAX_MS = 1100.0, 65.0, 400.0, 700.0
CNG_PERIOD_MS = (2900.0, 4300.0)  # onset to onset: 3.5 s, each part +-15 %, plus slack
CNG_SERIES_MS = 4500.0  # a burst this soon after the last belongs to the series reported
# GR-506: SAS is 440 Hz for 300 ms. The Precise Tone Plan holds 0.5 %; 425 Hz (ETSI, 3.4 %
# off) and 400 Hz (UK) tones must not pass. Some switches send 200 ms.
SAS_HZ, SAS_TOL, SAS_MIN_MS, SAS_MAX_MS = 440.0, 0.02, 180.0, 500.0
# An answering machine's beep: 400-2100 Hz (+-2 %), 0.15-1.5 s, then quiet.
BEEP_MIN_HZ, BEEP_MAX_HZ, BEEP_MIN_MS, BEEP_MAX_MS = 392.0, 2142.0, 150.0, 1500.0
TONE_MAX_HZ = 2200.0  # no run starts above: CED and beeps with room for a run's drift
QUIET_MS = 300.0
QUIET_DB = 15.0  # under the tone: line noise passes, speech right after a beep does not
QUIET_FLOOR_DBM0 = -55.0  # ... or under this, whatever the tone's level
EDGE_SLACK_MS = 10.0  # every duration window (here and for the CAS) is this much wider:
# measured lengths are good to +-3 ms over -65 dBm0 noise

_HISTORY = 4  # blocks kept: a run's edges look two past it
_MS_PER_SAMPLE = 1000.0 / RATE_HZ
_BLOCK_MS = BLOCK_SAMPLES * _MS_PER_SAMPLE
_QUIET_BLOCKS = round(QUIET_MS / _BLOCK_MS)
MIN_TONE_POWER = sine_amplitude(MIN_TONE_DBM0) ** 2 / 2.0
_QUIET_FLOOR = sine_amplitude(QUIET_FLOOR_DBM0) ** 2 / 2.0
_QUIET_RATIO = 10.0 ** (-QUIET_DB / 10.0)
_HOLD = 10.0 ** (HOLD_DB / 10.0)


@dataclass(frozen=True, slots=True)
class LineSignal:
    """A signal recognised on the line. `signal` is one of `SIGNALS`; `variant` is "sas" or
    "cas" for call_waiting, else "". Times are ms since the detector started (or was reset):
    `at_ms` when it was decided, `onset_ms` where it began; `duration_ms` is its length (for
    ced: up to the decision). `freqs_hz` are the measured frequencies (two for the CAS),
    `level_dbm0` the mean level per frequency."""

    signal: str
    variant: str
    at_ms: int
    onset_ms: float
    duration_ms: float
    freqs_hz: tuple[float, ...]
    level_dbm0: float


@dataclass(slots=True)
class _Run:
    """A steady tone under way: blocks first..last (with bridged gaps)."""

    first: int
    last: int
    pre: tuple[list[float] | None, list[float] | None]  # rows of blocks first-1, first-2
    n: int = 0  # blocks that passed
    gap: int = 0  # blocks since the last that passed
    tone_sum: float = 0.0
    tone_hz_sum: float = 0.0
    last_tone: float = 0.0
    ced_done: bool = False

    @property
    def freq_hz(self) -> float:
        return self.tone_hz_sum / self.tone_sum

    @property
    def tone(self) -> float:
        return self.tone_sum / self.n

    @property
    def whole_tone(self) -> float:
        """The tone power of a block the tone covers (the last may not be covered)."""
        return (self.tone_sum - self.last_tone) / (self.n - 1) if self.n > 1 else self.tone

    def add(self, b: int, row: list[float]) -> None:
        self.last, self.gap, self.n = b, 0, self.n + 1
        self.tone_sum += row[F_TONE]
        self.tone_hz_sum += row[F_TONE] * row[F_FREQ]
        self.last_tone = row[F_TONE]


@dataclass(slots=True)
class _Pending:
    """A decided burst waiting for quiet from block `quiet_from` on."""

    event: LineSignal
    quiet_from: int
    limit: float
    count: int = 0


def _passband_power(freq_hz: float) -> float:
    """Power gain of the analysis high-pass at `freq_hz` (to report levels as sent)."""
    z = cmath.exp(-2j * math.pi * freq_hz / RATE_HZ)
    gain = 1.0
    for g, a1, a2 in block_sections().tolist():
        gain *= abs(g * (1.0 - z) ** 2 / (1.0 + a1 * z + a2 * z * z)) ** 2
    return gain


def level_dbm0(power: float, freq_hz: float) -> float:
    """The level a tone was sent at whose mean power after the high-pass is `power`."""
    return round(rms_to_dbm0(math.sqrt(power / _passband_power(freq_hz))), 1)


def lasts(ms: float, min_ms: float, max_ms: float) -> bool:
    """Is a measured length `ms` within min_ms..max_ms (EDGE_SLACK_MS wider each side)?"""
    return min_ms - EDGE_SLACK_MS <= ms <= max_ms + EDGE_SLACK_MS


class ToneTracker:
    """The run state machine over block rows; `step` takes the next block's row."""

    def __init__(self, enabled: frozenset[str]) -> None:
        self.enabled = enabled
        self._hist: deque[list[float]] = deque(maxlen=_HISTORY)
        self.reset()

    def reset(self) -> None:
        """Forget everything; block 0 is next."""
        self._block = 0
        self._hist.clear()
        self._run: _Run | None = None
        self._pending: _Pending | None = None
        self._cng_onset = -math.inf  # samples
        self._cng_reported = False

    def step(self, row: list[float], out: list[LineSignal]) -> None:
        """Track one block (a `BLOCK_COLS` row); append decided events to `out`."""
        b = self._block
        self._block += 1
        self._hist.append(row)
        if self._run is None and self._pending is None and row[F_TONE] < MIN_TONE_POWER:
            return
        if self._pending is not None:
            self._quiet(b, row, out)
        self._tone_step(b, row, out)

    def _row(self, i: int) -> list[float] | None:
        """Block i's row if still in the history (and already seen)."""
        k = i - self._block + len(self._hist)
        return self._hist[k] if 0 <= k < len(self._hist) else None

    def _tone_step(self, b: int, row: list[float], out: list[LineSignal]) -> None:
        f = row[F_FREQ]
        passes = (
            row[F_TONE] >= MIN_TONE_POWER
            and row[F_PURITY] >= MIN_PURITY
            and BEEP_MIN_HZ <= f <= TONE_MAX_HZ
        )
        run = self._run
        if run is not None:
            steady = run.tone <= _HOLD * row[F_TONE] <= _HOLD * _HOLD * run.tone
            if passes and steady and abs(f - run.freq_hz) <= STEP * run.freq_hz:
                run.add(b, row)
                self._check_ced(run, out)
                return
            run.gap += 1
            if not passes and run.gap <= MAX_GAP_BLOCKS:
                return
            self._run = None
            self._close(run, b, out)
        if passes:
            self._run = _Run(b, b, (self._row(b - 1), self._row(b - 2)))
            self._run.add(b, row)

    def _cover(self, row: list[float] | None, run: _Run) -> float:
        """The share of a block at the run's edge that the run's tone covers."""
        if row is None or abs(row[F_COARSE] - run.freq_hz) > EDGE_STEP * run.freq_hz:
            return 0.0
        return min(1.0, math.sqrt(row[F_TONE] / run.whole_tone))

    def _edges(self, run: _Run) -> tuple[float, float]:
        """Onset and end of the run (samples). The first block of a run is whole (its 40 ms
        window must be >= 80 % tone) and the tone may have begun up to two blocks earlier;
        the last may be down to 60 % tone, and the tone may go on into the next two."""
        before = [self._cover(r, run) for r in run.pre]
        lead = before[0] + (before[1] if before[0] >= 0.9 else 0.0)
        tail = self._cover(self._row(run.last), run)
        for k in (1, 2):
            if tail < k - 0.1:
                break
            tail += self._cover(self._row(run.last + k), run)
        return (run.first - lead) * BLOCK_SAMPLES, (run.last + tail) * BLOCK_SAMPLES

    def _event(
        self, signal: str, variant: str, at_ms: float, span: tuple[float, float], run: _Run
    ) -> LineSignal:
        onset, end = span
        f = run.freq_hz
        return LineSignal(
            signal, variant, round(at_ms), round(onset * _MS_PER_SAMPLE, 1),
            round((end - onset) * _MS_PER_SAMPLE, 1), (round(f, 1),), level_dbm0(run.tone, f),
        )  # fmt: skip

    def _check_ced(self, run: _Run, out: list[LineSignal]) -> None:
        if run.ced_done or "ced" not in self.enabled or abs(run.freq_hz - CED_HZ) > CED_TOL_HZ:
            return
        onset, _ = self._edges(run)
        end = (run.last + 1) * BLOCK_SAMPLES
        if (end - onset) * _MS_PER_SAMPLE >= CED_ON_MS:
            run.ced_done = True
            out.append(self._event("ced", "", end * _MS_PER_SAMPLE, (onset, end), run))

    def _close(self, run: _Run, b: int, out: list[LineSignal]) -> None:
        """The run ended (block b is the first after it that does not extend it)."""
        if run.ced_done:
            return
        span = self._edges(run)
        ms = (span[1] - span[0]) * _MS_PER_SAMPLE
        f = run.freq_hz
        at_ms = (b + 1) * _BLOCK_MS
        if self._is("cng", abs(f - CNG_HZ) <= CNG_TOL_HZ, ms, CNG_MIN_MS, CNG_MAX_MS):
            self._cng_burst(run, span, b, out)
        elif self._is("call_waiting", abs(f / SAS_HZ - 1.0) <= SAS_TOL, ms, SAS_MIN_MS, SAS_MAX_MS):
            out.append(self._event("call_waiting", "sas", at_ms, span, run))
        elif self._is("am_beep", BEEP_MIN_HZ <= f <= BEEP_MAX_HZ, ms, BEEP_MIN_MS, BEEP_MAX_MS):
            self._await_quiet(self._event("am_beep", "", at_ms, span, run), run, b, out)

    def _is(self, signal: str, freq_ok: bool, ms: float, min_ms: float, max_ms: float) -> bool:
        return signal in self.enabled and freq_ok and lasts(ms, min_ms, max_ms)

    def _cng_burst(
        self, run: _Run, span: tuple[float, float], b: int, out: list[LineSignal]
    ) -> None:
        since_ms = (span[0] - self._cng_onset) * _MS_PER_SAMPLE
        self._cng_onset = span[0]
        if since_ms > CNG_SERIES_MS:
            self._cng_reported = False
        if self._cng_reported:
            return
        event = self._event("cng", "", (b + 1) * _BLOCK_MS, span, run)
        if CNG_PERIOD_MS[0] <= since_ms <= CNG_PERIOD_MS[1]:  # the second burst of a cadence
            self._cng_reported = True
            out.append(event)
        else:
            self._await_quiet(event, run, b, out)

    def _await_quiet(self, event: LineSignal, run: _Run, b: int, out: list[LineSignal]) -> None:
        """Hold `event` until QUIET_MS of quiet, from the second block after the run (the
        first may hold the tone's tail); blocks already seen are checked now."""
        limit = max(run.tone * _QUIET_RATIO, _QUIET_FLOOR)
        self._pending = _Pending(event, run.last + 2, limit)
        for i in range(run.last + 2, b + 1):
            row = self._row(i)
            if row is not None and self._pending is not None:
                self._quiet(i, row, out)

    def _quiet(self, b: int, row: list[float], out: list[LineSignal]) -> None:
        pending = self._pending
        assert pending is not None
        if b < pending.quiet_from:
            return
        if row[F_POWER] > pending.limit:
            self._pending = None
            return
        pending.count += 1
        if pending.count >= _QUIET_BLOCKS:
            self._pending = None
            event = pending.event
            if event.signal == "cng":
                self._cng_reported = True
            out.append(dataclasses.replace(event, at_ms=round((b + 1) * _BLOCK_MS)))
