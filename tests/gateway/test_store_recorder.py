"""gateway.store_recorder: the hooks the call side calls (a real `CallSpec`, a real
`CallRecord`) land in the database in order; the console's queries read them; a stalled disk
never blocks the trio loop (the hooks return, the loop ticks, transcript lines past the cap are
dropped and counted, starts and ends are not); what is queued at cancellation is written;
interrupted calls are reported at start; one bad change costs only itself."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

import pytest
import trio

from dsp.callerid_message import CallerId
from firmware_bridge.port import PortKind
from gateway.line_call import CallSpec
from gateway.store import CallStore
from gateway.store_recorder import CallStoreRecorder
from gateway.store_types import StoreOp, TranscriptAppended
from tests.gateway.store_rig import at, begun, call_record

TEST_S = 10.0  # every test's bound


def spec(call_id: str = "c-rec") -> CallSpec:
    return CallSpec(call_id, 2, PortKind.FXO, "inbound", "sales", "",
                    CallerId(number="5550100", name="GRACE H"))  # fmt: skip


def clock() -> datetime:
    return at(1.0)


async def test_hooks_keep_a_call_from_start_to_end(tmp_path: Path) -> None:
    recorder = CallStoreRecorder(tmp_path / "calls.db", wall_clock=clock)
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            recorder.on_call_started(spec(), started_at=at(0.0))
            recorder.on_transcript("c-rec", "agent", "Hello, tipring shop.")
            await recorder.flushed()
            running = await recorder.call("c-rec")
            assert running is not None
            assert (running.status, running.number, running.name) == ("active", "5550100",
                                                                     "GRACE H")  # fmt: skip
            recorder.on_transcript("c-rec", "caller", "I'd like to book a table.")
            recorder.on_record(call_record("c-rec"))
            await recorder.flushed()
            done = await recorder.call("c-rec")
            recent = await recorder.recent(5)
            nursery.cancel_scope.cancel()
    assert done is not None
    assert (done.status, done.ended_by) == ("finished", "the agent hung up")
    assert [(t.text, t.at) for t in done.transcript] == [
        ("Hello, tipring shop.", at(1.0)), ("I'd like to book a table.", at(1.0))
    ]  # fmt: skip
    assert [c.call_id for c in recent] == ["c-rec"]


class StalledStore(CallStore):
    """A store on a disk that stops answering until `gate` is set."""

    gate = threading.Event()
    batches: list[int] = []  # noqa: RUF012 - one test at a time uses it

    def apply(self, ops: list[StoreOp]) -> None:  # type: ignore[override]
        self.gate.wait(timeout=TEST_S)
        self.batches.append(len(ops))
        super().apply(ops)


async def test_a_stalled_disk_never_blocks_the_loop(tmp_path: Path) -> None:
    # the real clock: the writer is a real thread stuck in a real wait (autojump would leap
    # over it), so the ticks are short
    StalledStore.gate.clear()
    StalledStore.batches.clear()
    recorder = CallStoreRecorder(tmp_path / "calls.db", wall_clock=clock, max_pending=20,
                                 opener=StalledStore.open)  # fmt: skip
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            recorder.on_call_started(spec("a"))
            await trio.sleep(0.05)  # the writer is now stuck in the disk with that one change
            ticks = 0
            for k in range(50):  # timers keep firing while the disk hangs
                recorder.on_transcript("a", "caller", f"line {k}")
                await trio.sleep(0.005)
                ticks += 1
            recorder.on_record(call_record("a"))  # a call's end is never dropped
            # the stuck change counts against the cap until it is written: 19 lines wait
            assert (ticks, recorder.dropped, StalledStore.batches) == (50, 31, [])
            StalledStore.gate.set()
            await recorder.flushed()
            nursery.cancel_scope.cancel()
    assert StalledStore.batches == [1, 20]  # everything queued went in one transaction
    store = CallStore.open_readonly(tmp_path / "calls.db")
    done = store.call("a")
    store.close()
    assert done is not None
    assert done.status == "finished"
    assert len(done.transcript) == 2  # the record's own transcript replaced the kept lines


async def test_what_is_queued_at_cancellation_is_written(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    recorder = CallStoreRecorder(db, wall_clock=clock)
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            recorder.on_call_started(spec("a"))
            for k in range(10):
                recorder.on_transcript("a", "caller", f"line {k}")
            nursery.cancel_scope.cancel()  # before the writer got a turn
    store = CallStore.open_readonly(db)
    call = store.call("a")
    store.close()
    assert call is not None
    assert [t.text for t in call.transcript] == [f"line {k}" for k in range(10)]


async def test_calls_the_last_run_left_active_are_reported(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    store = CallStore.open(db)
    store.apply([begun("x1"), begun("x2")])
    store.close()
    recorder = CallStoreRecorder(db, wall_clock=clock)
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            counts = await recorder.counts()
            nursery.cancel_scope.cancel()
    assert recorder.interrupted == ("x1", "x2")
    assert counts.interrupted == 2


async def test_one_bad_change_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "calls.db"
    recorder = CallStoreRecorder(db, wall_clock=clock)
    bad = TranscriptAppended("a", None, "?", at(1.0))  # type: ignore[arg-type]
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            recorder.on_call_started(spec("a"))  # queued before run(): written once it opens
            recorder._queue(bad)
            recorder.on_call_started(spec("b"))
            await nursery.start(recorder.run)
            await recorder.flushed()
            assert (await recorder.counts()).active == 2
            nursery.cancel_scope.cancel()
    assert [r.getMessage().startswith("call store: change to call a lost") for r in caplog.records
            if r.levelno == logging.ERROR] == [True]  # fmt: skip


async def test_a_restarted_recorder_leaves_live_calls_alone(tmp_path: Path) -> None:
    recorder = CallStoreRecorder(tmp_path / "calls.db", wall_clock=clock)
    with trio.fail_after(TEST_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            recorder.on_call_started(spec("live"))
            await recorder.flushed()
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:  # the supervisor restarts it mid-call
            await nursery.start(recorder.run)
            recorder.on_transcript("live", "caller", "still here")
            await recorder.flushed()
            live = await recorder.call("live")
            nursery.cancel_scope.cancel()
    assert recorder.interrupted == ()
    assert live is not None
    assert (live.status, [t.text for t in live.transcript]) == ("active", ["still here"])
