"""What the local server's agent says and does, turn by turn: a small script file (TOML or JSON).

Caller turns count from 1: each caller utterance the VAD commits (or each `response.create`
that does not follow a function output) is the next turn. A turn may say a prompt, call a
function (the response then ends with the function call; the server waits for the client's
`function_call_output` and `response.create`, and that follow-up response says `then_say`),
and give the caller's words (sent as the input transcription when the session asks for one).
Unscripted turns say the `default` prompts in order, the last one repeating. A new session that
the client carries the conversation over to goes on where the script was: each agent reply
among the carried items counts as a turn taken (`items.create`).

```toml
default = ["anything_else"]          # optional; default ["greeting", "anything_else"]

[[turn]]
turn = 1
say = "greeting"
caller = "Hi, where is my order?"    # optional

[[turn]]
turn = 2
say = "one_moment"                   # optional: spoken before the call, same response
call = "lookup_order"
arguments = { order_id = "4592" }
then_say = "order_shipped"
```
The same as JSON: `{"default": [...], "turn": [{"turn": 1, "say": "greeting"}, ...]}`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.realtime.errors import RealtimeConfigError

DEFAULT_SAY = ("greeting", "anything_else")
_TURN_KEYS = {"turn", "say", "call", "arguments", "then_say", "caller"}


@dataclass(frozen=True, slots=True)
class Turn:
    turn: int
    say: str = ""
    call: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    then_say: str = ""
    caller: str = ""


@dataclass(frozen=True, slots=True)
class Script:
    turns: Mapping[int, Turn] = field(default_factory=dict)
    default: tuple[str, ...] = DEFAULT_SAY

    @classmethod
    def load(cls, path: str | Path) -> Script:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise RealtimeConfigError(f"script {p}: {exc}") from None
        return cls.from_mapping(data, str(p))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "script") -> Script:
        unknown = set(data) - {"turn", "default"}
        if unknown:
            raise RealtimeConfigError(f"{where}: unknown keys {sorted(unknown)}; "
                                      "known: default, turn")  # fmt: skip
        default = data.get("default", list(DEFAULT_SAY))
        if (
            not isinstance(default, list)
            or not default
            or not all(isinstance(d, str) for d in default)
        ):
            raise RealtimeConfigError(f"{where}: default must be a non-empty list of prompts")
        turns: dict[int, Turn] = {}
        for i, raw in enumerate(data.get("turn", [])):
            turn = _turn(raw, f"{where}: turn[{i}]")
            if turn.turn in turns:
                raise RealtimeConfigError(f"{where}: turn {turn.turn} appears twice")
            turns[turn.turn] = turn
        return cls(turns, tuple(default))

    def check_prompts(self, names: Iterable[str]) -> None:
        """Every prompt the script says exists."""
        known = set(names)
        said = list(self.default) + [n for t in self.turns.values() for n in (t.say, t.then_say)]
        for name in said:
            if name and name not in known:
                raise RealtimeConfigError(f"script says prompt {name!r}; the prompts are "
                                          f"{', '.join(sorted(known))}")  # fmt: skip

    def then_say_for(self, call: str) -> str:
        """What the first turn calling `call` says after its output ("" if none does)."""
        turn = next((t for _, t in sorted(self.turns.items()) if t.call == call), None)
        return turn.then_say if turn is not None else ""

    def default_say(self, index: int) -> str:
        """The prompt of the `index`-th unscripted reply (0-based)."""
        return self.default[min(index, len(self.default) - 1)]


def _turn(raw: object, where: str) -> Turn:
    if not isinstance(raw, Mapping):
        raise RealtimeConfigError(f"{where} must be a table")
    unknown = set(raw) - _TURN_KEYS
    if unknown:
        raise RealtimeConfigError(f"{where}: unknown keys {sorted(unknown)}")
    number = raw.get("turn")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise RealtimeConfigError(f"{where}.turn must be a turn number >= 1, got {number!r}")
    for key in ("say", "call", "then_say", "caller"):
        if not isinstance(raw.get(key, ""), str):
            raise RealtimeConfigError(f"{where}.{key} must be a string")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, Mapping):
        raise RealtimeConfigError(f"{where}.arguments must be a table")
    if not raw.get("say") and not raw.get("call"):
        raise RealtimeConfigError(f"{where}: a turn must say something or call something")
    return Turn(number, raw.get("say", ""), raw.get("call", ""), dict(arguments),
                raw.get("then_say", ""), raw.get("caller", ""))  # fmt: skip
