"""Opening a client websocket with trio-websocket, with the TCP/TLS stream in our hands.

`open_websocket_url` leaves the socket open when the server refuses the upgrade (its reader
task dies with `ConnectionRejected` before anyone can close the stream): on an appliance that
retries a refusing server (401, 429, 503) that is one leaked socket per attempt. Here the
stream is opened first and closed on every way out; the reader task runs in our nursery, and a
refusal comes out as the bare `ConnectionRejected`, not inside an exception group.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, wrap_client_stream

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # trio-websocket's 1 MiB closes on item.retrieved audio
CONNECT_S = 10.0  # TCP + TLS, then the upgrade; its 60 s default holds a caller in silence


@asynccontextmanager
async def open_socket(
    url: str, ssl_context: ssl.SSLContext | None, headers: list[tuple[bytes, bytes]]
) -> AsyncIterator[WebSocketConnection]:
    """A connected websocket to `url` (checked by `profiles.check_url`). Raises OSError (and
    `trio.TooSlowError` past `CONNECT_S`) for the connection, `ConnectionRejected` for a refused
    upgrade. The caller closes the websocket; the stream is closed here in any case."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if ssl_context else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port in (80, 443) else f"{host}:{port}"
    with trio.fail_after(CONNECT_S):
        if ssl_context is None:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        else:
            stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl_context,
                                                         https_compatible=True)  # fmt: skip
    try:
        async with trio.open_nursery() as nursery:  # the websocket's reader task
            with trio.fail_after(CONNECT_S):
                ws = await wrap_client_stream(
                    nursery, stream, host_header, resource,  # type: ignore[arg-type]
                    extra_headers=headers, max_message_size=MAX_MESSAGE_BYTES,
                )  # fmt: skip
            yield ws
    except BaseExceptionGroup as group:
        rejected = _only(group, ConnectionRejected)
        if rejected is None:
            raise
        raise rejected from None
    finally:
        await trio.aclose_forcefully(stream)


def _only(group: BaseExceptionGroup, kind: type[BaseException]) -> BaseException | None:
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
