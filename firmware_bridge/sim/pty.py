"""Pseudo-terminals for the device simulators: `RawPty` (a raw pty pair) and `point_link` /
`remove_link` (a stable name for it, the way udev gives `/dev/tipring-adapter`).

The simulator plays the device on the master end; the host opens `slave_path` (or the link)
with pyserial like a real `/dev/ttyACM0`. Both ends are raw (`tty.setraw`): no echo, no CR/LF
translation, no XON/XOFF, so every byte value crosses unchanged. Ptys ignore the baud rate
and have no modem-control lines (TIOCMBIS/TIOCMBIC -> ENOTTY): DTR cannot be simulated here.

The simulator keeps its own descriptor on the slave end open while it runs: then the master
never reads EIO (or polls readable forever) when the host closes the port between
reconnects, and the pts number stays ours. Closing the master (`RawPty.close`) is what makes
the host see the device vanish: its reads return b'' (or EIO), its writes EIO.
"""

from __future__ import annotations

import os
import tty
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RawPty", "point_link", "remove_link"]


@dataclass(eq=False)
class RawPty:
    """One raw pty pair. `master_fd` is non-blocking (for trio's `wait_readable`)."""

    master_fd: int
    slave_fd: int
    slave_path: str

    @classmethod
    def open(cls) -> RawPty:
        """A new pair, both ends raw."""
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            return cls(master, slave, os.ttyname(slave))
        except BaseException:
            os.close(master)
            os.close(slave)
            raise

    def close(self) -> None:
        """Close both ends: the host sees a hang-up. Safe to call twice."""
        for fd in (self.master_fd, self.slave_fd):
            if fd >= 0:
                os.close(fd)
        self.master_fd = self.slave_fd = -1

    def __enter__(self) -> RawPty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def point_link(link: str | Path, target: str) -> None:
    """Make `link` a symlink to `target`, replacing any old one atomically (the host never
    sees the name missing while it moves)."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def remove_link(link: str | Path) -> None:
    """Remove the symlink `link` if it is there (the device was unplugged)."""
    Path(link).unlink(missing_ok=True)
