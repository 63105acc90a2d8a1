"""`RealtimeSession`: the actor that carries one call to a realtime speech-to-speech API.

The call gives it caller audio (`frames_recv`: int16 8 kHz frames of 160 samples, sent with
`send_nowait` by the line side) and takes `messages.RealtimeEvent`s from `events_send`
(agent audio, transcripts, speech edges, function calls, responses, errors, connection news).
It talks to the server through one `Connection` at a time:

- **Start**: `run()` calls `started()` once the first server accepted our session config and
  audio formats. A fatal error (auth, `beta_api_shape_disabled`, invalid config, refused audio
  format) or `GIVE_UP_S` without a server raises `SessionFailed`, after a final `SessionLost`.
- **Reconnect**: when the socket ends (network, `session_expired`, a dead keep-alive), the
  next connection opens at once, then with exponential backoff and jitter; it gets the
  instructions again (session.update) and the conversation so far as items (`conversation`).
- **Rotation**: `rotate_after_s` into a session (before the 60-minute cap) a successor opens
  and takes the conversation while the old one still serves; the switch happens at the next
  quiet moment between turns, so the caller hears nothing of it.
- **Barge-in**: `cancel_response()` and `truncate(item_id, played_ms)`; **tools**:
  `send_function_output(call_id, output)`; **DTMF and notes**: `send_text(text)`;
  **turns decided here** (`turn_detection` None: push-to-talk, a local VAD): `commit_input()`
  and `clear_input()`.
- **Hang-up** is cancelling `run()`: it returns within ~`HANGUP_CLOSE_S` (a close frame per
  socket, no reply awaited), even while a rotated-away socket is still closing politely.
"""

from __future__ import annotations

import itertools
import logging
import random

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from gateway.realtime import client_events as ce
from gateway.realtime.connection import CLOSE_S, ConnectFailed, Connection
from gateway.realtime.conversation import Entry, EntryKind
from gateway.realtime.dispatch import Dispatcher, SessionStats
from gateway.realtime.errors import SessionFailed
from gateway.realtime.messages import RealtimeEvent, SessionConnected, SessionLost
from gateway.realtime.profiles import auth_headers, connection_url, model_of
from gateway.realtime.secrets import ApiKey
from gateway.realtime.settings import RealtimeSettings

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.25  # the first retry after a failed connect; doubles per failure
RECONNECT_MAX_S = 8.0
GIVE_UP_S = 30.0  # no server for this long: the call cannot be saved, tell it so
ROTATE_GRACE_S = 240.0  # no quiet moment this long after rotate_after_s: switch anyway
ROTATE_RETRY_S = 30.0  # a successor that failed to open is tried again this much later
MIN_COMMIT_MS = 100.0  # OpenAI refuses a smaller commit (input_audio_buffer_commit_empty)
# A commit waits this long at most for the caller frames queued before it to go up first:
# they come every 20 ms and go at once, but a socket that stopped taking them must not hold
# the caller's turn.
CATCH_UP_S = 0.2


def backoff_s(failures: int) -> float:
    """Delay before the next attempt after `failures` failed ones: exponential, equal jitter
    (half fixed, half random) so a fleet of boxes does not reconnect in step."""
    cap = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2.0 ** max(0, failures - 1))
    return cap / 2 + random.uniform(0.0, cap / 2)


class RealtimeSession:
    """One call's realtime session. Construction checks the settings and key but does no I/O."""

    def __init__(
        self,
        settings: RealtimeSettings,
        api_key: ApiKey | None,
        frames_recv: trio.MemoryReceiveChannel[NDArray[np.int16]],
        events_send: trio.MemorySendChannel[RealtimeEvent],
    ) -> None:
        connection_url(settings)  # RealtimeConfigError now, not at the first connect
        auth_headers(settings, api_key)
        self.settings = settings
        self._key = api_key
        self.frames_recv = frames_recv
        self.events_send = events_send
        self._dispatch = Dispatcher(settings, events_send)
        self._nursery: trio.Nursery | None = None
        self._generations = itertools.count(1)
        # Caller frames waiting for an append, batched by the uplink alone. Taken without a
        # checkpoint and sent at once: the socket's send lock is FIFO, so appends, commits and
        # clears go in the order taken.
        self._batch: list[NDArray[np.int16]] = []
        self._uplink_waits = trio.Event()  # set (and renewed) when the uplink waits for a frame
        self._uplink_over = False

    def __repr__(self) -> str:
        conn = self._dispatch.active
        return (f"RealtimeSession(provider={self.settings.provider!r}, "
                f"model={model_of(self.settings)!r}, "
                f"session={conn.session_id if conn else None!r}, "
                f"connects={self.stats.connects})")  # fmt: skip

    @property
    def stats(self) -> SessionStats:
        return self._dispatch.stats

    @property
    def session_id(self) -> str:
        conn = self._dispatch.active
        return conn.session_id if conn else ""

    # --- what the call and the tools call ---------------------------------------------------

    async def cancel_response(self) -> None:
        """Stop the agent's reply in progress (barge-in). Its further audio is dropped here;
        nothing to cancel is fine."""
        self._dispatch.response_wanted = False
        conn = self._dispatch.active
        if conn is None:
            return
        rid = conn.response_id
        if rid is None:
            if conn.create_in_flight:
                conn.cancel_next = True  # cancelled as soon as the server announces it
            return
        conn.muted[rid] = True
        await conn.send_event(ce.response_cancel(ce.new_event_id(), rid))

    async def truncate(self, item_id: str, audio_end_ms: float) -> None:
        """The caller heard only the first `audio_end_ms` of agent item `item_id` (what the
        playout really played). Sends `conversation.item.truncate` at the integer
        `min(played, received)`; skipped for an item with no audio yet, one from an earlier
        connection, or one heard to its end with no response still running."""
        conn = self._dispatch.active
        received = conn.item_ms.get(item_id, 0.0) if conn else 0.0
        if conn is None or received <= 0.0:
            log.debug("realtime: not truncating %s: no audio of it on this session", item_id)
            return
        end_ms = int(min(max(audio_end_ms, 0.0), received))
        conn.muted[item_id] = True
        self._dispatch.log.heard(item_id, end_ms / received)
        if end_ms >= int(received) and conn.response_id is None:
            return
        await conn.send_event(ce.item_truncate(ce.new_event_id(), item_id, end_ms))

    async def send_function_output(self, call_id: str, output: str) -> None:
        """A tool's result (a string, usually JSON) for `call_id`, then a response so the agent
        speaks about it: queued behind any response in progress."""
        self._dispatch.log.add(Entry("function_output", output, call_id=call_id))
        self._dispatch.response_wanted = True
        await self._flush()

    async def send_text(self, text: str, role: ce.Role = "user", *,
                        respond: bool | None = None) -> None:  # fmt: skip
        """A text message in the conversation: DTMF digits the caller pressed, a note, or
        (`assistant`) words the box played for the agent (a cached greeting). `respond`
        (default: for user messages) asks the agent to answer it."""
        kinds: dict[str, EntryKind] = {"user": "user_text", "system": "system_text",
                                       "assistant": "agent"}  # fmt: skip
        self._dispatch.log.add(Entry(kinds[role], text))
        if role == "user" if respond is None else respond:
            self._dispatch.response_wanted = True
        await self._flush()

    async def commit_input(self, respond: bool = True) -> bool:
        """The caller's turn ended, as decided here (push-to-talk released, a local VAD; for
        `turn_detection` None: a server VAD commits by itself). Caller frames still queued go
        up first, then `input_audio_buffer.commit` makes the audio since the last commit a user
        item; `respond` asks the agent to answer it (queued behind a response in progress).
        False, and nothing sent, with under `MIN_COMMIT_MS` of audio to commit or no
        connection (a reconnect loses the uncommitted audio with the old socket)."""
        if self._dispatch.active is None:
            log.info("realtime: no connection: the caller's turn is not committed")
            return False
        await self._uplink_caught_up()
        conn = self._dispatch.active
        if conn is None:
            return False
        await self._send_batch(conn)
        if conn.input_ms < MIN_COMMIT_MS:
            log.info("realtime %s: %.0f ms of caller audio: too little to commit", conn.name,
                     conn.input_ms)  # fmt: skip
            return False
        conn.input_ms = 0.0
        if not await conn.send_event(ce.input_audio_commit(ce.new_event_id())):
            return False
        if respond:
            self._dispatch.response_wanted = True
            await self._flush()
        return True

    async def clear_input(self) -> None:
        """Forget the caller audio since the last commit (push-to-talk cancelled, a local turn
        judged noise): frames still queued here are dropped, the server's input buffer is
        cleared (`input_audio_buffer.clear`)."""
        if self._dispatch.active is not None:
            await self._uplink_caught_up()
        self.stats.frames_dropped += len(self._batch)
        self._batch.clear()
        conn = self._dispatch.active
        if conn is not None:
            conn.input_ms = 0.0
            await conn.send_event(ce.input_audio_clear(ce.new_event_id()))

    async def _flush(self) -> None:
        conn = self._dispatch.active
        if conn is not None:
            await self._dispatch.flush(conn)

    # --- the actor ----------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failure: SessionFailed | None = None
        async with self.events_send, trio.open_nursery() as nursery:
            self._nursery = nursery
            first = await self._connect()
            if isinstance(first, Connection):
                await self._activate(first, rotated=False)
                nursery.start_soon(self._uplink)
                task_status.started()
                failure = await self._supervise(first)
            else:
                failure = first
                await self._dispatch.emit(SessionLost(failure.reason, retrying=False))
            nursery.cancel_scope.cancel()
        self._dispatch.active = None
        assert failure is not None  # the nursery only ends by a failure (or by cancellation)
        raise failure

    async def _supervise(self, conn: Connection) -> SessionFailed:
        """Follow the active connection: rotate it when due, replace it when it ends."""
        while True:
            with trio.move_on_at(conn.rotate_at_s):
                await conn.closed.wait()
            if not conn.closed.is_set():
                conn = await self._rotate(conn)
                continue
            end = conn.end
            assert end is not None
            self._dispatch.connection_ended(conn)
            self._dispatch.active = None
            if end.fatal:
                await self._dispatch.emit(SessionLost(end.reason, retrying=False))
                # Its close handshake first: cancelling the nursery would stop the socket's
                # reader, and the close would wait out CLOSE_S for a reply nobody reads.
                with trio.move_on_after(CLOSE_S):
                    await conn.done.wait()
                return end.error()
            log.warning("realtime %s: connection lost: %s; reconnecting", conn.name, end.reason)
            await self._dispatch.emit(SessionLost(end.reason, retrying=True))
            new = await self._connect()
            if isinstance(new, SessionFailed):
                await self._dispatch.emit(SessionLost(new.reason, retrying=False))
                return new
            await self._activate(new, rotated=False)
            conn = new

    async def _open(self) -> Connection:
        """One connection attempt: configured and carrying the conversation, or ConnectFailed."""
        assert self._nursery is not None
        conn = Connection(self._dispatch, self.settings, self._key, next(self._generations))
        await self._nursery.start(conn.run)
        conn.synced = conn.carried_from = self._dispatch.log.carry_start()
        await self._dispatch.flush(conn)  # not active yet: the carried-over items only
        return conn

    async def _connect(self) -> Connection | SessionFailed:
        """Connect, retrying with backoff; the failure if fatal or past `GIVE_UP_S`."""
        give_up_at = trio.current_time() + GIVE_UP_S
        for failures in itertools.count(1):
            try:
                return await self._open()
            except ConnectFailed as exc:
                end = exc.end
            if end.fatal:
                log.error("realtime: cannot start a session: %s", end.reason)
                return end.error()
            delay = backoff_s(failures)
            if trio.current_time() + delay > give_up_at:
                return SessionFailed(f"no realtime server for {GIVE_UP_S:g} s; last: {end.reason}")
            log.warning("realtime: connecting failed (%s); again in %.2f s", end.reason, delay)
            await trio.sleep(delay)
        raise AssertionError("unreachable")

    async def _activate(self, conn: Connection, *, rotated: bool) -> None:
        self._dispatch.active = conn
        conn.rotate_at_s = conn.opened_s + self.settings.rotate_after_s
        self.stats.connects += 1
        self.stats.rotations += rotated
        log.info("realtime %s: session %s %s", conn.name, conn.session_id or "(no id)",
                 "took over (rotation)" if rotated else "connected")  # fmt: skip
        await self._dispatch.flush(conn)
        await self._dispatch.emit(SessionConnected(conn.session_id, self.stats.connects, rotated))

    async def _rotate(self, old: Connection) -> Connection:
        """Open a successor now, switch to it between turns (or at the grace deadline)."""
        log.info("realtime %s: session %s is %.0f s old: opening its successor", old.name,
                 old.session_id, trio.current_time() - old.opened_s)  # fmt: skip
        try:
            new = await self._open()
        except ConnectFailed as exc:
            log.warning("realtime %s: rotation failed (%s); trying again in %g s", old.name,
                        exc.end.reason, ROTATE_RETRY_S)  # fmt: skip
            old.rotate_at_s = trio.current_time() + ROTATE_RETRY_S
            return old
        with trio.move_on_at(old.opened_s + self.settings.rotate_after_s + ROTATE_GRACE_S):
            await _quiet_moment(old, new)
        if new.closed.is_set():
            old.rotate_at_s = trio.current_time() + ROTATE_RETRY_S
            return old
        self._dispatch.connection_ended(old)
        old.retire()
        await self._activate(new, rotated=True)
        return new

    async def _uplink(self) -> None:
        """Caller frames -> `input_audio_buffer.append`, `frames_per_append` frames each."""
        try:
            async with self.frames_recv:
                while True:
                    self._uplink_waits.set()
                    self._uplink_waits = trio.Event()
                    try:
                        frame = await self.frames_recv.receive()
                    except trio.EndOfChannel:
                        return
                    self._batch.append(_checked(frame))
                    if len(self._batch) >= self.settings.frames_per_append:
                        await self._send_batch(self._dispatch.active)
        finally:
            self._uplink_over = True

    async def _uplink_caught_up(self) -> None:
        """Until every caller frame sent so far is in the batch or gone up (the uplink waits
        for the next with none queued; a frame handed to it but not yet taken counts as not
        waiting), or `CATCH_UP_S`."""
        with trio.move_on_after(CATCH_UP_S):
            while not self._uplink_over:
                queue = self.frames_recv.statistics()
                if queue.current_buffer_used == 0 and queue.tasks_waiting_receive > 0:
                    return
                await self._uplink_waits.wait()

    async def _send_batch(self, conn: Connection | None) -> None:
        """The frames batched so far as one append (fewer than `frames_per_append` when a
        commit asks), or counted as dropped without a connection. The batch is taken before
        the first checkpoint."""
        if not self._batch:
            return
        n = len(self._batch)
        pcm = np.concatenate(self._batch)
        self._batch.clear()
        if conn is not None and await conn.send_audio(pcm):
            self.stats.frames_sent += n
        else:
            self.stats.frames_dropped += n


def _checked(frame: NDArray[np.int16]) -> NDArray[np.int16]:
    if frame.shape != (FRAME_SAMPLES,) or frame.dtype != np.int16:
        raise TypeError(f"caller frames must be {FRAME_SAMPLES} int16 samples, "
                        f"got {frame.dtype} {frame.shape}")  # fmt: skip
    return frame


async def _quiet_moment(old: Connection, new: Connection) -> None:
    """Until `old` is between turns, or either connection ends."""
    while not (old.closed.is_set() or new.closed.is_set()):
        if old.between_turns(trio.current_time()):
            return
        changed = old.changed
        with trio.move_on_at(old.quiet_wake_s()):
            await changed.wait()
