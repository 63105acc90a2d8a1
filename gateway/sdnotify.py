"""The systemd notify protocol (sd_notify(3)), spoken on the socket itself: no python-systemd.

`Notifier` owns the datagram socket to the service manager. The app (`gateway.cli`) tells it when
the gateway is ready (`ready`), what it is doing (`status`, shown by `systemctl status`), that it
is stopping, and that a slow start needs more time (`extend_timeout`). `watchdog_pinger` runs in
the app's nursery and sends `WATCHDOG=1` from the trio loop itself, so a wedged loop stops the
pings and systemd (`WatchdogSec=`) restarts us.

Outside systemd (no `NOTIFY_SOCKET`) every call is a cheap no-op. A send never raises and never
blocks: the first failure is logged at WARNING, all are counted in `Notifier.errors`. The
environment variables are left in place (sd_notify's `unset_environment` is not needed: we
start no children that should talk to systemd as us, and tests read the same environment).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import trio

log = logging.getLogger(__name__)

USEC_PER_S = 1_000_000


def _socket_address(value: str | None) -> str | None:
    """The `NOTIFY_SOCKET` value as an AF_UNIX address; `@name` is Linux's abstract namespace."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """`WATCHDOG_USEC` if meant for this process (`WATCHDOG_PID` absent or ours), else None."""
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    try:
        usec = int(usec_text)
        if pid_text and int(pid_text) != os.getpid():
            return None  # set for our parent (a wrapper script exec'd without clearing it)
    except ValueError:
        log.warning("systemd watchdog: WATCHDOG_USEC=%r WATCHDOG_PID=%r unreadable: no watchdog",
                    usec_text, pid_text)  # fmt: skip
        return None
    return usec if usec > 0 else None


def _field(value: str | int) -> str:
    """One assignment's value: the protocol separates assignments by newlines."""
    return str(value).replace("\r", " ").replace("\n", " ")


class Notifier:
    """Sends sd_notify datagrams to `address` (an AF_UNIX path, or "\\0name" for the abstract
    namespace); None disables it. `watchdog_usec` is systemd's watchdog period in microseconds.
    Construction does no I/O: the socket is opened on the first send and kept."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec if address is not None else None
        self._sock: socket.socket | None = None
        self.errors = 0  # sends that failed (socket gone, queue full, ...)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """A notifier for `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` in `environ`."""
        return cls(_socket_address(environ.get("NOTIFY_SOCKET")), _watchdog_usec(environ))

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to talk to."""
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """systemd's watchdog period in seconds (ping at least twice as often), or None."""
        return None if self._watchdog_usec is None else self._watchdog_usec / USEC_PER_S

    def notify(self, **fields: str | int) -> bool:
        """Sends one datagram `KEY=value\\n...` (e.g. `READY=1`); whether it was sent."""
        if self._address is None or not fields:
            return False
        data = "\n".join(f"{key}={_field(value)}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)  # never stall the trio loop on systemd
            self._sock.sendto(data.encode(), self._address)
        except (OSError, ValueError) as exc:  # ValueError: a NUL inside a path
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.errors == 1:
            log.warning("systemd notify to %r failed (%s); further failures only counted",
                        self._address, exc)  # fmt: skip

    def ready(self, status: str | None = None) -> bool:
        """Startup is finished (`READY=1`), with an optional status line."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """The one-line status `systemctl status` shows (newlines become spaces)."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (`STOPPING=1`), with an optional status line."""
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=status)

    def reloading(self) -> bool:
        """A configuration reload has begun (`Type=notify-reload` wants `MONOTONIC_USEC` too);
        send `ready()` when it is done."""
        # time.monotonic is CLOCK_MONOTONIC on Linux, the clock systemd compares against.
        return self.notify(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def watchdog(self) -> bool:
        """Keeps systemd's watchdog from firing (`WATCHDOG=1`)."""
        return self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Asks for `seconds` more for the current start or stop step (`EXTEND_TIMEOUT_USEC`)."""
        return self.notify(EXTEND_TIMEOUT_USEC=max(0, round(seconds * USEC_PER_S)))

    def close(self) -> None:
        """Closes the socket (a later send reopens it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def watchdog_pinger(
    notifier: Notifier, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Sends `WATCHDOG=1` every half watchdog period, forever; returns at once without one.

    The pings come from the trio loop on purpose: if the loop wedges, they stop, and systemd
    restarts the service. Half the period leaves a whole half for a late wake-up.
    """
    interval_s = notifier.watchdog_interval_s
    task_status.started()
    if interval_s is None:
        return
    log.debug("systemd watchdog: pinging every %.1f s", interval_s / 2)
    while True:
        notifier.watchdog()
        await trio.sleep(interval_s / 2)
