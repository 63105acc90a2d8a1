"""The admin console over a real pty, driven the way picocom drives it (CR for Enter, DEL for
Backspace, VT100 arrow keys), against `FakeConsoleApp`: login, lockout, every command, and no
secret in anything the console sends."""

from __future__ import annotations

import os
import re
import termios

import trio

from firmware_bridge.sim.pty import RawPty
from gateway.console import Console
from gateway.console_auth import parse_password_hash, verify_password
from gateway.console_io import open_stdio_console
from tests.gateway.console_fake import HOSTILE, SECRET, FakeConsoleApp
from tests.gateway.console_rig import PASSWORD, Terminal, console_on_pty, fast_config

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def assert_clean(text: str) -> None:
    """No secret, no password, and no escape sequence but our own colour/cursor ones."""
    assert SECRET not in text
    assert PASSWORD not in text
    assert HOSTILE not in text
    assert "\x1b]" not in text
    assert "\x1b" not in ANSI.sub("", text)


async def test_login_and_status() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.send("\r")  # picocom connected late: Enter brings a fresh prompt
        await term.login()
        out = await term.command("status")
        assert "uptime   1d 02:03:04" in out
        assert "adapter  up: tipring adapter fw 1.2.0 on /dev/ttyACM0" in out
        assert "lines    2 of 2 up" in out
        assert "calls    1 now, 17 today" in out
        assert "cpu      2.5 %" in out
        assert "memory   150.0 MiB of 4.0 GiB" in out
        assert_clean(term.text)


async def test_wrong_passwords_then_lockout_refuses_even_the_right_one() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app, fast_config(max_failures=3, lockout_s=600)) as (term, _):
        for _ in range(2):
            await term.expect("password: ")
            await term.send("guess\r")
            await term.expect("wrong password")
        await term.send("guess\r")
        await term.expect("too many wrong passwords: locked for 10:00")
        await term.send(f"{PASSWORD}\r")
        await term.expect("locked for 9:5")  # still locked; the password is not even checked
        assert "logged in" not in term.text
        assert app.asked == []
        assert "guess" not in term.text  # passwords are not echoed


async def test_every_read_only_command() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        out = await term.command("help")
        for name in ("help", "status", "lines", "calls [N]", "call ID", "monitor", "config",
                     "log [N]", "ring PORT", "dial PORT NUMBER", "hangup CALL", "adapter reset",
                     "restart", "passwd", "color", "logout"):  # fmt: skip
            assert f"  {name}" in out
        assert "usage: dial PORT NUMBER" in await term.command("help dial")
        out = await term.command("lines")
        assert re.search(r"1 +fxo +in_call +c-0042 +caller", out)
        assert re.search(r"PORT +KIND +STATE +CALL +DETAIL +NOISE +V +ERL +DELAY +ALARMS", out)
        assert re.search(r"0 +fxs +idle +- +- +- +- +- +- +-\r?\n", out)  # nothing measured
        assert re.search(r"caller +-63\.4 +8 +11\.2 +2\.8 +ECHO PATH CHANGED", out)
        out = await term.command("calls")
        assert out.count("inb") == 3
        assert "running" in out
        assert "1:35" in out
        assert out.count("c-00") == 3
        assert ("recent_calls", 10) in app.asked
        assert (await term.command("calls 2")).count("c-00") == 2
        out = await term.command("call c-0041")
        assert "turn latency p50  612 ms" in out
        assert "[0:04] caller: Is the shop open" in out
        assert "caller hung up" in out
        assert "no call 'c-0999'" in await term.command("call c-0999")
        out = await term.command("log 3")
        assert out.count("INFO gateway.line") == 3
        assert ("recent_log", 3) in app.asked
        assert "caller ID name ?]0;pwned??[2J" in out  # the hostile name, defused
        assert_clean(term.text)


async def test_wrong_arguments_get_clear_errors() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        cases = {
            "stauts": "unknown command 'stauts'; did you mean status?",
            "calls 0": "N must be a whole number 1..200, got '0'",
            "calls x y": "usage: calls [N]",
            "call ../../etc/passwd": "'../../etc/passwd' is not a call id",
            "ring": "usage: ring PORT",
            "ring 9": "there is no port 9 (ports: 0, 1)",
            "ring 99": "PORT must be a port number 0..15",
            "ring 1": "port 1 is not an FXS port",  # the app's own error
            "dial 1 555-1234": "NUMBER may hold 0-9 * # A-D",
            "dial 1 '5551234; reboot'": "NUMBER may hold 0-9 * # A-D",
            "hangup c-0001": "no call 'c-0001' is running",
            "adapter explode": "usage: adapter reset",
            "config": "usage: config show|get|set|save",
            "config drop x": "usage: config show [PREFIX] | get KEY | set KEY [VALUE] | save",
            "config get Realtime;ls": "'Realtime;ls' is not a setting key",
            "config get realtime.nope": "realtime.nope is not a setting",
            "color maybe": "usage: color [on|off]",
            "status 'open": "cannot read that line: No closing quotation",
            "!sh": "unknown command '!sh' (help lists them)",
            "exit": "unknown command 'exit'; did you mean logout?",
        }
        for line, error in cases.items():
            out = await term.command(line)
            assert f"error: {error}" in out, (line, out)
        assert "ring" in app.names()
        assert "dial" not in app.names()
        assert "hangup" in app.names()
        assert "adapter_reset" not in app.names()


async def test_config_show_get_set_save_and_secrets_masked() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        out = await term.command("config show")
        assert "realtime.api_key = ****" in out
        assert 'realtime.provider = "openai"' in out
        assert "realtime.api_key = ****" in await term.command("config get realtime.api_key")
        assert "realtime.provider" in await term.command("config show realtime.")
        out = await term.command("config set line.fxo.answer_after_rings 99")
        assert "error: line.fxo.answer_after_rings must be 1..20, got '99'" in out
        out = await term.command("config set line.fxo.answer_after_rings 3")
        assert "line.fxo.answer_after_rings = 3  (not saved yet)" in out
        assert "saved to /etc/tipring/tipring.toml" in await term.command("config save")
        assert ("config_set", "line.fxo.answer_after_rings", "3") in app.asked
        assert app.names()[-1] == "config_save"
        # A secret is typed at a hidden prompt: never echoed, never in the history.
        await term.send("config set realtime.api_key\r")
        await term.expect("realtime.api_key (not shown): ")
        await term.send("sk-NEW-typed-secret\r")
        await term.expect("realtime.api_key = ****")
        await term.expect("tipring> ")
        assert app.config["realtime.api_key"] == "sk-NEW-typed-secret"
        assert "sk-NEW" not in term.text
        # Typed inline it is echoed as typed, but the history keeps it masked.
        await term.command("config set realtime.api_key sk-INLINE")
        await term.send("\x1b[A")
        await term.expect("config set realtime.api_key ****")
        await term.send("\x15\r")
        assert SECRET not in term.text
        assert "sk-NEW" not in term.text
        assert_clean(term.text.replace("sk-INLINE", ""))


async def test_monitor_refreshes_until_a_key() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        await term.send("monitor\r")
        await term.expect("monitor: 1 call; any key stops")
        first = await term.expect("talking")
        assert re.search(r"c-0042 +1 +0:13 +-23\.5 #{6}\.{4} +-18\.0 #{7}\.{3} +- +11\.5 +2\.8 "
                         r"+- +talking", first)  # fmt: skip
        await term.expect("\x1b[3A\r\x1b[J")  # redrawn in place
        second = await term.expect("talking")
        assert re.search(r" 32\.0 +11\.5 +2\.8 +speech +talking", second)
        await term.send("q")
        await term.expect("tipring> ")
        served = app.levels_served
        await trio.sleep(0.2)
        assert app.levels_served == served >= 2  # stopped
        assert "lines" in await term.command("help")  # the q was the key, not typed text


async def test_ring_dial_hangup_and_ctrl_c_stops_waiting() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        assert "answered: call c-0043 runs" in await term.command("ring 0")
        assert "answered: call c-0043 runs" in await term.command("dial 1 5551234#")
        assert "busy: busy tone after 3 s" in await term.command("dial 1 5550000")
        assert "call c-0042 hung up" in await term.command("hangup c-0042")
        assert [a for a in app.asked if a[0] in ("ring", "dial", "hangup")] == [
            ("ring", 0),
            ("dial", 1, "5551234#"),
            ("dial", 1, "5550000"),
            ("hangup", "c-0042"),
        ]
        app.dial_wait = True
        await term.send("dial 1 123\r")
        await term.expect("dialling 123 on port 1; Ctrl-C stops")
        await term.send("\x03")
        await term.expect("stopped waiting; the attempt is abandoned")
        await term.expect("tipring> ")


async def test_adapter_reset_and_restart_ask_first() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        await term.send("adapter reset\r")
        await term.expect("reset the adapter? calls on it end [y/N] ")
        await term.send("\r")
        await term.expect("not reset")
        await term.send("adapter reset\r")
        await term.expect("[y/N] ")
        await term.send("y\r")
        await term.expect("adapter reset: HELLO again, firmware 1.2.0")
        await term.send("restart\r")
        await term.expect("restart tipring? calls end [y/N] ")
        await term.send("yes\r")
        await term.expect("restarting")
        await term.expect("tipring> ")
        assert app.names() == ["adapter_reset", "restart"]
        assert app.restarted


async def test_passwd_changes_the_password() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, console):
        await term.login()
        await term.send("passwd\r")
        await term.expect("current password: ")
        await term.send(f"{PASSWORD}\r")
        await term.expect("new password: ")
        await term.send("short\r")
        await term.expect("error: password too short: at least 8 characters; nothing changed")
        await term.send("passwd\r")
        await term.expect("current password: ")
        await term.send(f"{PASSWORD}\rnew secret 99\rnew secret 99\r")
        await term.expect("password changed")
        assert verify_password("new secret 99", parse_password_hash(app.password_hash))
        await term.send("logout\r")
        await term.expect("logged out")
        await term.login("new secret 99")
        assert "new secret 99" not in term.text
        assert console.auth.failures == 0


async def test_editing_keys_colour_logout_and_ctrl_d() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        await term.send("linex\x7fs\r")  # picocom's Backspace is DEL
        await term.expect("PORT")
        await term.send("sta\t\r")  # Tab completes
        await term.expect("uptime")
        await term.send("\x1b[A\x1b[A\r")  # up, up: lines again
        await term.expect("PORT")
        assert "\x1b[" not in await term.command("color")
        await term.send("color on\r")
        await term.expect("\x1b[32mcolor is on\x1b[0m")
        await term.expect("\x1b[1mtipring> \x1b[0m")
        await term.send("logout\r")
        await term.expect("logged out")
        await term.login()
        await term.send("\x04")
        await term.expect("logged out")
        await term.expect("password: ")
        assert app.names().count("lines") >= 2
        assert app.names().count("status") == 1


async def test_a_failing_app_call_is_reported_and_the_session_goes_on() -> None:
    app = FakeConsoleApp()
    async with console_on_pty(app) as (term, _):
        await term.login()
        app.fail_next = RuntimeError(f"bug holding {SECRET}")
        out = await term.command("status")
        assert "error: the command failed inside tipring (the log has why)" in out
        assert "uptime" in await term.command("status")
        assert_clean(term.text)


async def test_stdio_console_is_raw_while_it_runs_and_restored_after() -> None:
    with RawPty.open() as pty:
        cooked = termios.tcgetattr(pty.slave_fd)
        cooked[3] |= termios.ECHO | termios.ICANON | termios.ISIG  # as a login shell has it
        termios.tcsetattr(pty.slave_fd, termios.TCSANOW, cooked)
        cooked = termios.tcgetattr(pty.slave_fd)  # as the kernel keeps it
        async with (
            open_stdio_console(pty.slave_fd, pty.slave_fd) as stream,
            trio.lowlevel.FdStream(os.dup(pty.master_fd)) as master,
            trio.open_nursery() as nursery,
        ):
            assert not termios.tcgetattr(pty.slave_fd)[3] & (termios.ECHO | termios.ISIG)
            await nursery.start(Console(stream, FakeConsoleApp(), fast_config()).run)
            term = Terminal(master)
            await term.login()
            await term.send("stat\x03")  # Ctrl-C is a key here, not SIGINT
            await term.expect("^C")
            assert "uptime" in await term.command("status")
            nursery.cancel_scope.cancel()
        assert termios.tcgetattr(pty.slave_fd) == cooked
