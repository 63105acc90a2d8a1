"""What the call store keeps and hands back: the writes (`CallBegun`, `TranscriptAppended`,
`CallFinished`, a line's `LineAlarmChanged`), the calls as read (`StoredCall`, `CallCounts`),
and `call_finished(record)`, which turns the call pipeline's `CallRecord` into the write that
finalises it.

Times are aware datetimes; the store keeps them as ISO 8601 in UTC (naive ones are taken as
UTC), so text order is time order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the record's type only: the store never imports the call's machinery
    from gateway.call_metrics import CallRecord

Status = Literal["active", "finished", "interrupted"]
INTERRUPTED_BY = "interrupted: the appliance stopped during the call"
# CallRecord.as_json() keys the store keeps in columns and tables of their own; the rest of
# the record (latencies, ERLE, frame counts, barge-ins, timeline) is the metrics JSON.
_OWN_KEYS = frozenset({
    "call_id", "port", "direction", "profile", "caller_id", "started_at", "ended_at",
    "ended_by", "transcript", "tool_calls", "dtmf", "voicemail", "captures", "line_health",
})  # fmt: skip
# The line's figures at the call's end (`gateway.line_health.LineFigures.as_json`): columns.
LINE_COLUMNS = ("noise_dbm0", "loop_volts", "send_dbm0", "receive_dbm0", "erl_db",
                "echo_delay_ms")  # fmt: skip


def to_text(when: datetime) -> str:
    """`when` as the store keeps it: ISO 8601, UTC, microseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class CallBegun:
    """A call started: its record exists from now on, `active` until finished."""

    call_id: str
    port: int
    direction: str
    profile: str
    started_at: datetime
    number: str | None = None  # caller ID, as the line delivered it
    name: str | None = None
    dialled: str = ""  # FXO outbound: the digits dialled; FXS inbound: the phone's digits


@dataclass(frozen=True, slots=True)
class TranscriptAppended:
    """A final transcript line of a running call (`who`: "caller" or "agent")."""

    call_id: str
    who: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ToolCallRow:
    name: str
    outcome: str
    duration_ms: float
    error: str | None = None
    ref: str = ""  # the session's function-call id
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A call ended: its final record. Carries what `CallBegun` does, so a call whose start
    was never written (no start hook, or a store that opened late) is still kept."""

    begun: CallBegun
    ended_at: datetime
    ended_by: str
    metrics: dict[str, Any] = field(default_factory=dict)
    transcript: tuple[tuple[str, str], ...] = ()  # (who, text), the whole call's
    tool_calls: tuple[ToolCallRow, ...] = ()
    dtmf: str = ""
    voicemail: str | None = None
    captures: tuple[str, ...] = ()
    line_health: dict[str, Any] | None = None  # `LineFigures.as_json()`: columns of their own


@dataclass(frozen=True, slots=True)
class LineAlarmChanged:
    """A line's alarm was raised (`cleared_at` None) or cleared (`gateway.line_health`)."""

    port: int
    alarm: str
    detail: str
    raised_at: datetime
    cleared_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        cleared = None if self.cleared_at is None else self.cleared_at.isoformat()
        return {"port": self.port, "alarm": self.alarm, "detail": self.detail,
                "raised_at": self.raised_at.isoformat(), "cleared_at": cleared}  # fmt: skip


StoreOp = CallBegun | TranscriptAppended | CallFinished | LineAlarmChanged


def call_finished(record: CallRecord, dialled: str = "") -> CallFinished:
    """The write that finalises `record` (a `gateway.call_metrics.CallRecord`)."""
    cid = record.callerid
    begun = CallBegun(record.call_id, record.port, record.direction, record.profile,
                      record.started_at, None if cid is None else cid.number,
                      None if cid is None else cid.name, dialled)  # fmt: skip
    tools = tuple(
        ToolCallRow(
            t.name, t.outcome, round(t.duration_s * 1e3, 1), t.error, t.call_id, t.delivered
        )
        for t in record.tool_calls
    )
    metrics = {k: v for k, v in record.as_json().items() if k not in _OWN_KEYS}
    line = None if record.line_health is None else record.line_health.as_json()
    return CallFinished(begun, record.ended_at, record.ended_by, metrics,
                        tuple((t.who, t.text) for t in record.transcript), tools, record.dtmf,
                        record.voicemail, tuple(record.captures), line)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredLine:
    who: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One call as read back. `transcript` and `tool_calls` are filled by the queries that
    ask for details; `ended_at` is None while the call is active."""

    call_id: str
    port: int
    direction: str
    profile: str
    number: str | None
    name: str | None
    dialled: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    status: Status
    metrics: dict[str, Any]
    dtmf: str
    voicemail: str | None
    captures: tuple[str, ...]
    transcript: tuple[StoredLine, ...] = ()
    tool_calls: tuple[ToolCallRow, ...] = ()
    line_health: dict[str, Any] = field(default_factory=dict)  # {} for a call before v3

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """JSON values: times as ISO 8601 UTC, the metrics as the call pipeline reported them."""
        duration = self.duration_s
        return {
            "call_id": self.call_id,
            "status": self.status,
            "port": self.port,
            "direction": self.direction,
            "profile": self.profile,
            "caller_id": {"number": self.number, "name": self.name},
            "dialled": self.dialled,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "duration_s": None if duration is None else round(duration, 3),
            "ended_by": self.ended_by,
            "dtmf": self.dtmf,
            "voicemail": self.voicemail,
            "captures": list(self.captures),
            "transcript": [
                {"who": t.who, "text": t.text, "at": t.at.isoformat()} for t in self.transcript
            ],
            "tool_calls": [
                {
                    "name": t.name,
                    "outcome": t.outcome,
                    "duration_ms": t.duration_ms,
                    "error": t.error,
                    "id": t.ref,
                    "delivered": t.delivered,
                }
                for t in self.tool_calls
            ],
            "metrics": self.metrics,
            "line_health": self.line_health or None,
        }


@dataclass(frozen=True, slots=True)
class CallCounts:
    active: int = 0
    finished: int = 0
    interrupted: int = 0

    @property
    def total(self) -> int:
        return self.active + self.finished + self.interrupted
