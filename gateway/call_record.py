"""The end of a call in `gateway.call`: its files written (`save_files`) and its record made
(`make_record`, a `gateway.call_metrics.CallRecord`; it also hands the call's line figures to
the line's health, once per call)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import trio
from numpy.typing import NDArray

from gateway.call_metrics import CallRecord, percentile
from gateway.call_wav import write_wav
from gateway.line_health import LineFigures

if TYPE_CHECKING:
    from gateway.call import Call


def _write_all(files: list[tuple[Path, NDArray[np.int16]]]) -> None:
    for path, pcm in files:
        write_wav(path, pcm)


async def save_files(call: Call) -> None:
    """The voicemail (if one was being recorded) and the captures (if on), in one go."""
    files = []
    voicemail = call.voicemail.take() if call.voicemail is not None else None
    if voicemail is not None:
        files.append(voicemail)
    if call.config.capture_dir is not None:
        for name, tape in (("uplink", call.audio.capture_up), ("line", call.audio.capture_down)):
            path = Path(call.config.capture_dir) / f"{call.spec.call_id}-{name}.wav"
            files.append((path, tape.pcm()))
            call.captures.append(str(path))
    if files:  # one worker thread, not cancellable: the files are whole or not begun
        await trio.to_thread.run_sync(_write_all, files)


def make_record(call: Call, started_at: datetime, ended_at: datetime) -> CallRecord:
    reason = call.line.hangup.reason
    if reason is not None:
        ended_by = (f"caller hung up ({reason})" if reason.startswith(("phone on-hook",
                    "far end")) else f"line ended the call ({reason})")  # fmt: skip
    else:
        ended_by = call.ended_by or "cancelled (shutdown)"
    m, stats = call.metrics, call.audio.playout.stats
    voicemail = call.voicemail
    return CallRecord(
        call.spec.call_id, call.spec.port, call.spec.direction, call.spec.profile,
        call.spec.callerid, started_at, ended_at, ended_by, tuple(call.transcript),
        tuple(m.turn_latency_ms), tuple(m.barge_in_stop_ms), m.uplink_percentile(50),
        m.uplink_percentile(99), percentile(m.downlink_ms, 50),
        percentile(m.downlink_ms, 99), m.erle_db, m.frames, m.frames_late,
        m.frames_to_cloud_dropped, stats.underrun_frames, m.reconnects,
        {k: getattr(call.bargein.stats, k) for k in ("paused", "confirmed", "resumed",
                                                     "cloud_only")},
        (*call.pre_answer_records, *(call.tools.records if call.tools is not None else ())),
        call.dtmf,
        str(voicemail.path) if voicemail is not None and voicemail.saved else None,
        tuple(call.captures), tuple(call.timeline.events),
        call.line.hangup.signal or call.end_signal,
        _closed_ms(call), _first_audio_ms(call),
        line_health=_line_figures(call),
        pre_answer_ms=call.prepared_s * 1000.0 if call.prepared_s else None,
    )  # fmt: skip


def _line_figures(call: Call) -> LineFigures:
    """The call's figures of its line, handed to the line's health (its echo baseline and
    alarms: `gateway.line_health`), and the line's as they are now for the record."""
    figures = call.audio.line_meter.figures(call.metrics.erle_db)
    health = call.line.health
    return health.call_ended(figures) if health is not None else LineFigures(None, None, figures)


def _first_audio_ms(call: Call) -> float | None:
    first_s = call.audio.first_audio_s
    return None if first_s is None else (first_s - call.timeline.start_s) * 1000.0


def _closed_ms(call: Call) -> float | None:
    """From the line's hang-up to the cloud session closed (None: the line did not end the
    call, or no session was open)."""
    hung_up_s, closed_s = call.line.hangup.at_s, call.cloud_closed_s
    if closed_s is None or not math.isfinite(hung_up_s):
        return None
    return max(0.0, (closed_s - hung_up_s) * 1000.0)
