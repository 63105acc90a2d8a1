"""The `collect_digits` built-in (#8, digits that never leave the premises): the model asks the
caller to type a PIN or a card number and calls it; the call collects the keys itself
(`CallControl.collect_digits`: the tones are cut from the audio the cloud hears) and hands them
to the configured tool (`deliver_to`, an HTTP tool that the model itself cannot call), and the
model gets only how many digits came and that tool's result, with the digits taken out of it.

```toml
[tools.builtin.collect_digits]
deliver_to = "verify_pin"     # an HTTP tool of [[tools.http]]: it gets the digits in `field`
field = "pin"
max_digits = 16               # then the collection ends (also on `terminator`, or collect_s)
terminator = "#"
collect_s = 40                # 5..50
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from gateway.errors import ConfigError
from gateway.tools_types import MAX_TIMEOUT_S, CallContext, Tool

COLLECT_DIGITS: Final = "collect_digits"
COLLECT_TEXT = (
    "Collect digits the caller types on the telephone keypad (a PIN, an account or card "
    "number) without hearing them. First ask the caller to type them and to finish with the "
    "{terminator} key, then call this. The digits go straight to {target}; you get only how "
    "many were typed and its result. Never ask the caller to say the digits aloud."
)
KEYS: Final = ("deliver_to", "field", "max_digits", "terminator", "collect_s", "description")
DEFAULT_COLLECT_S = 40.0
MAX_COLLECT_S = 50.0  # and the tool's own call after it: within the runner's 60 s bound
MIN_REDACTED = 3  # shorter digit strings are not looked for in the result (they match anything)
REDACTED = "<digits>"


def collect_digits_tool(target: Tool, options: Mapping[str, Any], where: str) -> Tool:
    """The tool, delivering to `target` (already taken out of the model's tools)."""
    field = _text(options, "field", "digits", where)
    max_digits = options.get("max_digits", 16)
    if isinstance(max_digits, bool) or not isinstance(max_digits, int) or not 1 <= max_digits <= 32:
        raise ConfigError(f"{where}.max_digits must be a whole number 1..32, got {max_digits!r}")
    terminator = _text(options, "terminator", "#", where)
    if terminator not in ("#", "*"):
        raise ConfigError(f"{where}.terminator {terminator!r} is not one of #, *")
    collect_s = options.get("collect_s", DEFAULT_COLLECT_S)
    if isinstance(collect_s, bool) or not isinstance(collect_s, int | float) \
            or not 5 <= collect_s <= MAX_COLLECT_S:  # fmt: skip
        raise ConfigError(f"{where}.collect_s must be 5..{MAX_COLLECT_S:g}, got {collect_s!r}")
    text = COLLECT_TEXT.format(terminator=terminator, target=target.name)
    description = _text(options, "description", text, where)
    parameters = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "purpose": {"type": "string", "description": "What the digits are, e.g. 'PIN'."}
        },
    }

    async def collect(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        digits = await context.control.collect_digits(max_digits, terminator, float(collect_s))
        if not digits:
            return {"digits_received": 0, "note": "The caller typed nothing in time."}
        result = await target.function({field: digits}, context)
        return {"digits_received": len(digits), "result": without(result, digits)}

    timeout_s = min(MAX_TIMEOUT_S, float(collect_s) + target.timeout_s)
    return Tool(COLLECT_DIGITS, description, parameters, collect, timeout_s,
                needs_http=target.needs_http)  # fmt: skip


def without(result: object, digits: str) -> object:
    """`result` (JSON-able) with every occurrence of `digits` replaced by `REDACTED`."""
    if result is None:
        return {"ok": True}
    if len(digits) < MIN_REDACTED:
        return result
    return json.loads(json.dumps(result).replace(digits, REDACTED))


def _text(options: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value
