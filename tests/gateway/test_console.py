"""The console actor on trio's clock (in-memory stream, `autojump_clock`): backoff timing,
lockout expiry, idle logout, end of input; and random input that never crashes it."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from gateway.console import Console
from gateway.console_auth import Authenticator
from gateway.console_config import ConsoleConfig
from tests.gateway.console_fake import HOSTILE, SECRET, FakeConsoleApp
from tests.gateway.console_rig import PASSWORD, TEST_HASH, Terminal, console_in_memory, inline


async def test_wrong_passwords_back_off_doubling_then_lock(autojump_clock: trio.abc.Clock) -> None:
    app = FakeConsoleApp()
    async with console_in_memory(app) as (term, _):
        await term.expect("password: ")
        waits = []
        for _ in range(4):
            await term.send("not it at all\r")
            await term.expect("wrong password")
            wrong_at = trio.current_time()
            await term.expect("password: ")
            waits.append(trio.current_time() - wrong_at)
        assert waits == pytest.approx([1.0, 2.0, 4.0, 8.0])
        await term.send("not it either\r")
        await term.expect("too many wrong passwords: locked for 15:00")
        await trio.sleep(899)
        await term.send(f"{PASSWORD}\r")
        await term.expect("locked for 0:01")
        await trio.sleep(1)
        await term.send(f"{PASSWORD}\r")
        await term.expect("logged in")


async def test_keys_typed_during_a_backoff_do_not_count(autojump_clock: trio.abc.Clock) -> None:
    app = FakeConsoleApp()
    async with console_in_memory(app) as (term, console):
        await term.expect("password: ")
        await term.send(f"wrong one\r{PASSWORD}\r")  # a script queueing its next try
        await term.expect("wrong password")
        await term.expect("password: ")
        await trio.sleep(5)
        assert "logged in" not in term.text
        assert console.auth.failures == 1
        await term.send(f"{PASSWORD}\r")
        await term.expect("logged in")


async def test_idle_session_logs_out_and_keys_keep_it_alive(autojump_clock: trio.abc.Clock) -> None:
    app = FakeConsoleApp()
    async with console_in_memory(app) as (term, _):
        await term.login()
        await trio.sleep(500)
        await term.send("x")  # any key counts
        await trio.sleep(500)
        await term.send("\x15status\r")  # Ctrl-U: the x goes
        await term.expect("uptime")
        key_at = trio.current_time()
        await term.expect("no key for 10:00: logged out", timeout_s=700)
        assert trio.current_time() - key_at == pytest.approx(600)
        await term.expect("password: ")


async def test_monitor_left_running_still_logs_out(autojump_clock: trio.abc.Clock) -> None:
    app = FakeConsoleApp()
    async with console_in_memory(app) as (term, _):
        await term.login()
        await term.send("monitor\r")
        started = trio.current_time()
        await term.expect("logged out", timeout_s=700)
        assert trio.current_time() - started == pytest.approx(600)
        assert app.levels_served == pytest.approx(600 / 0.5, abs=2)


async def test_no_password_set_lets_nobody_in(autojump_clock: trio.abc.Clock) -> None:
    app = FakeConsoleApp()
    async with console_in_memory(app, ConsoleConfig(password_hash="")) as (term, _):
        await term.expect("password: ")
        await term.send("\r\x03anything\r")  # Enter and Ctrl-C only bring a new prompt
        await term.expect("no console password is set: run 'tipring passwd' on the box")
        await term.expect("password: ")
        assert term.text.count("password: ") == 4


async def test_end_of_input_ends_the_run(autojump_clock: trio.abc.Clock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    console = Console(theirs, FakeConsoleApp(), ConsoleConfig(password_hash=TEST_HASH))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(console.run)
            await ours.send_all(b"half a pass")
            await ours.send_stream.aclose()
    # run() returned by itself: the nursery closed without being cancelled


CHUNKS = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"status\r", b"monitor\r", b"config show\r", b"config set realtime.api_key\r",
                     b"calls 3\r", b"call c-0041\r", b"log 2\r", b"lines\r", b"\x1b[A", b"\r",
                     b"\x03", b"\x04", b"\x15", b"y\r", b"passwd\r", b"color on\r", b"help\r",
                     b"logout\r", b"\x1b[", "é日".encode(), b"\xff\xfe"]),
)  # fmt: skip


@given(st.lists(CHUNKS, max_size=30))
def test_random_input_never_crashes_the_console(chunks: list[bytes]) -> None:
    app = FakeConsoleApp()
    ours, theirs = trio.testing.memory_stream_pair()
    config = ConsoleConfig(password_hash=TEST_HASH)
    console = Console(theirs, app, config, Authenticator(TEST_HASH, config.policy, inline))
    term = Terminal(ours)

    async def type_then_hang_up() -> None:
        await term.send(f"{PASSWORD}\r".encode() + b"".join(chunks))
        await ours.send_stream.aclose()

    async def collect() -> None:
        while data := await ours.receive_some(4096):
            term.transcript += data

    async def main() -> None:
        with trio.fail_after(10_000):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(type_then_hang_up)
                nursery.start_soon(collect)
                await console.run()  # returns at the end of input; raises if anything broke
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    text = term.text  # the console only ever sends whole UTF-8 characters
    assert "logged in" in text
    assert SECRET not in text
    assert HOSTILE not in text
