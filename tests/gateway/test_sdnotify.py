"""gateway.sdnotify: the exact datagrams on a real AF_UNIX socket (a path and the abstract
namespace), disabled without NOTIFY_SOCKET, WATCHDOG_PID of another process, a missing socket
that only counts, and the watchdog pinger's period on the mock clock."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from gateway.sdnotify import Notifier, watchdog_pinger


class Manager:
    """The service manager's end: a bound datagram socket and what arrived on it."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def received(self) -> list[bytes]:
        got: list[bytes] = []
        while True:
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                return got


@pytest.fixture
def path_manager(tmp_path: Path) -> Iterator[tuple[Manager, str]]:
    path = str(tmp_path / "notify")
    manager = Manager(path)
    yield manager, path
    manager.sock.close()


@pytest.fixture
def abstract_manager() -> Iterator[tuple[Manager, str]]:
    name = f"tipring-test-sdnotify-{os.getpid()}-{os.urandom(4).hex()}"
    manager = Manager("\0" + name)
    yield manager, "@" + name
    manager.sock.close()


def test_ready_status_datagrams_on_a_path(path_manager: tuple[Manager, str]) -> None:
    manager, path = path_manager
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("serving 2 lines")
    assert notifier.status("line 1: call\nanswered")
    assert notifier.watchdog()
    assert notifier.extend_timeout(1.5)
    assert notifier.stopping("bye")
    assert manager.received() == [
        b"READY=1\nSTATUS=serving 2 lines",
        b"STATUS=line 1: call answered",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=1500000",
        b"STOPPING=1\nSTATUS=bye",
    ]
    assert notifier.errors == 0
    notifier.close()


def test_abstract_namespace_socket(abstract_manager: tuple[Manager, str]) -> None:
    manager, at_name = abstract_manager
    notifier = Notifier.from_env({"NOTIFY_SOCKET": at_name})
    assert notifier.ready()
    assert notifier.notify(READY=1, MAINPID=42)
    assert manager.received() == [b"READY=1", b"READY=1\nMAINPID=42"]
    notifier.close()


def test_reloading_carries_monotonic_usec(abstract_manager: tuple[Manager, str]) -> None:
    manager, at_name = abstract_manager
    notifier = Notifier.from_env({"NOTIFY_SOCKET": at_name})
    assert notifier.reloading()
    [datagram] = manager.received()
    reloading, monotonic = datagram.split(b"\n")
    assert reloading == b"RELOADING=1"
    assert monotonic.startswith(b"MONOTONIC_USEC=")
    assert int(monotonic.removeprefix(b"MONOTONIC_USEC=")) > 0
    notifier.close()


def test_disabled_without_notify_socket() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None  # nobody to ping
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert notifier.errors == 0


def test_watchdog_interval_for_this_process() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env).watchdog_interval_s == 30.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(mine).watchdog_interval_s == 30.0


def test_watchdog_pid_of_another_process_disables_watchdog() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    notifier = Notifier.from_env(env)
    assert notifier.enabled
    assert notifier.watchdog_interval_s is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_unusable_watchdog_usec_means_no_watchdog(usec: str) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": usec})
    assert notifier.watchdog_interval_s is None


def test_from_env_leaves_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@tipring-nobody")
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = Notifier.from_env()
    notifier.watchdog()
    notifier.close()
    assert os.environ["NOTIFY_SOCKET"] == "@tipring-nobody"
    assert os.environ["WATCHDOG_USEC"] == "1000000"


def test_missing_socket_counts_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="gateway.sdnotify"):
        assert not notifier.ready("x")
        assert not notifier.watchdog()
        assert not notifier.status("y")
    assert notifier.errors == 3
    assert len(caplog.records) == 1
    notifier.close()


def test_bad_address_does_not_raise() -> None:
    for address in ["/no\0such", "/" + "x" * 200]:  # NUL inside a path; longer than sun_path
        notifier = Notifier(address)
        assert not notifier.notify(READY=1)
        assert notifier.errors == 1
        notifier.close()


class TimedNotifier(Notifier):
    """A real notifier that also notes the trio time of each watchdog ping."""

    def __init__(self, address: str, watchdog_usec: int) -> None:
        super().__init__(address, watchdog_usec)
        self.pinged_at: list[float] = []

    def watchdog(self) -> bool:
        self.pinged_at.append(trio.current_time())
        return super().watchdog()


async def test_pinger_pings_every_half_interval(
    autojump_clock: MockClock, abstract_manager: tuple[Manager, str]
) -> None:
    manager, at_name = abstract_manager
    notifier = TimedNotifier("\0" + at_name[1:], watchdog_usec=10_000_000)
    start = trio.current_time()
    with trio.move_on_after(21.0):
        async with trio.open_nursery() as nursery:
            await nursery.start(watchdog_pinger, notifier)
    assert [t - start for t in notifier.pinged_at] == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0])
    assert manager.received() == [b"WATCHDOG=1"] * 5
    notifier.close()


async def test_pinger_without_watchdog_returns_at_once(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    with trio.fail_after(1.0):
        async with trio.open_nursery() as nursery:
            await nursery.start(watchdog_pinger, Notifier(None, 10_000_000))
            await nursery.start(watchdog_pinger, Notifier("/run/x"))
    assert trio.current_time() == start
