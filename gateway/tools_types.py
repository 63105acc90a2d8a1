"""The shapes tools are made of: `Tool`, what a tool function gets (`CallContext`, whose
`CallControl` the call pipeline implements), how it fails (`ToolError`), and what the runner
needs of the realtime session (`ToolCallRequest`, `ToolOutputSink`). Re-exported by
`gateway.tools`; here so that the tool modules and the runner import them without a cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from dsp.callerid_message import CallerId
from gateway.errors import GatewayError

DEFAULT_TIMEOUT_S = 10.0  # the caller hears silence while a tool runs: past 10 s they talk over
# it or hang up, so a slower tool is better answered with an error the agent can explain
MAX_TIMEOUT_S = 60.0  # no phone caller waits a minute in silence: a longer timeout is a typo


class ToolError(GatewayError):
    """A tool failed in a way it can explain: `str(exc)` goes to the model as the error, with
    `details` (JSON values) beside it. Never put a secret or a sensitive argument in either."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class ToolCallRequest(Protocol):
    """What the runner needs of the session's `FunctionCallRequested` (gateway.realtime)."""

    @property
    def call_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def arguments(self) -> str: ...  # the model's JSON, possibly malformed


class ToolOutputSink(Protocol):
    """The realtime session, as far as tools go."""

    async def send_function_output(self, call_id: str, output: str) -> None:
        """Send the function_call_output item and (queued) a response.create."""


class CallControl(Protocol):
    """What a tool may know about and do to the call it runs in; the call pipeline implements
    it. Each method returns once the action is under way, not when the call is over."""

    @property
    def call_id(self) -> str: ...  # the call record's id, for logs
    @property
    def line(self) -> int: ...  # the adapter port (or modem) the call is on
    @property
    def caller_id(self) -> CallerId | None: ...  # as the line delivered it; None if none came

    async def hang_up(self, reason: str) -> None:
        """End the call politely: the agent finishes what it is saying (its audio already
        received and the response to this tool's output), then the line goes on-hook and the
        call's nursery is cancelled. `reason` goes to the call record."""

    async def transfer(self, target: str) -> None:
        """Hand the caller to `target`, the dial string from config: on FXO a hook-flash and
        these digits, `fxs:N` rings FXS port N. Raises `GatewayError` if the line cannot."""

    async def warm_transfer(self, target: str, answer_s: float) -> None:
        """A warm transfer (FXO, digits): the caller is put on hold (hook-flash, `target`
        dialled); once the person there answers, the agent's next words (the response to
        this tool's output: the summary) go to them, then the line goes on-hook and the PBX
        connects the caller. Raises `GatewayError` when the line cannot, or nobody answered
        within `answer_s` (the caller is then back with the agent)."""

    async def send_dtmf(self, digits: str) -> None:
        """Play DTMF `digits` (0-9 * # A-D, already checked) to the far end."""

    async def collect_digits(self, max_digits: int, terminator: str, timeout_s: float) -> str:
        """The digits the caller types next (up to `terminator`, `max_digits` or `timeout_s`),
        kept from the agent, the cloud's audio and the record (`gateway.call_secure`)."""


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a tool function gets besides its arguments. `http` is the runner's client, None
    when no tool of the registry needs one."""

    control: CallControl
    http: httpx.AsyncClient | None = None


ToolFunction = Callable[[dict[str, Any], CallContext], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One function the model may call. `parameters` is a JSON schema (`gateway.tools_schema`
    subset; the arguments are checked against it before `function` runs). `function` returns
    a JSON-able result (None reads as `{"ok": true}`) or raises `ToolError`. `sensitive` names
    argument fields redacted (at any depth) wherever the runner logs arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: ToolFunction
    timeout_s: float = DEFAULT_TIMEOUT_S
    sensitive: frozenset[str] = frozenset()
    needs_http: bool = False

    def schema(self) -> dict[str, Any]:
        """The function tool for `session.tools`."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }
