"""TLS verification, end to end, for the appliance's two TLS clients: the realtime websocket
(`gateway.realtime`) and the HTTP tools (`gateway.tools_http`), each against a TLS server on
127.0.0.1 whose certificate comes from a throwaway CA made with `openssl` (`tls_rig`).

Refused: a certificate from a CA the client does not trust, a self-signed one, and a trusted
one for `localhost` reached as `127.0.0.1` (no IP SAN). Each refusal happens at the handshake,
before the API key or the tool's token leaves, and the secret shows nowhere. The positive
control runs the same client code with its `tls_context` trusting the throwaway CA (and
nothing else): the realtime session starts, behind TLS, against the local realtime server;
the HTTP tool gets its answer. Sockets are real, so waits use the real clock (short, bounded).
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import traceback
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import numpy as np
import pytest
import trio
from numpy.typing import NDArray

from gateway import tools_http
from gateway.realtime import (
    ApiKey,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
    SessionFailed,
    profiles,
)
from gateway.realtime import session as session_module
from gateway.realtime import websocket as websocket_module
from gateway.realtime.local import LocalRealtimeServer
from gateway.tools_config import tools_from_config
from gateway.tools_types import CallContext, ToolError
from tests.gateway.realtime.rig import FAST
from tests.gateway.test_tools_rig import FakeCall, runner_rig
from tests.gateway.tls_rig import (
    Pki,
    TlsServer,
    answer_json,
    make_pki,
    pipe_to,
    tls_server,
    trusting,
)

WAIT_S = 5.0  # one connection attempt, refused or not, on loopback
CONNECT_S = 1.0  # the client's connect bound in these tests (10 s in the app): see the xfail
KEY = f"sk-proj-tls-{secrets.token_urlsafe(24)}"
TOKEN = f"crm-tls-{secrets.token_urlsafe(24)}"
FOUND = {"found": True}


@dataclass(frozen=True)
class Refusal:
    chain: str  # the server's certificate: "server" (the throwaway CA's) or "self_signed"
    host: str  # what the client connects to
    trust_ca: bool  # the client trusts the throwaway CA (else only its usual bundle)
    verify_message: str  # OpenSSL's reason, in `SSLCertVerificationError.verify_message`

    def chain_of(self, pki: Pki) -> tuple[Path, Path]:
        return pki.server if self.chain == "server" else pki.self_signed


REFUSALS = [
    pytest.param(Refusal("server", "localhost", False, "unable to get local issuer certificate"),
                 id="unknown-ca"),
    pytest.param(Refusal("self_signed", "localhost", False, "self-signed certificate"),
                 id="self-signed"),
    pytest.param(Refusal("server", "127.0.0.1", True,
                         "IP address mismatch, certificate is not valid for '127.0.0.1'."),
                 id="name-mismatch"),
]  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def trust_throwaway_ca(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    """Both clients' `tls_context` as in production but trusting only the throwaway CA."""
    context = trusting(pki.ca)
    monkeypatch.setattr(profiles, "tls_context", lambda: context)
    monkeypatch.setattr(tools_http, "tls_context", lambda: context)


def texts_of(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def verification_error(exc: BaseException) -> ssl.SSLCertVerificationError:
    """The certificate error somewhere in `exc`'s chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    raise AssertionError(f"no certificate verification error behind {exc!r}")


def test_production_contexts_verify_certificates_and_host_names() -> None:
    for context in (profiles.tls_context(), tools_http.tls_context()):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert profiles.ssl_context_for("wss://api.openai.com/v1/realtime") is profiles.tls_context()
    assert profiles.ssl_context_for("ws://127.0.0.1:8765/v1/realtime") is None


# --- the realtime websocket ---------------------------------------------------------------------


@dataclass
class Attempt:
    started: bool
    raised: list[BaseException]  # what run() raised, flattened; [] if it started
    took_s: float


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session gives up after its first failed connection (30 s of retries in the app),
    which waits at most `CONNECT_S`."""
    monkeypatch.setattr(session_module, "GIVE_UP_S", 0.0)
    monkeypatch.setattr(websocket_module, "CONNECT_S", CONNECT_S)


@asynccontextmanager
async def realtime_behind_tls(chain: tuple[Path, Path]) -> AsyncIterator[
        tuple[LocalRealtimeServer, TlsServer]]:  # fmt: skip
    """The local realtime server with a TLS server presenting `chain` in front of it."""
    server = LocalRealtimeServer(faults=FAST)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        port = urllib.parse.urlsplit(url).port
        assert port is not None
        async with tls_server(chain, pipe_to(port)) as tls:
            yield server, tls
        nursery.cancel_scope.cancel()


async def connect(url: str) -> Attempt:
    """A `RealtimeSession` (provider openai, an API key) to `url` until it starts (then hung
    up) or `run()` raises."""
    settings = RealtimeSettings(provider="openai", url=url)
    frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](8)
    events_send, events_recv = trio.open_memory_channel[RealtimeEvent](64)
    session = RealtimeSession(settings, ApiKey(KEY, "test"), frames_recv, events_send)
    t0 = trio.current_time()
    try:
        async with frames_send, events_recv, trio.open_nursery() as nursery:
            with trio.fail_after(WAIT_S):
                await nursery.start(session.run)
            nursery.cancel_scope.cancel()
    except Exception as exc:  # whatever run() raised is the finding: the tests judge it
        return Attempt(False, leaves(exc), trio.current_time() - t0)
    return Attempt(True, [], trio.current_time() - t0)


@pytest.mark.usefixtures("one_attempt")
@pytest.mark.parametrize("case", REFUSALS)
async def test_realtime_client_refuses_an_unverified_server_before_sending_the_key(
    case: Refusal, pki: Pki, monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    if case.trust_ca:
        trust_throwaway_ca(monkeypatch, pki)
    async with realtime_behind_tls(case.chain_of(pki)) as (server, tls):
        attempt = await connect(f"wss://{case.host}:{tls.port}/v1/realtime?model=test")
        with trio.fail_after(WAIT_S):
            handshake = await tls.handshake(0)
    assert not attempt.started
    assert handshake != "ok"  # it reached the TLS server, whose handshake never completed
    assert server.sessions == []  # no upgrade request, so no Authorization header, went out
    shown = debug_log.text + "".join(texts_of(exc) for exc in attempt.raised)
    assert KEY not in shown


@pytest.mark.usefixtures("one_attempt")
@pytest.mark.parametrize("case", REFUSALS)
async def test_realtime_refusal_is_a_session_failure_naming_the_certificate_problem(
    case: Refusal, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.trust_ca:
        trust_throwaway_ca(monkeypatch, pki)
    async with realtime_behind_tls(case.chain_of(pki)) as (_, tls):
        attempt = await connect(f"wss://{case.host}:{tls.port}/v1/realtime?model=test")
    print(f"run() raised {attempt.raised!r} after {attempt.took_s:.2f} s")
    [failure] = attempt.raised
    assert isinstance(failure, SessionFailed)
    assert "certificate verify failed" in failure.reason
    assert case.verify_message in failure.reason
    assert attempt.took_s < CONNECT_S  # told at once, not after the connect deadline
    assert KEY not in texts_of(failure)


async def test_realtime_client_trusting_the_ca_starts_a_session_over_tls(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    trust_throwaway_ca(monkeypatch, pki)
    async with realtime_behind_tls(pki.server) as (server, tls):
        attempt = await connect(f"wss://localhost:{tls.port}/v1/realtime?model=test")
        with trio.fail_after(WAIT_S):
            handshake = await tls.handshake(0)
    assert attempt.started, attempt.raised
    assert handshake == "ok"
    [record] = server.sessions
    assert (record.path, record.auth_scheme) == ("/v1/realtime", "Bearer")
    assert KEY not in debug_log.text


# --- the HTTP tools -----------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "crm-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def crm_tool(url: str, token_file: Path) -> dict[str, Any]:
    return {
        "name": "crm",
        "description": "The CRM.",
        "url": url,
        "method": "GET",
        "parameters": {"type": "object", "properties": {}},
        "auth_header": "Authorization",
        "auth_scheme": "Bearer",
        "auth_secret_file": str(token_file),
    }


@pytest.mark.parametrize("case", REFUSALS)
async def test_http_tool_refuses_an_unverified_server_before_sending_the_token(
    case: Refusal,
    pki: Pki,
    token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    if case.trust_ca:
        trust_throwaway_ca(monkeypatch, pki)
    requests: list[h11.Request] = []
    async with tls_server(case.chain_of(pki), answer_json(FOUND, requests)) as tls:
        url = f"https://{case.host}:{tls.port}/customers"
        registry = tools_from_config({"http": [crm_tool(url, token_file)]})
        async with runner_rig(registry) as rig:  # the path a model's function call takes
            value = await rig.result("crm")
        tool = registry.get("crm")
        assert tool is not None
        with trio.fail_after(WAIT_S), pytest.raises(ToolError) as caught:  # the same call, by hand
            async with tools_http.open_http_client(True) as client:
                await tool.function({}, CallContext(FakeCall(), client))
        with trio.fail_after(WAIT_S):
            handshakes = [await tls.handshake(0), await tls.handshake(1)]
    assert value == {"error": f"crm: GET to {case.host} failed (ConnectError: TLS certificate "
                     f"refused: {case.verify_message})", "tool": "crm"}  # fmt: skip
    assert rig.runner.records[0].outcome == "error"
    refusal = verification_error(caught.value)
    print(f"the tool's error: {value['error']!r}; behind it: {refusal}")
    assert refusal.verify_message == case.verify_message
    assert "ok" not in handshakes
    assert requests == []
    assert TOKEN not in debug_log.text + json.dumps(value) + texts_of(caught.value)


async def test_http_tool_trusting_the_ca_gets_the_answer_over_tls(
    pki: Pki, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust_throwaway_ca(monkeypatch, pki)
    requests: list[h11.Request] = []
    async with tls_server(pki.server, answer_json(FOUND, requests)) as tls:
        url = f"https://localhost:{tls.port}/customers"
        async with runner_rig(tools_from_config({"http": [crm_tool(url, token_file)]})) as rig:
            value = await rig.result("crm")
    assert value == {"status": 200, "json": FOUND}
    assert rig.runner.records[0].outcome == "ok"
    [request] = requests
    assert (request.method, request.target) == (b"GET", b"/customers")
    assert (b"authorization", f"Bearer {TOKEN}".encode()) in list(request.headers)
