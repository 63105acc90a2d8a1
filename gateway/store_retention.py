"""Retention of the call store: which finished calls are deleted, and their files with them.
Called by `gateway.store.CallStore.prune` on the writer connection (in the writer's thread).

Calls go oldest first (by start), never while active. A deleted call's voicemail and capture
files are deleted first, then its rows, so a kill between the two leaves rows pointing at
missing files (retried, harmless), never files nobody knows about. Freed pages go back to the
filesystem with `PRAGMA incremental_vacuum` (the file is created with auto_vacuum=INCREMENTAL):
a full VACUUM would rewrite the whole file and need as much free space again, on an SD card,
while calls wait for the writer.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gateway.store_types import to_text

log = logging.getLogger(__name__)

DELETE_CHUNK = 500  # calls per transaction: short write locks, well under SQLite's 32766 args
SIZE_TARGET = 0.9  # over the size limit, prune to 90 % of it so the next calls do not re-prune
MAX_SIZE_ROUNDS = 20  # each round deletes an estimate of the calls over; a few always suffice


@dataclass(frozen=True, slots=True)
class Retention:
    """Finished calls are kept while they started less than `max_age_days` ago and the
    database stays under `max_db_bytes` (None: no limit). A deleted call's voicemail and
    capture files are deleted with it only if they lie under `data_dir` (None: never);
    relative paths are taken as relative to `data_dir`."""

    max_age_days: float | None = 365.0
    max_db_bytes: int | None = 256 << 20
    data_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one prune did: calls and files deleted, the database's size after (bytes)."""

    calls: int = 0
    files: int = 0
    db_bytes: int = 0


def prune(conn: sqlite3.Connection, retention: Retention, now: datetime) -> Pruned:
    """Apply `retention` as of `now`. `conn` is the writer, in autocommit mode."""
    calls = files = 0
    if retention.max_age_days is not None:
        cutoff = to_text(now - timedelta(days=retention.max_age_days))
        old = _ids(conn, "started_at < ?", (cutoff,), limit=-1)
        calls, files = _delete(conn, old, retention.data_dir)
    if retention.max_db_bytes is not None:
        limit = retention.max_db_bytes
        target = int(limit * SIZE_TARGET)
        for _ in range(MAX_SIZE_ROUNDS):
            used = db_bytes(conn)
            if used <= limit:  # under the limit: done; once over it, go down to the target
                break
            limit = target
            finished = _ids(conn, "1", (), limit=-1)
            if not finished:
                if used > retention.max_db_bytes:
                    log.warning("call store: %d bytes, over the %d limit, but no finished call "
                                "is left to delete", used, retention.max_db_bytes)  # fmt: skip
                break
            count = max(1, math.ceil(len(finished) * (used - target) / used))
            more_calls, more_files = _delete(conn, finished[:count], retention.data_dir)
            calls, files = calls + more_calls, files + more_files
    if calls:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # give the space back now
        log.info("call store: deleted %d old call(s) and %d file(s)", calls, files)
    return Pruned(calls, files, db_bytes(conn))


def db_bytes(conn: sqlite3.Connection) -> int:
    """The database's size in bytes once free pages are returned (they are, first)."""
    # execute() steps the pragma once, freeing one page; executescript() runs it to the end
    conn.executescript("PRAGMA incremental_vacuum")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


def _ids(conn: sqlite3.Connection, where: str, args: tuple[object, ...],
         limit: int) -> list[str]:  # fmt: skip
    rows = conn.execute(
        f"SELECT call_id FROM calls WHERE status != 'active' AND {where} "
        "ORDER BY started_at, call_id LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _delete(conn: sqlite3.Connection, ids: Sequence[str], data_dir: Path | None) -> tuple[int, int]:
    calls = files = 0
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = list(ids[start : start + DELETE_CHUNK])
        marks = ", ".join("?" * len(chunk))
        if data_dir is not None:
            rows = conn.execute(
                f"SELECT voicemail, captures FROM calls WHERE call_id IN ({marks})", chunk
            ).fetchall()
            files += sum(_delete_file(p, data_dir) for row in rows for p in _paths(*row))
        conn.execute("BEGIN IMMEDIATE")
        try:  # transcript and tool_calls rows go with their call (ON DELETE CASCADE)
            calls += conn.execute(f"DELETE FROM calls WHERE call_id IN ({marks})", chunk).rowcount
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return calls, files


def _paths(voicemail: str | None, captures: str) -> list[str]:
    try:
        listed = json.loads(captures)
    except ValueError:
        listed = []
    return ([voicemail] if voicemail else []) + [p for p in listed if isinstance(p, str) and p]


def _delete_file(name: str, data_dir: Path) -> bool:
    """Delete `name` if it lies under `data_dir`; True if a file went."""
    base = data_dir.resolve()
    path = (base / name).resolve()  # an absolute `name` stays itself
    if not path.is_relative_to(base) or path == base:
        log.debug("call store: %s is outside %s: kept", path, base)
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("call store: cannot delete %s: %s", path, exc)
        return False
    return True
