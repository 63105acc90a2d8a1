"""`gateway.console`: the serial admin console, one actor per terminal. An operator with a
USB-serial cable and picocom (or minicom, screen) logs in with the console password and runs
commands: status, lines, calls, monitor, config, ring, dial, hangup, restart, ... (`help`).

Who talks to it: the app opens the port (`gateway.console_io.open_console_port`, or
`open_stdio_console` for development) and runs `Console(stream, app, config, auth).run` under
its supervisor, keeping `auth` across restarts. The console calls the app only through the
`ConsoleApp` Protocol (`gateway.console_app`). The pieces:

- `gateway.console_term`: the line discipline (echo, editing, history; bytes in, bytes out);
- `gateway.console_auth`: scrypt password hashes, backoff and lockout (`Authenticator`);
- `gateway.console_commands`: the command table and handlers; `gateway.console_views`: how
  snapshots are shown; `gateway.console_config`: the `[console]` settings.

Inside, one task reads the port into `_input_recv` (so that Ctrl-C can stop a `ring` or `dial`
while the command waits) and the main task runs the login and the session. A session ends on
`logout`, Ctrl-D, or `idle_logout_s` without a key (also in `monitor`: a screen left running
must not keep a session open for the next person at the terminal).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, assert_never

import trio

from gateway.console_app import ConsoleApp
from gateway.console_auth import Authenticator, LoginResult, Outcome, new_password_problem
from gateway.console_commands import (
    COMMANDS,
    CommandError,
    Style,
    complete,
    history_entry,
    run_command,
)
from gateway.console_config import ConsoleConfig
from gateway.console_io import ConsoleStream
from gateway.console_term import EditorEvent, EndOfInput, LineEditor, LineEntered
from gateway.console_views import clean, format_duration
from gateway.errors import GatewayError

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_BYTES = 1024  # a read: a burst of typing or a paste; a UART at 115200 brings ~11 kB/s
INPUT_BUFFER = 16  # reads queued while a command runs; then the port waits (type-ahead only)
CTRL_C = b"\x03"
PROMPT = "tipring> "
BANNER = "tipring admin console"


class _Hangup(Exception):
    """The terminal went away (end of input, or the port broke)."""


class _Idle(Exception):
    """No key for `idle_logout_s` in a session."""


class Console:
    """The console actor (see the module docstring). Construction does no I/O; `run` once per
    object (a restart makes a new `Console` with the same `auth`). `auth` is made from
    `config` if not given."""

    def __init__(self, stream: ConsoleStream, app: ConsoleApp, config: ConsoleConfig,
                 auth: Authenticator | None = None) -> None:  # fmt: skip
        self.stream = stream
        self.app = app
        self.config = config
        self.auth = auth or Authenticator(config.password_hash, config.policy)
        self.color = config.color
        self.monitor_refresh_s = config.monitor_refresh_s
        self._editor = LineEditor(complete)
        self._input_send, self._input_recv = trio.open_memory_channel[bytes](INPUT_BUFFER)
        self._last_input_s = 0.0
        self._logged_in = False
        self._logout = False
        self._interrupt: trio.CancelScope | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the terminal until it goes away (returns) or cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_input)
            task_status.started()
            try:
                while True:
                    await self._login()
                    await self._session()
            except _Hangup:
                log.info("console: the terminal went away")
            nursery.cancel_scope.cancel(reason="console ended")

    # --- the Session the commands see ---------------------------------------------------------

    async def write(self, *lines: str, style: Style = Style.PLAIN) -> None:
        # clean(): whatever a line holds (a log line, an app's message), it cannot drive the
        # terminal; our own escape sequences are added after it.
        text = "".join(f"{self._paint(clean(line), style)}\r\n" for line in lines)
        await self._send(text.encode())

    async def redraw(self, lines: list[str], previous: int) -> None:
        if previous:  # VT100: up `previous` lines, to column 0, erase to the end of the screen
            await self._send(f"\x1b[{previous}A\r\x1b[J".encode())
        await self.write(*lines)

    async def read_line(self, prompt: str, *, secret: bool = False) -> str | None:
        event = await self._read_event(prompt, secret=secret)
        return event.text if isinstance(event, LineEntered) else None

    async def wait_key(self, timeout_s: float) -> bool:
        with trio.move_on_at(min(trio.current_time() + timeout_s, self._idle_deadline())):
            await self._receive()
            return True
        if trio.current_time() >= self._idle_deadline():
            raise _Idle
        return False

    async def until_interrupted(self, work: Callable[[], Awaitable[T]]) -> T | None:
        with trio.CancelScope() as scope:
            self._interrupt = scope
            try:
                return await work()
            finally:
                self._interrupt = None
        return None

    async def change_password(self) -> None:
        current = await self.read_line("current password: ", secret=True)
        if current is None:
            return
        result = await self.auth.check(current)
        if result.outcome is not Outcome.OK:
            await self._refused(result)
            if result.outcome is Outcome.LOCKED:
                self.logout()
            return
        new = await self.read_line("new password: ", secret=True)
        if new is None:
            return
        if problem := new_password_problem(new):
            raise CommandError(f"password {problem}; nothing changed")
        if await self.read_line("new password again: ", secret=True) != new:
            raise CommandError("the two passwords differ; nothing changed")
        password_hash = await self.auth.hash(new)
        await self.app.set_console_password(password_hash)  # kept first: then used
        self.auth.replace(password_hash)
        log.info("console: password changed")
        await self.write("password changed", style=Style.OK)

    def logout(self) -> None:
        self._logout = True

    # --- login and session --------------------------------------------------------------------

    async def _login(self) -> None:
        self._logged_in = False
        await self.write("", BANNER, style=Style.HEADING)
        while True:
            event = await self._read_event("password: ", secret=True)
            if not isinstance(event, LineEntered) or not event.text:
                continue  # Enter, Ctrl-C, Ctrl-D: a fresh prompt; no try counted
            result = await self.auth.check(event.text)
            if result.outcome is Outcome.OK:
                log.info("console: logged in")
                return
            await self._refused(result)

    async def _refused(self, result: LoginResult) -> None:
        match result.outcome:
            case Outcome.WRONG:
                log.warning("console: wrong password (%d in a row)", self.auth.failures)
                await self.write("wrong password", style=Style.ERROR)
                await self._pause(result.wait_s)
            case Outcome.LOCKED:
                locked = format_duration(result.wait_s)
                await self.write(
                    f"too many wrong passwords: locked for {locked}", style=Style.ERROR
                )
            case Outcome.NO_PASSWORD:
                await self.write("no console password is set: run 'tipring passwd' on the box",
                                 style=Style.ERROR)  # fmt: skip
            case Outcome.OK:
                pass
            case _:
                assert_never(result.outcome)

    async def _pause(self, wait_s: float) -> None:
        """Wait `wait_s`, dropping what is typed meanwhile (a script must not queue tries)."""
        with trio.move_on_after(wait_s):
            while True:
                await self._receive()
        self._editor.discard_pending()

    async def _session(self) -> None:
        self._logged_in, self._logout = True, False
        self._last_input_s = trio.current_time()
        self._editor = LineEditor(complete)  # no history from the last person at the terminal
        await self.write("logged in; help lists the commands", style=Style.OK)
        try:
            while not self._logout:
                event = await self._read_event(PROMPT)
                if isinstance(event, EndOfInput):
                    break
                if isinstance(event, LineEntered) and event.text.strip():
                    self._editor.add_history(history_entry(self.app, event.text.strip()))
                    await self._dispatch(event.text)
        except _Idle:
            await self.write("", f"no key for {format_duration(self.config.idle_logout_s)}: "
                             "logged out", style=Style.WARN)  # fmt: skip
        log.info("console: logged out")
        await self.write("logged out")

    async def _dispatch(self, line: str) -> None:
        name = line.split()[0].lower()
        log.info("console: %s", name if name in COMMANDS else "(unknown command)")
        try:
            await run_command(self, line)
        except (_Hangup, _Idle):
            raise
        except GatewayError as exc:  # CommandError, ConfigError: the operator's to fix
            await self.write(f"error: {clean(str(exc))}", style=Style.ERROR)
        except Exception:
            # The command loop supervises its commands: a bug in one must not end the session.
            log.exception("console: %s failed", name)
            await self.write("error: the command failed inside tipring (the log has why)",
                             style=Style.ERROR)  # fmt: skip

    # --- bytes --------------------------------------------------------------------------------

    async def _read_event(self, prompt: str, *, secret: bool = False) -> EditorEvent:
        styled = self._paint(prompt, Style.HEADING) if not secret else prompt
        await self._send(self._editor.start(styled, secret=secret))
        echo, event = self._editor.feed(b"")
        while True:
            if echo:
                await self._send(echo)
            if event is not None:
                return event
            echo, event = self._editor.feed(await self._receive_until_idle())

    async def _receive_until_idle(self) -> bytes:
        if not self._logged_in:
            return await self._receive()
        with trio.move_on_at(self._idle_deadline()):
            return await self._receive()
        raise _Idle

    def _idle_deadline(self) -> float:
        if not self._logged_in:
            return float("inf")
        return self._last_input_s + self.config.idle_logout_s

    async def _receive(self) -> bytes:
        try:
            data = await self._input_recv.receive()
        except trio.EndOfChannel:
            raise _Hangup from None
        self._last_input_s = trio.current_time()
        return data

    async def _read_input(self) -> None:
        """The one reader of the port: passes bytes on; Ctrl-C while a command waits under
        `until_interrupted` cancels that wait instead."""
        async with self._input_send:
            while True:
                try:
                    data = bytes(await self.stream.receive_some(READ_BYTES))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                if self._interrupt is not None and CTRL_C in data:
                    self._interrupt.cancel(reason="Ctrl-C")
                    data = data.replace(CTRL_C, b"")
                if data:
                    await self._input_send.send(data)

    async def _send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _Hangup from None

    def _paint(self, text: str, style: Style) -> str:
        if not self.color or style is Style.PLAIN or not text:
            return text
        return f"\x1b[{style.value}m{text}\x1b[0m"
