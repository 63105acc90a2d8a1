"""gateway.tools_http: HTTP tools declared in config, through a real runner, against a real
HTTP/1.1 server on 127.0.0.1 (http.server in a thread: real sockets, real clock)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from gateway.tools_config import tools_from_config
from gateway.tools_http import MAX_RESPONSE_BYTES, query_params
from tests.gateway.test_tools_rig import runner_rig

TOKEN = "s3cr3t-t0ken-XYZ"
PIN = "9911"
POLL_S = 0.01  # how often serve_forever looks for shutdown (its 0.5 s default slows teardown)
SLOW_RELEASE_S = 10.0  # the /slow handler's longest wait: the fixture releases it at teardown


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    """Records each request in `server_state.seen`, answers by path."""

    server_state: Server  # set on a subclass per fixture

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        url = urlsplit(self.path)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server_state.seen.append(
            Seen(self.command, url.path, parse_qs(url.query), headers, body)
        )
        self.server_state.arrived.set()
        match url.path:
            case "/fail":
                self._answer(500, "text/plain", b"database down")
            case "/slow":
                self.server_state.release.wait(SLOW_RELEASE_S)
                self._answer(200, "application/json", b"{}")
            case "/big":
                self._answer(200, "application/json", b"[" + b"1," * 50000 + b"1]")
            case "/text":
                self._answer(200, "text/plain; charset=utf-8", "Grüße".encode())
            case "/empty":
                self._answer(204, "", b"")
            case "/moved":
                self.send_response(302)
                self.send_header("Location", "http://example.com/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            case _:
                self._answer(200, "application/json", json.dumps({"found": True}).encode())

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        if kind:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `seen`, not stderr."""


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = type("Bound", (Handler,), {"server_state": state})
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(POLL_S,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "crm-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "phone": {"type": "string"},
        "vip": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "n": {"type": "integer"},
        "pin": {"type": "string"},
    },
    "additionalProperties": False,
}


def http_tool(url: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {
        "name": "crm",
        "description": "The CRM.",
        "url": url,
        "method": method,
        "parameters": PARAMETERS,
        "sensitive": ["pin"],
        **extra,
    }


def authed(url: str, secret: Path, method: str = "GET", **extra: Any) -> dict[str, Any]:
    auth = {"auth_header": "Authorization", "auth_scheme": "Bearer"}
    return http_tool(url, method, auth_secret_file=str(secret), **auth, **extra)


async def call(tool: dict[str, Any], arguments: dict[str, Any]) -> Any:
    async with runner_rig(tools_from_config({"http": [tool]})) as rig:
        value = await rig.result(tool["name"], json.dumps(arguments))
    return value, rig.runner.records[0]


async def test_get_sends_the_arguments_as_query_with_the_auth_header(
    server: Server, secret_file: Path
) -> None:
    arguments = {"phone": "+49 30 123", "vip": True, "tags": ["a", "b"], "n": 3}
    value, record = await call(authed(server.url + "/customers?v=2", secret_file), arguments)
    assert value == {"status": 200, "json": {"found": True}}
    assert record.outcome == "ok"
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/customers", b"")
    expected = {"v": ["2"], "phone": ["+49 30 123"], "vip": ["true"], "tags": ["a", "b"]}
    assert seen.query == {**expected, "n": ["3"]}
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["accept"] == "application/json"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_body_methods_send_the_arguments_as_json(
    server: Server, secret_file: Path, method: str
) -> None:
    arguments = {"phone": "+4930123", "tags": ["x"]}
    value, _ = await call(authed(server.url + "/bookings", secret_file, method), arguments)
    assert value == {"status": 200, "json": {"found": True}}
    [seen] = server.seen
    assert (seen.method, seen.query, json.loads(seen.body)) == (method, {}, arguments)
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


async def test_delete_sends_query_and_no_auth_when_none_is_declared(server: Server) -> None:
    value, _ = await call(http_tool(server.url + "/bookings", "DELETE"), {"n": 7})
    assert value == {"status": 200, "json": {"found": True}}
    [seen] = server.seen
    assert (seen.method, seen.query, seen.body) == ("DELETE", {"n": ["7"]}, b"")
    assert "authorization" not in seen.headers


async def test_server_error_is_an_error_result_with_status_and_body(server: Server) -> None:
    value, record = await call(http_tool(server.url + "/fail"), {})
    assert value == {
        "error": "crm: HTTP 500 Internal Server Error",
        "tool": "crm",
        "status": 500,
        "body": "database down",
    }
    assert record.outcome == "error"


async def test_redirect_is_not_followed(server: Server) -> None:
    value, _ = await call(http_tool(server.url + "/moved"), {})
    assert value == {"error": "crm: HTTP 302 Found", "tool": "crm", "status": 302}
    assert len(server.seen) == 1


async def test_slow_server_is_a_timeout_error_result(server: Server) -> None:
    t0 = trio.current_time()
    value, record = await call(http_tool(server.url + "/slow", timeout_s=0.3), {})
    assert value == {"error": "crm did not answer within 0.3 s", "tool": "crm"}
    assert record.outcome == "timeout"
    assert 0.3 <= trio.current_time() - t0 < 2.0


async def test_unreachable_server_is_an_error_result_naming_the_host() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    value, record = await call(http_tool(f"http://127.0.0.1:{port}/x"), {"pin": PIN})
    assert value == {"error": "crm: GET to 127.0.0.1 failed (ConnectError)", "tool": "crm"}
    assert record.outcome == "error"


async def test_oversized_body_is_cut_to_the_cap_and_returned_as_text(server: Server) -> None:
    value, _ = await call(http_tool(server.url + "/big"), {})
    assert value["status"] == 200
    assert value["truncated"] is True
    assert value["text"] == ("[" + "1," * 50000)[:MAX_RESPONSE_BYTES]


async def test_text_and_empty_bodies(server: Server) -> None:
    text, _ = await call(http_tool(server.url + "/text"), {})
    empty, _ = await call(http_tool(server.url + "/empty"), {})
    assert (text, empty) == ({"status": 200, "text": "Grüße"}, {"status": 204})


async def test_hang_up_cancels_a_request_in_flight(server: Server) -> None:
    config = {"http": [http_tool(server.url + "/slow")]}
    async with runner_rig(tools_from_config(config)) as rig:
        await rig.call("crm")
        assert await trio.to_thread.run_sync(server.arrived.wait, 5.0)  # the request is there
        hung_up_at = trio.current_time()
        rig.call_scope.cancel(reason="hung up")
    assert trio.current_time() - hung_up_at < 0.5
    assert rig.session.outputs == []
    assert rig.runner.records[0].outcome == "cancelled"


async def test_secret_and_sensitive_arguments_never_reach_logs_errors_or_repr(
    server: Server, secret_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = tools_from_config({"http": [authed(server.url + "/fail", secret_file)]})
    async with runner_rig(registry) as rig:
        failed = await rig.result("crm", json.dumps({"phone": "1", "pin": PIN}))
        bad = await rig.result("crm", json.dumps({"pin": PIN, "extra": 1}))
    tool = registry.get("crm")
    everything = caplog.text + json.dumps([failed, bad]) + repr(tool) + repr(registry.schemas())
    assert TOKEN not in everything
    assert PIN not in caplog.text
    assert server.seen[0].query["pin"] == [PIN]  # it did go where it belongs
    assert f"auth=Secret(source='file {secret_file}', value=<redacted>)" in repr(tool)


def test_query_params_encode_json_values_and_repeat_lists() -> None:
    arguments = {"s": "a b", "b": False, "i": 3, "f": 1.5, "l": [1, "x"], "o": {"k": None}}
    assert query_params(arguments) == (
        ("s", "a b"),
        ("b", "false"),
        ("i", "3"),
        ("f", "1.5"),
        ("l", "1"),
        ("l", "x"),
        ("o", '{"k": null}'),
    )


async def test_an_argument_cannot_override_a_parameter_the_url_fixes(server: Server) -> None:
    open_schema = {"type": "object", "properties": {"phone": {"type": "string"}}}
    tool = http_tool(server.url + "/c?tenant=acme", parameters=open_schema, sensitive=[])
    value, _ = await call(tool, {"phone": "1", "tenant": "other"})
    assert value == {"error": "crm: argument 'tenant' is fixed by the tool's URL", "tool": "crm"}
    assert server.seen == []
