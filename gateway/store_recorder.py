"""`CallStoreRecorder`: the actor that keeps call records in the call store without ever making
the trio loop wait for the disk. The call side hands it changes through small synchronous
hooks (`on_call_started`, `on_transcript`, `on_record`) that only queue them; the actor's
`run()` writes whatever has queued in one transaction per batch, in a worker thread, so a slow
SD card (an fsync can take 100 ms and more) delays records, never audio. The console reads
through `recent`, `call` and `counts` on a reader connection of its own, also in a thread.

The queue is a deque, not a memory channel, on purpose: a call's start and end are never
dropped (one of each per call, so they are bounded by the call rate), while transcript lines
beyond `max_pending` are dropped and counted (`dropped`): the finished record carries the
whole transcript anyway. On cancellation `run()` writes what is still queued (within
`FLUSH_S`) before it closes the database.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import trio

from gateway.store import CallStore
from gateway.store_retention import Retention
from gateway.store_schema import StoreError
from gateway.store_types import (
    CallBegun,
    CallCounts,
    LineAlarmChanged,
    StoredCall,
    StoreOp,
    TranscriptAppended,
    call_finished,
)

if TYPE_CHECKING:
    from dsp.callerid_message import CallerId
    from gateway.call_metrics import CallRecord
    from gateway.line_health import Alarm

log = logging.getLogger(__name__)

MAX_PENDING = 1000  # queued changes before transcript lines are dropped: minutes of a stalled disk
FLUSH_S = 5.0  # at shutdown, the queued changes' last chance (systemd's stop timeout is longer)
PRUNE_EVERY_S = 3600.0  # retention runs at start and then hourly: calls age by days
T = TypeVar("T")


class CallStarting(Protocol):
    """What the recorder reads of a starting call (`gateway.line_call.CallSpec` fits)."""

    @property
    def call_id(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def direction(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def callerid(self) -> CallerId | None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class CallStoreRecorder:
    """Keeps call records in the database at `path`; see the module docstring. Construction
    does no I/O; the hooks may be called before `run()` starts (changes wait in the queue)."""

    path: Path
    retention: Retention = field(default_factory=Retention)
    wall_clock: Callable[[], datetime] = _utc_now
    max_pending: int = MAX_PENDING
    opener: Callable[[Path, bool], CallStore] = CallStore.open  # (path, recover); tests fake it
    dropped: int = 0  # transcript lines not kept because the queue was full
    interrupted: tuple[str, ...] = ()  # calls the previous run left active, marked at start
    _pending: deque[StoreOp] = field(init=False, default_factory=deque)
    _wake: trio.Event = field(init=False, default_factory=trio.Event)
    _queued: int = field(init=False, default=0)  # changes queued (not dropped) so far
    _written: int = field(init=False, default=0)  # of those, written (or given up on)
    _progress: trio.Event = field(init=False, default_factory=trio.Event)
    _recovered: bool = field(init=False, default=False)
    _dialled: dict[str, str] = field(init=False, default_factory=dict)
    _reader: CallStore | None = field(init=False, default=None)
    _read_lock: trio.Lock = field(init=False, default_factory=trio.Lock)

    # --- hooks: synchronous, never block, called from trio tasks ----------------------------

    def on_call_started(self, spec: CallStarting, started_at: datetime | None = None) -> None:
        """A call started (`spec`: a `CallSpec`): its record exists from now on."""
        cid = spec.callerid
        self._dialled[spec.call_id] = spec.number
        self._queue(CallBegun(spec.call_id, spec.port, spec.direction, spec.profile,
                              started_at or self.wall_clock(),
                              None if cid is None else cid.number,
                              None if cid is None else cid.name, spec.number))  # fmt: skip

    def on_transcript(self, call_id: str, who: str, text: str) -> None:
        """A final transcript line of a running call."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("call store: %d transcript line(s) dropped: the disk is behind",
                            self.dropped)  # fmt: skip
            return
        self._queue(TranscriptAppended(call_id, who, text, self.wall_clock()))

    def on_record(self, record: CallRecord) -> None:
        """The call ended (`CallPipeline(on_record=...)`): its final record."""
        self._queue(call_finished(record, self._dialled.pop(record.call_id, "")))

    def on_line_alarm(self, port: int, alarm: Alarm) -> None:
        """A line's alarm was raised or cleared (`LineHealth.on_alarm`)."""
        self._queue(LineAlarmChanged(port, alarm.name, alarm.detail, alarm.raised_at,
                                     alarm.cleared_at))  # fmt: skip

    def _queue(self, op: StoreOp) -> None:
        self._pending.append(op)
        self._queued += 1
        self._wake.set()

    async def flushed(self) -> None:
        """Return once every change queued before this call is written (SIGTERM's drain:
        the calls have ended; wait for their records before leaving)."""
        target = self._queued
        while self._written < target:
            await self._progress.wait()

    # --- the actor ----------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database (migrate, mark interrupted calls, prune), then write as changes
        come. Raises `StoreError` if the database cannot be opened. Only the first run marks
        interrupted calls: after a restart by the supervisor, active calls are live ones."""
        store = await trio.to_thread.run_sync(self.opener, self.path, not self._recovered)
        self._recovered = True
        try:
            self.interrupted = self.interrupted or store.interrupted_on_open
            if self.interrupted:
                log.warning("call store: %d call(s) interrupted by the last stop: %s",
                            len(self.interrupted), ", ".join(self.interrupted))  # fmt: skip
            self._reader = await trio.to_thread.run_sync(CallStore.open_readonly, self.path)
            task_status.started()  # retention runs next, off the start-up path: it may be long
            await self._write_forever(store)
        finally:
            with trio.move_on_after(FLUSH_S, shield=True):
                await self._write_pending(store)
            await self._close(store)

    async def _write_forever(self, store: CallStore) -> None:
        next_prune = trio.current_time()  # now, then hourly
        while True:
            with trio.move_on_at(next_prune):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._write_pending(store)
            if trio.current_time() >= next_prune:
                await self._prune(store)
                next_prune = trio.current_time() + PRUNE_EVERY_S

    async def _write_pending(self, store: CallStore) -> None:
        while self._pending:
            batch = list(self._pending)
            # run_sync raises Cancelled only before the thread starts, never after it wrote:
            # so the batch leaves the queue exactly when it is written
            await trio.to_thread.run_sync(_apply, store, batch)
            for _ in batch:
                self._pending.popleft()
            self._written += len(batch)
            self._progress.set()
            self._progress = trio.Event()

    async def _prune(self, store: CallStore) -> None:
        try:
            await trio.to_thread.run_sync(store.prune, self.retention, self.wall_clock())
        except StoreError as exc:  # the records are still written; retention waits an hour
            log.warning("call store: retention failed: %s", exc)

    async def _close(self, store: CallStore) -> None:
        reader, self._reader = self._reader, None
        with trio.CancelScope(shield=True):
            async with self._read_lock:  # a query in its thread still uses the reader
                if reader is not None:
                    reader.close()
            store.close()

    # --- reads for the console ----------------------------------------------------------------

    async def recent(self, limit: int = 20) -> list[StoredCall]:
        """The latest `limit` calls written so far, newest first."""
        return await self._read(lambda r: r.recent(limit))

    async def call(self, call_id: str) -> StoredCall | None:
        """One call with its transcript and tool calls, as written so far."""
        return await self._read(lambda r: r.call(call_id))

    async def counts(self, since: datetime | None = None) -> CallCounts:
        return await self._read(lambda r: r.counts(since))

    async def alarms(self, limit: int = 50) -> list[LineAlarmChanged]:
        """The lines' latest alarms, newest first."""
        return await self._read(lambda r: r.alarms(limit))

    async def _read(self, query: Callable[[CallStore], T]) -> T:
        async with self._read_lock:
            if self._reader is None:
                raise StoreError(self.path, "the call store is not open")
            reader = self._reader
            return await trio.to_thread.run_sync(query, reader)


def _apply(store: CallStore, batch: list[StoreOp]) -> None:
    """Write `batch` in one transaction; if that fails, each change on its own, so one bad
    change (or a full disk for a moment) costs that change, not the batch's other calls."""
    try:
        store.apply(batch)
        return
    except StoreError as exc:
        if len(batch) == 1:
            log.error("call store: change to call %s lost: %s", _call_id(batch[0]), exc)
            return
    for op in batch:
        try:
            store.apply([op])
        except StoreError as exc:
            log.error("call store: change to call %s lost: %s", _call_id(op), exc)


def _call_id(op: StoreOp) -> str:
    if isinstance(op, LineAlarmChanged):
        return f"(line {op.port} alarm)"
    return op.call_id if isinstance(op, CallBegun | TranscriptAppended) else op.begun.call_id
