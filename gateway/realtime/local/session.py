"""One connection to the local realtime server: `ServerSession`, the server side of the GA
schema. It reads client events, keeps the session config and the conversation's items, runs the
energy VAD on appended audio (speech_started/stopped, commit, response), and lets `responses`
stream replies. Faults (`Faults`) are applied where events are sent and read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.utilities import LocalProtocolError

from gateway.realtime.audio import decode_base64
from gateway.realtime.errors import MalformedEvent
from gateway.realtime.events import BETA_ALIASES
from gateway.realtime.local import config as cfg
from gateway.realtime.local import items, responses
from gateway.realtime.local import server_events as se
from gateway.realtime.local.faults import Faults
from gateway.realtime.local.prompts import Prompts
from gateway.realtime.local.record import SessionRecord
from gateway.realtime.local.script import Script
from gateway.realtime.local.vad import SEMANTIC_SILENCE_MS, Edge, EnergyVad, InputTrack

log = logging.getLogger(__name__)

SEND_S = 5.0  # one frame to a loopback client; past this the client is stuck: drop it
CLOSE_S = 2.0
PING_EVENT_S = 1.0  # the lean (Inworld-style) server's keep-alive events
MAX_APPEND_BYTES = 15 * 1024 * 1024  # GA: up to 15 MiB of audio per append
Handler = Callable[[dict[str, Any]], Awaitable[None]]
BETA_NAMES = {ga: beta for beta, ga in BETA_ALIASES.items()}  # the `beta_names` fault


class Ids:
    """Ids as the real APIs give them: unique across the server's connections (a client that
    carries a call over must never meet a new item under an old item's id)."""

    def __init__(self) -> None:
        self._n: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        self._n[prefix] = self._n.get(prefix, 0) + 1
        return f"{prefix}_{self._n[prefix]:04d}"


class ServerSession:
    """The server's state for one client connection."""

    def __init__(self, ws: WebSocketConnection, record: SessionRecord, prompts: Prompts,
                 script: Script, faults: Faults | None, model: str,
                 ids: Ids | None = None) -> None:  # fmt: skip
        self.ws, self.record, self.prompts, self.script = ws, record, prompts, script
        self.faults = faults or Faults()
        self.speed = (faults or Faults()).audio_speed
        self.lean = self.faults.lean
        self.ids = ids or Ids()
        self.session_id = self.ids.new("sess_local")
        self.config = cfg.default_config(model)
        self.items = items.Conversation()
        self.active: responses.ResponseRun | None = None
        self.turn = 0
        self.unscripted = 0
        self.calls: dict[str, str] = {}  # call id -> then_say, waiting for its output
        self.answered: list[str] = []  # call ids whose output arrived, oldest first
        self.nursery: trio.Nursery | None = None
        self._sent = 0
        self._inject_seen = 0  # events of type `Faults.inject_after` sent so far
        self._stall_until = 0.0
        self._track = InputTrack("audio/pcm")
        self._vad: EnergyVad | None = None
        self._speech_item = ""
        self._buffer_ms = 0
        self._apply_config()

    # --- sending ------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Send a server event (an event_id added), then apply the faults due after it."""
        await self._stalled()
        self._sent += 1
        await self.send_now(event)
        await self._after_send(self._sent, event["type"])

    async def send_now(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if self.faults.beta_names:
            kind = BETA_NAMES.get(kind, kind)
        rest = {k: v for k, v in event.items() if k != "type"}
        event = {"type": kind, "event_id": self.ids.new("event"), **rest}
        self.record.sent.append(event)
        self.record.touch()
        await self.send_frame(json.dumps(event))

    async def send_frame(self, frame: str | bytes) -> None:
        """One websocket message as it is: a text frame for a str, a binary one for bytes."""
        # Shielded: a frame cut in half by a cancellation would corrupt the stream.
        with trio.move_on_after(SEND_S, shield=True) as sending:
            try:
                await self.ws.send_message(frame)
            except (ConnectionClosed, LocalProtocolError) as exc:
                self._gone(f"client gone: {exc}")
                return
        if sending.cancelled_caught:
            await self.close(1011, "client stopped reading")

    def _gone(self, why: str) -> None:
        self.record.end(why)
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def close(self, code: int, reason: str) -> None:
        self.record.end(f"{code} {reason}")
        with trio.move_on_after(CLOSE_S, shield=True):
            await self.ws.aclose(code, reason)
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def _stalled(self) -> None:
        if trio.current_time() < self._stall_until:
            await trio.sleep_until(self._stall_until)

    async def _after_send(self, n: int, kind: str) -> None:
        f = self.faults
        for injected in f.errors:
            if injected.after_events == n:
                await self.send_now(se.error(injected.code, injected.message, kind=injected.kind))
        if f.inject and kind == f.inject_after:
            self._inject_seen += 1
            if self._inject_seen == f.inject_nth:
                for frame in f.inject:
                    await self.send_frame(frame)
        if f.malformed_every and n % f.malformed_every == 0:
            await self.send_frame('{"type": "response.output_audio.delta", "delta": "AAAA')
        if f.unknown_every and n % f.unknown_every == 0:
            await self.send_now({"type": "tipring.fault.unknown_event", "n": n})
        if f.stall_after_events == n:
            self._stall_until = trio.current_time() + f.stall_s
            await self._stalled()
        if f.disconnect_after_events == n:
            await self.close(1011, f"fault: disconnect after {n} events")

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._timers)
                await self.send(se.session_event("session.created", self._echo()))
                await self._read()
                nursery.cancel_scope.cancel()
        except ConnectionClosed as exc:
            self.record.end(f"client: {exc.reason}")
        # Not in a `finally`: a session that raised is recorded as a "server error" by its
        # supervisor (`LocalRealtimeServer._handle`), not as "closed".
        self.record.end("closed")

    async def _timers(self) -> None:
        f = self.faults
        limit = f.session_limit_s if f.session_limit_s is not None else float("inf")
        cut = f.disconnect_after_s if f.disconnect_after_s is not None else float("inf")
        start = trio.current_time()
        while True:
            wake = min(start + limit, start + cut, trio.current_time() + PING_EVENT_S)
            await trio.sleep_until(wake)
            now = trio.current_time() - start
            if now >= limit:
                minutes = f"{limit / 60:g}"
                msg = f"Your session hit the maximum duration of {minutes} minutes."
                await self.send_now(se.error("session_expired", msg))
                await self.close(1001, msg)
            elif now >= cut:
                await self.close(1011, f"fault: disconnect after {cut:g} s")
            elif self.lean:
                await self.send({"type": "ping", "timestamp": int(trio.current_time() * 1000)})

    async def _read(self) -> None:
        while True:
            await self._stalled()
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed as exc:
                self.record.end(f"client: {exc.reason}")
                return
            await self._on_message(raw)
            self.record.touch()

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            await self.send(se.error("invalid_json", "We could not parse the JSON body of your "
                                     "request."))  # fmt: skip
            return
        kind = event.get("type") if isinstance(event, dict) else None
        handler = self._handlers().get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.record.received.append({"type": str(kind)})
            await self.send(se.error("invalid_value", f"Invalid value: {kind!r}. This is not a "
                                     "client event type.", param="type"))  # fmt: skip
            return
        self.record.received.append(_summary(event))
        await handler(event)

    def _handlers(self) -> dict[str, Handler]:
        return {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_manual,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": lambda e: items.create(self, e),
            "conversation.item.truncate": lambda e: items.truncate(self, e),
            "conversation.item.delete": lambda e: items.delete(self, e),
            "conversation.item.retrieve": lambda e: items.retrieve(self, e),
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "output_audio_buffer.clear": self._webrtc_only,
        }

    def error_for(self, event: dict[str, Any], code: str, message: str,
                  param: str = "") -> dict[str, Any]:  # fmt: skip
        """An error event naming the client event that caused it."""
        event_id = event.get("event_id")
        return se.error(code, message, param=param,
                        event_id=event_id if isinstance(event_id, str) else "")  # fmt: skip

    # --- session config -----------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        problem = cfg.check_update(event.get("session"), self.lean)
        if problem is not None:
            if isinstance(event.get("event_id"), str):
                problem["error"]["event_id"] = event["event_id"]
            await self.send(problem)
            return
        cfg.merge(self.config, event["session"])
        self._apply_config()
        await self.send(se.session_event("session.updated", self._echo()))

    def _echo(self) -> dict[str, Any]:
        return cfg.echo(self.config, self.session_id, self.faults.report_output_format)

    def _apply_config(self) -> None:
        fmt_in, self.output_format = cfg.formats(self.config)
        if fmt_in != self._track.fmt:
            self._track = InputTrack(fmt_in)
        td = cfg.turn_detection(self.config)
        if td is None:
            self._vad = None
            return
        silence = td.get("silence_duration_ms", 500)
        if td.get("type") == "semantic_vad":
            silence = SEMANTIC_SILENCE_MS.get(str(td.get("eagerness")), 800)
        self._vad = EnergyVad(float(td.get("threshold", 0.5)),
                              int(td.get("prefix_padding_ms", 300)), int(silence))  # fmt: skip

    # --- caller audio -------------------------------------------------------------------------

    async def _append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        try:
            if not isinstance(audio, str) or len(audio) > MAX_APPEND_BYTES * 4 // 3:
                raise MalformedEvent("input_audio_buffer.append", "audio missing or too large")
            wire = decode_base64(audio, "input_audio_buffer.append")
        except MalformedEvent:
            await self.send(self.error_for(event, "invalid_value", "Invalid 'audio'. Expected "
                                           "base64-encoded audio data.", "audio"))  # fmt: skip
            return
        for frame in self._track.frames(wire):
            self._buffer_ms += 20
            self.record.appended_ms += 20
            if self.record.audio is not None:
                self.record.audio.append(frame.copy())
            edge = self._vad.feed(frame) if self._vad is not None else None
            if edge is not None:
                await self._edge(edge)

    async def _edge(self, edge: Edge) -> None:
        td = cfg.turn_detection(self.config) or {}
        if edge.started:
            self._speech_item = self.ids.new("item")
            await self.send(se.speech_started(self._speech_item, edge.at_ms, self.lean))
            if td.get("interrupt_response", True) and self.active is not None:
                self.active.cancel("turn_detected")
            return
        await self.send(se.speech_stopped(self._speech_item, edge.at_ms, self.lean))
        speech_s = (self._vad.speech_ms if self._vad else 0) / 1000
        await self._commit(self._speech_item, speech_s)
        if td.get("create_response", True) and self.active is None:
            self.start_response(responses.plan_for_turn(self))

    async def _commit(self, item_id: str, speech_s: float) -> None:
        previous = self.items.last_id
        item = se.user_audio_item(item_id, None)
        self.items.add(item)
        self._buffer_ms = 0
        await self.send(se.committed(item_id, previous))
        await self.send(se.item_event("conversation.item.added", item, previous))
        await self.send(se.item_event("conversation.item.done", item, previous))
        if cfg.transcribing(self.config):
            turn = self.script.turns.get(self.turn + 1)
            text = turn.caller if turn and turn.caller else f"(caller speech, {speech_s:.1f} s)"
            await self.send(se.transcription_delta(item_id, text))
            await self.send(se.transcription_completed(item_id, text, speech_s))

    async def _commit_manual(self, event: dict[str, Any]) -> None:
        if self._buffer_ms < 100:
            await self.send(self.error_for(event, "input_audio_buffer_commit_empty",
                            "Error committing input audio buffer: buffer too small. Expected "
                            f"at least 100ms of audio, but buffer only has {self._buffer_ms}"
                            ".00ms of audio."))  # fmt: skip
            return
        await self._commit(self.ids.new("item"), self._buffer_ms / 1000)

    async def _clear(self, event: dict[str, Any]) -> None:
        self._buffer_ms = 0
        await self.send(se.cleared())

    # --- responses ----------------------------------------------------------------------------

    def start_response(self, plan: responses.Plan) -> None:
        assert self.nursery is not None
        assert self.active is None
        self.active = responses.ResponseRun(self.ids.new("resp"))
        self.nursery.start_soon(responses.run, self, self.active, plan)

    async def _response_create(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            await self.send(self.error_for(
                event, "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one."))  # fmt: skip
            return
        self.start_response(responses.plan_for_create(self))

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        if self.active is None:
            await self.send(
                self.error_for(
                    event,
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                )
            )
            return
        self.active.cancel("client_cancelled")

    async def _webrtc_only(self, event: dict[str, Any]) -> None:
        await self.send(
            self.error_for(
                event,
                "invalid_request_error",
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            )
        )


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
        return {**event, "audio": f"<{len(event['audio'])} base64 chars>"}
    return event
