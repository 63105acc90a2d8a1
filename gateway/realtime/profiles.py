"""Provider profiles: where a realtime session connects, how it authenticates, and what the
provider does differently from OpenAI's GA schema.

- openai: `wss://api.openai.com/v1/realtime?model=M`, `Authorization: Bearer KEY`.
- azure: `wss://RESOURCE.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT` (the GA v1
  path: no `api-version`, the deployment name as `model`), `api-key: KEY`.
- inworld: `wss://api.inworld.ai/api/v1/realtime/session?key=SESSION&protocol=realtime` (a
  fresh session id per connection), `Authorization: Basic KEY` with the key verbatim (the
  portal's key is already base64).
- local: `ws://127.0.0.1:8765/v1/realtime?model=M` (our server), `Bearer KEY` if one is set.

No `OpenAI-Beta` header, ever: the GA endpoint ends a session that sends one
(`beta_api_shape_disabled`). TLS is verified against the system CA bundle; plain `ws://` only
reaches a loopback host.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from gateway.realtime.errors import RealtimeConfigError
from gateway.realtime.secrets import ApiKey, key_from_env, key_from_file
from gateway.realtime.settings import Provider, RealtimeSettings

Auth = Literal["bearer", "api-key", "basic", "optional-bearer"]
LOCAL_DEFAULT_URL = "ws://127.0.0.1:8765/v1/realtime"


@dataclass(frozen=True, slots=True)
class Profile:
    """What differs between providers speaking the GA event schema."""

    name: Provider
    default_model: str
    default_voice: str
    auth: Auth
    default_key_env: str  # read when neither api_key_file nor api_key_env is set
    default_tts_model: str = ""  # sent as audio.output.model (Inworld only)
    provider_data: bool = False  # Inworld: providerData.auto_tool_response = false
    noise_reduction: bool = True  # Inworld's cascade has no such stage: not sent
    full_session_echo: bool = True  # session.updated repeats the audio formats
    truncate_best_effort: bool = False  # Inworld: truncate errors are expected, logged at DEBUG


PROFILES: dict[Provider, Profile] = {
    "openai": Profile("openai", "gpt-realtime-2.1", "marin", "bearer", "OPENAI_API_KEY"),
    "azure": Profile("azure", "gpt-realtime", "marin", "api-key", "AZURE_OPENAI_API_KEY"),
    "inworld": Profile(
        "inworld",
        "openai/gpt-5.5",
        "Sarah",
        "basic",
        "INWORLD_API_KEY",
        default_tts_model="inworld-tts-1.5-mini",
        provider_data=True,
        noise_reduction=False,
        full_session_echo=False,
        truncate_best_effort=True,
    ),
    "local": Profile("local", "tipring-local", "tipring", "optional-bearer", ""),
}


def profile_of(settings: RealtimeSettings) -> Profile:
    return PROFILES[settings.provider]


def model_of(settings: RealtimeSettings) -> str:
    return settings.model or profile_of(settings).default_model


def load_api_key(settings: RealtimeSettings) -> ApiKey | None:
    """The key the settings point at: the file, else the variable, else the profile's usual
    variable. None only for the local server when nothing is configured."""
    if settings.api_key_file:
        return key_from_file(settings.api_key_file)
    env = settings.api_key_env or profile_of(settings).default_key_env
    if not env:
        return None
    return key_from_env(env)


def connection_url(settings: RealtimeSettings) -> str:
    """The URL for a new session (Inworld: a fresh session id each time), checked."""
    model = urllib.parse.quote(model_of(settings), safe="/")
    if settings.url:
        url = settings.url
        if settings.provider == "inworld" and "key=" not in url:
            url += ("&" if "?" in url else "?") + f"key={_session_id()}&protocol=realtime"
    elif settings.provider == "openai":
        url = f"wss://api.openai.com/v1/realtime?model={model}"
    elif settings.provider == "azure":
        resource = settings.azure_resource
        if not resource or not all(c.isalnum() or c == "-" for c in resource):
            raise RealtimeConfigError(
                f"realtime.azure_resource {resource!r} must name the Azure OpenAI resource "
                "(letters, digits, '-'), or set realtime.url"
            )
        url = f"wss://{resource}.openai.azure.com/openai/v1/realtime?model={model}"
    elif settings.provider == "inworld":
        url = f"wss://api.inworld.ai/api/v1/realtime/session?key={_session_id()}&protocol=realtime"
    else:
        url = f"{LOCAL_DEFAULT_URL}?model={model}"
    return check_url(url)


def _session_id() -> str:
    """Inworld's `key`: a session id the client picks (theirs: `voice-<epoch ms>`)."""
    return f"tipring-{int(time.time() * 1000)}-{secrets.token_hex(4)}"


def check_url(url: str) -> str:
    """`url` if it is wss://, or ws:// to a loopback host; `RealtimeConfigError` otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise RealtimeConfigError(f"realtime.url {url!r} is not a URL: {exc}") from None
    if not host:
        raise RealtimeConfigError(f"realtime.url {url!r} names no host")
    if parts.scheme == "wss":
        return url
    if parts.scheme == "ws" and is_loopback(host):
        return url
    if parts.scheme == "ws":
        raise RealtimeConfigError(
            f"realtime.url {url!r}: plain ws:// is only allowed to a loopback host "
            "(127.0.0.1, ::1, localhost); use wss:// for anything else"
        )
    raise RealtimeConfigError(f"realtime.url {url!r}: the scheme must be wss:// (or ws:// "
                              "to loopback)")  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_headers(settings: RealtimeSettings, key: ApiKey | None) -> list[tuple[bytes, bytes]]:
    """The handshake's extra headers: auth only (never `OpenAI-Beta`)."""
    auth = profile_of(settings).auth
    if key is None:
        if auth == "optional-bearer":
            return []
        raise RealtimeConfigError(f"realtime.provider {settings.provider} needs an API key")
    value = key.reveal().encode("ascii")
    match auth:
        case "bearer" | "optional-bearer":
            return [(b"authorization", b"Bearer " + value)]
        case "api-key":
            return [(b"api-key", value)]
        case "basic":
            return [(b"authorization", b"Basic " + value)]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system CA bundle, hostname checked: built once (loading the bundle takes ~10 ms)."""
    return ssl.create_default_context()


def ssl_context_for(url: str) -> ssl.SSLContext | None:
    return tls_context() if url.startswith("wss:") else None
