"""Where the admin console's bytes come from: `ConsoleStream` (what `gateway.console.Console`
reads and writes), `open_console_port` (a UART or USB-serial adapter, through
`firmware_bridge.serial_io`: pyserial sets 8N1 raw, trio does the I/O on the descriptor) and
`open_stdio_console` (this process's terminal, raw, for development); `open_console` picks
one by the `console.device` setting. Tests hand the console a pty's stream or an in-memory one.

End of input (the device went away, the pty master closed) reads as `b""`; a write that
cannot be done raises `trio.BrokenResourceError`. Either ends the console's run, and the app
reopens the port.
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import trio

from firmware_bridge.errors import LinkBroken
from firmware_bridge.serial_io import SerialStream, open_serial

DEFAULT_DEVICE = "/dev/serial0"  # the Pi's primary UART, GPIO14/15 (research note §3.4)
DEFAULT_BAUDRATE = 115200
STDIO = "stdio"  # `console.device` naming this process's terminal


class ConsoleStream(Protocol):
    """A byte stream to a terminal (`trio.abc.Stream` has this shape, and `FdStream`)."""

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """The next bytes typed (b"": the terminal is gone)."""
        ...

    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...


@dataclass(eq=False)
class SerialConsoleStream:
    """A `SerialStream` as a `ConsoleStream`: `LinkBroken` becomes end of input or a broken
    stream."""

    port: SerialStream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await self.port.receive()
        except LinkBroken:
            return b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.port.send(bytes(data))
        except LinkBroken as exc:
            raise trio.BrokenResourceError(str(exc)) from exc


@asynccontextmanager
async def open_console_port(
    device: str = DEFAULT_DEVICE, baudrate: int = DEFAULT_BAUDRATE
) -> AsyncIterator[ConsoleStream]:
    """The console on serial `device` at `baudrate` 8N1, raw, exclusive (a stray getty or
    picocom on the Pi's side cannot share it). `LinkBroken` if it cannot be opened."""
    async with open_serial(device, baudrate) as port:
        yield SerialConsoleStream(port)


@asynccontextmanager
async def open_stdio_console(
    in_fd: int | None = None, out_fd: int | None = None
) -> AsyncIterator[ConsoleStream]:
    """The console on this process's terminal (stdin/stdout, or `in_fd`/`out_fd`), raw while
    it runs (Ctrl-C reaches the console as a key, not as SIGINT); the terminal's settings are
    restored on exit."""
    in_fd = sys.stdin.fileno() if in_fd is None else in_fd
    out_fd = sys.stdout.fileno() if out_fd is None else out_fd
    saved = termios.tcgetattr(in_fd) if os.isatty(in_fd) else None
    if saved is not None:
        tty.setraw(in_fd)
    try:
        receive = trio.lowlevel.FdStream(os.dup(in_fd))
        send = trio.lowlevel.FdStream(os.dup(out_fd))
        async with receive, send:
            yield trio.StapledStream(send, receive)
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)


def open_console(device: str, baudrate: int) -> AbstractAsyncContextManager[ConsoleStream]:
    """`open_stdio_console()` for `device` "stdio", else `open_console_port(device, baudrate)`
    (what `console.device` and `console.baudrate` name)."""
    return open_stdio_console() if device == STDIO else open_console_port(device, baudrate)
