"""What the local server saw and did on one connection: `SessionRecord`, for tests and demos.

Received client events are kept whole except audio appends (their size only); sent server
events are kept whole. Header values are not kept (the auth header holds the API key): only
the header names and the auth scheme.

The server changes a record while the client under test goes on: a test that needs the server
to have seen something waits for it with `wait_until` (woken by `touch`, which the server calls
after each event it handles or sends and when the connection ends), never by sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass
class SessionRecord:
    index: int  # 0 for the server's first connection
    path: str
    query: dict[str, str]
    header_names: list[str]
    auth_scheme: str  # "Bearer", "Basic", "api-key" or ""
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0  # caller turns answered on this connection
    appended_ms: int = 0  # caller audio received
    audio: list[Any] | None = None  # its 20 ms frames (int16), when the server keeps audio
    truncations: list[tuple[str, int]] = field(default_factory=list)  # (item id, audio_end_ms)
    closed: str = ""  # how it ended
    closed_s: float = math.inf  # when (trio's clock)
    _changed: trio.Event = field(default_factory=trio.Event, repr=False, compare=False)

    def end(self, how: str) -> None:
        """Record how the connection ended (the first account wins)."""
        if not self.closed:
            self.closed, self.closed_s = how, trio.current_time()
        self.touch()

    def touch(self) -> None:
        """Wake `wait_until`: something in the record changed."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[SessionRecord], bool]) -> None:
        """Until `predicate(record)` holds; the deadline is the caller's (`trio.fail_after`)."""
        while not predicate(self):
            await self._changed.wait()

    def received_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == kind]

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e.get("type") == kind]

    def created_items(self) -> Iterator[dict[str, Any]]:
        """The items the client added with conversation.item.create, in order."""
        for event in self.received_of("conversation.item.create"):
            item = event.get("item")
            if isinstance(item, dict):
                yield item

    def item_texts(self) -> list[tuple[str, str]]:
        """(role, text) of the message items the client created: the carried-over transcript."""
        out = []
        for item in self.created_items():
            if item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        out.append((str(item.get("role")), part["text"]))
        return out
