"""The call store's SQLite schema, its versions and the path between them, and the connection
settings every store connection uses. Owned by `gateway.store`; nothing else talks to it.

The schema version is SQLite's `user_version`. `MIGRATIONS[v]` takes a database from version
`v` to `v + 1`, inside the transaction that also sets the new `user_version`, so a kill at any
moment leaves the database at one version or the next, never between. Version 0 is an empty
file. A database newer than this code is refused (an older tipring after a rollback must not
write into a schema it does not know).

History:
- v1: calls (caller ID, times, status, metrics JSON, voicemail), transcript lines, tool calls.
- v2: the digits the caller pressed and the capture files move out of the metrics JSON into
  columns (the export and retention read them); the dialled number; a tool call's id and
  whether the session took its output; an index on status (recovery and counts read it).
- v3: line health (`gateway.line_health`): the line's figures at the call's end in columns
  (noise floor, loop volts, send and receive levels, ERL, echo delay, the alarms up then), and
  the lines' alarms as rows (`line_alarms`: raised and cleared).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from gateway.errors import GatewayError

# WAL: readers (the console, `tipring calls`) never block the writer, and a commit appends to
# the log instead of rewriting pages in place, so a torn write can only lose the last
# uncommitted transaction. synchronous=FULL: in WAL mode NORMAL syncs the log only at
# checkpoints, so a power cut could roll back commits made since the last one (the database
# stays consistent, but finished calls would vanish); FULL fsyncs the log at every commit, so
# a commit that returned survives a power cut (if the SD card honours flushes). The cost is one
# fsync per commit, off the trio loop and batched by `gateway.store_recorder`.
SYNCHRONOUS = "FULL"
BUSY_TIMEOUT_MS = 5000  # a reader may briefly hold the WAL during a checkpoint
JOURNAL_SIZE_LIMIT_BYTES = 4 << 20  # truncate the WAL back to this after checkpoints
SCHEMA_VERSION = 3


class StoreError(GatewayError):
    """The call database cannot be opened or used: the message names the file and why."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = str(path)


_V1 = """
CREATE TABLE calls (
    call_id TEXT PRIMARY KEY,
    port INTEGER NOT NULL,
    direction TEXT NOT NULL,
    number TEXT,
    name TEXT,
    profile TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at TEXT,
    ended_by TEXT,
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'finished', 'interrupted')),
    metrics TEXT NOT NULL DEFAULT '{}',
    voicemail TEXT
);
CREATE INDEX calls_started ON calls (started_at);
CREATE TABLE transcript (
    call_id TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    who TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
CREATE TABLE tool_calls (
    call_id TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    error TEXT,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
"""

_V2 = """
ALTER TABLE calls ADD COLUMN dialled TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN dtmf TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN captures TEXT NOT NULL DEFAULT '[]';
UPDATE calls SET
    dtmf = coalesce(json_extract(metrics, '$.dtmf'), ''),
    captures = coalesce(json_extract(metrics, '$.captures'), '[]'),
    metrics = json_remove(metrics, '$.dtmf', '$.captures')
WHERE json_valid(metrics);
ALTER TABLE tool_calls ADD COLUMN ref TEXT NOT NULL DEFAULT '';
ALTER TABLE tool_calls ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX calls_status ON calls (status);
"""


_V3 = """
ALTER TABLE calls ADD COLUMN noise_dbm0 REAL;
ALTER TABLE calls ADD COLUMN loop_volts REAL;
ALTER TABLE calls ADD COLUMN send_dbm0 REAL;
ALTER TABLE calls ADD COLUMN receive_dbm0 REAL;
ALTER TABLE calls ADD COLUMN erl_db REAL;
ALTER TABLE calls ADD COLUMN echo_delay_ms REAL;
ALTER TABLE calls ADD COLUMN line_alarms TEXT NOT NULL DEFAULT '[]';
CREATE TABLE line_alarms (
    port INTEGER NOT NULL,
    alarm TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    detail TEXT NOT NULL,
    cleared_at TEXT,
    PRIMARY KEY (port, alarm, raised_at)
) WITHOUT ROWID;
CREATE INDEX line_alarms_raised ON line_alarms (raised_at);
"""


def _run_script(script: str) -> Callable[[sqlite3.Connection], None]:
    def step(conn: sqlite3.Connection) -> None:
        # executescript() would COMMIT first; run statement by statement inside our transaction
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)

    return step


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _run_script(_V1),
    _run_script(_V2),
    _run_script(_V3),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def configure(conn: sqlite3.Connection, *, writer: bool) -> None:
    """The settings of every store connection; the writer's also set the file's own
    (auto_vacuum takes effect only on a new file, before its first table)."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if writer:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":  # e.g. a filesystem without shared memory: no safe concurrent reads
            raise sqlite3.OperationalError(f"journal mode is {mode}, not wal")
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to `SCHEMA_VERSION`, one transaction per step; returns the version
    it had. The connection must be in autocommit mode (isolation_level=None)."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(path, f"schema version {found} is newer than this tipring's "
                         f"{SCHEMA_VERSION}: upgrade tipring or move the file aside")  # fmt: skip
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return found
