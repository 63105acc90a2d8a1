"""The far side's script on one simulated line: `FarScript`, which `line_core.LineCore` runs
each 20 ms frame, and the records of what it did (`Played`, `HostWait`, the marks).

Items run in order. Audio (the far party's speech, keys, silence) waits until the far party
can be heard; fixed waits run at once; actions (hang up, hook) run on a frame boundary; a
mark records the sample the script reached it at. A host wait (`wait_for_voice`,
`wait_for_silence`) waits for the call like audio, starts on a frame boundary, hears what the
host sends to the line from then on (per-ms voice decisions, `host_voice`) and lets the
script go on at the first frame boundary after its condition held or its timeout ran out; a
timeout is recorded, not raised. Everything counts samples of the line's clock: no wall clock.

Records are in line ms (the clock of `LineCore.now_ms`): `marks` (name, ms), `played` (each
labelled audio's first and last sample at the line, and where its voice starts and ends),
`host_waits` (each host wait's start, when it was met or timed out, when the script went on).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from firmware_bridge.sim.host_voice import MS_SAMPLES, voiced_ms

__all__ = ["FarScript", "HostWait", "HostWaitKind", "Played", "WaitOutcome"]

HostWaitKind = Literal["voice", "silence"]
WaitOutcome = Literal["met", "timed_out", "cut"]


@dataclass(frozen=True, slots=True)
class Played:
    """One labelled `play` (or `press`) at the line, in line ms: its first sample went out at
    `start_ms`, its last ended at `end_ms`; its voice (`host_voice.voiced_ms` of the audio)
    spans `voice_start_ms` to `voice_end_ms` (None: no voice in what was played). `cut`: the
    call ended first, at `end_ms`."""

    label: str
    start_ms: float
    end_ms: float
    voice_start_ms: float | None
    voice_end_ms: float | None
    cut: bool = False


@dataclass(frozen=True, slots=True)
class HostWait:
    """One host wait, in line ms: it began at the frame boundary `start_ms`; at `met_ms` (a
    whole ms) its condition held, its timeout ran out, or the call ended (`outcome`); the
    script went on at the frame boundary `end_ms`."""

    kind: HostWaitKind
    min_ms: float
    timeout_ms: float
    start_ms: float
    met_ms: float
    end_ms: float
    outcome: WaitOutcome


@dataclass(frozen=True, slots=True)
class _Audio:
    pcm: NDArray[np.float64]
    label: str | None  # None: silence, not recorded
    voice: tuple[int, int] | None  # first voiced ms, and the ms after the last; None: none


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


@dataclass(slots=True)
class _Listen:
    kind: HostWaitKind
    min_ms: float
    timeout_ms: float
    start_ms: int | None = None  # set when it starts (a frame boundary, in a call)
    count: int = 0  # voice: ms of voice heard; silence: ms of quiet in a row
    met_ms: int | None = None
    outcome: WaitOutcome = "met"

    def record(self, end_ms: int) -> HostWait:
        assert self.start_ms is not None
        assert self.met_ms is not None
        return HostWait(self.kind, self.min_ms, self.timeout_ms, float(self.start_ms),
                        float(self.met_ms), float(end_ms), self.outcome)  # fmt: skip


_Item = _Audio | int | _Mark | _Listen | Callable[[], None]  # int: a wait of that many samples


def _ms(sample: int) -> float:
    return sample / MS_SAMPLES


class FarScript:
    """The far side's queued items and what they did; `LineCore` feeds it each frame."""

    def __init__(self) -> None:
        self._items: deque[_Item] = deque()
        self._head_pos = 0  # samples of the head item already used
        self._head_start = 0  # the sample the head item started at
        self.marks: list[tuple[str, float]] = []
        self.played: list[Played] = []
        self.host_waits: list[HostWait] = []

    @property
    def empty(self) -> bool:
        """True when every item has played or run."""
        return not self._items

    @property
    def listening(self) -> bool:
        """A host wait is running: `hear` wants this frame's host audio."""
        head = self._items[0] if self._items else None
        return isinstance(head, _Listen) and head.start_ms is not None and head.met_ms is None

    def add_audio(self, pcm: NDArray[np.float64], label: str | None) -> None:
        """Queue audio (int16 units, 8 kHz); `label` names its `Played` record (None: none)."""
        voice = None
        if label is not None:
            on = np.flatnonzero(voiced_ms(pcm))
            voice = (int(on[0]), int(on[-1]) + 1) if on.shape[0] else None
        self._items.append(_Audio(pcm, label, voice))

    def add_wait(self, samples: int) -> None:
        """Queue a pause of `samples`, call or no call."""
        self._items.append(samples)

    def add_action(self, action: Callable[[], None]) -> None:
        """Queue `action`, run on a frame boundary."""
        self._items.append(action)

    def add_mark(self, name: str) -> None:
        """Queue a mark: the sample the script reaches it at goes into `marks`."""
        self._items.append(_Mark(name))

    def add_host_wait(self, kind: HostWaitKind, min_ms: float, timeout_ms: float) -> None:
        """Queue a host wait (checked by the caller: both > 0)."""
        self._items.append(_Listen(kind, min_ms, timeout_ms))

    def run(self, far: NDArray[np.float64], now: int, audible: Callable[[], bool]) -> None:
        """Play the frame starting at sample `now` into `far` (160 samples); `audible()`: the
        far party can be heard now (audio waits for it, and host waits start only then; an
        action earlier in the frame may change it)."""
        pos = 0
        while self._items and pos < FRAME_SAMPLES:
            item = self._items[0]
            if isinstance(item, _Mark):
                self.marks.append((item.name, _ms(now + pos)))
                self._items.popleft()
            elif isinstance(item, _Listen):
                if not self._listen_ended(item, now, pos, audible):
                    return
            elif isinstance(item, _Audio | int):
                if isinstance(item, _Audio) and not audible():
                    return  # audio waits for the call
                pos = self._play(item, far, now, pos)
            else:
                if pos:
                    return  # actions take effect on frame boundaries
                self._items.popleft()
                item()

    def hear(self, sent: NDArray[np.float64], now: int) -> None:
        """What the host sent to the line in the frame starting at sample `now` (zeros while
        the loop is open), for the host wait running at the head, if any."""
        if not self.listening:
            return
        wait = self._items[0]
        assert isinstance(wait, _Listen)
        assert wait.start_ms is not None
        first_ms = now // MS_SAMPLES
        for i, voiced in enumerate(voiced_ms(sent).tolist()):
            if wait.kind == "voice":
                wait.count += int(voiced)  # pauses between words do not reset it
            else:
                wait.count = 0 if voiced else wait.count + 1
            at_ms = first_ms + i + 1  # the end of this ms
            if wait.count >= wait.min_ms:
                wait.met_ms = at_ms
                return
            if at_ms - wait.start_ms >= wait.timeout_ms:
                wait.met_ms, wait.outcome = at_ms, "timed_out"
                return

    def clear(self, now: int) -> None:
        """The call ended at sample `now`: drop every item left, recording the play or host
        wait it cut short."""
        head = self._items[0] if self._items else None
        if isinstance(head, _Audio) and head.label is not None and self._head_pos:
            self.played.append(self._played(head, now, cut=True))
        if isinstance(head, _Listen) and head.start_ms is not None:
            if head.met_ms is None:
                head.met_ms, head.outcome = now // MS_SAMPLES, "cut"
            self.host_waits.append(head.record(now // MS_SAMPLES))
        self._items.clear()
        self._head_pos = 0

    def _listen_ended(self, wait: _Listen, now: int, pos: int, audible: Callable[[], bool]) -> bool:
        """The host wait at the head: start it (on a frame boundary, in a call) or, once it
        ended, record and drop it. False: the script waits."""
        if wait.start_ms is None:
            if not pos and audible():
                wait.start_ms = now // MS_SAMPLES  # it hears this frame from its first sample
            return False
        if wait.met_ms is None:
            return False
        self._items.popleft()
        self.host_waits.append(wait.record(now // MS_SAMPLES))
        return True

    def _play(self, item: _Audio | int, far: NDArray[np.float64], now: int, pos: int) -> int:
        length = item.pcm.shape[0] if isinstance(item, _Audio) else item
        if self._head_pos == 0:
            self._head_start = now + pos
        n = min(FRAME_SAMPLES - pos, length - self._head_pos)
        if isinstance(item, _Audio):
            far[pos : pos + n] += item.pcm[self._head_pos : self._head_pos + n]
        pos, self._head_pos = pos + n, self._head_pos + n
        if self._head_pos >= length:
            self._items.popleft()
            self._head_pos = 0
            if isinstance(item, _Audio) and item.label is not None:
                self.played.append(self._played(item, now + pos, cut=False))
        return pos

    def _played(self, item: _Audio, end: int, cut: bool) -> Played:
        assert item.label is not None
        start_ms, end_ms = _ms(self._head_start), _ms(end)
        if item.voice is None or start_ms + item.voice[0] >= end_ms:
            return Played(item.label, start_ms, end_ms, None, None, cut)
        on_ms, off_ms = start_ms + item.voice[0], min(start_ms + item.voice[1], end_ms)
        return Played(item.label, start_ms, end_ms, on_ms, off_ms, cut)
