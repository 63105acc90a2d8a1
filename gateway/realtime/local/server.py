"""`LocalRealtimeServer`: a realtime server speaking the OpenAI GA event schema on loopback, for
tests, the demo and benchmarks (`tipring local-server` runs it on its own).

It serves `/v1/realtime?model=M` (also Azure's `/openai/v1/realtime` and Inworld's
`/api/v1/realtime/session?key=K&protocol=realtime` shapes, so a provider profile with a `url`
override can be pointed at it), answers each caller turn with a bundled prompt (or what the
script says, tool calls included), and misbehaves on request (`Faults`). Each connection's
traffic is kept in `sessions` (`SessionRecord`).
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path

import trio
from trio_websocket import WebSocketRequest, WebSocketServer

from gateway.realtime.errors import RealtimeConfigError
from gateway.realtime.local import server_events as se
from gateway.realtime.local.faults import Faults
from gateway.realtime.local.prompts import Prompts
from gateway.realtime.local.record import SessionRecord
from gateway.realtime.local.script import Script
from gateway.realtime.local.session import Ids, ServerSession

log = logging.getLogger(__name__)

PATHS = ("/v1/realtime", "/openai/v1/realtime", "/api/v1/realtime/session")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the client's own limit; appends may be large
CONNECT_S = 10.0
CLOSE_S = 2.0
DEFAULT_MODEL = "tipring-local"


class LocalRealtimeServer:
    """Serve until cancelled; `run` reports `ws://HOST:PORT/v1/realtime` through `started`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 script: Script | str | Path | None = None, faults: Faults | None = None,
                 prompts_dir: str | Path | None = None,
                 keep_audio: bool = False) -> None:  # fmt: skip
        self.host, self.port = host, port
        self.keep_audio = keep_audio  # each session's caller audio in its record (tests)
        if isinstance(script, str | Path):
            script = Script.load(script)
        self.script = script or Script()
        self.faults = faults
        self.prompts = Prompts.load(prompts_dir)
        self.script.check_prompts(self.prompts.names)
        self.sessions: list[SessionRecord] = []
        self._ids = Ids()  # shared by all connections: ids are unique server-wide
        self.url = ""

    async def run(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        except OSError as exc:
            raise RealtimeConfigError(
                f"local realtime server: cannot listen on {self.host}:"
                f"{self.port}: {exc.strerror or exc}"
            ) from None
        async with trio.open_nursery() as nursery:
            server = WebSocketServer(
                self._handle, listeners, handler_nursery=nursery,
                max_message_size=MAX_MESSAGE_BYTES, connect_timeout=CONNECT_S,
                disconnect_timeout=CLOSE_S,
            )  # fmt: skip
            await nursery.start(server.run)
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"ws://{host}:{server.port}/v1/realtime"
            log.info("local realtime server on %s (%d prompts, %d scripted turns)", self.url,
                     len(self.prompts.names), len(self.script.turns))  # fmt: skip
            task_status.started(self.url)

    def _faults_for(self, index: int) -> Faults | None:
        f = self.faults
        if f is None or (f.first_connections is not None and index >= f.first_connections):
            return Faults(audio_speed=f.audio_speed) if f is not None else None
        return f

    async def _handle(self, request: WebSocketRequest) -> None:
        """One connection; a failure in it is logged and ends it, never the server."""
        path, _, query_text = request.path.partition("?")
        query = dict(urllib.parse.parse_qsl(query_text))
        headers = {k.decode("latin-1").lower(): v for k, v in request.headers}
        record = SessionRecord(len(self.sessions), path, query, sorted(headers),
                               _auth_scheme(headers))  # fmt: skip
        faults = self._faults_for(record.index)
        if self.keep_audio:
            record.audio = []
        self.sessions.append(record)
        refusal = _refusal(path, query, faults)
        if refusal:
            record.end(f"rejected {refusal}")
            await request.reject(refusal)
            return
        ws = await request.accept()
        log.info("local realtime server: session %d on %s (auth %s)", record.index, path,
                 record.auth_scheme or "none")  # fmt: skip
        session = ServerSession(ws, record, self.prompts, self.script, faults,
                                query.get("model", DEFAULT_MODEL), self._ids)  # fmt: skip
        try:
            if "openai-beta" in headers:  # as the GA endpoint does since May 2026
                await session.send(se.error("beta_api_shape_disabled", "The Realtime Beta API "
                                   "is no longer supported. Please use /v1/realtime for the GA "
                                   "API."))  # fmt: skip
                await session.close(1008, "beta API shape disabled")
                return
            await session.run()
        except Exception:  # a supervisor of connections: one broken session, not the server
            log.error("local realtime server: session %d failed", record.index, exc_info=True)
            record.end("server error")
            await session.close(1011, "server error")
        log.info("local realtime server: session %d ended (%s)", record.index, record.closed)


def _refusal(path: str, query: dict[str, str], faults: Faults | None) -> int:
    """The HTTP status to refuse the upgrade with, or 0 to accept."""
    if faults is not None and faults.reject_status:
        return faults.reject_status
    if path.rstrip("/") not in PATHS:
        return 404
    if path.startswith("/api/") and (not query.get("key") or query.get("protocol") != "realtime"):
        return 400  # Inworld's shape needs its session key and protocol=realtime
    return 0


def _auth_scheme(headers: dict[str, bytes]) -> str:
    if "api-key" in headers:
        return "api-key"
    value = headers.get("authorization", b"")
    return value.split(b" ", 1)[0].decode("latin-1") if value else ""
