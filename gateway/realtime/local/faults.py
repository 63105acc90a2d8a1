"""Fault knobs of the local realtime server, for tests and demos of a misbehaving cloud.

Counts are of server events sent on one connection (session.created is event 1). Faults apply
to the first `first_connections` connections (None: all), so "drop the first session, serve the
second" is one `Faults`. `audio_speed` (how much faster than real time replies stream; the real
APIs burst several times real time) applies to every connection. Frames of `inject` are not
events: they are neither counted nor kept in the `SessionRecord`, so they can be anything a
hostile server sends (broken JSON, binary frames, a delta of several MB, an echoed API key).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InjectedError:
    """An `error` event sent after `after_events` server events."""

    after_events: int
    code: str
    message: str = "injected by the local server's faults"
    kind: str = "invalid_request_error"  # error.type


@dataclass(frozen=True, slots=True)
class Faults:
    first_connections: int | None = None
    audio_speed: float = 4.0  # x real time; math.inf: as fast as the socket takes it
    latency_s: float = 0.0  # think time before each response's first event
    stall_after_events: int | None = None  # then neither read nor send for stall_s
    stall_s: float = 0.0
    disconnect_after_events: int | None = None  # close 1011 after this many events
    disconnect_after_s: float | None = None  # close 1011 this long after accepting
    malformed_every: int = 0  # a frame of broken JSON after every N events (0: never)
    unknown_every: int = 0  # an event of an unknown type after every N events
    errors: tuple[InjectedError, ...] = ()
    session_limit_s: float | None = None  # then error session_expired and close 1001
    reject_status: int | None = None  # refuse the websocket upgrade with this HTTP status
    report_output_format: str = ""  # session.updated lies: a format type, or "omit"
    # Hostile frames, sent verbatim (str: a text frame, bytes: a binary one) once, right after
    # the connection's `inject_nth` server event of type `inject_after`: garbage mid-stream.
    inject: tuple[str | bytes, ...] = ()
    inject_after: str = "session.updated"
    inject_nth: int = 1
    beta_names: bool = False  # audio and transcript events under their beta-era names
    lean: bool = False  # Inworld-style events: no ids/offsets where Inworld omits them; pings
