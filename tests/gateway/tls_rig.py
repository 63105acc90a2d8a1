"""A throwaway PKI made with the `openssl` command line, and TLS servers on 127.0.0.1 (trio's
`serve_ssl_over_tcp`) for the TLS tests of the appliance's two clients (no tests here).

`make_pki` writes a CA, a server certificate it signed for DNS name `localhost` only (no IP
SAN: `127.0.0.1` is a hostname mismatch) and a self-signed one for `localhost`. `tls_server`
serves one of them and records how each TLS handshake went on the server's side; behind the
handshake a handler either pipes the bytes to a plain TCP server (`pipe_to`, e.g. the local
realtime server) or answers HTTP/1.1 with h11 (`answer_json`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import h11
import pytest
import trio

OPENSSL_S = 20.0  # one openssl run (an EC P-256 key and a signature take milliseconds)
HANDSHAKE_S = 5.0  # the server's side of one TLS handshake on loopback
READ_BYTES = 65536

Handler = Callable[[trio.SSLStream[trio.SocketStream]], Awaitable[None]]

CA_EXTENSIONS = """\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
SERVER_EXTENSIONS = """\
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Pki:
    ca: Path  # the throwaway CA's certificate: what a client must trust
    server: tuple[Path, Path]  # (certificate, key) signed by `ca`, for DNS:localhost only
    self_signed: tuple[Path, Path]  # (certificate, key) for DNS:localhost, its own issuer


def openssl() -> str:
    """The openssl binary; a failure (not a skip) without it: a Debian package the tests need,
    like the Makefile's TEST_DEBS."""
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the TLS tests need the `openssl` command line: apt-get install openssl "
                    "(a test dependency, like the other TEST_DEBS in the Makefile)",
                    pytrace=False)  # fmt: skip
    return path


def _run(*args: str | Path) -> None:
    done = subprocess.run([openssl(), *map(str, args)], capture_output=True, text=True,
                          timeout=OPENSSL_S, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"openssl {' '.join(map(str, args))} failed: {done.stderr}", pytrace=False)


def _new_key(path: Path) -> None:
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def make_pki(directory: Path) -> Pki:
    ext = directory / "extensions.cnf"
    ext.write_text(CA_EXTENSIONS + SERVER_EXTENSIONS)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    server, server_key, csr = directory / "server.pem", directory / "server.key", directory / "csr"
    lone, lone_key = directory / "self-signed.pem", directory / "self-signed.key"
    for key in (ca_key, server_key, lone_key):
        _new_key(key)
    days = ("-days", "2")
    _run("req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=tipring throwaway test CA",
         *days, "-config", ext, "-extensions", "ca", "-out", ca)  # fmt: skip
    _run("req", "-new", "-key", server_key, "-subj", "/CN=localhost", "-config", ext, "-out", csr)
    _run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, *days,
         "-set_serial", f"0x{secrets.token_hex(8)}", "-extfile", ext, "-extensions", "server",
         "-out", server)  # fmt: skip
    _run("req", "-x509", "-new", "-key", lone_key, "-subj", "/CN=localhost", *days,
         "-config", ext, "-extensions", "server", "-out", lone)  # fmt: skip
    return Pki(ca, (server, server_key), (lone, lone_key))


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context like the appliance's (verification on, hostname checked) that trusts
    only the throwaway CA."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca)
    return context


@dataclass(eq=False)
class TlsServer:
    port: int
    handshakes: list[str] = field(default_factory=list)  # "ok", or the server's error text
    _changed: trio.Event = field(default_factory=trio.Event)

    def record(self, outcome: str) -> None:
        self.handshakes.append(outcome)
        self._changed.set()
        self._changed = trio.Event()

    async def handshake(self, index: int) -> str:
        """How the `index`-th handshake ended on the server's side, waiting for it."""
        while len(self.handshakes) <= index:
            await self._changed.wait()
        return self.handshakes[index]


@asynccontextmanager
async def tls_server(chain: tuple[Path, Path], handler: Handler) -> AsyncIterator[TlsServer]:
    """A TLS server on 127.0.0.1 presenting `chain`; each connection is handshaken, recorded,
    then (if the handshake went through) given to `handler`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*chain)
    state = TlsServer(0)

    async def serve(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            with trio.fail_after(HANDSHAKE_S):
                await stream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            state.record(f"{type(exc).__name__}: {exc.__cause__ or exc}")
            await trio.aclose_forcefully(stream)
            return
        state.record("ok")
        try:
            await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away: its side of the test says how
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        serving = partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
        listeners = await nursery.start(serving, serve, 0, context)
        state.port = listeners[0].transport_listener.socket.getsockname()[1]
        yield state
        nursery.cancel_scope.cancel()


def pipe_to(port: int) -> Handler:
    """A handler that pipes the decrypted bytes to and from 127.0.0.1:`port` (TLS termination
    in front of a plain server)."""

    async def pipe(stream: trio.SSLStream[trio.SocketStream]) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", port)

        async def copy(source: trio.abc.Stream, sink: trio.abc.Stream,
                       done: trio.CancelScope) -> None:  # fmt: skip
            try:
                while data := await source.receive_some(READ_BYTES):
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # either side gone: the pipe ends
            finally:
                done.cancel()

        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(copy, stream, upstream, nursery.cancel_scope)
            nursery.start_soon(copy, upstream, stream, nursery.cancel_scope)

    return pipe


def answer_json(body: object, seen: list[h11.Request]) -> Handler:
    """A handler that answers one HTTP/1.1 request per connection with 200 and `body` as JSON,
    after appending the request to `seen`."""
    payload = json.dumps(body).encode()

    async def answer(stream: trio.SSLStream[trio.SocketStream]) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(READ_BYTES)))
                continue
            if isinstance(event, h11.Request):
                seen.append(event)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                   ("Connection", "close")]  # fmt: skip
        for reply in (h11.Response(status_code=200, headers=headers), h11.Data(data=payload),
                      h11.EndOfMessage()):  # fmt: skip
            await stream.send_all(conn.send(reply) or b"")

    return answer
