"""What one call measures of its line, for the line's health (`gateway.line_health`):
`LineMeter`, updated by the call's audio step (`gateway.call_audio.AudioPath.step`) once per
frame, read once at the call's end (`figures`).

- send level: the power mean of the frames we sent that carried sound (over `ACTIVE_DBM0`),
  in dBm0: the agent's and the box's own audio as the line got it;
- receive level: the same over the clean received frames while the local VAD heard the
  caller (the echo removed: the caller's level, not ours coming back);
- ERL: over frames where our sound reached the line, the caller was quiet and the canceller
  had converged outside double talk, the power we sent over the echo power the canceller
  predicted (`EchoCanceller.echo_dbm0`). Power sums, not a mean of dB: a frame's echo lands
  partly in the next frame, and sums over the call even that out;
- echo delay: the canceller's main tap (`EchoStats.delay_ms`), sampled every
  `DELAY_EVERY_FRAMES` while converged; the call's figure is the median. It is the delay from
  our sending a frame to its echo in the frames received, so it includes the adapter's round
  trip (the simulated adapter: one frame, 20 ms, on top of the hybrid's own delay).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.echo import EchoCanceller
from dsp.levels import dbm0_to_rms, rms_to_dbm0
from gateway.line_health import CallFigures

ACTIVE_DBM0 = -45.0  # a frame above this carries sound (line noise: -65..-70 dBm0)
ECHO_REF_DBM0 = -40.0  # ERL is judged on frames we sent at least this loud
DELAY_EVERY_FRAMES = 10  # 200 ms
DELAYS_KEPT = 3000  # 10 minutes of samples


def _power(pcm: NDArray[np.int16]) -> float:
    x = pcm.astype(np.float32)
    return float(np.dot(x, x)) / max(1, x.size)


def _dbm0(power_sum: float, count: int) -> float | None:
    return rms_to_dbm0(math.sqrt(power_sum / count)) if count and power_sum > 0.0 else None


class LineMeter:
    """See the module docstring."""

    def __init__(self) -> None:
        self._active_power = dbm0_to_rms(ACTIVE_DBM0) ** 2
        self._ref_floor = dbm0_to_rms(ECHO_REF_DBM0) ** 2
        self._send = self._receive = 0.0
        self._sends = self._receives = 0
        self._erl_ref = self._erl_echo = 0.0
        self._frames = 0
        self._delays: list[float] = []

    def update(self, ref: NDArray[np.int16], clean: NDArray[np.int16], out: NDArray[np.int16],
               ec: EchoCanceller, caller_speaking: bool) -> None:  # fmt: skip
        """After one step: `ref` the frame sent a tick earlier (the canceller's reference),
        `clean` the received frame less its echo, `out` the frame sent now."""
        self._frames += 1
        sent = _power(out)
        if sent > self._active_power:
            self._send += sent
            self._sends += 1
        if caller_speaking:
            heard = _power(clean)
            if heard > self._active_power:
                self._receive += heard
                self._receives += 1
        ref_power = _power(ref)
        judge_erl = ref_power > self._ref_floor and not caller_speaking
        take_delay = self._frames % DELAY_EVERY_FRAMES == 0
        if not (judge_erl or take_delay):
            return
        stats = ec.stats
        if not stats.converged:
            return
        if judge_erl and not stats.double_talk and math.isfinite(ec.echo_dbm0):
            self._erl_ref += ref_power
            self._erl_echo += dbm0_to_rms(ec.echo_dbm0) ** 2
        if take_delay and stats.delay_ms is not None and len(self._delays) < DELAYS_KEPT:
            self._delays.append(stats.delay_ms)

    @property
    def erl_db(self) -> float | None:
        """The ERL so far (None: not judged yet)."""
        if self._erl_ref > 0.0 and self._erl_echo > 0.0:
            return 10.0 * math.log10(self._erl_ref / self._erl_echo)
        return None

    def figures(self, erle_db: float | None) -> CallFigures:
        """The call's figures; `erle_db` is the call's own (`CallMetrics.erle_db`)."""
        delay = float(np.median(self._delays)) if self._delays else None
        return CallFigures(_dbm0(self._send, self._sends), _dbm0(self._receive, self._receives),
                           self.erl_db, erle_db, delay)  # fmt: skip
