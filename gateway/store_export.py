"""`tipring calls`: the call records in the store, as a table, JSON or CSV, for the operator
and for spreadsheets. Reads the database read-only (the appliance may be writing it: WAL lets
both run), newest call first.
"""

from __future__ import annotations

import csv
import json
import sys
from argparse import ArgumentTypeError
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from gateway.store import CallStore
from gateway.store_schema import StoreError
from gateway.store_types import StoredCall

DEFAULT_DB = Path("/var/lib/tipring/calls.db")
TABLE_LIMIT = 20  # the table's default: a screenful; --json and --csv export every call
Format = Literal["table", "json", "csv"]
CSV_FIELDS = (
    "call_id", "status", "started_at", "ended_at", "duration_s", "port", "direction",
    "caller_number", "caller_name", "dialled", "profile", "ended_by", "dtmf", "voicemail",
    "captures", "tool_calls", "transcript_lines", "transcript", "erle_db", "frames_late",
)  # fmt: skip


def parse_since(text: str) -> datetime:
    """`YYYY-MM-DD` or an ISO 8601 time; without a zone it is this machine's local time.
    (An argparse type: a bad value is an `ArgumentTypeError` naming it.)"""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentTypeError(f"'{text}' is not a date (YYYY-MM-DD) or ISO 8601 time") from None
    return when if when.tzinfo is not None else when.astimezone()


def run_calls(db: Path, fmt: Format, limit: int | None, since: datetime | None,
              out: TextIO | None = None) -> int:  # fmt: skip
    """Print the calls in `db` (to `out`, default stdout); returns the exit status (1: no
    readable database)."""
    out = out or sys.stdout
    try:
        store = CallStore.open_readonly(db)
    except StoreError as exc:
        hint = " (tipring writes it once `tipring run` has started; --db PATH reads another)"
        print(f"tipring calls: {exc}{hint if not db.exists() else ''}", file=sys.stderr)
        return 1
    try:
        if limit is None and fmt == "table":
            limit = TABLE_LIMIT
        calls = store.recent(limit, since, details=fmt != "table")
    except StoreError as exc:
        print(f"tipring calls: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    match fmt:
        case "json":
            json.dump([c.as_json() for c in calls], out, indent=2, ensure_ascii=False)
            out.write("\n")
        case "csv":
            writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(csv_row(c) for c in calls)
        case "table":
            _table(calls, out)
    return 0


def csv_row(call: StoredCall) -> dict[str, Any]:
    """One call as a flat CSV row; the transcript is one cell of "who: text" lines."""
    duration = call.duration_s
    return {
        "call_id": call.call_id,
        "status": call.status,
        "started_at": call.started_at.isoformat(),
        "ended_at": "" if call.ended_at is None else call.ended_at.isoformat(),
        "duration_s": "" if duration is None else f"{duration:.1f}",
        "port": call.port,
        "direction": call.direction,
        "caller_number": call.number or "",
        "caller_name": call.name or "",
        "dialled": call.dialled,
        "profile": call.profile,
        "ended_by": call.ended_by or "",
        "dtmf": call.dtmf,
        "voicemail": call.voicemail or "",
        "captures": " ".join(call.captures),
        "tool_calls": " ".join(f"{t.name}:{t.outcome}" for t in call.tool_calls),
        "transcript_lines": len(call.transcript),
        "transcript": "\n".join(f"{t.who}: {t.text}" for t in call.transcript),
        "erle_db": _blank(call.metrics.get("erle_db")),
        "frames_late": _blank(call.metrics.get("frames_late")),
    }


def _blank(value: object) -> object:
    return "" if value is None else value


def _table(calls: list[StoredCall], out: TextIO) -> None:
    if not calls:
        print("no calls", file=out)
        return
    print(f"{'started (UTC)':19}  {'length':>7}  line  {'dir':8}  {'caller':20}  ended",
          file=out)  # fmt: skip
    for c in calls:
        duration = c.duration_s
        length = "active" if duration is None else f"{duration:.0f} s"
        caller = c.number or c.dialled or c.name or "-"
        ended = c.status if c.status == "active" else c.ended_by or c.status
        print(f"{c.started_at:%Y-%m-%d %H:%M:%S}  {length:>7}  {c.port:>4}  {c.direction:8}  "
              f"{caller[:20]:20}  {ended}", file=out)  # fmt: skip
