"""The caller's key presses in a call (`gateway.call.Call`): `DigitRouter` takes each digit the
call detects (on the clean uplink, or reported by the device) and sends it where it belongs:

1. a tool collecting digits securely (`gateway.call_secure`): only there, the record gets `*`;
2. the agent's local DTMF menu (`[agent] dtmf_menu`, `MenuEntry`): "press 0 for a person"
   acts on the box, with the cloud up or down, and the digits never reach the agent;
3. else the agent, as one text message per burst ("[caller pressed 12#]"): digits typed within
   `call.dtmf_gap_s` of each other, or up to a "#".

A menu key acts as soon as no longer key could still be typed (a one-key menu acts at once),
else after the burst's gap. Actions: "hangup" (the goodbye prompt, then on-hook), "voicemail"
(the agent goes, the caller leaves a message), "transfer:DIGITS" (FXO: hook flash and the
digits, "," pauses; the agent is cut at once), "agent" (to the agent, as without a menu).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from gateway.call_secure import SECURE_MARK
from gateway.errors import ConfigError, GatewayError
from gateway.tools_secure import COLLECT_DIGITS

if TYPE_CHECKING:
    from gateway.call import Call

log = logging.getLogger(__name__)

DIGITS_BUFFER = 32  # digits waiting for the router's task: a burst of typing
MENU_KEYS = re.compile(r"[0-9*#A-D]{1,8}")
MENU_ACTIONS = ("agent", "hangup", "voicemail", "transfer:")
TRANSFER_DIGITS = re.compile(r"[0-9*#A-D,]{1,32}")


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """One key sequence of a local menu and what it does (`action`, `target` for transfer)."""

    keys: str
    action: str
    target: str = ""


def parse_menu(table: Mapping[str, Any], where: str) -> tuple[MenuEntry, ...]:
    """`[agent.dtmf_menu]`: keys -> action; `ConfigError` naming the key otherwise."""
    entries = []
    for keys, value in table.items():
        key = f"{where}.{keys}"
        if not MENU_KEYS.fullmatch(str(keys)):
            raise ConfigError(f"{key}: {keys!r} is not a key sequence (1-8 of 0-9 * # A-D)")
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string (one of {', '.join(MENU_ACTIONS)}...), "
                              f"got {value!r}")  # fmt: skip
        action, _, target = value.partition(":")
        if value in MENU_ACTIONS[:3]:
            entries.append(MenuEntry(keys, value))
        elif action == "transfer" and TRANSFER_DIGITS.fullmatch(target):
            entries.append(MenuEntry(keys, action, target))
        else:
            raise ConfigError(f"{key} {value!r} is not an action: agent, hangup, voicemail or "
                              "transfer:DIGITS (0-9 * # A-D, ',' pauses)")  # fmt: skip
    return tuple(entries)


class DigitRouter:
    """See the module docstring. One per call; `run` in the call's nursery."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._menu = {entry.keys: entry for entry in call.profile.dtmf_menu}
        secure = call.audio.secure
        secure.sensitive = call.profile.tools.get(COLLECT_DIGITS) is not None
        self._send, self._recv = trio.open_memory_channel[str](DIGITS_BUFFER)
        self._recv = call.line.screen_digits(self._recv)  # FXS: emergency numbers held back

    def digit(self, digit: str, now_s: float) -> None:
        """A key the call detected (from its frame or signal task: never waits)."""
        call = self._call
        if call.audio.secure.offer(digit):  # a tool collects it: no record, no agent
            call.dtmf += SECURE_MARK
            call.timeline.note(now_s, "caller pressed a key (collected securely)")
            return
        sensitive = call.audio.secure.sensitive  # a PIN may be typed before the tool asks
        call.dtmf += SECURE_MARK if sensitive else digit
        call.timeline.note(
            now_s, "caller pressed a key" if sensitive else f"caller pressed {digit}"
        )
        try:
            self._send.send_nowait(digit)
        except trio.WouldBlock:
            log.warning("call %s: digit %s dropped: too many waiting", call.spec.call_id, digit)

    async def run(self) -> None:
        async with self._recv:
            async for first in self._recv:
                typed = first
                while not (typed.endswith("#") or self._decided(typed)):
                    with trio.move_on_after(self._call.config.dtmf_gap_s) as gap:
                        typed += await self._recv.receive()
                    if gap.cancelled_caught:
                        break
                await self._deliver(typed)

    def _decided(self, typed: str) -> bool:
        """A menu key is complete and no longer one starts with it."""
        return typed in self._menu and not any(
            k != typed and k.startswith(typed) for k in self._menu
        )

    async def _deliver(self, typed: str) -> None:
        call = self._call
        entry = self._menu.get(typed)
        if entry is not None and entry.action != "agent":
            call.timeline.note(trio.current_time(), f"menu {typed}: {entry.action}")
            log.info("call %s: caller pressed %s: %s %s", call.spec.call_id, typed,
                     entry.action, entry.target)  # fmt: skip
            await self._act(entry, typed)
        elif call.audio.secure.sensitive:  # kept for collect_digits; the agent gets a count
            call.audio.secure.keep_ahead(typed)
            if call.session is not None and not call.gave_up:
                await call.session.send_text(f"[caller pressed {len(typed)} keys]")
        elif call.session is not None and not call.gave_up:
            await call.session.send_text(f"[caller pressed {typed}]")
        else:
            log.info("call %s: digits %s with no agent to hear them", call.spec.call_id, typed)

    async def _act(self, entry: MenuEntry, typed: str) -> None:
        call = self._call
        match entry.action:
            case "hangup":
                call.wind_down(f"caller pressed {typed}")
            case "voicemail":
                call.give_up(f"caller pressed {typed} for voicemail", "voicemail")
            case "transfer":
                call.audio.mute_agent()
                assert call.control is not None
                try:
                    await call.control.transfer(entry.target)
                except GatewayError as exc:
                    log.warning("call %s: menu transfer failed: %s", call.spec.call_id, exc)
                    call.timeline.note(trio.current_time(), f"menu transfer failed: {exc}")
                    call.audio.unmute_agent()
