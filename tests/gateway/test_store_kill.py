"""gateway.store under `kill -9`: a real child process (`store_kill_child`) writes call
records in a loop and is SIGKILLed at random moments (during start-up, opening and recovery,
mid-transaction, mid-fsync); after each kill the database passes `PRAGMA integrity_check`,
holds exactly a prefix of what the child wrote (everything it acknowledged, nothing half
written), keeps every earlier iteration's calls as they were, and the next open marks the
calls the child left active as interrupted, ended at their last update.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.store import CallStore
from gateway.store_types import (
    INTERRUPTED_BY,
    CallBegun,
    CallFinished,
    StoreOp,
    TranscriptAppended,
    to_text,
)
from tests.gateway.store_kill_child import script

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 20
READY_TIMEOUT_S = 20.0  # the child's start-up on a loaded machine


@dataclass
class Expected:
    status: str
    updated_at: str
    ended_at: str | None = None
    ended_by: str | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)
    tools: int = 0


def model(batches: list[list[StoreOp]]) -> dict[str, Expected]:
    """What the store holds after `batches`: a plain reference of its write rules."""
    calls: dict[str, Expected] = {}
    for op in (op for batch in batches for op in batch):
        if isinstance(op, CallBegun):
            calls.setdefault(op.call_id, Expected("active", to_text(op.started_at)))
        elif isinstance(op, TranscriptAppended):
            call = calls.get(op.call_id)
            if call is not None and call.status == "active":
                call.lines.append((op.who, op.text))
                call.updated_at = max(call.updated_at, to_text(op.at))
        elif isinstance(op, CallFinished):
            call = calls.setdefault(op.begun.call_id,
                                    Expected("active", to_text(op.begun.started_at)))  # fmt: skip
            ended = to_text(op.ended_at)
            call.status, call.ended_at, call.ended_by = "finished", ended, op.ended_by
            call.updated_at = max(call.updated_at, ended)
            call.lines, call.tools = list(op.transcript) or call.lines, len(op.tool_calls)
    return calls


def snapshot(db: Path) -> dict[str, Expected]:
    """The database as a plain reader sees it, after an integrity check."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # killed before the schema
            return {}
        calls = {
            cid: Expected(status, updated, ended_at, ended_by)
            for cid, status, updated, ended_at, ended_by in conn.execute(
                "SELECT call_id, status, updated_at, ended_at, ended_by FROM calls"
            )
        }
        for cid, who, text in conn.execute(
            "SELECT call_id, who, text FROM transcript ORDER BY call_id, seq"
        ):
            calls[cid].lines.append((who, text))
        for cid, n in conn.execute("SELECT call_id, count(*) FROM tool_calls GROUP BY call_id"):
            calls[cid].tools = n
        return calls
    finally:
        conn.close()


def kill_at_random(db: Path, seed: int, rng: random.Random) -> int:
    """Run the child and SIGKILL it; returns the index of the last batch it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.store_kill_child", str(db), str(seed)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if rng.random() < 0.2:  # anywhere: start-up, migration, recovery of the last kill
            time.sleep(rng.uniform(0.0, 0.3))
        else:  # mid-writing
            assert child.stdout is not None
            deadline = time.monotonic() + READY_TIMEOUT_S
            while child.stdout.readline().strip() != "ready":
                assert time.monotonic() < deadline, "the child never opened the store"
            time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    acked = [int(word) for word in out.split() if word.isdigit()]
    return acked[-1] if acked else -1


def recover(db: Path, mine: dict[str, Expected]) -> None:
    """The next start: the calls left active become interrupted, ended at their last update;
    `mine` is updated to match."""
    store = CallStore.open(db)
    after = {c.call_id: c for c in store.recent(None, details=True)}
    store.close()
    active = sorted(cid for cid, call in mine.items() if call.status == "active")
    assert sorted(store.interrupted_on_open) == active
    for cid, call in mine.items():
        stored = after[cid]
        assert [(t.who, t.text) for t in stored.transcript] == call.lines
        if call.status == "active":
            assert (stored.status, stored.ended_by) == ("interrupted", INTERRUPTED_BY)
            assert stored.ended_at is not None
            assert to_text(stored.ended_at) == call.updated_at
            call.status, call.ended_at, call.ended_by = (
                "interrupted", call.updated_at, INTERRUPTED_BY
            )  # fmt: skip
        else:
            assert stored.status == "finished"


def test_kill_9_at_random_moments_leaves_every_committed_call_intact(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    rng = random.Random(7)
    kept: dict[str, Expected] = {}  # every earlier iteration's calls, as recovered
    mid_write = 0
    for seed in range(ITERATIONS):
        batches = script(seed)
        acked = kill_at_random(db, seed, rng)
        mid_write += acked >= 0
        if not db.exists():  # killed before it created the file
            continue
        found = snapshot(db)
        mine = {cid: call for cid, call in found.items() if cid.startswith(f"s{seed}-")}
        assert {cid: found[cid] for cid in kept} == kept, "an earlier call changed"
        assert len(found) == len(kept) + len(mine)
        candidates = [model(batches[:m]) for m in (acked + 1, acked + 2)]
        assert mine in candidates, f"iteration {seed}: not a prefix of batches ({acked} acked)"

        recover(db, mine)
        kept |= mine
    print(f"{ITERATIONS} kills, {mid_write} after at least one commit, {len(kept)} calls kept")
    assert mid_write >= ITERATIONS // 2
    assert any(call.status == "interrupted" for call in kept.values())
    assert any(call.status == "finished" for call in kept.values())
