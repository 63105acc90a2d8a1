"""What the admin console needs from the appliance: the `ConsoleApp` Protocol and the plain
snapshots it returns. `gateway.app` implements it over the lines, the store, the config and
the log; tests use `tests/gateway/console_fake.py`.

Rules of the seam:
- Snapshots are frozen dataclasses made fresh per call; the console only reads them.
- Errors the operator can act on come as `GatewayError` (or a subclass: `ConfigError` names
  the key); the console prints their message. Anything else is a bug: logged, session goes on.
- Secrets: `ConfigEntry.secret` marks a value that must never be shown; the app masks it
  (`value` = `MASK`) and the console masks it again. The console password reaches the app
  only as its scrypt hash (`set_console_password`).
- `ring`/`dial` wait until the call is answered or failed, like `LineActor.place_call`
  (`gateway.line`); if the console stops waiting (Ctrl-C) the await is cancelled and the app
  abandons the attempt (`end_call` on that line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.line_call import DialOutcome, DialResult

__all__ = [
    "MASK",
    "CallDetail",
    "CallLevels",
    "CallSummary",
    "ConfigEntry",
    "ConsoleApp",
    "DialOutcome",
    "DialResult",
    "LineInfo",
    "StatusSnapshot",
    "TranscriptLine",
]

MASK = "****"


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """The box at a glance (`status`)."""

    version: str
    uptime_s: float
    adapter: str  # what and where: "tipring adapter fw 1.2.0 on /dev/tipring-adapter"
    adapter_up: bool
    lines_up: int
    lines_total: int
    calls_active: int
    calls_today: int
    cloud: str  # "openai gpt-realtime: 2 sessions", "last connect failed: 401 ..."
    cloud_ok: bool
    cpu_percent: float  # of one core, over the last few seconds
    memory_rss_bytes: int
    memory_total_bytes: int  # the machine's RAM (0: unknown)


@dataclass(frozen=True, slots=True)
class LineInfo:
    """One port (`lines`)."""

    port: int
    kind: str  # "fxo" or "fxs"
    state: str  # the line state machine's state: "idle", "ringing", "in_call", "down", ...
    call_id: str = ""  # the call on it, if any
    detail: str = ""  # "hook off", "caller +4930123", "no dial tone at 10:02"
    # its health (`gateway.line_health`); None: not measured (yet)
    noise_dbm0: float | None = None  # the noise floor
    volts: float | None = None  # the loop voltage (FXO, as the adapter reports it)
    erl_db: float | None = None  # the last call's echo return loss ...
    echo_delay_ms: float | None = None  # ... and echo delay, as the canceller found them
    alarms: tuple[str, ...] = ()  # raised now: "line dead", "no dial tone", ...


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One call in the records (`calls`)."""

    call_id: str
    port: int
    direction: str  # "inbound" or "outbound"
    caller: str  # number and name as caller ID gave them, or the number dialled
    started: datetime
    duration_s: float | None  # None while it runs
    end_reason: str = ""  # "" while it runs


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    at_s: float  # from the start of the call
    speaker: str  # "caller", "agent" or "tool"
    text: str


@dataclass(frozen=True, slots=True)
class CallDetail:
    """One call in full (`call ID`): its summary, ordered facts (agent, metrics, tool calls,
    voicemail file; already formatted), and the transcript."""

    summary: CallSummary
    facts: tuple[tuple[str, str], ...] = ()
    transcript: tuple[TranscriptLine, ...] = ()


@dataclass(frozen=True, slots=True)
class CallLevels:
    """One running call, live (`monitor`); levels over the last ~0.5 s."""

    call_id: str
    port: int
    caller_dbm0: float  # what the line brings (after echo cancelling)
    agent_dbm0: float  # what we play to the line
    erle_db: float | None  # the echo canceller's estimate; None before it converged
    vad_active: bool  # the local VAD hears the caller now
    agent_speaking: bool
    duration_s: float
    erl_db: float | None = None  # the echo return loss the canceller sees (converged)
    echo_delay_ms: float | None = None  # where it found the echo; None: not yet


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One setting by its dotted key (`realtime.provider`). `value` is TOML text as it would
    be saved (`"openai"`, `2`, `["1900*"]`); `MASK` if `secret`. `note`: "takes effect after
    restart", "not saved yet", or ""."""

    key: str
    value: str
    secret: bool = False
    note: str = ""


class ConsoleApp(Protocol):
    """The appliance as the console sees it (see the module docstring)."""

    def status(self) -> StatusSnapshot:
        """The box now."""
        ...

    def lines(self) -> Sequence[LineInfo]:
        """Every port, by port number."""
        ...

    async def recent_calls(self, limit: int) -> Sequence[CallSummary]:
        """The last `limit` calls (running ones included), newest first."""
        ...

    async def call_detail(self, call_id: str) -> CallDetail | None:
        """One call's record, or None if there is no such call."""
        ...

    def live_calls(self) -> Sequence[CallLevels]:
        """The running calls' levels (cheap: called twice a second while monitoring)."""
        ...

    def config_entries(self) -> Sequence[ConfigEntry]:
        """Every setting (the running config plus unsaved changes), secrets masked."""
        ...

    def config_get(self, key: str) -> ConfigEntry:
        """One setting; `ConfigError` naming `key` if there is none."""
        ...

    def config_set(self, key: str, value: str) -> ConfigEntry:
        """Check `value` (the operator's text, read as the key's type) and stage it; returns
        the new entry (masked). `ConfigError` naming the key and what is allowed if not."""
        ...

    async def config_save(self) -> str:
        """Write staged changes to the config file; returns its path. `GatewayError` if it
        cannot be written or the whole config does not validate."""
        ...

    def recent_log(self, limit: int) -> Sequence[str]:
        """The last `limit` log lines (formatted, oldest first; no secrets: the log has none)."""
        ...

    async def ring(self, port: int) -> DialResult:
        """Ring the phone on FXS `port` (a test call to the agent); waits for answer or
        failure. `GatewayError` if `port` is not an FXS port."""
        ...

    async def dial(self, port: int, number: str) -> DialResult:
        """Dial `number` (0-9 * # A-D) on FXO `port`; waits for answer or failure.
        `GatewayError` if `port` is not an FXO port."""
        ...

    async def hangup(self, call_id: str) -> bool:
        """End running call `call_id` as a far-end hang-up would; False if none runs."""
        ...

    async def adapter_reset(self) -> str:
        """Reset the line adapter (calls on it end); returns what happened."""
        ...

    async def restart(self) -> None:
        """Restart the appliance (end calls politely, exit for systemd to start us again)."""
        ...

    async def set_console_password(self, password_hash: str) -> None:
        """Keep the new console password hash (`scrypt$...`) in the config file."""
        ...
