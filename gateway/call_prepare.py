"""A call before and at its answer, for `gateway.call.Call`: the pre-answer tool and the
moment the line goes off-hook.

An FXO line whose rules decided on the caller ID starts the call while it still rings
(`CallLine.answered` unset, `line.fxo.pre_answer`): the call's cloud task runs at once (the
pre-answer tool, then the session: connected, configured and its greeting asked for before
anyone picks up), while the line's audio waits for `answered` (`wait_for_answer`). A call the
caller abandons while it rings is hung up by the line ("unanswered").

The pre-answer tool (`[agent] pre_answer_tool`, one of the agent's tools, e.g. a CRM lookup) is
called with `{"number": ..., "name": ...}` of the caller ID ("" when not delivered) under its
own timeout; its JSON result is appended to the session's instructions. A failure or timeout
is logged, noted in the timeline and the call goes on without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING

import trio

from gateway.realtime import RealtimeSettings
from gateway.tools import CallContext, ToolCallRecord, run_tool_call
from gateway.tools_http import open_http_client

if TYPE_CHECKING:
    from gateway.call import Call

log = logging.getLogger(__name__)

PRE_ANSWER_CALL_ID = "pre-answer"
INSTRUCTIONS_NOTE = "Looked up before the call was answered ({tool}, by the caller ID): {result}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    """The pre-answer call as the tool runner sees a model's function call."""

    call_id: str
    name: str
    arguments: str


@dataclasses.dataclass(eq=False)
class _Output:
    text: str | None = None

    async def send_function_output(self, call_id: str, output: str) -> None:
        self.text = output


async def wait_for_answer(call: Call) -> None:
    """Until the line is off-hook. A prepared call then counts its timeline from the answer
    (`Call.prepared_s`: how long it ran before). Then the cached greeting, at once."""
    line = call.line
    if not line.answered.is_set():
        await line.answered.wait()
        now_s = trio.current_time()
        call.prepared_s = now_s - call.timeline.start_s
        call.timeline.rebase(now_s)
        call.spec = dataclasses.replace(call.spec, connected_s=now_s)
        call.timeline.note(now_s, f"answered: prepared {call.prepared_s:.1f} s before")
    greeting = call.profile.greeting_audio
    if greeting is not None:
        call.audio.play_local(greeting, "greeting")
        call.timeline.note(trio.current_time(), "local greeting")


async def pre_answer_settings(call: Call, settings: RealtimeSettings) -> RealtimeSettings:
    """`settings` with the pre-answer tool's result in the instructions (unchanged when the
    agent has no such tool or it failed)."""
    name = call.profile.pre_answer_tool
    tool = call.profile.tools.get(name) if name else None
    if tool is None or call.control is None:
        return settings
    cid = call.spec.callerid
    arguments = {"number": cid.number if cid else "", "name": cid.name if cid else ""}
    request = _Request(PRE_ANSWER_CALL_ID, name, json.dumps(arguments))
    output = _Output()
    records: list[ToolCallRecord] = []
    async with open_http_client(tool.needs_http) as http:
        context = CallContext(call.control, http)
        await run_tool_call(request, call.profile.tools, context, output, records)
    call.pre_answer_records.extend(records)
    record = records[-1]
    call.timeline.note(trio.current_time(), f"pre-answer tool {name}: {record.outcome} in "
                       f"{record.duration_s * 1000:.0f} ms")  # fmt: skip
    if record.outcome != "ok" or output.text is None:
        log.warning("call %s: pre-answer tool %s: %s", call.spec.call_id, name,
                    record.error or record.outcome)  # fmt: skip
        return settings
    note = INSTRUCTIONS_NOTE.format(tool=name, result=output.text)
    instructions = f"{settings.instructions}\n\n{note}" if settings.instructions else note
    return dataclasses.replace(settings, instructions=instructions)
