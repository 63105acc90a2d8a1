"""What one call measures of itself on the box, and the record it leaves: `CallMetrics` (filled
by the call's audio step and events task while the call runs), `FrameClock` (which received
frames we handled late, from the device's sample clock), `CallRecord` (the call as it is
kept: who, when, how it ended, the transcript, the metrics; `as_json()` for reports).

The figures, all in ms on trio's clock:
- turn latency: the caller's end of speech (the last frame the local VAD still called speech,
  before its hangover ran out) -> the frame that carried the first sample of the agent's
  next response to the line;
- barge-in stop: the onset of the caller's speech in the frame where the local VAD rose (that
  frame's end less the VAD's active part) -> the end of the playout's fade-out (the frame
  sent in the same tick, plus the fade's 5 ms);
- added latency uplink: a frame's arrival (the device's sample clock mapped to ours by a
  leaky minimum) -> handed to the realtime session; downlink: an agent response's first
  audio delta received -> its first sample sent to the line;
- ERLE: the canceller's estimate, sampled while the agent talks and it has converged; the
  call's figure is the median (steady state);
- frames late: handled more than a frame after arrival, or lost before we got them (a gap
  in the device's sequence numbers).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import FRAME_S, RATE_HZ
from dsp.levels import rms_to_dbm0
from gateway.line_health import LineFigures
from gateway.tools import ToolCallRecord

LATENCY_BIN_MS = 0.05  # the uplink latency histogram's resolution
LATENCY_BINS = 4000  # up to 200 ms; later frames land in the last bin (and are late anyway)
# The device's clock may run a little slow against ours; the arrival baseline may creep up by
# this much per frame (50 ppm: crystals are +-20-50 ppm) before a frame counts as late.
CLOCK_DRIFT_S_PER_FRAME = 50e-6 * FRAME_S
MAX_SEQ_GAP = 3000  # a jump beyond this (a minute) is a restarted device, not lost frames
SEQ_MODULUS = 1 << 32
ERLE_SAMPLES = 3000  # the most recent samples kept (every 10th frame: 10 minutes)
TIMELINE_EVENTS = 500  # a call's notable moments kept (an hour of conversation fits)


def percentile(values: list[float] | np.ndarray, q: float) -> float | None:
    """The `q`-th percentile (linear interpolation), or None for no values."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, np.float64), q))


class LevelMeter:
    """The caller's and the agent's level on the line (dBm0), smoothed over ~0.5 s: what the
    console's `monitor` shows. `update` once per frame (two dot products)."""

    SMOOTHING = 0.04  # per 20 ms frame: a time constant of ~0.5 s

    def __init__(self) -> None:
        self._caller = self._agent = 0.0

    def update(self, caller: NDArray[np.int16], agent: NDArray[np.int16]) -> None:
        a = self.SMOOTHING
        self._caller += a * (_mean_square(caller) - self._caller)
        self._agent += a * (_mean_square(agent) - self._agent)

    @property
    def caller_dbm0(self) -> float:
        return rms_to_dbm0(math.sqrt(self._caller))

    @property
    def agent_dbm0(self) -> float:
        return rms_to_dbm0(math.sqrt(self._agent))


def _mean_square(pcm: NDArray[np.int16]) -> float:
    x = pcm.astype(np.float32)
    return float(np.dot(x, x)) / max(1, x.size)


@dataclass(slots=True)
class FrameClock:
    """Arrival of received frames against the device's sample clock: `lateness_s(...)` is how
    much later than the earliest (drift-allowed) arrival a frame was handled; `late` counts
    those over one frame, `lost` the frames missing in the sequence."""

    late: int = 0
    lost: int = 0
    concealed: int = 0
    _base_s: float = math.nan
    _last_seq: int = -1

    def lateness_s(self, seq: int, timestamp: int, concealed: bool, now_s: float) -> float:
        offset = now_s - timestamp / RATE_HZ
        if math.isnan(self._base_s) or offset < self._base_s:
            self._base_s = offset
        else:
            self._base_s += min(offset - self._base_s, CLOCK_DRIFT_S_PER_FRAME)
        if self._last_seq >= 0:
            gap = (seq - self._last_seq - 1) % SEQ_MODULUS
            if 0 < gap <= MAX_SEQ_GAP:
                self.lost += gap
        self._last_seq = seq
        self.concealed += concealed
        late = offset - self._base_s
        self.late += late > FRAME_S
        return late


@dataclass(eq=False)
class Timeline:
    """The call's notable moments: (seconds since `start_s`, what), the first
    `TIMELINE_EVENTS` of them."""

    start_s: float
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, now_s: float, what: str) -> None:
        if len(self.events) < TIMELINE_EVENTS:
            self.events.append((now_s - self.start_s, what))

    def rebase(self, start_s: float) -> None:
        """Count from `start_s` (the answer of a call prepared while it rang): what came
        before it has negative times."""
        shift = start_s - self.start_s
        self.events = [(t - shift, what) for t, what in self.events]
        self.start_s = start_s


@dataclass(eq=False)
class CallMetrics:
    """Filled while the call runs; read into the `CallRecord` at its end."""

    turn_latency_ms: list[float] = field(default_factory=list)
    barge_in_stop_ms: list[float] = field(default_factory=list)
    downlink_ms: list[float] = field(default_factory=list)
    frames: int = 0
    frames_to_cloud_dropped: int = 0  # the session's channel was full (or not yet read)
    reconnects: int = 0
    clock: FrameClock = field(default_factory=FrameClock)
    _uplink_hist: np.ndarray = field(default_factory=lambda: np.zeros(LATENCY_BINS, np.int64))
    _erle_db: deque[float] = field(default_factory=lambda: deque(maxlen=ERLE_SAMPLES))
    _speech_end_s: float | None = None

    def frame_arrived(self, seq: int, timestamp: int, concealed: bool, now_s: float) -> float:
        """A received frame is being handled at `now_s`; returns its estimated arrival time."""
        self.frames += 1
        return now_s - self.clock.lateness_s(seq, timestamp, concealed, now_s)

    def handed_to_cloud(self, arrived_s: float, now_s: float) -> None:
        slot = int((now_s - arrived_s) * 1e3 / LATENCY_BIN_MS)
        self._uplink_hist[min(max(slot, 0), LATENCY_BINS - 1)] += 1

    def caller_stopped(self, end_s: float) -> None:
        """The local VAD's speech ended; its last voiced frame ended at `end_s`."""
        self._speech_end_s = end_s

    def caller_started(self) -> None:
        self._speech_end_s = None

    def agent_started(self, first_push_s: float, now_s: float) -> None:
        """The first sample of an agent response went to the line at `now_s`; its first delta
        had arrived at `first_push_s`."""
        self.downlink_ms.append((now_s - first_push_s) * 1e3)
        end = self._speech_end_s
        if end is not None and first_push_s >= end:
            self.turn_latency_ms.append((now_s - end) * 1e3)
            self._speech_end_s = None

    def barge_in(self, onset_s: float, stopped_s: float) -> None:
        self.barge_in_stop_ms.append((stopped_s - onset_s) * 1e3)

    def erle(self, erle_db: float) -> None:
        self._erle_db.append(erle_db)

    @property
    def erle_db(self) -> float | None:
        return percentile(list(self._erle_db), 50)

    def uplink_percentile(self, q: float) -> float | None:
        """Percentile of the uplink latency histogram (ms, bin centres)."""
        total = int(self._uplink_hist.sum())
        if total == 0:
            return None
        rank = math.ceil(q / 100.0 * total)
        slot = int(np.searchsorted(np.cumsum(self._uplink_hist), max(rank, 1)))
        return (slot + 0.5) * LATENCY_BIN_MS

    @property
    def frames_late(self) -> int:
        return self.clock.late + self.clock.lost


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    who: str  # "caller" or "agent"
    text: str


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class CallRecord:
    """One call as it is kept. Times: `started_at`/`ended_at` wall clock (UTC); the timeline
    in seconds from the answer. `ended_by` says who or what ended it, in words."""

    call_id: str
    port: int
    direction: str
    profile: str
    callerid: CallerId | None
    started_at: datetime
    ended_at: datetime
    ended_by: str
    transcript: tuple[TranscriptLine, ...]
    turn_latency_ms: tuple[float, ...]
    barge_in_stop_ms: tuple[float, ...]
    uplink_p50_ms: float | None
    uplink_p99_ms: float | None
    downlink_p50_ms: float | None
    downlink_p99_ms: float | None
    erle_db: float | None
    frames: int
    frames_late: int
    frames_to_cloud_dropped: int
    underruns: int
    reconnects: int
    barge_ins: dict[str, int]
    tool_calls: tuple[ToolCallRecord, ...]
    dtmf: str = ""
    voicemail: str | None = None
    captures: tuple[str, ...] = ()
    timeline: tuple[tuple[float, str], ...] = ()
    hangup_signal: str | None = None  # what the line saw (`gateway.line_call.HANGUP_SIGNALS`)
    cloud_closed_ms: float | None = None  # the line's hang-up -> the cloud session closed
    answer_to_audio_ms: float | None = None  # the answer -> the first sound sent to the line
    pre_answer_ms: float | None = None  # prepared while it rang: the call's start -> the answer
    line_health: LineFigures | None = None  # the line at the call's end (`gateway.line_health`)

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """The record as JSON values. The report's keys (issue 6) are at the top level:
        turn_latency_ms, barge_in_stop_ms, added_latency_ms {uplink_p50, uplink_p99,
        downlink_p50, downlink_p99}, erle_db, frames_late, transcript [{who, text}], ended_by."""
        cid = self.callerid
        return {
            "call_id": self.call_id,
            "port": self.port,
            "direction": self.direction,
            "profile": self.profile,
            "caller_id": None if cid is None else {"number": cid.number, "name": cid.name},
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "ended_by": self.ended_by,
            "hangup_signal": self.hangup_signal,
            "cloud_closed_ms": _ms(self.cloud_closed_ms),
            "answer_to_audio_ms": _ms(self.answer_to_audio_ms),
            "pre_answer_ms": _ms(self.pre_answer_ms),
            "line_health": None if self.line_health is None else self.line_health.as_json(),
            "transcript": [{"who": t.who, "text": t.text} for t in self.transcript],
            "turn_latency_ms": [round(v, 1) for v in self.turn_latency_ms],
            "barge_in_stop_ms": [round(v, 1) for v in self.barge_in_stop_ms],
            "added_latency_ms": {
                "uplink_p50": _ms(self.uplink_p50_ms),
                "uplink_p99": _ms(self.uplink_p99_ms),
                "downlink_p50": _ms(self.downlink_p50_ms),
                "downlink_p99": _ms(self.downlink_p99_ms),
            },
            "erle_db": None if self.erle_db is None else round(self.erle_db, 1),
            "frames": self.frames,
            "frames_late": self.frames_late,
            "frames_to_cloud_dropped": self.frames_to_cloud_dropped,
            "underruns": self.underruns,
            "reconnects": self.reconnects,
            "barge_ins": dict(self.barge_ins),
            "tool_calls": [
                {"name": t.name, "outcome": t.outcome, "duration_ms": round(t.duration_s * 1e3, 1)}
                for t in self.tool_calls
            ],
            "dtmf": self.dtmf,
            "voicemail": self.voicemail,
            "captures": list(self.captures),
            "timeline": [{"t_s": round(t, 3), "event": what} for t, what in self.timeline],
        }
