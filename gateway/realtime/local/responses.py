"""The local server's replies: which prompt a response says (`plan_for_turn`,
`plan_for_create`, from the script) and its streaming (`run`), with the GA lifecycle:

response.created, rate_limits.updated, then per output item: output_item.added,
conversation.item.added, content_part.added, output_audio.delta + output_audio_transcript.delta
(faster than real time by `Faults.audio_speed`, in `DELTA_MS` pieces), output_audio.done,
output_audio_transcript.done, content_part.done, output_item.done, conversation.item.done;
a function call instead streams its arguments; response.done ends it (cancelled: the open item
is closed `incomplete` with the transcript generated so far, as the real API does).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from gateway.realtime.audio import bytes_per_ms
from gateway.realtime.local import server_events as se
from gateway.realtime.local.script import Turn

if TYPE_CHECKING:
    from gateway.realtime.local.session import ServerSession

DELTA_MS = 100  # audio per delta event (the real APIs send 20-200 ms pieces)


@dataclass(frozen=True, slots=True)
class Plan:
    say: str = ""
    call: Turn | None = None  # its call, arguments and then_say


@dataclass
class OpenAudio:
    """The audio item a response is streaming."""

    item_id: str
    ids: dict[str, Any]
    words: list[str]
    sent_words: int = 0

    def transcript(self) -> str:
        return " ".join(self.words[: self.sent_words])


@dataclass
class ResponseRun:
    id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    reason: str = ""  # why it was cancelled: turn_detected, client_cancelled
    output: list[dict[str, Any]] = field(default_factory=list)
    open: OpenAudio | None = None
    audio_ms: int = 0

    def cancel(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.scope.cancel()


def plan_for_turn(session: ServerSession) -> Plan:
    """A reply to the caller's next turn: scripted, else the next default prompt."""
    session.turn += 1
    session.record.turns += 1
    turn = session.script.turns.get(session.turn)
    if turn is not None:
        return Plan(turn.say, turn if turn.call else None)
    say = session.script.default_say(session.unscripted)
    session.unscripted += 1
    return Plan(say)


def plan_for_create(session: ServerSession) -> Plan:
    """A client's response.create: the follow-up of an answered call, else a new turn."""
    if session.answered:
        then_say = session.calls.pop(session.answered.pop(0), "")
        if then_say:
            return Plan(then_say)
        say = session.script.default_say(session.unscripted)
        session.unscripted += 1
        return Plan(say)
    return plan_for_turn(session)


async def run(session: ServerSession, response: ResponseRun, plan: Plan) -> None:
    """Stream one response; cancellation (`response.cancel()`) ends it as the real API does."""
    await session.send(se.response_event(
        "response.created", se.response_object(response.id, "in_progress", [])))  # fmt: skip
    await session.send(se.rate_limits(max(0, 999 - session.turn)))
    with response.scope:
        if session.faults.latency_s:
            await trio.sleep(session.faults.latency_s)
        if plan.say:
            await _speak(session, response, plan.say)
        if plan.call is not None:
            await _call(session, response, plan.call)
    if response.open is not None:
        await _close_audio(session, response, "incomplete")
    status = "cancelled" if response.reason else "completed"
    done = se.response_object(response.id, status, response.output, response.reason or None,
                              response.audio_ms)  # fmt: skip
    session.active = None
    await session.send(se.response_event("response.done", done, session.lean))


async def _speak(session: ServerSession, response: ResponseRun, name: str) -> None:
    item_id = session.ids.new("item")
    index = len(response.output)
    ids = {"response_id": response.id, "item_id": item_id, "output_index": index}
    item = se.assistant_item(item_id, "in_progress", None)
    previous = session.items.last_id
    session.items.add(item)
    session.items.audio_ms[item_id] = 0
    response.output.append(item)
    response.open = audio = OpenAudio(item_id, ids, session.prompts.text[name].split())
    await session.send(se.output_item("response.output_item.added", response.id, index, item))
    await session.send(se.item_event("conversation.item.added", item, previous))
    await session.send(se.part_event("response.content_part.added", ids, ""))
    wire = session.prompts.wire(name, session.output_format)
    step = DELTA_MS * bytes_per_ms(session.output_format)
    pieces = max(1, math.ceil(len(wire) / step))
    for k in range(pieces):
        piece = wire[k * step : (k + 1) * step]
        delta = base64.b64encode(piece).decode("ascii")
        await session.send(se.content_event("response.output_audio.delta", ids, delta=delta))
        ms = len(piece) // bytes_per_ms(session.output_format)
        session.items.audio_ms[item_id] += ms
        response.audio_ms += ms
        await _words(session, audio, math.ceil((k + 1) * len(audio.words) / pieces))
        if session.speed != math.inf:
            await trio.sleep(ms / 1000 / session.speed)
    await _close_audio(session, response, "completed")


async def _words(session: ServerSession, audio: OpenAudio, upto: int) -> None:
    while audio.sent_words < upto:
        last = audio.sent_words + 1 == len(audio.words)
        word = audio.words[audio.sent_words] + ("" if last else " ")
        audio.sent_words += 1
        await session.send(se.content_event("response.output_audio_transcript.delta",
                                            audio.ids, delta=word))  # fmt: skip


async def _close_audio(session: ServerSession, response: ResponseRun, status: str) -> None:
    audio = response.open
    assert audio is not None
    response.open = None
    text = audio.transcript()
    ids = audio.ids
    item = se.assistant_item(audio.item_id, status, text)
    response.output[ids["output_index"]] = item
    session.items.add(item)
    await session.send(se.content_event("response.output_audio.done", ids))
    await session.send(se.content_event("response.output_audio_transcript.done", ids,
                                        transcript=text))  # fmt: skip
    await session.send(se.part_event("response.content_part.done", ids, text))
    await session.send(se.output_item("response.output_item.done", response.id,
                                      ids["output_index"], item))  # fmt: skip
    await session.send(se.item_event("conversation.item.done", item, None))


async def _call(session: ServerSession, response: ResponseRun, turn: Turn) -> None:
    item_id, call_id = session.ids.new("item"), session.ids.new("call")
    index = len(response.output)
    ids = {"response_id": response.id, "item_id": item_id, "output_index": index}
    arguments = json.dumps(dict(turn.arguments))
    item = se.function_call_item(item_id, call_id, turn.call, "", "in_progress")
    previous = session.items.last_id
    session.items.add(item)
    response.output.append(item)
    await session.send(se.output_item("response.output_item.added", response.id, index, item))
    await session.send(se.item_event("conversation.item.added", item, previous))
    half = len(arguments) // 2
    for part in (arguments[:half], arguments[half:]):
        await session.send(se.function_arguments("response.function_call_arguments.delta", ids,
                                                 call_id, session.lean, delta=part))  # fmt: skip
    await session.send(
        se.function_arguments(
            "response.function_call_arguments.done",
            ids,
            call_id,
            session.lean,
            name=turn.call,
            arguments=arguments,
        )
    )
    item = se.function_call_item(item_id, call_id, turn.call, arguments, "completed")
    session.items.add(item)
    response.output[index] = item
    session.calls[call_id] = turn.then_say
    await session.send(se.output_item("response.output_item.done", response.id, index, item))
    await session.send(se.item_event("conversation.item.done", item, previous))
