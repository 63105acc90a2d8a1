"""Tools the agent calls inside a call: the registry of tools and the runner of function calls.

The realtime session (`gateway.realtime`) reports each `FunctionCallRequested`;
`gateway.call_tools.CallTools` hands it to the call's `ToolRunner` (an actor in the call's
nursery) on a memory channel. Each function call runs as its own task with its tool's timeout
while audio keeps flowing; its result, or a JSON error result the model can talk about
(`{"error": "...", "tool": name}`; never an empty output, which leaves the model silent:
research note §1.9), goes back through the session's `send_function_output`. Hang-up cancels
the call's nursery and with it every running tool. Each call leaves a `ToolCallRecord` in
`ToolRunner.records` for the call record.

The tools themselves: built-ins (`gateway.tools_builtin`), HTTP tools (`gateway.tools_http`),
both declared from config by `gateway.tools_config.tools_from_config`. A tool acts on its call
through `CallControl`, which the call pipeline implements.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from firmware_bridge.errors import BridgeError
from gateway.errors import ConfigError, GatewayError
from gateway.tools_http import open_http_client
from gateway.tools_schema import check_schema, parse_arguments, validate
from gateway.tools_types import (
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    CallContext,
    CallControl,
    Tool,
    ToolCallRequest,
    ToolError,
    ToolFunction,
    ToolOutputSink,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_TIMEOUT_S",
    "CallContext",
    "CallControl",
    "Outcome",
    "Tool",
    "ToolCallRecord",
    "ToolCallRequest",
    "ToolError",
    "ToolFunction",
    "ToolOutputSink",
    "ToolRegistry",
    "ToolRunner",
    "arguments_for_log",
    "error_output",
    "open_tool_runner",
    "redact",
    "run_tool_call",
]

log = logging.getLogger(__name__)

SEND_OUTPUT_S = 5.0  # a session that cannot take one small item in 5 s is reconnecting or gone
REQUESTS_BUFFER = 16  # function calls waiting for the runner: it only starts tasks, so a few
# slots cover a response's parallel calls; the session's await on a full channel is the limit
MAX_OUTPUT_CHARS = 65536  # a tool result the model reads; an HTTP body is capped well below
MAX_LOGGED_CHARS = 500  # arguments in a WARNING line
REDACTED = "***"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI function names

Outcome = Literal["ok", "error", "timeout", "cancelled"]


class ToolRegistry:
    """The tools of a call, by name; checked as they are added (`ConfigError` names `where`)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool, where: str = "tools") -> None:
        if not NAME_RE.fullmatch(tool.name):
            raise ConfigError(f"{where}.name {tool.name!r} is not 1-64 of A-Z a-z 0-9 _ -")
        if tool.name in self._tools:
            raise ConfigError(f"{where}.name '{tool.name}' is already a tool")
        if not 0.0 < tool.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigError(
                f"{where}.timeout_s {tool.timeout_s!r} is not in (0, {MAX_TIMEOUT_S}]"
            )
        check_schema(tool.parameters, f"{where}.parameters")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def remove(self, name: str) -> Tool | None:
        """Take `name` out (a tool only another tool may call); None if there is none."""
        return self._tools.pop(name, None)

    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def schemas(self) -> list[dict[str, Any]]:
        """The function tools for `session.update`'s `session.tools`."""
        return [tool.schema() for tool in self._tools.values()]

    @property
    def needs_http(self) -> bool:
        return any(tool.needs_http for tool in self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One function call, for the call record. `started_s` is on the trio clock; `cancelled`
    means the call ended (hang-up) while it ran; `delivered` that the session took the output."""

    call_id: str
    name: str
    outcome: Outcome
    started_s: float
    duration_s: float
    error: str | None = None
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: Outcome
    output: str  # JSON for the model
    error: str | None = None


def redact(value: object, sensitive: frozenset[str]) -> object:
    """`value` with every dict entry whose key is in `sensitive` replaced by `***`, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if k in sensitive else redact(v, sensitive) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, sensitive) for item in value]
    return value


def error_output(tool: str, message: str, **details: Any) -> str:
    """The JSON error result the model gets: `{"error": message, "tool": tool, **details}`
    (a detail that is not JSON goes as its text)."""
    extra = {key: value for key, value in details.items() if key not in ("error", "tool")}
    return json.dumps({"error": message, "tool": tool, **extra}, default=str)


async def run_tool_call(
    request: ToolCallRequest,
    registry: ToolRegistry,
    context: CallContext,
    sink: ToolOutputSink,
    records: list[ToolCallRecord],
) -> None:
    """Run one function call to its end: check, run with its tool's timeout, send the result
    (or an error result) to `sink`, log, and append its `ToolCallRecord` to `records` (also
    when the call's nursery is cancelled under it: hang-up). Start it in the call's nursery."""
    started_s = trio.current_time()
    result: _Result | None = None
    delivered = False
    try:
        result = await _execute(registry, request, context)
        _log_result(request, registry.get(request.name), context, result, started_s)
        delivered = await _deliver(sink, request, result.output, context.control.call_id)
    finally:  # on Cancelled too (which goes on up): a cancelled tool is in the record as such
        outcome: Outcome = "cancelled" if result is None else result.outcome
        error = None if result is None else result.error
        duration_s = trio.current_time() - started_s
        records.append(
            ToolCallRecord(
                request.call_id, request.name, outcome, started_s, duration_s, error, delivered
            )
        )


async def _execute(
    registry: ToolRegistry, request: ToolCallRequest, context: CallContext
) -> _Result:
    tool = registry.get(request.name)
    if tool is None:
        known = ", ".join(registry.names()) or "none"
        return _failed(request.name, f"unknown tool '{request.name}'; the tools are: {known}")
    arguments = parse_arguments(request.arguments)
    if isinstance(arguments, str):
        return _failed(tool.name, f"bad arguments: {arguments}")
    problems = validate(arguments, tool.parameters)
    if problems:
        return _failed(tool.name, f"bad arguments: {'; '.join(problems)}")
    return await _invoke(tool, arguments, context)


async def _invoke(tool: Tool, arguments: dict[str, Any], context: CallContext) -> _Result:
    with trio.move_on_after(tool.timeout_s) as deadline:
        try:
            return _succeeded(tool.name, await tool.function(arguments, context))
        except Exception as exc:  # a failing tool must not end the call
            if not deadline.cancel_called:  # else it turned our timeout into its own error
                return _from_exception(tool, exc, context.control.call_id)
    return _timed_out(tool)


def _failed(tool: str, message: str, **details: Any) -> _Result:
    return _Result("error", error_output(tool, message, **details), message)


def _timed_out(tool: Tool) -> _Result:
    message = f"{tool.name} did not answer within {tool.timeout_s:g} s"
    return _Result("timeout", error_output(tool.name, message), message)


def _from_exception(tool: Tool, exc: Exception, call: str) -> _Result:
    if isinstance(exc, ToolError):
        return _failed(tool.name, str(exc), **exc.details)
    # Our own errors say what and where without secrets (STYLE.md); anything else may carry
    # anything in its text, so the model gets its type only and the log the traceback.
    if isinstance(exc, GatewayError | BridgeError):
        return _failed(tool.name, f"{tool.name} failed: {exc}")
    log.warning("call %s: tool %s raised %s", call, tool.name, type(exc).__name__, exc_info=exc)
    return _failed(tool.name, f"{tool.name} failed ({type(exc).__name__})")


def _succeeded(tool: str, value: object) -> _Result:
    try:
        output = json.dumps({"ok": True} if value is None else value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return _failed(tool, f"{tool} returned a result that is not JSON ({exc})")
    if len(output) > MAX_OUTPUT_CHARS:
        return _failed(tool, f"{tool} returned {len(output)} characters, over {MAX_OUTPUT_CHARS}")
    return _Result("ok", output)


async def _deliver(sink: ToolOutputSink, request: ToolCallRequest, output: str, call: str) -> bool:
    with trio.move_on_after(SEND_OUTPUT_S):
        try:
            await sink.send_function_output(request.call_id, output)
        except GatewayError as exc:  # the session is closing: the call is ending anyway
            log.warning("call %s: result of %s not sent: %s", call, request.name, exc)
            return False
        return True
    log.warning("call %s: result of %s not sent within %g s", call, request.name, SEND_OUTPUT_S)
    return False


def _log_result(
    request: ToolCallRequest, tool: Tool | None, context: CallContext, result: _Result, t0: float
) -> None:
    took_s = trio.current_time() - t0
    call = context.control.call_id
    if result.outcome == "ok":
        log.info("call %s: tool %s (%s) ok in %.3f s", call, request.name, request.call_id, took_s)
        return
    log.warning(
        "call %s: tool %s (%s) %s after %.3f s: %s; arguments %s",
        call, request.name, request.call_id, result.outcome, took_s, result.error,
        arguments_for_log(request.arguments, tool),
    )  # fmt: skip


def arguments_for_log(arguments: str, tool: Tool | None) -> str:
    """The arguments with the tool's sensitive fields redacted; every value redacted for an
    unknown tool; only the length when they are not a JSON object (nothing to redact by)."""
    parsed = parse_arguments(arguments)
    if isinstance(parsed, str):
        return f"<{len(arguments)} characters, not a JSON object>"
    sensitive = tool.sensitive if tool is not None else frozenset(parsed)
    text = json.dumps(redact(parsed, sensitive))
    return text if len(text) <= MAX_LOGGED_CHARS else text[: MAX_LOGGED_CHARS - 3] + "..."


@dataclass(eq=False)
class ToolRunner:
    """Runs the function calls of one call, each as its own task with its tool's timeout.
    Lives in the call's nursery: ends when `requests_recv` closes and the running calls are
    done, or with the call. `records` holds a `ToolCallRecord` per function call."""

    registry: ToolRegistry
    control: CallControl
    sink: ToolOutputSink
    requests_recv: trio.MemoryReceiveChannel[ToolCallRequest]
    records: list[ToolCallRecord] = field(init=False, default_factory=list)
    _seen: set[str] = field(init=False, default_factory=set)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.requests_recv, open_http_client(self.registry.needs_http) as http:
            context = CallContext(self.control, http)
            async with trio.open_nursery() as nursery:
                task_status.started()
                async for request in self.requests_recv:
                    if request.call_id in self._seen:  # a replayed event: it is being answered
                        log.warning(
                            "call %s: function call %s (%s) seen twice; ignored",
                            self.control.call_id, request.call_id, request.name,
                        )  # fmt: skip
                        continue
                    self._seen.add(request.call_id)
                    nursery.start_soon(
                        run_tool_call, request, self.registry, context, self.sink, self.records
                    )


def open_tool_runner(
    registry: ToolRegistry, control: CallControl, sink: ToolOutputSink
) -> tuple[ToolRunner, trio.MemorySendChannel[ToolCallRequest]]:
    """A `ToolRunner` and the channel end the call sends `FunctionCallRequested` on."""
    requests_send, requests_recv = trio.open_memory_channel[ToolCallRequest](REQUESTS_BUFFER)
    return ToolRunner(registry, control, sink, requests_recv), requests_send
