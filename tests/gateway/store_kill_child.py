"""The victim of `test_store_kill`: a process that writes call records as fast as the disk lets
it until it is killed. `python -m tests.gateway.store_kill_child DB SEED` opens the store,
prints "ready", then applies `script(SEED)` batch by batch (1-4 changes per transaction, as
the recorder batches them) and prints each batch's index once its commit returned.

`script(seed)` is deterministic, so the test can rebuild what the child wrote and compare:
after the kill the database must hold exactly the first `m` batches for an `m` the child
acknowledged (or the one after it, committed but killed before the print).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from gateway.store import CallStore
from gateway.store_types import CallBegun, CallFinished, StoreOp, ToolCallRow, TranscriptAppended

BATCHES = 3000  # far more than fit before the kill (an fsync per batch)
MAX_ACTIVE = 4


def script(seed: int) -> list[list[StoreOp]]:
    """The batches child `seed` writes: calls begun, lines appended, calls finished."""
    rng = random.Random(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=seed)
    active: dict[str, tuple[CallBegun, list[tuple[str, str]]]] = {}
    ops: list[StoreOp] = []
    for i in range(BATCHES * 2):
        at = t0 + timedelta(seconds=i)
        roll = rng.random()
        if not active or (roll < 0.1 and len(active) < MAX_ACTIVE):
            begun = CallBegun(f"s{seed}-c{i}", i % 4, "inbound", "default", at, f"555{i:04d}",
                              "CALLER", "")  # fmt: skip
            active[begun.call_id] = (begun, [])
            ops.append(begun)
        elif roll < 0.17:
            call_id = rng.choice(sorted(active))
            begun, lines = active.pop(call_id)
            ops.append(finished(begun, lines, at))
        else:
            call_id = rng.choice(sorted(active))
            line = (rng.choice(("caller", "agent")), f"line {i} of {call_id} " + "x" * (i % 50))
            active[call_id][1].append(line)
            ops.append(TranscriptAppended(call_id, *line, at))
    batches: list[list[StoreOp]] = []
    k = 0
    while k < len(ops) and len(batches) < BATCHES:
        size = rng.randint(1, 4)
        batches.append(ops[k : k + size])
        k += size
    return batches


def finished(begun: CallBegun, lines: list[tuple[str, str]], at: datetime) -> CallFinished:
    tools = (ToolCallRow("lookup", "ok", 12.5, None, "fc1", True),
             ToolCallRow("book", "error", 40.0, "busy", "fc2", False))  # fmt: skip
    return CallFinished(begun, at, "the caller hung up", {"frames": len(lines) * 50},
                        (*lines, ("agent", "goodbye")), tools, "12#")  # fmt: skip


def main() -> None:
    db, seed = sys.argv[1], int(sys.argv[2])
    batches = script(seed)
    store = CallStore.open(db)
    print("ready", flush=True)
    for index, batch in enumerate(batches):
        store.apply(batch)
        print(index, flush=True)
    time.sleep(60)  # wait for the kill: the test decides when it ends


if __name__ == "__main__":
    main()
