"""HTTP tools: a function call becomes one HTTP request to a service the operator declared
(a CRM lookup, a booking), and its response becomes the result the model reads.

The arguments go as the query string for GET and DELETE (strings as they are, anything else as
JSON text, a list as the key repeated) and as a JSON body otherwise. The result is
`{"status": 200, "json": ...}` for a JSON response, `{"status": 200, "text": "..."}` for any
other, with `"truncated": true` when the body was longer than `MAX_RESPONSE_BYTES` (it is then
text, cut there), `{"status": 204}` when empty. A non-2xx status is a `ToolError` with
`status` and the start of the body; a transport failure one naming the host.

The auth header's token comes from a secret file (mode 0600 or stricter, checked when read) or
an environment variable, through `gateway.secrets` (the realtime API key's reader too). It
lives in a `Secret`, whose repr names only its source, and reaches nothing but the request's
header (`auth_scheme token`): httpx's own request log (INFO, with the full URL and so the
query's arguments) is turned down here.
The runner owns one `httpx.AsyncClient` (`open_http_client`) shared by its HTTP tools.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
import trio

from gateway.secrets import Secret
from gateway.tools_types import DEFAULT_TIMEOUT_S, CallContext, Tool, ToolError

# httpx logs every request at INFO with its URL (our GET arguments, sensitive ones too) and
# httpcore its traffic at DEBUG: neither belongs in the appliance log at any level.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
METHODS: Final[tuple[Method, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE")
QUERY_METHODS: Final = frozenset({"GET", "DELETE"})  # no body by convention: arguments in URL
MAX_RESPONSE_BYTES = 16384  # what the model gets of a body: ~4k tokens, already a lot to read
# into a phone conversation; past it the text is cut, and a JSON body returned as text
MAX_DRAIN_BYTES = 262144  # read and dropped past the cap: cheaper than a new TLS handshake
MAX_ERROR_BODY_CHARS = 1024  # of an error response's body: enough for its message
CLOSE_S = 1.0  # closing the client's idle connections (TLS close_notify) at the call's end
USER_AGENT = "tipring"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every tool HTTP client (verification on, the certifi CA bundle). Built
    once: loading the bundle blocks for tens of ms on a Pi Zero, so not at each call's start
    (`tools_from_config` builds it when the config has HTTP tools)."""
    return httpx.create_ssl_context()


@asynccontextmanager
async def open_http_client(needed: bool) -> AsyncIterator[httpx.AsyncClient | None]:
    """The HTTP client of one runner (None if not `needed`), closed on exit. Its own timeouts
    are off: each call runs under its tool's trio deadline. No redirects (the auth header must
    not follow one to another host); no proxies or .netrc from the environment (the config
    says where each tool goes and with what credentials)."""
    if not needed:
        yield None
        return
    client = httpx.AsyncClient(
        verify=tls_context(),
        timeout=httpx.Timeout(None),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )
    try:
        yield client
    finally:
        with trio.move_on_after(CLOSE_S, shield=True):
            await client.aclose()


@dataclass(frozen=True, slots=True)
class HttpCall:
    """The function of one HTTP tool. The auth header, if any, is `auth_header:
    [auth_scheme ]token` with the token from `auth`."""

    name: str
    url: str
    method: Method
    auth_header: str | None = None
    auth: Secret | None = None
    auth_scheme: str = ""  # "Bearer", "Basic", ... or "" for the token alone

    async def __call__(self, arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        if context.http is None:
            raise ToolError(f"{self.name}: the runner has no HTTP client")
        headers = self._headers()
        in_query = self.method in QUERY_METHODS
        url = self._url_with(arguments) if in_query else httpx.URL(self.url)
        try:
            async with context.http.stream(
                self.method, url, json=None if in_query else arguments, headers=headers
            ) as response:
                body, truncated = await _read_capped(response)
        except httpx.HTTPError as exc:
            host = httpx.URL(self.url).host
            what = type(exc).__name__
            tls = _certificate_problem(exc)
            if tls:
                what += f": TLS certificate refused: {tls}"
            message = f"{self.name}: {self.method} to {host} failed ({what})"
            raise ToolError(message) from exc  # its text may hold the URL: only its type here
        return _result(self.name, response, body, truncated)

    def _headers(self) -> dict[str, str]:
        if not self.auth_header or self.auth is None:
            return {}
        token = self.auth.reveal()
        return {self.auth_header: f"{self.auth_scheme} {token}" if self.auth_scheme else token}

    def _url_with(self, arguments: Mapping[str, Any]) -> httpx.URL:
        """The URL with the arguments added to its query (httpx's `params=` would replace
        it); an argument may not override a parameter the URL fixes (`?tenant=acme`)."""
        url = httpx.URL(self.url)
        pairs = query_params(arguments)
        for key, _ in pairs:
            if key in url.params:
                raise ToolError(f"{self.name}: argument '{key}' is fixed by the tool's URL")
        return url.copy_merge_params(pairs)


def http_tool(
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    call: HttpCall,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sensitive: frozenset[str] = frozenset(),
) -> Tool:
    """The `Tool` that makes `call`."""
    return Tool(name, description, parameters, call, timeout_s, sensitive, needs_http=True)


def query_params(arguments: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Arguments as query pairs: strings as they are, other values as JSON text (`true`, `3`,
    `{"a":1}`), a list as its key repeated once per item."""
    pairs: list[tuple[str, str]] = []
    for key, value in arguments.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item if isinstance(item, str) else json.dumps(item)))
    return tuple(pairs)


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """At most `MAX_RESPONSE_BYTES` of the (decompressed) body, and whether there was more.
    The rest is read and dropped up to `MAX_DRAIN_BYTES` (the connection stays reusable, and
    httpx's nested generators finish: on trio one left open warns, encode/httpx#3686); past
    that the connection is dropped, so a huge or endless body costs no more."""
    body = bytearray()
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if len(body) <= MAX_RESPONSE_BYTES:
            body += chunk
        if seen > MAX_DRAIN_BYTES:
            break
    return bytes(body[:MAX_RESPONSE_BYTES]), seen > MAX_RESPONSE_BYTES


def _result(name: str, response: httpx.Response, body: bytes, truncated: bool) -> dict[str, Any]:
    text = _decode(response, body)
    if not response.is_success:
        details = {"body": text[:MAX_ERROR_BODY_CHARS]} if text else {}
        raise ToolError(
            f"{name}: HTTP {response.status_code} {response.reason_phrase}",
            status=response.status_code,
            **details,
        )
    result: dict[str, Any] = {"status": response.status_code}
    if not body:
        return result
    parsed = _json_body(text) if not truncated and _is_json(response) else None
    if parsed is not None:
        result["json"] = parsed[0]
        return result
    result["text"] = text  # also a body labelled JSON that is not: the model still reads it
    if truncated:
        result["truncated"] = True
    return result


def _json_body(text: str) -> tuple[Any] | None:
    """`(value,)` if `text` is JSON (its value may be null), else None."""
    try:
        return (json.loads(text),)
    except ValueError:
        return None


def _decode(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _is_json(response: httpx.Response) -> bool:
    kind = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _certificate_problem(exc: BaseException) -> str:
    """OpenSSL's verify message ("self-signed certificate", "Hostname mismatch, ...") if a
    certificate check failed somewhere in `exc`'s chain, else "" (it holds no URL)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return ""
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or "verification failed")
        seen = seen.__cause__ or seen.__context__
    return ""
