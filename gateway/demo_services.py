"""The local HTTP services the demo scenarios' tools call (`gateway.demo_scenarios`), each a
real HTTP server on 127.0.0.1 in a thread: a "bank" that checks PINs (`pin_bank`) and a "CRM"
that knows callers by number (`crm`). Each yields its URL and the requests it got (the JSON
body of a POST, the query of a GET, as a dict)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PIN = "4321"
CUSTOMERS = {  # the CRM's callers, by number (the simulated callers' caller IDs)
    "5551234000": {"name": "Alice Smith", "customer_since": 2019, "open_order": "A-1042",
                "note": "prefers to be called Ally"},
}  # fmt: skip

Reply = Callable[[dict[str, Any]], dict[str, Any]]


@contextmanager
def json_service(path: str, reply: Reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server answering every GET or POST with `reply(request)` as JSON: (the URL
    of `path` on it, the requests it got)."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self._answer(json.loads(self.rfile.read(length) or b"{}"))

        def do_GET(self) -> None:
            self._answer(dict(parse_qsl(urlsplit(self.path).query)))

        def _answer(self, request: dict[str, Any]) -> None:
            seen.append(request)
            answer = json.dumps(reply(request)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{path}", seen
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


@contextmanager
def pin_bank() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Checks PINs (and, carelessly, echoes the PIN it got: the model must still never see
    it)."""
    with json_service("verify", lambda body: {"valid": body.get("pin") == PIN,
                                              "echo": body.get("pin")}) as service:  # fmt: skip
        yield service


@contextmanager
def crm() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Looks a caller up by `number` (GET ?number=...): the customer, or `{"known": false}`."""

    def lookup(query: dict[str, Any]) -> dict[str, Any]:
        customer = CUSTOMERS.get(str(query.get("number", "")))
        return {"known": True, **customer} if customer else {"known": False}

    with json_service("callers", lookup) as service:
        yield service
