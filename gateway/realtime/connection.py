"""One websocket to a realtime server: `Connection`, a helper actor of `RealtimeSession`.

`run` opens the socket (`websocket.open_socket`: TLS verified, 16 MiB messages, 10 s to
connect, auth header, no `OpenAI-Beta`), sends `session.update` and calls `started()` once
`session.updated` carries our audio formats. While open it drains the socket in its own task
into a bounded channel (trio-websocket stops answering pings when nobody reads; when that
channel is full, audio deltas are dropped and counted, control events wait), pings with a
deadline (trio-websocket's `ping` waits forever otherwise), and hands each parsed event to its
owner (`Dispatcher`).

Any end (server close, network, dead keep-alive, fatal error) is recorded in `end` and sets
`closed` (before the close handshake, which goes on in this task for up to `CLOSE_S`, cut to
`HANGUP_CLOSE_S` by a hang-up: a reconnect does not wait for a peer that stopped reading); it
never raises into the session's nursery. Before `started()` an end raises `ConnectFailed` out
of `nursery.start`, so the session can retry or give up. A response in progress with no event
of its own for `RESPONSE_STALL_S` is reported to the owner (`on_stall`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import trio
from numpy.typing import NDArray
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, WebSocketConnection
from wsproto.utilities import LocalProtocolError

from gateway.errors import GatewayError
from gateway.realtime import client_events as ce
from gateway.realtime import websocket
from gateway.realtime.audio import DownlinkDecoder, UplinkEncoder, describe_format, parse_format
from gateway.realtime.errors import AudioFormatRefused, MalformedEvent, SessionFailed
from gateway.realtime.events import (
    BETA_ALIASES,
    ServerError,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    parse_named,
)
from gateway.realtime.profiles import auth_headers, connection_url, profile_of, ssl_context_for
from gateway.realtime.secrets import ApiKey
from gateway.realtime.settings import RealtimeSettings
from gateway.realtime.websocket import CONNECT_S, HANGUP_CLOSE_S, open_socket

log = logging.getLogger(__name__)

CLOSE_S = 2.0  # close handshake when we end a connection (rotation, errors); then dropped
HANDSHAKE_S = 10.0  # session.update -> session.updated (the real APIs answer within ~1 s)
KEEPALIVE_S = 15.0  # ping this often: NAT/proxy idle timers are >= 30 s
PING_TIMEOUT_S = 10.0  # no pong this long: the link is dead, reconnect
RAW_BUFFER = 64  # frames between the drain task and dispatch: ~2 s of 40 ms deltas' burst
CREATE_ANSWER_S = 5.0  # a response.create unanswered this long no longer blocks the next
# No event of the response in progress this long: taken as done (a stray response.created, a
# server that lost it). Real ones stream every ~0.1 s; even a reasoning model thinks for ~s.
RESPONSE_STALL_S = 20.0
BOUNDED_IDS = 64  # per-item bookkeeping kept for the latest items only
_SEND_ERRORS = (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError,
                LocalProtocolError)  # fmt: skip


class Owner(Protocol):
    async def on_event(self, conn: Connection, event: ServerEvent) -> None: ...

    async def on_stall(self, conn: Connection) -> None: ...


@dataclass(frozen=True, slots=True)
class ConnectionEnd:
    reason: str
    fatal: bool
    code: str = ""
    failure: SessionFailed | None = None  # a specific error to raise (format refused)

    def error(self) -> SessionFailed:
        return self.failure or SessionFailed(self.reason, code=self.code)


class ConnectFailed(GatewayError):
    """A connection ended before it was configured (raised out of `nursery.start`)."""

    def __init__(self, end: ConnectionEnd) -> None:
        super().__init__(end.reason)
        self.end = end


class BoundedDict(OrderedDict[str, Any]):
    """Insertion-ordered; the oldest keys fall off past `BOUNDED_IDS`."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > BOUNDED_IDS:
            self.popitem(last=False)


class Connection:
    """One socket and the server-side state that lives and dies with it."""

    def __init__(self, owner: Owner, settings: RealtimeSettings, key: ApiKey | None,
                 generation: int) -> None:  # fmt: skip
        self.owner, self.settings, self._key = owner, settings, key
        self.generation = generation
        self.name = f"#{generation}"
        self.session_id = ""
        self.update_event_id = ""
        self.opened_s = math.inf
        self.rotate_at_s = math.inf
        self.closed = trio.Event()  # ended: no longer usable (it may still be closing)
        self.done = trio.Event()  # run() is over: the socket is closed
        self.changed = trio.Event()  # set (and renewed) when turn-taking state changes
        self.end: ConnectionEnd | None = None
        self.retired = False
        self.synced = self.carried_from = 0  # ConversationLog index sent up to, started at
        self.control_lock = trio.Lock()  # keeps item.create ... response.create in order
        # The server's view of the conversation, as far as this client tracks it.
        self.response_id: str | None = None
        self.response_seen_s = -math.inf  # the last event of the response in progress
        self.create_sent_s = -math.inf
        self.cancel_next = False
        self.speaking = False
        self.busy_until_s = -math.inf  # estimated end of activity (agent audio playing)
        self.audio_response = ""
        self.audio_started_s = 0.0
        self.audio_ms = 0.0
        self.item_ms: BoundedDict = BoundedDict()  # agent audio received per item
        self.muted: BoundedDict = BoundedDict()  # response and item ids whose audio is dropped
        self.call_names: BoundedDict = BoundedDict()
        self.given_up: BoundedDict = BoundedDict()  # stalled responses: no ResponseDone again
        self.partials: BoundedDict = BoundedDict()  # item id -> agent transcript deltas
        self.encoder = UplinkEncoder(settings.input_format)
        self.decoder = DownlinkDecoder(settings.output_format)
        self.deltas_dropped = self.malformed = 0
        self.input_ms = 0.0  # caller audio sent since our last commit or clear
        self._ws: WebSocketConnection | None = None
        self._peer_silent = False  # no pong: the close handshake gets no reply either
        self._beta_named = False  # logged once per connection
        self._scope = trio.CancelScope()
        self._raw_send, self._raw_recv = trio.open_memory_channel[str | bytes](RAW_BUFFER)

    def __repr__(self) -> str:
        return f"Connection({self.name}, session={self.session_id!r}, end={self.end!r})"

    # --- state helpers ------------------------------------------------------------------------

    @property
    def create_in_flight(self) -> bool:
        return trio.current_time() - self.create_sent_s < CREATE_ANSWER_S

    def between_turns(self, now_s: float) -> bool:
        """Nobody speaking, no response coming, agent audio likely played out."""
        idle = not self.speaking and self.response_id is None and not self.create_in_flight
        return idle and now_s >= self.busy_until_s

    def touch(self) -> None:
        """Wake whoever waits for a quiet moment (a pending rotation)."""
        self.changed.set()
        self.changed = trio.Event()

    def stall_at_s(self) -> float:
        """When the response in progress counts as stalled if nothing of it comes (inf: none)."""
        return math.inf if self.response_id is None else self.response_seen_s + RESPONSE_STALL_S

    def quiet_wake_s(self) -> float:
        """When `between_turns` may turn true by time alone (inf: only an event can)."""
        wake = max(self.busy_until_s, self.create_sent_s + CREATE_ANSWER_S)
        return wake if wake > trio.current_time() else math.inf

    def finish(self, reason: str, *, fatal: bool = False, code: str = "",
               failure: SessionFailed | None = None) -> None:  # fmt: skip
        """End this connection (the first reason wins) and stop its tasks."""
        if self.end is None:
            self.end = ConnectionEnd(reason, fatal, code, failure)
        self._scope.cancel()
        self.touch()

    def retire(self) -> None:
        """Close on purpose (rotated away or hung up): not a loss."""
        self.retired = True
        self.finish("retired")

    # --- sending ------------------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> bool:
        """Send one event; False (and the connection ends) if the socket is gone."""
        ws = self._ws
        if ws is None or self.end is not None:
            return False
        try:
            await ws.send_message(json.dumps(event))
        except _SEND_ERRORS as exc:
            self.finish(self._redact(f"sending failed: {websocket.closed_reason(exc)}"))
            return False
        return True

    async def send_audio(self, pcm: NDArray[np.int16]) -> bool:
        """Caller audio as one append, counted in `input_ms` first (for a commit behind it)."""
        self.input_ms += pcm.size / 8  # 8 samples a millisecond
        return await self.send_event(ce.input_audio_append(self.encoder.encode(pcm)))

    # --- the actor ----------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False

        def ready() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            await self._open(ready)
        except ConnectionRejected as exc:
            self._rejected(exc.status_code)
        except (HandshakeError, ConnectionClosed, OSError, trio.BrokenResourceError) as exc:
            self.finish(self._redact(f"could not connect: {websocket.closed_reason(exc)}"))
        except trio.TooSlowError:
            self.finish(f"could not connect within {CONNECT_S:g} s")
        finally:
            self.closed.set()
            self.touch()
            self.done.set()
        if not started:
            raise ConnectFailed(self.end or ConnectionEnd("closed before it was ready", False))

    async def _open(self, ready: Callable[[], None]) -> None:
        url = connection_url(self.settings)
        headers = auth_headers(self.settings, self._key)
        async with open_socket(url, ssl_context_for(url), headers) as ws:
            self._ws = ws
            try:
                with self._scope:  # finish() stops our tasks, not the socket's reader
                    await self._serve(ws, ready)
            finally:
                # Our own end: the socket's reader still runs, a full close handshake (but a
                # peer that stopped answering pings will not answer that either). A hang-up
                # cancelled the reader too: the close frame goes, then the socket.
                own_end = self.end is not None
                if own_end:  # a successor need not wait for the close handshake
                    self.closed.set()
                    self.touch()
                polite = own_end and not self._peer_silent
                await websocket.close_socket(ws, CLOSE_S if polite else HANGUP_CLOSE_S)

    def _rejected(self, status: int) -> None:
        # 401/403: the key; other 4xx: URL, model or deployment; 408/429/5xx: try again.
        fatal = 400 <= status < 500 and status not in (408, 429)
        what = "the API key was refused" if status in (401, 403) else "the server refused us"
        self.finish(f"{what} (HTTP {status} at the websocket upgrade)", fatal=fatal,
                    code=f"http_{status}")  # fmt: skip

    async def _serve(self, ws: WebSocketConnection, ready: Callable[[], None]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain, ws)
            nursery.start_soon(self._keepalive, ws)
            try:
                with trio.fail_after(HANDSHAKE_S):
                    accepted = await self._handshake()
            except trio.TooSlowError:
                accepted = False
                self.finish(f"no session.updated within {HANDSHAKE_S:g} s")
            if not accepted or self.end is not None:
                self.finish("the server closed the socket during set-up")
                nursery.cancel_scope.cancel()
                return
            self.opened_s = trio.current_time()
            ready()
            await self._dispatch()
            self.finish("the server closed the socket")
            nursery.cancel_scope.cancel()

    async def _drain(self, ws: WebSocketConnection) -> None:
        """Read the socket always (so pings get answered) into our bounded channel."""
        async with self._raw_send:
            while True:
                try:
                    message = await ws.get_message()
                except ConnectionClosed as exc:
                    if self.end is None:
                        self.end = ConnectionEnd(self._redact(websocket.close_story(exc)), False)
                    return
                try:
                    self._raw_send.send_nowait(message)
                except trio.WouldBlock:
                    if _is_audio_delta(message):
                        self.deltas_dropped += 1
                        continue
                    await self._raw_send.send(message)

    async def _keepalive(self, ws: WebSocketConnection) -> None:
        while True:
            await trio.sleep(KEEPALIVE_S)
            with trio.move_on_after(PING_TIMEOUT_S) as pinging:
                try:
                    await ws.ping()
                except _SEND_ERRORS:
                    return  # the drain task reports the close
            if pinging.cancelled_caught:
                self._peer_silent = True
                self.finish(f"no pong within {PING_TIMEOUT_S:g} s: the link is dead")
                return

    async def _handshake(self) -> bool:
        """session.update, then events until session.updated (errors go to the owner);
        whether the server accepted our formats."""
        self.update_event_id = ce.new_event_id()
        if not await self.send_event(ce.session_update(self.settings, self.update_event_id)):
            return False
        async for raw in self._raw_recv:
            event = self._parse(raw)
            if event is None:
                continue
            if isinstance(event, SessionCreated):
                self.session_id = event.session_id
            elif isinstance(event, SessionUpdated):
                self.session_id = self.session_id or event.session_id
                return self._check_formats(event)
            elif isinstance(event, ServerError):
                await self.owner.on_event(self, event)
            else:
                log.debug(
                    "realtime %s: %s before session.updated, ignored",
                    self.name,
                    type(event).__name__,
                )
        return False

    def _check_formats(self, event: SessionUpdated) -> bool:
        lenient = not profile_of(self.settings).full_session_echo
        for direction, wanted, got in (
            ("input", self.settings.input_format, event.input_format),
            ("output", self.settings.output_format, event.output_format),
        ):
            if got is None and lenient:
                log.warning("realtime %s: session.updated does not say the %s audio format; "
                            "assuming %s", self.name, direction, wanted)  # fmt: skip
            elif parse_format(got) != wanted:
                refused = AudioFormatRefused(direction, wanted, describe_format(got))
                self.finish(refused.reason, fatal=True, code=refused.code, failure=refused)
                return False
        return True

    async def _dispatch(self) -> None:
        while True:
            raw: str | bytes | None = None
            with trio.move_on_at(self.stall_at_s()):  # only the wait: never a handler
                try:
                    raw = await self._raw_recv.receive()
                except trio.EndOfChannel:
                    return
            if raw is None:
                await self.owner.on_stall(self)
                continue
            event = self._parse(raw)
            if event is None:
                continue
            try:
                await self.owner.on_event(self, event)
            except MalformedEvent as exc:  # a field unusable only in context (audio, size)
                self._malformed(exc)

    def _parse(self, raw: str | bytes) -> ServerEvent | None:
        """The typed event, or None (logged and counted) for a malformed frame."""
        try:
            kind, event = parse_named(self._redact(raw) if isinstance(raw, str) else raw)
        except MalformedEvent as exc:
            self._malformed(exc)
            return None
        if kind in BETA_ALIASES and not self._beta_named:
            self._beta_named = True
            log.info("realtime %s: the server uses beta event names (%s for %s); taken as "
                     "their GA names", self.name, kind, BETA_ALIASES[kind])  # fmt: skip
        return event

    def _redact(self, text: str) -> str:
        """Server text without our key: a server that echoes it back ("Incorrect API key
        provided: ...") must not put it into our logs, errors and transcripts."""
        if self._key is None:
            return text
        key = self._key.reveal()
        return text.replace(key, "<redacted key>") if key in text else text

    def _malformed(self, exc: MalformedEvent) -> None:
        self.malformed += 1
        if self.malformed <= 10 or self.malformed % 100 == 0:
            log.warning("realtime %s: dropped a malformed server event (%d so far): %s",
                        self.name, self.malformed, exc)  # fmt: skip


def _is_audio_delta(message: str | bytes) -> bool:
    head = message[:200]
    return (b"audio.delta" in head) if isinstance(head, bytes) else ("audio.delta" in head)
