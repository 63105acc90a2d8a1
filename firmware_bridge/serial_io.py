"""A serial port as a trio byte stream: `open_serial` and `SerialStream`.

Owns the one way `firmware_bridge` opens a device: pyserial sets the line up (a device path
such as `/dev/tipring-adapter`, or any pyserial URL that has a file descriptor, such as
`socket://host:port`), then trio does the I/O on a duplicate of its descriptor
(`trio.lowlevel.FdStream`: no threads, clean cancellation; research note §4.5). The link
actor (`firmware_bridge.link`) reads and writes through it. Every failure comes out as
`LinkBroken`: the device is gone or unusable, and the owner reconnects.
"""

from __future__ import annotations

import os
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import serial
import trio

from firmware_bridge.errors import LinkBroken

READ_BYTES = 4096  # one read: a few dozen frames; a pty or CDC-ACM hands over what it has


@dataclass(eq=False)
class SerialStream:
    """Bytes to and from one open device. `receive` and `send` raise `LinkBroken` when the
    device went away (end of file, EIO, a closed descriptor)."""

    device: str
    _stream: trio.lowlevel.FdStream
    serial: serial.Serial

    async def receive(self) -> bytes:
        """The next bytes that arrived (never empty)."""
        try:
            data = await self._stream.receive_some(READ_BYTES)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise LinkBroken(self.device, f"read failed: {exc}") from exc
        if not data:
            raise LinkBroken(self.device, "the device went away (end of file)")
        return data

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise LinkBroken(self.device, f"write failed: {exc}") from exc


@asynccontextmanager
async def open_serial(device: str, baudrate: int) -> AsyncIterator[SerialStream]:
    """Open `device` raw (8N1, no XON/XOFF or RTS/CTS; `exclusive` on a device path, so a
    stray picocom cannot grab it) and yield its stream; closes both on exit."""
    options: dict[str, object] = {} if "://" in device else {"exclusive": True}
    try:
        ser = serial.serial_for_url(
            device, baudrate=baudrate, timeout=0, xonxoff=False, rtscts=False, **options
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkBroken(device, f"cannot open: {exc}") from exc
    try:
        try:
            fd = ser.fileno()
            _read_blocks(fd)
            dup = os.dup(fd)
        except (OSError, ValueError, termios.error, serial.SerialException) as exc:
            # loop:// and friends have no descriptor for trio to wait on
            raise LinkBroken(device, f"cannot use: {exc}") from exc
        async with trio.lowlevel.FdStream(dup) as stream:
            yield SerialStream(device, stream, ser)
    finally:
        ser.close()


def _read_blocks(fd: int) -> None:
    """VMIN=1 on a tty: pyserial leaves VMIN=0 VTIME=0, where an empty non-blocking read
    returns 0 bytes (which reads as end of file) instead of EAGAIN."""
    if os.isatty(fd):
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
