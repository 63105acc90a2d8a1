"""Opening and closing a client websocket with trio-websocket, with the TCP/TLS stream in our
hands.

`open_websocket_url` leaves the socket open when the server refuses the upgrade (its reader
task dies with `ConnectionRejected` before anyone can close the stream): on an appliance that
retries a refusing server (401, 429, 503) that is one leaked socket per attempt. Here the
stream is opened first and closed on every way out; the reader task runs in our nursery, and a
refusal comes out as the bare `ConnectionRejected`, not inside an exception group.

`close_socket` runs the close handshake shielded, for a bounded time that a hang-up cuts short.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # trio-websocket's 1 MiB closes on item.retrieved audio
CONNECT_S = 10.0  # TCP + TLS, then the upgrade; its 60 s default holds a caller in silence
HANGUP_CLOSE_S = 0.1  # on hang-up: the close frame is written, no reply is awaited


@asynccontextmanager
async def open_socket(
    url: str, ssl_context: ssl.SSLContext | None, headers: list[tuple[bytes, bytes]]
) -> AsyncIterator[WebSocketConnection]:
    """A connected websocket to `url` (checked by `profiles.check_url`). Raises OSError (and
    `trio.TooSlowError` past `CONNECT_S`, `trio.BrokenResourceError` for a failed TLS handshake
    or a stream broken before the upgrade) for the connection, `ConnectionRejected` for a
    refused upgrade. The caller closes the websocket; the stream is closed here in any case."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if ssl_context else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port in (80, 443) else f"{host}:{port}"
    with trio.fail_after(CONNECT_S):
        if ssl_context is None:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        else:
            ssl_stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl_context,
                                                             https_compatible=True)  # fmt: skip
            stream = ssl_stream
            try:  # here, not in the websocket's reader task: a bad certificate is named
                await ssl_stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
    try:
        async with trio.open_nursery() as nursery:  # the websocket's reader task
            with trio.fail_after(CONNECT_S):
                ws = await wrap_client_stream(
                    nursery, stream, host_header, resource,  # type: ignore[arg-type]
                    extra_headers=headers, max_message_size=MAX_MESSAGE_BYTES,
                )  # fmt: skip
            yield ws
    except BaseExceptionGroup as group:
        # The reader task's refusal, or the stream breaking before the upgrade finished (the
        # server closed it, TLS failed late): one plain exception for the session to judge.
        single = _only(group, (ConnectionRejected, trio.BrokenResourceError, trio.TooSlowError,
                               OSError))  # fmt: skip
        if single is None:
            raise
        raise single from None
    finally:
        await trio.aclose_forcefully(stream)


def _only(group: BaseExceptionGroup, kind: type[BaseException] | tuple[type[BaseException], ...]
          ) -> BaseException | None:  # fmt: skip
    """The single `kind` leaf if that is all the group holds."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 and isinstance(leaves[0], kind) else None


async def close_socket(ws: WebSocketConnection, limit_s: float) -> None:
    """The close handshake, shielded (a close frame cut in half would corrupt the stream), for
    up to `limit_s`; a cancellation (hang-up) meanwhile cuts that to `HANGUP_CLOSE_S` from then,
    so a hang-up never waits out a polite close (a rotated-away session, a peer that stopped
    reading its socket)."""
    closing = trio.CancelScope(shield=True, deadline=trio.current_time() + limit_s)
    closed = trio.Event()

    async def close() -> None:
        with closing:
            await ws.aclose(1000, "bye")
        closed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close)
        try:
            await closed.wait()
        finally:  # cancelled: the close frame still goes, the reply is not awaited
            closing.deadline = min(closing.deadline, trio.current_time() + HANGUP_CLOSE_S)


def close_story(exc: ConnectionClosed) -> str:
    """Who closed the socket and why, for the log and `SessionLost`."""
    code = getattr(exc.reason, "code", None)
    if code == 1009:  # trio-websocket closes by itself on a message over MAX_MESSAGE_BYTES
        return f"a message over the size limit closed the socket: {closed_reason(exc)}"
    return f"the server closed the socket: {closed_reason(exc)}"


def closed_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason is not None and hasattr(reason, "code"):
        text = f" ({reason.reason})" if reason.reason else ""
        return f"{reason.code} {reason.name}{text}"
    cause = exc.__cause__ or exc.__context__
    detail = str(exc) or (str(cause) if cause else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
