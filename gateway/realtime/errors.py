"""Errors of the realtime client and the local realtime server, rooted in `GatewayError`.

What the caller can do decides the class: `RealtimeConfigError` (a `ConfigError`: the operator
fixes the settings or the key file), `SessionFailed` (the session is over: a fatal server error,
a refused audio format, the cloud unreachable past the give-up time), `MalformedEvent` (one
server event was unusable: logged and skipped, the session goes on). No message ever holds the
API key: errors name the key's source (file path or variable), never its value.
"""

from __future__ import annotations

from gateway.errors import ConfigError, GatewayError


class RealtimeConfigError(ConfigError):
    """The realtime settings, URL or API key source are wrong; the message names the key."""


class SessionFailed(GatewayError):
    """The realtime session ended for good; `reason` says why in words an operator can act on."""

    def __init__(self, reason: str, *, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code  # the server's error code when one caused it, else ""


class AudioFormatRefused(SessionFailed):
    """The server's `session.updated` does not carry the audio format we asked for."""

    def __init__(self, direction: str, wanted: str, got: str) -> None:
        super().__init__(
            f"the server did not accept our {direction} audio format: asked for {wanted}, "
            f"session.updated says {got}; refusing to stream audio it would misread",
            code="audio_format_refused",
        )
        self.direction, self.wanted, self.got = direction, wanted, got


class MalformedEvent(GatewayError):
    """A server event we cannot use: not JSON, not an object, or a field of the wrong type."""

    def __init__(self, event_type: str, problem: str) -> None:
        super().__init__(f"server event {event_type or '(no type)'}: {problem}")
        self.event_type, self.problem = event_type, problem
