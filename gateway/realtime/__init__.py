"""The realtime client: one `RealtimeSession` per call, speaking the OpenAI Realtime GA event
schema to OpenAI, Azure OpenAI, Inworld or the local realtime server (`gateway.realtime.local`).

Modules: `settings` (typed settings from the config), `profiles` (provider URL, auth, quirks),
`secrets` (the API key), `client_events` (what we send), `events` (what the server sends,
parsed), `messages` (what the call receives), `audio` (wire formats), `conversation` (the log
carried over to a new session), `connection` (one websocket), `dispatch` (event handling),
`session` (the actor).
"""

from gateway.realtime.errors import (
    AudioFormatRefused,
    MalformedEvent,
    RealtimeConfigError,
    SessionFailed,
)
from gateway.realtime.messages import (
    AgentAudio,
    ErrorReported,
    FunctionCallRequested,
    RateLimit,
    RateLimitsUpdated,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SessionConnected,
    SessionLost,
    SpeechStarted,
    SpeechStopped,
    TranscriptReceived,
)
from gateway.realtime.profiles import load_api_key
from gateway.realtime.secrets import ApiKey
from gateway.realtime.session import RealtimeSession
from gateway.realtime.settings import (
    RealtimeSettings,
    SemanticVad,
    ServerVad,
    ToolSchema,
    Transcription,
    settings_from_config,
)

__all__ = [
    "AgentAudio",
    "ApiKey",
    "AudioFormatRefused",
    "ErrorReported",
    "FunctionCallRequested",
    "MalformedEvent",
    "RateLimit",
    "RateLimitsUpdated",
    "RealtimeConfigError",
    "RealtimeEvent",
    "RealtimeSession",
    "RealtimeSettings",
    "ResponseCreated",
    "ResponseDone",
    "SemanticVad",
    "ServerVad",
    "SessionConnected",
    "SessionFailed",
    "SessionLost",
    "SpeechStarted",
    "SpeechStopped",
    "ToolSchema",
    "TranscriptReceived",
    "Transcription",
    "load_api_key",
    "settings_from_config",
]
