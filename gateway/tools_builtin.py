"""The built-in tools: `end_call`, `transfer_call`, `send_dtmf`, `get_time`. Each factory
returns a `Tool`; the first three act through the call's `CallControl`. The config enables them
one by one (`gateway.tools_config`).

Transfer targets come from config, never from the model: the model picks a name from the
configured list (an enum in the schema), so a caller cannot talk the agent into dialling
an arbitrary (premium-rate) number through the box.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError
from gateway.tools_types import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, CallContext, Tool, ToolError

END_CALL: Final = "end_call"
TRANSFER_CALL: Final = "transfer_call"
SEND_DTMF: Final = "send_dtmf"
GET_TIME: Final = "get_time"
BUILTINS: Final = (END_CALL, TRANSFER_CALL, SEND_DTMF, GET_TIME)

DTMF_DIGITS: Final = "0123456789*#ABCD"
DTMF_SEPARATORS: Final = " -.,()"  # how a model writes a number; dropped, not sent
MAX_DTMF_DIGITS = 32  # an IVR menu path, an extension or an account number fits in this
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_REASON_CHARS = 200  # the hang-up reason goes to the call record
# A transfer target: digits dialled after a hook-flash (FXO), or another FXS port of the box.
TARGET_RE = re.compile(r"[0-9*#ABCD,]{1,32}|fxs:[0-9]{1,2}")

TRANSFER_TIMEOUT_S = 45.0  # a warm transfer waits for the person to answer (answer_s)
WARM_ANSWER_S = 25.0  # about four rings
WARM_OVERHEAD_S = 10.0  # the announcement (up to 6 s), the flash and the digits
SUMMARY_TEXT = (
    "For a warm transfer: what the person taking over should know (who calls, what they"
    " need), in one or two sentences. You will say it to them before the caller is connected."
)
END_CALL_TEXT = (
    "Hang up the phone. Say goodbye first, then call this: the line is released once you"
    " have finished speaking."
)
TRANSFER_TEXT = (
    "Transfer the caller to a person or department. Tell the caller first. Targets: {targets}."
)
SEND_DTMF_TEXT = (
    "Press telephone keys on the line (DTMF), e.g. to answer an automated menu: digits 0-9,"
    " *, #, A-D."
)
GET_TIME_TEXT = "The current local date, time, weekday and time zone."


def end_call_tool(description: str = END_CALL_TEXT, timeout_s: float = DEFAULT_TIMEOUT_S) -> Tool:
    """Asks the call to hang up politely (`CallControl.hang_up`), after the agent's goodbye."""
    parameters = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Why the call ends, in a few words."}
        },
        "additionalProperties": False,
    }

    async def end_call(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        reason = str(arguments.get("reason") or "the agent ended the call")[:MAX_REASON_CHARS]
        await context.control.hang_up(reason)
        return {"ok": True, "note": "The call ends when you finish speaking. Ask nothing more."}

    return Tool(END_CALL, description, parameters, end_call, timeout_s)


def transfer_call_tool(
    targets: Mapping[str, str],
    description: str | None = None,
    timeout_s: float = TRANSFER_TIMEOUT_S,
    where: str = "tools.builtin.transfer_call",
    answer_s: float = WARM_ANSWER_S,
) -> Tool:
    """Transfers the call to one of `targets` (name the model picks -> dial string for
    `CallControl.transfer`: digits after a hook-flash, or `fxs:N`). With a `summary` (digits
    targets): a warm transfer (`CallControl.warm_transfer`): the person who answers within
    `answer_s` hears the agent say it before the caller is connected."""
    if not 1.0 <= answer_s <= MAX_TIMEOUT_S - WARM_OVERHEAD_S:
        raise ConfigError(f"{where}.answer_s must be 1..{MAX_TIMEOUT_S - WARM_OVERHEAD_S:g}, "
                          f"got {answer_s!r}")  # fmt: skip
    if not targets:
        raise ConfigError(f"{where}.targets is empty: name at least one (name = dial string)")
    for name, dial in targets.items():
        if not isinstance(dial, str) or not TARGET_RE.fullmatch(dial):
            raise ConfigError(
                f"{where}.targets.{name} {dial!r} is not digits (0-9 * # A-D , up to 32) or fxs:N"
            )
    names = list(targets)
    parameters = {
        "type": "object",
        "properties": {
            "target": {"type": "string", "enum": names, "description": "Where to."},
            "summary": {"type": "string", "description": SUMMARY_TEXT},
        },
        "required": ["target"],
        "additionalProperties": False,
    }
    text = description or TRANSFER_TEXT.format(targets=", ".join(names))
    dial_strings = dict(targets)

    async def transfer_call(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        target, summary = arguments["target"], str(arguments.get("summary") or "").strip()
        dial = dial_strings[target]
        if not summary:
            await context.control.transfer(dial)
            return {"ok": True, "transferred_to": target}
        await context.control.warm_transfer(dial, answer_s)
        return {"ok": True, "status": f"{target} answered; the caller is on hold and cannot "
                "hear you", "now": f"Speak to {target}: say this summary in one or two short "
                f"sentences, then stop (the caller is connected to them): {summary}"}  # fmt: skip

    return Tool(TRANSFER_CALL, text, parameters, transfer_call, timeout_s)


def send_dtmf_tool(description: str = SEND_DTMF_TEXT, timeout_s: float = DEFAULT_TIMEOUT_S) -> Tool:
    """Plays DTMF digits to the far end (`CallControl.send_dtmf`). The digits are a sensitive
    argument (they are often a PIN or an account number): redacted in logs, never echoed."""
    parameters = {
        "type": "object",
        "properties": {"digits": {"type": "string", "description": "The keys, e.g. '1#'."}},
        "required": ["digits"],
        "additionalProperties": False,
    }

    async def send_dtmf(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        digits = dtmf_digits(arguments["digits"])
        await context.control.send_dtmf(digits)
        return {"ok": True, "sent": len(digits)}

    return Tool(SEND_DTMF, description, parameters, send_dtmf, timeout_s, frozenset({"digits"}))


def dtmf_digits(text: str) -> str:
    """`text` as DTMF digits (upper case, separators dropped); `ToolError` naming the position
    (not the value) of a character that is not one."""
    digits = "".join(c for c in text.upper() if c not in DTMF_SEPARATORS)
    for position, char in enumerate(digits, start=1):
        if char not in DTMF_DIGITS:
            raise ToolError(f"digits: character {position} is not one of 0-9 * # A-D")
    if not 1 <= len(digits) <= MAX_DTMF_DIGITS:
        raise ToolError(f"digits: {len(digits)} digits; send 1 to {MAX_DTMF_DIGITS} at a time")
    return digits


def get_time_tool(
    timezone: str | None = None,
    description: str = GET_TIME_TEXT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    where: str = "tools.builtin.get_time",
) -> Tool:
    """The local time (ISO 8601, to the second), weekday and time zone: `timezone` an IANA
    name (`Europe/Berlin`), None for the box's own zone. `clock` returns an aware datetime."""
    zone = _zone(timezone, where)
    parameters = {"type": "object", "properties": {}, "additionalProperties": False}

    async def get_time(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        now = clock().astimezone(zone)  # zone None: the box's local zone
        return {
            "time": now.isoformat(timespec="seconds"),
            "weekday": WEEKDAYS[now.weekday()],  # not %A: locale-dependent
            "timezone": timezone or now.tzname() or "local",
        }

    return Tool(GET_TIME, description, parameters, get_time, timeout_s)


def _zone(name: str | None, where: str) -> tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed key
        raise ConfigError(
            f"{where}.timezone {name!r} is not an IANA time zone (like 'Europe/Berlin')"
        ) from None
