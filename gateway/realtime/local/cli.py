"""`tipring local-server`: the local realtime server on its own, until Ctrl-C.

Prints one line, `local realtime server on ws://HOST:PORT/v1/realtime`, once it listens (the
benchmark and tests read it to find a free port's URL), then logs each session at INFO.
"""

from __future__ import annotations

import logging
import sys

import trio

from gateway.errors import GatewayError
from gateway.realtime.local.server import LocalRealtimeServer


def run_local_server(host: str, port: int, script: str | None) -> int:
    """Serve until interrupted; the exit status (2: bad script or prompts, 1: cannot listen)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        server = LocalRealtimeServer(host, port, script=script)
    except GatewayError as exc:
        print(f"tipring local-server: {exc}", file=sys.stderr)
        return 2

    async def serve() -> int:
        async with trio.open_nursery() as nursery:
            try:
                url = await nursery.start(server.run)
            except GatewayError as exc:  # cannot listen
                print(f"tipring local-server: {exc}", file=sys.stderr)
                return 1
            print(f"local realtime server on {url}", flush=True)
        return 0

    try:
        return trio.run(serve)
    except KeyboardInterrupt:
        return 0
