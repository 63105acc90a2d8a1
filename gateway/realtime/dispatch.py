"""What the session does with each server event: `Dispatcher`, shared by a `RealtimeSession`
and its connections (one actor: its tasks share this state).

It keeps the per-connection bookkeeping (the response in progress, audio received per item,
muted responses and items, partial transcripts), turns events into `messages` for the call,
keeps the `ConversationLog` for carry-over, serialises `response.create` (one response at a
time: a wanted response waits for `response.done`, or for the response to stall: no event of it
for `RESPONSE_STALL_S`) and sorts server errors into fatal (the connection ends; the session
fails) and the rest (logged; the session goes on).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import assert_never

import trio

from gateway.realtime import client_events as ce
from gateway.realtime import connection
from gateway.realtime.audio import MAX_DELTA_MS, bytes_per_ms, decode_base64
from gateway.realtime.connection import Connection
from gateway.realtime.conversation import (
    CUT_MARK,
    MAX_ITEM_CHARS,
    ConversationLog,
    Entry,
    EntryKind,
)
from gateway.realtime.errors import MalformedEvent
from gateway.realtime.events import (
    AudioDelta,
    Ignored,
    ItemTruncated,
    OutputItemAdded,
    ServerError,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    TranscriptionFailed,
    Unknown,
)
from gateway.realtime.messages import (
    AgentAudio,
    ErrorReported,
    FunctionCallRequested,
    RateLimitsUpdated,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    TranscriptReceived,
)
from gateway.realtime.profiles import profile_of
from gateway.realtime.settings import RealtimeSettings

log = logging.getLogger(__name__)

QUIET_S = 0.5  # after the last speech/response event, a moment counts as between turns
# Fatal for the session (research note §1.7 and vendors' auth errors); any error answering our
# session.update is fatal too (an invalid session config). Everything else is logged.
FATAL_CODES = frozenset({
    "invalid_api_key", "beta_api_shape_disabled", "insufficient_quota", "model_not_found",
    "invalid_model", "unsupported_model", "account_deactivated", "unauthorized", "forbidden",
})  # fmt: skip
FATAL_TYPES = frozenset({"authentication_error", "permission_error"})
HARMLESS_CODES = frozenset(
    {"response_cancel_not_active", "conversation_already_has_active_response"}
)


@dataclass
class SessionStats:
    """Counters over the session's life (all its connections)."""

    frames_sent: int = 0  # 20 ms caller frames sent
    frames_dropped: int = 0  # not sent: no connection (reconnecting) or it failed
    audio_deltas: int = 0
    audio_dropped: int = 0  # agent audio the call's channel had no room for
    audio_muted: int = 0  # deltas of cancelled responses / truncated items, not played
    malformed: int = 0
    unknown: int = 0
    errors: int = 0
    connects: int = 0
    rotations: int = 0


class Dispatcher:
    """Server events -> call messages and session state. `active` is the connection the call
    talks through; others (a rotation's standby, a retired one) only have errors handled."""

    def __init__(self, settings: RealtimeSettings,
                 events_send: trio.MemorySendChannel[RealtimeEvent]) -> None:  # fmt: skip
        self.settings = settings
        self.events_send = events_send
        self.log = ConversationLog()
        self.stats = SessionStats()
        self.active: Connection | None = None
        self.response_wanted = False  # a response.create waits for its turn
        self._unknown_seen: set[str] = set()

    async def emit(self, message: RealtimeEvent) -> None:
        await self.events_send.send(message)

    def emit_audio(self, message: AgentAudio) -> None:
        """Audio never blocks the socket: a full channel drops it (counted, logged once)."""
        try:
            self.events_send.send_nowait(message)
        except trio.WouldBlock:
            self.stats.audio_dropped += 1
            if self.stats.audio_dropped == 1:
                log.warning("realtime: the call is not taking agent audio; dropping (counted)")

    # --- sending what the conversation needs ---------------------------------------------------

    async def flush(self, conn: Connection) -> None:
        """Bring `conn`'s conversation up to the log, then send a wanted response.create if it
        is the active connection and no response is in progress."""
        async with conn.control_lock:
            end, todo = self.log.entries_since(conn.synced, conn.generation, conn.carried_from)
            for entry in todo:
                if not await conn.send_event(ce.item_create(ce.new_event_id(), entry.item())):
                    return
            conn.synced = end
            if not (self.response_wanted and conn is self.active):
                return
            if conn.response_id is not None or conn.create_in_flight:
                return  # sent after this response's response.done
            if await conn.send_event(ce.response_create(ce.new_event_id())):
                self.response_wanted = False
                conn.create_sent_s = trio.current_time()

    def connection_ended(self, conn: Connection) -> None:
        """Keep what the agent had said of a reply the drop cut off."""
        for item_id, text in conn.partials.items():
            if text:
                self.log.add(Entry("agent", text + CUT_MARK, item_id=item_id,
                                   origin=conn.generation))  # fmt: skip
        conn.partials.clear()

    async def on_stall(self, conn: Connection) -> None:
        """`conn`'s response in progress showed no event for `RESPONSE_STALL_S` (a stray
        `response.created`, a server that lost it): taken as done, so a queued response.create
        goes. Its late audio, if any, is muted."""
        rid = conn.response_id
        conn.response_id = None
        if rid is None:
            return
        log.warning("realtime %s: response %s showed no activity for %g s: taken as done",
                    conn.name, rid or "(no id)", connection.RESPONSE_STALL_S)  # fmt: skip
        conn.touch()
        if conn is not self.active:
            return
        if rid:  # (a lean server's response without an id: nothing to mute or cancel by id)
            conn.muted[rid] = conn.given_up[rid] = True
            # A server that still runs it frees it; one that never did: response_cancel_not_active.
            await conn.send_event(ce.response_cancel(ce.new_event_id(), rid))
        await self.emit(ResponseDone(rid, "incomplete", "stalled"))
        await self.flush(conn)

    # --- events -------------------------------------------------------------------------------

    async def on_event(self, conn: Connection, event: ServerEvent) -> None:
        if isinstance(event, ServerError):
            await self._error(conn, event)
            return
        if conn is not self.active:
            log.debug(
                "realtime %s: %s on a standby connection, ignored", conn.name, type(event).__name__
            )  # the type only: arguments may be sensitive
            return
        self._activity(conn, event)
        match event:
            case AudioDelta():
                self._audio(conn, event)
            case TranscriptReceived():
                await self._transcript(conn, event)
            case SpeechStarted() | SpeechStopped():
                conn.speaking = isinstance(event, SpeechStarted)
                self._busy(conn)
                await self.emit(event)
            case ResponseCreated() | ResponseDone():
                await self._response(conn, event)
            case FunctionCallRequested():
                await self._function_call(conn, event)
            case RateLimitsUpdated():
                await self.emit(event)
            case OutputItemAdded():
                if event.item_type == "function_call" and event.call_id:
                    conn.call_names[event.call_id] = event.name
            case ItemTruncated():
                log.debug("realtime %s: item %s truncated at %d ms", conn.name, event.item_id,
                          event.audio_end_ms)  # fmt: skip
            case TranscriptionFailed():
                log.warning("realtime %s: caller transcription failed for item %s: %s",
                            conn.name, event.item_id, event.message)  # fmt: skip
            case Unknown():
                self._unknown(conn, event)
            case SessionCreated() | SessionUpdated() | Ignored():
                pass
            case _:
                assert_never(event)

    def _audio(self, conn: Connection, event: AudioDelta) -> None:
        kind = "response.output_audio.delta"
        limit = MAX_DELTA_MS * bytes_per_ms(conn.decoder.fmt)
        if len(event.delta) > limit * 4 // 3 + 4:
            raise MalformedEvent(kind, f"a {len(event.delta)}-character delta is over "
                                       f"{MAX_DELTA_MS // 1000} s of audio; dropped")  # fmt: skip
        wire = decode_base64(event.delta, kind)
        ms = conn.decoder.wire_ms(len(wire))
        rid, item = event.response_id, event.item_id
        conn.item_ms[item] = conn.item_ms.get(item, 0.0) + ms
        if rid != conn.audio_response:
            conn.audio_response, conn.audio_started_s, conn.audio_ms = rid, trio.current_time(), 0.0
        conn.audio_ms += ms
        conn.busy_until_s = max(conn.busy_until_s,
                                conn.audio_started_s + conn.audio_ms / 1000 + QUIET_S)  # fmt: skip
        self.stats.audio_deltas += 1
        if rid in conn.muted or item in conn.muted:
            self.stats.audio_muted += 1
            return
        pcm = conn.decoder.decode(item, wire)
        if pcm.size:
            self.emit_audio(AgentAudio(pcm, rid, item))

    def _activity(self, conn: Connection, event: ServerEvent) -> None:
        """An event of the response in progress (or of no named one) restarts its stall clock."""
        match event:
            case AudioDelta() | FunctionCallRequested():
                rid = event.response_id
            case TranscriptReceived(speaker="agent"):
                rid = event.response_id
            case OutputItemAdded():
                rid = ""
            case Ignored() if event.type.startswith("response."):
                rid = ""
            case _:
                return
        if conn.response_id is not None and rid in ("", conn.response_id):
            conn.response_seen_s = trio.current_time()

    async def _transcript(self, conn: Connection, event: TranscriptReceived) -> None:
        if event.speaker == "agent" and not event.final:
            # Kept for a drop mid-reply; one over MAX_ITEM_CHARS is cut by the log.
            text = conn.partials.get(event.item_id, "")
            if len(text) <= MAX_ITEM_CHARS:
                conn.partials[event.item_id] = text + event.text[: MAX_ITEM_CHARS + 1 - len(text)]
        elif event.final:
            if event.speaker == "agent":
                conn.partials.pop(event.item_id, None)
            kind: EntryKind = "agent" if event.speaker == "agent" else "caller"
            self.log.add(Entry(kind, event.text, item_id=event.item_id, origin=conn.generation))
        await self.emit(event)

    async def _response(self, conn: Connection, event: ResponseCreated | ResponseDone) -> None:
        self._busy(conn)
        if isinstance(event, ResponseCreated):
            conn.response_id, conn.create_sent_s = event.response_id, -math.inf
            conn.response_seen_s = trio.current_time()
            await self.emit(event)
            if conn.cancel_next:  # a barge-in came while our response.create was in flight
                conn.cancel_next = False
                conn.muted[event.response_id] = True
                await conn.send_event(ce.response_cancel(ce.new_event_id(), event.response_id))
            return
        if conn.response_id in (event.response_id, "") or not event.response_id:
            conn.response_id = None
        if event.response_id in conn.given_up:  # the call was told at the stall
            log.info("realtime %s: stalled response %s ended after all (%s)", conn.name,
                     event.response_id, event.status)  # fmt: skip
        else:
            await self.emit(event)
        await self.flush(conn)  # a queued response.create goes now

    async def _function_call(self, conn: Connection, event: FunctionCallRequested) -> None:
        if not event.name:  # Inworld may leave it out here; output_item.added had it
            name = conn.call_names.get(event.call_id, "")
            event = FunctionCallRequested(event.call_id, name, event.arguments, event.item_id,
                                          event.response_id)  # fmt: skip
        self.log.add(Entry("function_call", event.arguments, call_id=event.call_id,
                           name=event.name, item_id=event.item_id,
                           origin=conn.generation))  # fmt: skip
        await self.emit(event)

    async def _error(self, conn: Connection, error: ServerError) -> None:
        self.stats.errors += 1
        answers_update = bool(error.event_id) and error.event_id == conn.update_event_id
        fatal = error.code in FATAL_CODES or error.type in FATAL_TYPES or answers_update
        what = error.code or error.type or "error"
        if error.code == "conversation_already_has_active_response":
            conn.create_sent_s = -math.inf  # the response in progress serves our request
        if conn is self.active:
            # Told before the connection ends: `finish` cancels this very task's scope, and
            # the call must hear the code (session_expired, invalid_api_key) before SessionLost.
            await self.emit(ErrorReported(error.code or error.type, error.message, fatal,
                                          error.event_id))  # fmt: skip
        if fatal:
            why = "invalid session config: " if answers_update else ""
            log.error("realtime %s: fatal server error %s: %s%s", conn.name, what, why,
                      error.message)  # fmt: skip
            conn.finish(f"the server said {what}: {why}{error.message}", fatal=True,
                        code=error.code)  # fmt: skip
        elif error.code == "session_expired":
            log.info("realtime %s: %s; carrying the call over to a new session", conn.name,
                     error.message or "session expired")  # fmt: skip
            conn.finish(f"session expired: {error.message}", code=error.code)
        elif error.code in HARMLESS_CODES or self._truncate_best_effort(error):
            log.debug("realtime %s: %s (harmless): %s", conn.name, what, error.message)
        else:
            log.warning("realtime %s: server error %s: %s (param %s, event %s)", conn.name,
                        what, error.message, error.param or "-", error.event_id or "-")  # fmt: skip

    def _truncate_best_effort(self, error: ServerError) -> bool:
        return profile_of(self.settings).truncate_best_effort and "truncat" in error.message

    def _unknown(self, conn: Connection, event: Unknown) -> None:
        self.stats.unknown += 1
        if event.type not in self._unknown_seen and len(self._unknown_seen) < 100:
            self._unknown_seen.add(event.type)
            log.info("realtime %s: ignoring server event type %r (first seen)", conn.name,
                     event.type)  # fmt: skip

    def _busy(self, conn: Connection) -> None:
        conn.busy_until_s = max(conn.busy_until_s, trio.current_time() + QUIET_S)
        conn.touch()
