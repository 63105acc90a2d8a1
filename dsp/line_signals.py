"""Line signals that tell the call what is on the other end: fax (CNG calling tone, CED answer
tone), a modem's answer tone (ANS, ANSam, /ANS: reported as ced), an answering machine's
"leave a message" beep, and call waiting (the SAS the subscriber hears, the CAS that announces
caller ID on call waiting).

Owns `LineSignalDetector` and re-exports its event `LineSignal` and the names in `SIGNALS`.
`gateway.call` feeds it each received 20 ms frame (mu-law decoded, after echo cancellation)
and gets an event when a signal is recognised: ced ~0.5 s after the tone starts, cng after a
0.4-0.7 s burst and 0.3 s of quiet (or two bursts), am_beep 0.3 s after the beep, the SAS
when it ends, the CAS 10 ms after it ends. One kernel call per feed (`dsp.line_signal_blocks`:
a frequency estimate, tone power and purity per 20 ms block, the CAS pair per 10 ms) and
plain Python timing over its rows (`dsp.line_signal_track`, `dsp.line_signal_cas`).

Measured in tests/dsp/test_line_signals.py: every signal at -10, -25 and -40 dBm0 over
-65 dBm0 line noise, at its tolerance edge and through mu-law, is recognised once; none is
reported on the shipped speech, prompts and caller voice, DTMF, US call-progress tones,
white or pink noise.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.frame import RATE_HZ, BlockStream, as_int16, check_rate
from dsp.line_signal_blocks import (
    BLOCK_COLS,
    BLOCK_SAMPLES,
    BUF_SAMPLES,
    STATE_SLOTS,
    _line_block_kernel,
    block_sections,
    cas_table,
)
from dsp.line_signal_cas import CasTracker
from dsp.line_signal_track import SIGNALS, LineSignal, ToneTracker

__all__ = ["SIGNALS", "LineSignal", "LineSignalDetector"]

MAX_BLOCKS = 50  # per kernel call (1 s); a longer feed calls again


class LineSignalDetector:
    """Recognises the line signals in `signals` (default: all of `SIGNALS`) in 8 kHz int16
    audio. `feed` takes any number of samples (normally one 20 ms frame) and returns the
    `LineSignal` events decided in them; a tail shorter than a block waits for the next call.
    Disabling a signal lets its tones count as another: without call_waiting a 440 Hz beep
    is an am_beep, without cng a 1100 Hz one."""

    def __init__(self, signals: Iterable[str] = SIGNALS, sample_rate: int = RATE_HZ) -> None:
        self.sample_rate = check_rate(sample_rate, "LineSignalDetector")
        chosen = tuple(signals)
        unknown = [s for s in chosen if s not in SIGNALS]
        if unknown:
            names = ", ".join(SIGNALS)
            raise DspInputError(f"LineSignalDetector: {unknown} are not among {names}")
        self._tones = ToneTracker(frozenset(chosen))
        self._cas = CasTracker() if "call_waiting" in chosen else None
        self._sos = block_sections()
        self._tab = cas_table()
        self._state = np.zeros(STATE_SLOTS, np.float64)
        self._buf = np.zeros(BUF_SAMPLES, np.float64)
        self._rows = np.zeros((MAX_BLOCKS, BLOCK_COLS), np.float64)
        self._blocks = BlockStream(BLOCK_SAMPLES)
        self.reset()

    @property
    def signals(self) -> frozenset[str]:
        """The signals this detector reports."""
        return self._tones.enabled

    @property
    def cas_present(self) -> bool:
        """The audio fed so far ends in what looks like the CAS (decided only once it ends):
        the caller keeps it out of the VAD and the uplink, as it does DTMF."""
        return self._cas is not None and self._cas.pending

    def reset(self) -> None:
        """Forget everything heard; times restart at 0."""
        self._state[:] = 0.0
        self._buf[:] = 0.0
        self._blocks.reset()
        self._tones.reset()
        if self._cas is not None:
            self._cas.reset()

    def feed(self, pcm: NDArray[np.int16]) -> list[LineSignal]:
        """Process `pcm` (1-D int16, any length); returns the signals recognised, oldest first."""
        x = as_int16(pcm, "LineSignalDetector.feed")
        if not x.flags.writeable:  # np.frombuffer: numba would compile a second kernel for it
            x = x.copy()
        out: list[LineSignal] = []
        for run in self._blocks.runs(x):
            self._run(run, out)
        return out

    def _run(self, pcm: NDArray[np.int16], out: list[LineSignal]) -> None:
        for at in range(0, pcm.shape[0], MAX_BLOCKS * BLOCK_SAMPLES):
            chunk = pcm[at : at + MAX_BLOCKS * BLOCK_SAMPLES]
            n = _line_block_kernel(
                chunk, self._sos, self._state, self._buf, self._tab, float(self.sample_rate),
                self._rows,
            )  # fmt: skip
            for row in self._rows[:n].tolist():
                self._tones.step(row, out)
                if self._cas is not None:
                    self._cas.step(row, out)
        if len(out) > 1:  # a CAS decided mid-block goes before a tone decided at its end
            out.sort(key=lambda e: e.at_ms)
