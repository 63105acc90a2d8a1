"""A console under test and the terminal that drives it.

- `console_on_pty`: the real path: a raw pty pair (`firmware_bridge.sim.pty.RawPty`), the
  console on the slave end opened with pyserial (`open_console_port`, as on /dev/serial0),
  and the test on the master end typing like picocom does (CR for Enter, DEL for Backspace).
  On trio's real clock (pty I/O and MockClock's autojump race), with a `fast_config`.
- `console_in_memory`: the console on `trio.testing.memory_stream_pair`, scrypt run inline:
  deterministic under `autojump_clock`, for the timing tests.

`Terminal` keeps everything the console sent (`transcript`) for the no-secret checks.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio
import trio.testing

from firmware_bridge.sim.pty import RawPty
from gateway.console import PROMPT, Console
from gateway.console_app import ConsoleApp
from gateway.console_auth import Authenticator, hash_password
from gateway.console_config import ConsoleConfig
from gateway.console_io import ConsoleStream, open_console_port

T = TypeVar("T")
PASSWORD = "correct horse 42"
# A cheap scrypt cost for tests (16 x 1 x 1: microseconds); production uses 2**14 x 8 x 1.
TEST_HASH = hash_password(PASSWORD, n=16, r=1, p=1)
EXPECT_S = 10.0  # generous: two shared cores, and a pyserial open


def fast_config(**overrides: Any) -> ConsoleConfig:
    """The console's settings for real-clock tests: no backoff wait, a quick monitor."""
    values: dict[str, Any] = {"password_hash": TEST_HASH, "backoff_base_s": 0.0,
                              "monitor_refresh_s": 0.05}  # fmt: skip
    return ConsoleConfig(**(values | overrides))


async def inline(fn: Callable[..., T], *args: Any) -> T:
    """Run scrypt in the trio thread: MockClock's autojump must not run ahead meanwhile."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


@dataclass(eq=False)
class Terminal:
    """The operator's side: `send` keys, `expect` output."""

    stream: ConsoleStream
    transcript: bytearray = field(default_factory=bytearray)
    _unread: bytearray = field(default_factory=bytearray)

    @property
    def text(self) -> str:
        return self.transcript.decode("utf-8")

    async def send(self, keys: str | bytes) -> None:
        await self.stream.send_all(keys.encode() if isinstance(keys, str) else keys)

    async def expect(self, text: str, timeout_s: float = EXPECT_S) -> str:
        """Everything up to and including `text`, once it came."""
        want = text.encode()
        with trio.fail_after(timeout_s):
            while want not in self._unread:
                data = await self.stream.receive_some(4096)
                assert data, f"the console closed; waiting for {text!r} after {self._unread!r}"
                self.transcript += data
                self._unread += data
        end = self._unread.index(want) + len(want)
        got = bytes(self._unread[:end])
        del self._unread[:end]
        return got.decode("utf-8")

    async def command(self, line: str) -> str:
        """Type `line` and Enter; returns what the command wrote (up to the next prompt)."""
        await self.send(f"{line}\r")
        await self.expect(f"{line}\r\n")
        return (await self.expect(PROMPT))[: -len(PROMPT)]

    async def login(self, password: str = PASSWORD) -> None:
        await self.expect("password: ")
        await self.send(f"{password}\r")
        await self.expect("logged in")
        await self.expect(PROMPT)


@asynccontextmanager
async def console_on_pty(app: ConsoleApp, config: ConsoleConfig | None = None,
                         auth: Authenticator | None = None
                         ) -> AsyncIterator[tuple[Terminal, Console]]:  # fmt: skip
    config = config or fast_config()
    with RawPty.open() as pty:
        async with (
            open_console_port(pty.slave_path, 115200) as stream,
            trio.lowlevel.FdStream(os.dup(pty.master_fd)) as master,
            trio.open_nursery() as nursery,
        ):
            console = Console(stream, app, config, auth)
            await nursery.start(console.run)
            yield Terminal(master), console
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def console_in_memory(app: ConsoleApp, config: ConsoleConfig | None = None
                            ) -> AsyncIterator[tuple[Terminal, Console]]:  # fmt: skip
    config = config or ConsoleConfig(password_hash=TEST_HASH)
    ours, theirs = trio.testing.memory_stream_pair()
    auth = Authenticator(config.password_hash, config.policy, run_sync=inline)
    async with trio.open_nursery() as nursery:
        console = Console(theirs, app, config, auth)
        await nursery.start(console.run)
        yield Terminal(ours), console
        nursery.cancel_scope.cancel()
