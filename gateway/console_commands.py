"""The admin console's commands: the table (`COMMANDS`), `run_command` (parse, check the
arguments, run one), and the handlers. A handler gets the `Session` (`gateway.console`
implements it: output, prompts, keys, the app) and its arguments, and raises `CommandError`
for what the operator typed wrong. Nothing here starts a process or reaches a shell: every
command is a method call on the `ConsoleApp`.

Arguments are split like a shell would (`shlex`, so `config set line.fxo.deny '["1900*"]'`
works) but never given to one.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from firmware_bridge.messages import MAX_PORTS
from gateway.console_app import MASK, ConsoleApp, DialOutcome, DialResult
from gateway.console_views import (
    render_call,
    render_calls,
    render_entry,
    render_lines,
    render_monitor,
    render_status,
)
from gateway.errors import ConfigError, GatewayError

T = TypeVar("T")
DEFAULT_CALLS = 10
MAX_CALLS = 200
DEFAULT_LOG_LINES = 20
MAX_LOG_LINES = 500
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
CONFIG_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,7}")
DIAL_NUMBER = re.compile(r"[0-9*#A-Da-d]{1,32}")  # what OutboundCall.number may hold


class CommandError(GatewayError):
    """The operator typed something the command cannot take; the message says what to type."""


class Style(StrEnum):
    PLAIN = ""
    HEADING = "1"  # bold
    OK = "32"  # green
    WARN = "33"  # yellow
    ERROR = "31"  # red


class Session(Protocol):
    """The console session a handler runs in (`gateway.console.Console` implements it)."""

    app: ConsoleApp
    color: bool
    monitor_refresh_s: float

    async def write(self, *lines: str, style: Style = Style.PLAIN) -> None:
        """Send `lines`, each ended by CRLF, styled if colour is on."""

    async def redraw(self, lines: list[str], previous: int) -> None:
        """Overwrite the last `previous` lines written with `lines` (the monitor's frame)."""

    async def read_line(self, prompt: str, *, secret: bool = False) -> str | None:
        """A line the operator types (None: Ctrl-C); `secret`: no echo, no history."""

    async def wait_key(self, timeout_s: float) -> bool:
        """Whether a key was pressed within `timeout_s` (the key is consumed)."""

    async def until_interrupted(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run `work`; None if the operator pressed Ctrl-C first (`work` is cancelled)."""

    async def change_password(self) -> None:
        """The `passwd` dialogue."""

    def logout(self) -> None:
        """End the session after this command."""


Handler = Callable[[Session, list[str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Handler
    min_args: int = 0
    max_args: int = 0


def split_line(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:  # an open quote
        raise CommandError(f"cannot read that line: {exc}") from None


async def run_command(session: Session, line: str) -> None:
    """Run the command on `line` (blank: nothing); `CommandError` for a wrong one."""
    words = split_line(line)
    if not words:
        return
    name, args = words[0].lower(), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        raise CommandError(unknown_command(name))
    if not command.min_args <= len(args) <= command.max_args:
        raise CommandError(f"usage: {command.usage}")
    await command.handler(session, args)


# Words other consoles use: suggested, never run (a command does one thing under one name).
_OTHER_NAMES = {"exit": "logout", "quit": "logout", "reboot": "restart", "?": "help"}


def unknown_command(name: str) -> str:
    close = [_OTHER_NAMES[name]] if name in _OTHER_NAMES else []
    close = close or difflib.get_close_matches(name, COMMANDS, n=2, cutoff=0.7)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown command '{name[:40]}'{hint} (help lists them)"


def complete(prefix: str) -> list[str]:
    """Command names starting with `prefix` (the line editor's Tab)."""
    return [name for name in COMMANDS if name.startswith(prefix.lower())]


def history_entry(app: ConsoleApp, line: str) -> str:
    """`line` as the history keeps it: `config set KEY VALUE` loses VALUE when KEY is secret
    (or unknown: it might be a secret misspelt)."""
    words = line.split()
    if len(words) > 3 and words[0].lower() == "config" and words[1].lower() == "set":
        try:
            secret = app.config_get(words[2]).secret
        except GatewayError:
            secret = True
        if secret:
            return f"config set {words[2]} {MASK}"
    return line


# --- argument checks ----------------------------------------------------------------------


def count_arg(text: str, what: str, high: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= high:
        raise CommandError(f"{what} must be a whole number 1..{high}, got '{text[:20]}'")
    return int(text)


def port_arg(session: Session, text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < MAX_PORTS:
        raise CommandError(f"PORT must be a port number 0..{MAX_PORTS - 1}, got '{text[:20]}'")
    ports = [line.port for line in session.app.lines()]
    if int(text) not in ports:
        known = ", ".join(map(str, ports)) or "none: is the adapter connected?"
        raise CommandError(f"there is no port {text} (ports: {known})")
    return int(text)


def call_arg(text: str) -> str:
    if not CALL_ID.fullmatch(text):
        raise CommandError(f"'{text[:40]}' is not a call id (calls lists them)")
    return text


def key_arg(text: str) -> str:
    if not CONFIG_KEY.fullmatch(text) or len(text) > 100:
        raise CommandError(f"'{text[:40]}' is not a setting key (like realtime.provider)")
    return text


# --- handlers -----------------------------------------------------------------------------


async def cmd_help(s: Session, args: list[str]) -> None:
    if args:
        command = COMMANDS.get(args[0].lower())
        if command is None:
            raise CommandError(unknown_command(args[0]))
        await s.write(f"usage: {command.usage}", f"  {command.summary}")
        return
    width = max(len(c.usage) for c in COMMANDS.values())
    await s.write("commands:", style=Style.HEADING)
    await s.write(*(f"  {c.usage:<{width}}  {c.summary}" for c in COMMANDS.values()))
    await s.write("keys: arrows edit and recall, Tab completes, Ctrl-U erases, Ctrl-C cancels")


async def cmd_status(s: Session, args: list[str]) -> None:
    await s.write(*render_status(s.app.status()))


async def cmd_lines(s: Session, args: list[str]) -> None:
    await s.write(*render_lines(s.app.lines()))


async def cmd_calls(s: Session, args: list[str]) -> None:
    limit = count_arg(args[0], "N", MAX_CALLS) if args else DEFAULT_CALLS
    await s.write(*render_calls(await s.app.recent_calls(limit)))


async def cmd_call(s: Session, args: list[str]) -> None:
    detail = await s.app.call_detail(call_arg(args[0]))
    if detail is None:
        raise CommandError(f"no call '{args[0]}' (calls lists them)")
    await s.write(*render_call(detail))


async def cmd_monitor(s: Session, args: list[str]) -> None:
    shown = 0
    while True:
        frame = render_monitor(s.app.live_calls())
        await s.redraw(frame, shown)
        shown = len(frame)
        if await s.wait_key(s.monitor_refresh_s):
            return


async def cmd_config(s: Session, args: list[str]) -> None:
    action, rest = args[0].lower(), args[1:]
    usage = {"show": (0, 1), "get": (1, 1), "set": (1, 2), "save": (0, 0)}
    if action not in usage or not usage[action][0] <= len(rest) <= usage[action][1]:
        raise CommandError("usage: config show [PREFIX] | get KEY | set KEY [VALUE] | save")
    if action == "show":
        prefix = rest[0] if rest else ""
        entries = [e for e in s.app.config_entries() if e.key.startswith(prefix)]
        await s.write(*(render_entry(e) for e in entries) if entries else (f"no '{prefix}' keys",))
    elif action == "get":
        await s.write(render_entry(s.app.config_get(key_arg(rest[0]))))
    elif action == "set":
        await _config_set(s, key_arg(rest[0]), rest[1] if len(rest) > 1 else None)
    else:
        path = await s.app.config_save()
        await s.write(f"saved to {path}", style=Style.OK)


async def _config_set(s: Session, key: str, value: str | None) -> None:
    if value is None:  # a secret stays off the screen and out of the history
        value = await s.read_line(f"{key} (not shown): ", secret=True)
        if value is None:
            return
    try:
        entry = s.app.config_set(key, value)
    except ConfigError as exc:
        if key not in str(exc):  # the app's message should name the key; make sure it does
            raise ConfigError(f"{key}: {exc}") from None
        raise
    await s.write(render_entry(entry), style=Style.OK)
    await s.write("not saved yet: config save writes the file")


async def cmd_log(s: Session, args: list[str]) -> None:
    limit = count_arg(args[0], "N", MAX_LOG_LINES) if args else DEFAULT_LOG_LINES
    await s.write(*(s.app.recent_log(limit) or ["the log is empty"]))


async def _report_dial(s: Session, result: DialResult | None) -> None:
    if result is None:
        await s.write("stopped waiting; the attempt is abandoned", style=Style.WARN)
    elif result.outcome is DialOutcome.ANSWERED:
        await s.write(f"answered: call {result.call_id} runs (hangup {result.call_id})",
                      style=Style.OK)  # fmt: skip
    else:
        detail = f": {result.detail}" if result.detail else ""
        await s.write(f"{result.outcome.value.replace('_', ' ')}{detail}", style=Style.WARN)


async def cmd_ring(s: Session, args: list[str]) -> None:
    port = port_arg(s, args[0])
    await s.write(f"ringing port {port}; Ctrl-C stops")
    await _report_dial(s, await s.until_interrupted(lambda: s.app.ring(port)))


async def cmd_dial(s: Session, args: list[str]) -> None:
    port = port_arg(s, args[0])
    number = args[1]
    if not DIAL_NUMBER.fullmatch(number):
        raise CommandError(f"NUMBER may hold 0-9 * # A-D, 1 to 32 of them, got '{number[:40]}'")
    await s.write(f"dialling {number} on port {port}; Ctrl-C stops")
    await _report_dial(s, await s.until_interrupted(lambda: s.app.dial(port, number.upper())))


async def cmd_hangup(s: Session, args: list[str]) -> None:
    call_id = call_arg(args[0])
    if not await s.app.hangup(call_id):
        raise CommandError(f"no call '{call_id}' is running (lines shows running calls)")
    await s.write(f"call {call_id} hung up", style=Style.OK)


async def _confirm(s: Session, question: str) -> bool:
    answer = await s.read_line(f"{question} [y/N] ")
    return answer is not None and answer.strip().lower() in ("y", "yes")


async def cmd_adapter(s: Session, args: list[str]) -> None:
    if args[0].lower() != "reset":
        raise CommandError("usage: adapter reset")
    if not await _confirm(s, "reset the adapter? calls on it end"):
        await s.write("not reset")
        return
    await s.write(await s.app.adapter_reset(), style=Style.OK)


async def cmd_restart(s: Session, args: list[str]) -> None:
    if not await _confirm(s, "restart tipring? calls end"):
        await s.write("not restarted")
        return
    await s.write("restarting", style=Style.WARN)
    await s.app.restart()


async def cmd_passwd(s: Session, args: list[str]) -> None:
    await s.change_password()


async def cmd_color(s: Session, args: list[str]) -> None:
    if args:
        if args[0].lower() not in ("on", "off"):
            raise CommandError("usage: color [on|off]")
        s.color = args[0].lower() == "on"
    await s.write(f"color is {'on' if s.color else 'off'}", style=Style.OK)


async def cmd_logout(s: Session, args: list[str]) -> None:
    s.logout()


_CONFIG_HELP = "settings: show [PREFIX], get KEY, set KEY [VALUE], save"


def _table(*commands: Command) -> dict[str, Command]:
    return {c.name: c for c in commands}


COMMANDS = _table(
    Command("help", "help [COMMAND]", "this list, or one command's usage", cmd_help, 0, 1),
    Command("status", "status", "uptime, adapter, lines, calls, cloud, CPU, memory", cmd_status),
    Command("lines", "lines", "each port: kind, state, call", cmd_lines),
    Command("calls", "calls [N]", f"the last N calls (default {DEFAULT_CALLS})", cmd_calls, 0, 1),
    Command("call", "call ID", "one call: details and transcript", cmd_call, 1, 1),
    Command("monitor", "monitor", "live levels, ERLE and VAD per call; a key stops", cmd_monitor),
    Command("config", "config show|get|set|save", _CONFIG_HELP, cmd_config, 1, 3),
    Command("log", "log [N]", f"the last N log lines (default {DEFAULT_LOG_LINES})", cmd_log, 0, 1),
    Command("ring", "ring PORT", "ring the phone on an FXS port (a test call)", cmd_ring, 1, 1),
    Command("dial", "dial PORT NUMBER", "call NUMBER out on an FXO port", cmd_dial, 2, 2),
    Command("hangup", "hangup CALL", "end a running call", cmd_hangup, 1, 1),
    Command("adapter", "adapter reset", "reset the line adapter", cmd_adapter, 1, 1),
    Command("restart", "restart", "restart tipring", cmd_restart),
    Command("passwd", "passwd", "change the console password", cmd_passwd),
    Command("color", "color [on|off]", "ANSI colour for this session", cmd_color, 0, 1),
    Command("logout", "logout", "end the session (also Ctrl-D)", cmd_logout),
)
