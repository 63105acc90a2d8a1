"""`gateway.store`: the call records, in SQLite. A call's record exists from the moment it
starts (`CallBegun`, status `active`), collects its transcript as it is spoken
(`TranscriptAppended`) and is finalised at its end (`CallFinished`). Calls still active
when the store is next opened for writing were cut off by a crash, kill or power cut: they
are marked `interrupted`, ended at their last update.

`CallStore` is synchronous and blocking (an fsync per commit): the appliance never calls it
from the trio loop, only through `gateway.store_recorder.CallStoreRecorder`, which runs it
in a worker thread. One writer connection per database, used by one thread at a time;
readers (`open_readonly`: the console, `tipring calls`) may run alongside it (WAL). The
schema and its versions are in `gateway.store_schema`, retention in `gateway.store_retention`.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, assert_never, cast
from urllib.parse import quote

from gateway.store_retention import Pruned, Retention, prune
from gateway.store_schema import SCHEMA_VERSION, StoreError, configure, migrate, schema_version
from gateway.store_types import (
    INTERRUPTED_BY,
    LINE_COLUMNS,
    CallBegun,
    CallCounts,
    CallFinished,
    LineAlarmChanged,
    Status,
    StoredCall,
    StoredLine,
    StoreOp,
    ToolCallRow,
    TranscriptAppended,
    from_text,
    to_text,
)

log = logging.getLogger(__name__)

_COLUMNS = ("call_id, port, direction, profile, number, name, dialled, started_at, updated_at, "
            "ended_at, ended_by, status, metrics, dtmf, voicemail, captures, "
            + ", ".join(LINE_COLUMNS) + ", line_alarms")  # fmt: skip


class CallStore:
    """One connection to the call database; see the module docstring. Open with `open` (the
    writer: migrates, marks interrupted calls) or `open_readonly`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.interrupted_on_open: tuple[str, ...] = ()

    @classmethod
    def open(cls, path: Path | str, recover: bool = True) -> CallStore:
        """Open (or create) the database for writing and bring its schema up to date; with
        `recover` (the process's first open: nobody else can be mid-call), mark the calls a
        previous run left active as interrupted (`interrupted_on_open`)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(path, f"cannot open the call database: {exc}") from exc
        try:
            configure(conn, writer=True)
            migrate(conn, path)
            store = cls(conn, path)
            if recover:
                store.interrupted_on_open = store._mark_interrupted()
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(path, f"cannot open the call database: {exc}") from exc
        return store

    @classmethod
    def open_readonly(cls, path: Path | str) -> CallStore:
        """Open an existing database for reading only; it must have this tipring's schema."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(path, "no call database here")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            configure(conn, writer=False)
            found = schema_version(conn)
        except sqlite3.Error as exc:
            raise StoreError(path, f"cannot read the call database: {exc}") from exc
        if found != SCHEMA_VERSION:
            conn.close()
            why = ("not a tipring call database (schema version 0)" if found == 0 else
                   f"schema version {found}, this tipring reads {SCHEMA_VERSION}"
                   + ("; `tipring run` upgrades it" if found < SCHEMA_VERSION else ""))  # fmt: skip
            raise StoreError(path, why)
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    # --- writes -------------------------------------------------------------------------------

    def begin(self, call: CallBegun) -> None:
        self.apply([call])

    def append_transcript(self, line: TranscriptAppended) -> None:
        self.apply([line])

    def finish(self, call: CallFinished) -> None:
        self.apply([call])

    def apply(self, ops: Sequence[StoreOp]) -> None:
        """Write `ops` in one transaction: all of them are kept, or (on error) none."""
        try:
            with self._transaction():
                for op in ops:
                    match op:
                        case CallBegun():
                            self._begin(op)
                        case TranscriptAppended():
                            self._append(op)
                        case CallFinished():
                            self._finish(op)
                        case LineAlarmChanged():
                            self._alarm(op)
                        case _:
                            assert_never(op)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot write {len(ops)} change(s): {exc}") from exc

    def prune(self, retention: Retention, now: datetime) -> Pruned:
        """Delete the finished calls `retention` no longer keeps (and their files)."""
        try:
            return prune(self._conn, retention, now)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot delete old calls: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _mark_interrupted(self) -> tuple[str, ...]:
        with self._transaction():
            rows = self._conn.execute(
                "UPDATE calls SET status = 'interrupted', ended_at = updated_at, ended_by = ? "
                "WHERE status = 'active' RETURNING call_id",
                (INTERRUPTED_BY,),
            ).fetchall()
        return tuple(sorted(str(r[0]) for r in rows))

    def _begin(self, op: CallBegun) -> None:
        at = to_text(op.started_at)
        self._conn.execute(
            "INSERT INTO calls (call_id, port, direction, profile, number, name, dialled, "
            "started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            (op.call_id, op.port, op.direction, op.profile, op.number, op.name, op.dialled, at, at),
        )

    def _append(self, op: TranscriptAppended) -> None:
        at = to_text(op.at)
        touched = self._conn.execute(
            "UPDATE calls SET updated_at = max(updated_at, ?) "
            "WHERE call_id = ? AND status = 'active'",
            (at, op.call_id),
        ).rowcount
        if not touched:  # never begun, or over: the finished record has the whole transcript
            log.debug("call %s: transcript line for a call not active, not kept", op.call_id)
            return
        self._conn.execute(
            "INSERT INTO transcript (call_id, seq, who, text, at) "
            "SELECT ?1, coalesce(max(seq) + 1, 0), ?2, ?3, ?4 FROM transcript WHERE call_id = ?1",
            (op.call_id, op.who, op.text, at),
        )

    def _finish(self, op: CallFinished) -> None:
        self._begin(op.begun)
        ended_at = to_text(op.ended_at)
        self._conn.execute(
            "UPDATE calls SET status = 'finished', ended_at = ?1, ended_by = ?2, "
            "updated_at = max(updated_at, ?1), metrics = ?3, dtmf = ?4, voicemail = ?5, "
            "captures = ?6, started_at = ?7 WHERE call_id = ?8",  # the record's start is exact
            (
                ended_at,
                op.ended_by,
                json.dumps(_finite(op.metrics)),
                op.dtmf,
                op.voicemail,
                json.dumps(list(op.captures)),
                to_text(op.begun.started_at),
                op.begun.call_id,
            ),
        )
        if op.line_health is not None:
            self._line_figures(op.begun.call_id, op.line_health)
        self._write_transcript(op.begun.call_id, op.transcript, ended_at)
        self._conn.execute("DELETE FROM tool_calls WHERE call_id = ?", (op.begun.call_id,))
        self._conn.executemany(
            "INSERT INTO tool_calls (call_id, seq, name, outcome, duration_ms, error, ref, "
            "delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    op.begun.call_id,
                    seq,
                    t.name,
                    t.outcome,
                    t.duration_ms,
                    t.error,
                    t.ref,
                    int(t.delivered),
                )
                for seq, t in enumerate(op.tool_calls)
            ],
        )

    def _line_figures(self, call_id: str, figures: dict[str, Any]) -> None:
        sets = ", ".join(f"{name} = ?" for name in LINE_COLUMNS)
        self._conn.execute(
            f"UPDATE calls SET {sets}, line_alarms = ? WHERE call_id = ?",
            (*(_number(figures.get(name)) for name in LINE_COLUMNS),
             json.dumps([str(a) for a in figures.get("alarms", ())]), call_id),
        )  # fmt: skip

    def _alarm(self, op: LineAlarmChanged) -> None:
        self._conn.execute(
            "INSERT INTO line_alarms (port, alarm, raised_at, detail, cleared_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (port, alarm, raised_at) "
            "DO UPDATE SET cleared_at = excluded.cleared_at",
            (op.port, op.alarm, to_text(op.raised_at), op.detail,
             None if op.cleared_at is None else to_text(op.cleared_at)),
        )  # fmt: skip

    def _write_transcript(self, call_id: str, final: Sequence[tuple[str, str]],
                          ended_at: str) -> None:  # fmt: skip
        """The call's whole transcript replaces the lines kept while it ran; a line kept then
        keeps its time (matched in order), a line only the end knows gets the end's time.
        An empty final transcript keeps the lines kept while it ran."""
        if not final:
            return
        stored = self._conn.execute(
            "SELECT who, text, at FROM transcript WHERE call_id = ? ORDER BY seq", (call_id,)
        ).fetchall()
        times, k = [], 0
        for line in final:
            match = next((j for j in range(k, len(stored)) if tuple(stored[j][:2]) == line), None)
            times.append(ended_at if match is None else stored[match][2])
            k = k if match is None else match + 1
        self._conn.execute("DELETE FROM transcript WHERE call_id = ?", (call_id,))
        self._conn.executemany(
            "INSERT INTO transcript (call_id, seq, who, text, at) VALUES (?, ?, ?, ?, ?)",
            [
                (call_id, seq, who, text, at)
                for seq, ((who, text), at) in enumerate(zip(final, times, strict=True))
            ],
        )

    # --- reads --------------------------------------------------------------------------------

    def recent(self, limit: int | None = 20, since: datetime | None = None, *,
               details: bool = False) -> list[StoredCall]:  # fmt: skip
        """The latest `limit` calls (None: all) started at or after `since`, newest first;
        with `details`, each with its transcript and tool calls."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM calls WHERE started_at >= ? "
            "ORDER BY started_at DESC, call_id DESC LIMIT ?",
            ("" if since is None else to_text(since), -1 if limit is None else limit),
        )
        calls = [_call(row) for row in rows]
        return [self._details(c) for c in calls] if details else calls

    def call(self, call_id: str) -> StoredCall | None:
        """One call, with its transcript and tool calls; None if there is no such call."""
        rows = self._read(f"SELECT {_COLUMNS} FROM calls WHERE call_id = ?", (call_id,))
        return self._details(_call(rows[0])) if rows else None

    def alarms(self, limit: int = 50) -> list[LineAlarmChanged]:
        """The lines' latest `limit` alarms (raised, and cleared if they were), newest first."""
        rows = self._read(
            "SELECT port, alarm, detail, raised_at, cleared_at FROM line_alarms "
            "ORDER BY raised_at DESC LIMIT ?",
            (limit,),
        )
        return [LineAlarmChanged(int(p), a, d, from_text(r), None if c is None else from_text(c))
                for p, a, d, r, c in rows]  # fmt: skip

    def counts(self, since: datetime | None = None) -> CallCounts:
        """How many calls there are in each state (started at or after `since`)."""
        rows = self._read(
            "SELECT status, count(*) FROM calls WHERE started_at >= ? GROUP BY status",
            ("" if since is None else to_text(since),),
        )
        return CallCounts(**{str(status): int(n) for status, n in rows})

    def _details(self, call: StoredCall) -> StoredCall:
        lines = self._read("SELECT who, text, at FROM transcript WHERE call_id = ? ORDER BY seq",
                           (call.call_id,))  # fmt: skip
        tools = self._read(
            "SELECT name, outcome, duration_ms, error, ref, delivered FROM tool_calls "
            "WHERE call_id = ? ORDER BY seq",
            (call.call_id,),
        )
        return replace(
            call,
            transcript=tuple(StoredLine(w, t, from_text(a)) for w, t, a in lines),
            tool_calls=tuple(
                ToolCallRow(n, o, float(d), e, r, bool(dv)) for n, o, d, e, r, dv in tools
            ),
        )

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot read the call database: {exc}") from exc


def _call(row: Sequence[Any]) -> StoredCall:
    (call_id, port, direction, profile, number, name, dialled, started_at, updated_at,
     ended_at, ended_by, status, metrics, dtmf, voicemail, captures) = row[:16]  # fmt: skip
    figures, alarms = row[16:-1], _json(row[-1], [])
    line: dict[str, Any] = {}
    if alarms or any(v is not None for v in figures):
        line = {**dict(zip(LINE_COLUMNS, figures, strict=True)), "alarms": alarms}
    return StoredCall(call_id, int(port), direction, profile, number, name, dialled,
                      from_text(started_at), from_text(updated_at),
                      None if ended_at is None else from_text(ended_at), ended_by,
                      cast(Status, status), _json(metrics, {}), dtmf, voicemail,
                      tuple(_json(captures, [])), line_health=line)  # fmt: skip


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _json(text: str, default: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # a row written by hand: show the rest of the call anyway
        return default


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
