"""Calls for the store tests: begun, spoken and finished at known times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dsp.callerid_message import CallerId
from gateway.call_metrics import CallRecord, TranscriptLine
from gateway.store_types import CallBegun, CallFinished, ToolCallRow, TranscriptAppended
from gateway.tools import ToolCallRecord

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def begun(call_id: str, start_s: float = 0.0, port: int = 1) -> CallBegun:
    return CallBegun(call_id, port, "inbound", "default", at(start_s), "5551234", "ADA L",
                     "")  # fmt: skip


def line(call_id: str, text: str, at_s: float, who: str = "caller") -> TranscriptAppended:
    return TranscriptAppended(call_id, who, text, at(at_s))


def finished(call: CallBegun, end_s: float, lines: tuple[tuple[str, str], ...] = (),
             voicemail: str | None = None, captures: tuple[str, ...] = ()
             ) -> CallFinished:  # fmt: skip
    return CallFinished(call, at(end_s), "the caller hung up", {"erle_db": 31.5, "frames": 900},
                        lines, (ToolCallRow("lookup", "ok", 12.5, None, "fc1", True),), "12#",
                        voicemail, captures)  # fmt: skip


def call_record(call_id: str = "c-rec", start_s: float = 0.0) -> CallRecord:
    """A finished call as `CallPipeline` hands it to `on_record`."""
    return CallRecord(
        call_id=call_id, port=2, direction="inbound", profile="sales",
        callerid=CallerId(number="5550100", name="GRACE H"),
        started_at=at(start_s), ended_at=at(start_s + 42.5), ended_by="the agent hung up",
        transcript=(TranscriptLine("agent", "Hello, tipring shop."),
                    TranscriptLine("caller", "I'd like to book a table.")),
        turn_latency_ms=(410.2, 388.0), barge_in_stop_ms=(31.0,),
        uplink_p50_ms=0.4, uplink_p99_ms=1.9, downlink_p50_ms=2.0, downlink_p99_ms=4.5,
        erle_db=float("nan"), frames=2125, frames_late=0, frames_to_cloud_dropped=0,
        underruns=1, reconnects=0, barge_ins={"confirmed": 1},
        tool_calls=(ToolCallRecord("fc_1", "book_table", "ok", 3.0, 0.25, None, True),
                    ToolCallRecord("fc_2", "transfer", "timeout", 5.0, 2.0, "no answer")),
        dtmf="1#", voicemail="/var/lib/tipring/voicemail/c-rec.wav",
        captures=("/var/lib/tipring/captures/c-rec-up.wav",),
        timeline=((0.0, "answered"), (42.5, "ended: the agent hung up")),
    )  # fmt: skip
