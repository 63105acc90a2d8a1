"""The local server's conversation items and the client events that edit them:
`conversation.item.create`, `.truncate` (with the real API's refusals), `.delete`, `.retrieve`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from gateway.realtime.local import server_events as se

if TYPE_CHECKING:
    from gateway.realtime.local.session import ServerSession

_ITEM_TYPES = ("message", "function_call", "function_call_output")
_ROLES = ("user", "system", "assistant")


class Conversation:
    """Items by id, in order, with the audio milliseconds of each assistant audio item."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.audio_ms: dict[str, int] = {}

    @property
    def last_id(self) -> str | None:
        return next(reversed(self.items), None)

    def add(self, item: dict[str, Any]) -> None:
        self.items[item["id"]] = item

    def call_ids(self) -> set[str]:
        return {i["call_id"] for i in self.items.values() if i.get("type") == "function_call"}


def _invalid(item: object) -> str:
    """Why `item` is not an item this server takes ("" if it is)."""
    if not isinstance(item, dict) or item.get("type") not in _ITEM_TYPES:
        return "Invalid 'item': expected a message, function_call or function_call_output."
    if item["type"] == "message":
        if item.get("role") not in _ROLES or not isinstance(item.get("content"), list):
            return "Invalid 'item': a message needs a role and a content array."
    elif not isinstance(item.get("call_id"), str):
        return "Missing required parameter: 'item.call_id'."
    elif item["type"] == "function_call_output" and not isinstance(item.get("output"), str):
        return "Invalid type for 'item.output': expected a string."
    return ""


async def create(session: ServerSession, event: dict[str, Any]) -> None:
    item = event.get("item")
    problem = _invalid(item)
    if problem:
        await session.send(session.error_for(event, "invalid_value", problem, "item"))
        return
    assert isinstance(item, dict)
    item = copy.deepcopy(item)
    if item["type"] == "function_call_output":
        call_id = item["call_id"]
        if call_id not in session.items.call_ids():
            await session.send(
                session.error_for(
                    event,
                    "invalid_value",
                    f"Tool call ID '{call_id}' not found in conversation.",
                    "item.call_id",
                )
            )
            return
        if call_id in session.calls:
            session.answered.append(call_id)
    item.setdefault("id", session.ids.new("item"))
    item.update(object="realtime.item", status="completed")
    previous = session.items.last_id
    _carried_over(session, item, session.items.items.get(previous) if previous else None)
    session.items.add(item)
    await session.send(se.item_event("conversation.item.added", item, previous))
    await session.send(se.item_event("conversation.item.done", item, previous))


def _carried_over(session: ServerSession, item: dict[str, Any],
                  previous: dict[str, Any] | None) -> None:  # fmt: skip
    """An agent item the client creates is a reply given in an earlier session (a reconnect
    carries the conversation over): the script moves past the turn it answered, and a carried
    function call gets the script's `then_say` for when its output comes. A reply is an
    assistant message not following a function output, or a function call not following the
    assistant message of its own reply: exact when the caller's words are carried over too
    (input transcription on); without them two replies in a row may count as one."""
    kind, before = item["type"], _kind(previous)
    if kind == "function_call":
        name = item.get("name")
        then_say = session.script.then_say_for(name) if isinstance(name, str) else ""
        session.calls.setdefault(item["call_id"], then_say)
        if before not in ("assistant", "function_call_output"):
            session.turn += 1
    elif kind == "message" and item.get("role") == "assistant" and before != "function_call_output":
        session.turn += 1


def _kind(item: dict[str, Any] | None) -> str:
    """An item's type, or the role for a message ("" for none)."""
    if item is None:
        return ""
    return str(item.get("role") if item.get("type") == "message" else item.get("type"))


async def truncate(session: ServerSession, event: dict[str, Any]) -> None:
    item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
    if isinstance(end_ms, float | bool) or not isinstance(end_ms, int):
        got = "a decimal number" if isinstance(end_ms, float) else type(end_ms).__name__
        await session.send(session.error_for(event, "invalid_type", "Invalid type for "
                           f"'audio_end_ms': expected an integer, but got {got} instead.",
                           "audio_end_ms"))  # fmt: skip
        return
    item = session.items.items.get(item_id) if isinstance(item_id, str) else None
    if item is None:
        await session.send(
            session.error_for(
                event,
                "item_truncate_invalid_item_id",
                f"Item with item_id {item_id!r} not found",
                "item_id",
            )
        )
        return
    audio_ms = session.items.audio_ms.get(str(item_id), 0)
    if item.get("role") != "assistant" or audio_ms == 0:
        await session.send(
            session.error_for(
                event,
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                "item_id",
            )
        )
        return
    if end_ms > audio_ms or end_ms < 0:
        await session.send(
            session.error_for(
                event,
                "invalid_value",
                f"Audio content of {audio_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        )
        return
    _cut_transcript(item, end_ms / audio_ms)
    session.items.audio_ms[str(item_id)] = end_ms
    session.record.truncations.append((str(item_id), end_ms))
    await session.send(se.item_truncated(str(item_id), end_ms))


def _cut_transcript(item: dict[str, Any], share: float) -> None:
    """The server drops the unheard part of the transcript too (research note §1.8 step 5)."""
    for part in item.get("content", []):
        text = part.get("transcript")
        if isinstance(text, str):
            part["transcript"] = text[: int(len(text) * share)]


async def delete(session: ServerSession, event: dict[str, Any]) -> None:
    item_id = event.get("item_id")
    if not isinstance(item_id, str) or item_id not in session.items.items:
        await session.send(
            session.error_for(
                event, "invalid_value", f"Item with item_id {item_id!r} not found", "item_id"
            )
        )
        return
    del session.items.items[item_id]
    await session.send(se.item_deleted(item_id))


async def retrieve(session: ServerSession, event: dict[str, Any]) -> None:
    item_id = event.get("item_id")
    item = session.items.items.get(item_id) if isinstance(item_id, str) else None
    if item is None:
        await session.send(
            session.error_for(
                event, "invalid_value", f"Item with item_id {item_id!r} not found", "item_id"
            )
        )
        return
    await session.send(se.item_event("conversation.item.retrieved", item))
