"""`FakeConsoleApp`: the appliance as the console sees it (`gateway.console_app.ConsoleApp`),
with canned answers, and a record of every request (`asked`: `(method, *args)`).

It holds a realtime API key (`SECRET`) as a secret setting, a log line and a transcript that
carry terminal escape sequences (as a hostile caller ID name might), and two ports: 0 FXS and
1 FXO. `dial` and `ring` answer at once unless `dial_wait` is set (then they wait until
cancelled, like a line that keeps ringing); `fail_next` makes the next request raise it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import trio

from gateway.console_app import (
    MASK,
    CallDetail,
    CallLevels,
    CallSummary,
    ConfigEntry,
    DialOutcome,
    DialResult,
    LineInfo,
    StatusSnapshot,
    TranscriptLine,
)
from gateway.errors import ConfigError, GatewayError

SECRET = "sk-FAKE-do-not-print-7f3a9c"
HOSTILE = "\x1b]0;pwned\x07\x1b[2J"  # retitle the terminal, clear the screen
STARTED = datetime(2026, 11, 30, 9, 15, 0)


def _call(call_id: str, port: int, running: bool) -> CallSummary:
    return CallSummary(call_id, port, "inbound", f"+4930123 Mx {HOSTILE}", STARTED,
                       None if running else 95.0, "" if running else "caller hung up")  # fmt: skip


@dataclass
class FakeConsoleApp:
    asked: list[tuple[object, ...]] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=lambda: {
        "console.idle_logout_s": "600",
        "line.fxo.answer_after_rings": "2",
        "realtime.api_key": f'"{SECRET}"',
        "realtime.provider": '"openai"',
    })  # fmt: skip
    secret_keys: frozenset[str] = frozenset({"realtime.api_key"})
    saved: dict[str, str] = field(default_factory=dict)
    password_hash: str = ""
    dial_wait: bool = False
    fail_next: Exception | None = None
    levels_served: int = 0
    restarted: bool = False

    def _ask(self, *what: object) -> None:
        self.asked.append(what)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def names(self) -> list[object]:
        return [what[0] for what in self.asked]

    def status(self) -> StatusSnapshot:
        self._ask("status")
        return StatusSnapshot("0.1.0", 93784.0, "tipring adapter fw 1.2.0 on /dev/ttyACM0", True,
                              2, 2, 1, 17, "openai gpt-realtime: 1 session", True, 2.5,
                              150 * 2**20, 4 * 2**30)  # fmt: skip

    def lines(self) -> Sequence[LineInfo]:
        self._ask("lines")
        return [LineInfo(0, "fxs", "idle"),
                LineInfo(1, "fxo", "in_call", "c-0042", "caller", -63.4, 8.0, 11.2, 2.8,
                         ("echo path changed",))]  # fmt: skip

    async def recent_calls(self, limit: int) -> Sequence[CallSummary]:
        self._ask("recent_calls", limit)
        await trio.lowlevel.checkpoint()
        calls = [_call("c-0042", 1, True), _call("c-0041", 1, False), _call("c-0040", 0, False)]
        return calls[:limit]

    async def call_detail(self, call_id: str) -> CallDetail | None:
        self._ask("call_detail", call_id)
        await trio.lowlevel.checkpoint()
        if call_id != "c-0041":
            return None
        transcript = (TranscriptLine(1.2, "agent", "Hello, Bakery Miller, how can I help?"),
                      TranscriptLine(4.0, "caller", f"Is the shop open {HOSTILE}today? " * 4),
                      TranscriptLine(9.5, "tool", "opening_hours() -> 8-18"))  # fmt: skip
        facts = (("agent", "reception"), ("turn latency p50", "612 ms"), ("ERLE", "34.1 dB"))
        return CallDetail(_call(call_id, 1, False), facts, transcript)

    def live_calls(self) -> Sequence[CallLevels]:
        self._ask("live_calls")
        self.levels_served += 1
        erle = None if self.levels_served == 1 else 30.0 + self.levels_served
        return [CallLevels("c-0042", 1, -23.5, -18.0, erle, self.levels_served % 2 == 0, True,
                           12.0 + self.levels_served, 11.5, 2.8)]  # fmt: skip

    def _entry(self, key: str) -> ConfigEntry:
        secret = key in self.secret_keys
        note = "not saved yet" if self.saved.get(key, self.config[key]) != self.config[key] else ""
        return ConfigEntry(key, MASK if secret else self.config[key], secret, note)

    def config_entries(self) -> Sequence[ConfigEntry]:
        self._ask("config_entries")
        return [self._entry(key) for key in sorted(self.config)]

    def config_get(self, key: str) -> ConfigEntry:
        self._ask("config_get", key)
        if key not in self.config:
            raise ConfigError(f"{key} is not a setting")
        return self._entry(key)

    def config_set(self, key: str, value: str) -> ConfigEntry:
        self._ask("config_set", key, "<secret>" if key in self.secret_keys else value)
        if key not in self.config:
            raise ConfigError(f"{key} is not a setting")
        if key == "line.fxo.answer_after_rings" and not (value.isdigit() and 1 <= int(value) <= 20):
            raise ConfigError(f"{key} must be 1..20, got {value!r}")
        self.saved.setdefault(key, self.config[key])
        self.config[key] = value
        return self._entry(key)

    async def config_save(self) -> str:
        self._ask("config_save")
        await trio.lowlevel.checkpoint()
        self.saved.clear()
        return "/etc/tipring/tipring.toml"

    def recent_log(self, limit: int) -> Sequence[str]:
        self._ask("recent_log", limit)
        lines = [f"2026-11-30 09:15:{i:02d} INFO gateway.line: line 1: ring {i}" for i in range(40)]
        lines.append(f"2026-11-30 09:16:00 INFO gateway.line: caller ID name {HOSTILE}")
        return lines[-limit:]

    async def _placed(self) -> DialResult:
        if self.dial_wait:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        return DialResult(DialOutcome.ANSWERED, call_id="c-0043")

    async def ring(self, port: int) -> DialResult:
        self._ask("ring", port)
        if port != 0:
            raise GatewayError(f"port {port} is not an FXS port: ring a phone on an FXS port")
        return await self._placed()

    async def dial(self, port: int, number: str) -> DialResult:
        self._ask("dial", port, number)
        if number == "5550000":
            await trio.lowlevel.checkpoint()
            return DialResult(DialOutcome.BUSY, "busy tone after 3 s")
        return await self._placed()

    async def hangup(self, call_id: str) -> bool:
        self._ask("hangup", call_id)
        await trio.lowlevel.checkpoint()
        return call_id == "c-0042"

    async def adapter_reset(self) -> str:
        self._ask("adapter_reset")
        await trio.lowlevel.checkpoint()
        return "adapter reset: HELLO again, firmware 1.2.0"

    async def restart(self) -> None:
        self._ask("restart")
        await trio.lowlevel.checkpoint()
        self.restarted = True

    async def set_console_password(self, password_hash: str) -> None:
        self._ask("set_console_password")
        await trio.lowlevel.checkpoint()
        self.password_hash = password_hash
