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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.realtime import client_events as ce

EntryKind = Literal["caller", "agent", "user_text", "system_text", "function_call",
                    "function_output"]  # fmt: skip
MAX_ENTRIES = 400  # a long call's log stays a few hundred KB; older turns drop off
CARRY_ENTRIES = 100  # carried to a new session: the recent turns the agent needs
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
        self._cuts: dict[str, float] = {}  # item id -> share heard, for entries yet to come

    @property
    def end(self) -> int:
        """The absolute index the next entry will get."""
        return self._base + len(self._entries)

    def add(self, entry: Entry) -> None:
        if entry.kind == "agent" and entry.item_id in self._cuts:
            entry.text = _cut(entry.text, self._cuts.pop(entry.item_id))
        self._entries.append(entry)
        if len(self._entries) > MAX_ENTRIES:
            drop = len(self._entries) - MAX_ENTRIES
            del self._entries[:drop]
            self._base += drop

    def heard(self, item_id: str, share: float) -> None:
        """The caller heard only `share` (0-1) of agent item `item_id`'s audio."""
        for entry in reversed(self._entries):
            if entry.kind == "agent" and entry.item_id == item_id:
                entry.text = _cut(entry.text, share)
                return
        if len(self._cuts) < MAX_ENTRIES:
            self._cuts[item_id] = share

    def carry_start(self) -> int:
        """Where a brand-new connection starts syncing: the last `CARRY_ENTRIES`, beginning at
        a turn rather than at a function output whose call was left behind."""
        start = max(self._base, self.end - CARRY_ENTRIES)
        while start < self.end and self._entries[start - self._base].kind == "function_output":
            start += 1
        return start

    def entries_since(self, index: int, generation: int) -> tuple[int, list[Entry]]:
        """Entries from absolute `index` that the connection `generation` lacks, and the index
        it has then synced up to."""
        first = max(index, self._base) - self._base
        todo = [e for e in self._entries[first:] if e.origin != generation and e.text + e.call_id]
        return self.end, todo

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ConversationLog({len(self._entries)} entries from {self._base})"


def _cut(text: str, share: float) -> str:
    """The first `share` of `text`, at a word boundary, marked as cut."""
    if share >= 1.0 or not text:
        return text
    keep = text[: max(0, int(len(text) * share))]
    if " " in keep:
        keep = keep[: keep.rindex(" ")]
    return keep.rstrip(" ,.;:") + CUT_MARK
