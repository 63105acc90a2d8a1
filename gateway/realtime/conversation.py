"""The conversation so far, as text: what a new session needs to carry the call over.

A realtime session cannot be resumed (research note §1.2): after a drop, at the 60-minute cap
or on a planned rotation, the next session gets the instructions again plus this log as
conversation items. Entries come from two places: the server (what the caller and the agent
said, function calls: `origin` is the connection generation that produced them, so they are
never echoed back to it) and the call itself (DTMF digits, notes, function outputs: `origin` 0,
sent to whichever connection is active, later carried to the next). Each connection remembers
the absolute index it has synced up to; `entries_since` hands it the rest.

Agent audio cannot be injected, so the agent's turns carry over as its transcript, cut to the
share of the audio the caller really heard when a barge-in truncated it.

The log is bounded whatever the server sends: one server text keeps `MAX_ITEM_CHARS`, the log
`MAX_LOG_CHARS` and `MAX_ENTRIES` (the oldest entries drop off). A function output goes to a
new session only with its call: one whose call dropped off (or lay before the carried turns)
stays behind, so a carried output never names a call the session has not seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from gateway.realtime import client_events as ce

log = logging.getLogger(__name__)

EntryKind = Literal["caller", "agent", "user_text", "system_text", "function_call",
                    "function_output"]  # fmt: skip
MAX_ENTRIES = 400  # a long call's recent turns; older ones drop off
# Text kept in all: ~16k tokens, what a new session is given (half of the original
# gpt-realtime's 32k context, a small part of the 128k of the newer models).
MAX_LOG_CHARS = 64 * 1024
# One server text (a turn's words, a call's arguments): several minutes of speech. A hostile
# server's megabytes of transcript stop here.
MAX_ITEM_CHARS = 4000
CARRY_ENTRIES = 100  # carried to a new session: the recent turns the agent needs
DROPS_PER_NOTE = 100  # entries dropped off the front: logged the first time, then per 100
CUT_MARK = "…"


@dataclass(slots=True)
class Entry:
    kind: EntryKind
    text: str = ""  # words, or a call's arguments, or a function's output
    call_id: str = ""
    name: str = ""
    item_id: str = ""  # the server's item, for truncation
    origin: int = 0  # generation of the connection whose server produced it; 0 = ours

    def item(self) -> dict[str, Any]:
        """The conversation item that recreates this entry in a session."""
        match self.kind:
            case "caller" | "user_text":
                return ce.text_item(self.text, "user")
            case "system_text":
                return ce.text_item(self.text, "system")
            case "agent":
                return ce.agent_text_item(self.text)
            case "function_call":
                return ce.function_call_item(self.call_id, self.name, self.text)
            case "function_output":
                return ce.function_output_item(self.call_id, self.text)


class ConversationLog:
    """Entries in order, with absolute indices that survive old entries dropping off."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._base = 0  # absolute index of _entries[0]
        self._chars = 0  # text held by _entries
        self._cuts: dict[str, float] = {}  # item id -> share heard, for entries yet to come
        self._calls: dict[str, tuple[int, int]] = {}  # call id -> (absolute index, origin)
        self.items_cut = 0  # server texts cut to MAX_ITEM_CHARS
        self.dropped = 0  # entries dropped off the front

    @property
    def end(self) -> int:
        """The absolute index the next entry will get."""
        return self._base + len(self._entries)

    @property
    def chars(self) -> int:
        """Characters of text held (at most `MAX_LOG_CHARS`, or the newest entry's own)."""
        return self._chars

    def add(self, entry: Entry) -> None:
        if entry.origin and len(entry.text) > MAX_ITEM_CHARS:
            self._cap(entry)
        if entry.kind == "agent" and entry.item_id in self._cuts:
            entry.text = _cut(entry.text, self._cuts.pop(entry.item_id))
        if entry.kind == "function_call":
            self._calls[entry.call_id] = (self.end, entry.origin)
            if len(self._calls) > MAX_ENTRIES:
                del self._calls[next(iter(self._calls))]
        self._entries.append(entry)
        self._chars += len(entry.text)
        self._trim()

    def heard(self, item_id: str, share: float) -> None:
        """The caller heard only `share` (0-1) of agent item `item_id`'s audio."""
        for entry in reversed(self._entries):
            if entry.kind == "agent" and entry.item_id == item_id:
                before = len(entry.text)
                entry.text = _cut(entry.text, share)
                self._chars += len(entry.text) - before
                return
        if len(self._cuts) < MAX_ENTRIES:
            self._cuts[item_id] = share

    def carry_start(self) -> int:
        """Where a brand-new connection starts syncing: the last `CARRY_ENTRIES`. Give the
        same index as `carried_from` to `entries_since`."""
        return max(self._base, self.end - CARRY_ENTRIES)

    def entries_since(self, index: int, generation: int,
                      carried_from: int = 0) -> tuple[int, list[Entry]]:  # fmt: skip
        """Entries from absolute `index` that the connection `generation` lacks, and the index
        it has then synced up to. `carried_from` is where it started syncing: a function output
        whose call lies before that (and came from another connection) is left out."""
        first = max(index, self._base) - self._base
        todo = [e for e in self._entries[first:] if e.origin != generation and e.text + e.call_id
                and not self._orphan(e, generation, carried_from)]  # fmt: skip
        return self.end, todo

    def _orphan(self, entry: Entry, generation: int, carried_from: int) -> bool:
        """A function output whose call the connection never got (an unknown call: sent, as
        the call may know better)."""
        if entry.kind != "function_output":
            return False
        call = self._calls.get(entry.call_id)
        return call is not None and call[1] != generation and call[0] < carried_from

    def _cap(self, entry: Entry) -> None:
        size = len(entry.text)
        # Arguments cut short would be invalid JSON in the carried function_call item.
        cut = entry.text[: MAX_ITEM_CHARS - len(CUT_MARK)] + CUT_MARK
        entry.text = "{}" if entry.kind == "function_call" else cut
        self.items_cut += 1
        if self.items_cut == 1:
            log.warning("realtime: a %s text of %d characters from the server is kept as its "
                        "first %d for carrying over (further cuts are counted)", entry.kind,
                        size, len(entry.text))  # fmt: skip

    def _trim(self) -> None:
        """Drop the oldest entries past `MAX_ENTRIES` or `MAX_LOG_CHARS`; never the newest."""
        count, chars = len(self._entries), self._chars
        drop = 0
        while count - drop > 1 and (count - drop > MAX_ENTRIES or chars > MAX_LOG_CHARS):
            chars -= len(self._entries[drop].text)
            drop += 1
        if not drop:
            return
        del self._entries[:drop]
        self._base += drop
        self._chars = chars
        before, self.dropped = self.dropped, self.dropped + drop
        if before == 0 or before // DROPS_PER_NOTE != self.dropped // DROPS_PER_NOTE:
            log.info("realtime: the conversation log is past %d entries or %d characters: "
                     "dropped its %d oldest (%d so far); a new session gets the rest",
                     MAX_ENTRIES, MAX_LOG_CHARS, drop, self.dropped)  # fmt: skip

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (f"ConversationLog({len(self._entries)} entries from {self._base}, "
                f"{self._chars} chars)")  # fmt: skip


def _cut(text: str, share: float) -> str:
    """The first `share` of `text`, at a word boundary, marked as cut."""
    if share >= 1.0 or not text:
        return text
    keep = text[: max(0, int(len(text) * share))]
    if " " in keep:
        keep = keep[: keep.rindex(" ")]
    return keep.rstrip(" ,.;:") + CUT_MARK
