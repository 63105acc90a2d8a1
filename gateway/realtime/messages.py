"""What a `RealtimeSession` tells the call, on its events channel (`RealtimeEvent`).

Audio arrives as `AgentAudio` (int16 at 8 kHz, whatever the wire format), tagged with the
response and item it belongs to so the playout can count what it really played and a barge-in
can truncate that item. Everything else is an event in the past tense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Speaker = Literal["caller", "agent"]


@dataclass(frozen=True, slots=True, eq=False)
class AgentAudio:
    """Agent speech: `pcm` int16 at 8 kHz, any length (a server delta, 20-200 ms typically)."""

    pcm: NDArray[np.int16]
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptReceived:
    """Words of the caller (input transcription) or the agent (its audio's transcript). Deltas
    (`final` False) add to the item's text; the final one holds the whole text."""

    speaker: Speaker
    text: str
    final: bool
    item_id: str
    response_id: str = ""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The server heard the caller start (`audio_start_ms` on the input timeline, if given)."""

    item_id: str
    audio_start_ms: int | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int | None


@dataclass(frozen=True, slots=True)
class FunctionCallRequested:
    """The agent calls a tool: answer with `RealtimeSession.send_function_output(call_id, ...)`.
    `arguments` is the model's JSON text, unparsed."""

    call_id: str
    name: str
    arguments: str
    item_id: str
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """`status`: completed, cancelled, failed, incomplete; `reason` e.g. turn_detected."""

    response_id: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """A server `error` event. `fatal` ones end the session (a `SessionLost` follows)."""

    code: str
    message: str
    fatal: bool
    event_id: str = ""  # the client event that caused it, when the server says


@dataclass(frozen=True, slots=True)
class RateLimit:
    name: str
    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    limits: tuple[RateLimit, ...]


@dataclass(frozen=True, slots=True)
class SessionConnected:
    """A session is up: the first (`connects` 1), a reconnect, or a planned rotation."""

    session_id: str
    connects: int
    rotated: bool


@dataclass(frozen=True, slots=True)
class SessionLost:
    """The connection ended; `retrying` False means the session is over (run() raises)."""

    reason: str
    retrying: bool


RealtimeEvent = (
    AgentAudio | TranscriptReceived | SpeechStarted | SpeechStopped | FunctionCallRequested
    | ResponseCreated | ResponseDone | ErrorReported | RateLimitsUpdated | SessionConnected
    | SessionLost
)  # fmt: skip
