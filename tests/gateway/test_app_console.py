"""The serial console of a running `tipring run`, over a real pty the way picocom drives it:
the box opens the pty's slave end as its console UART (`console.device`), the test types on
the master end. Against the real appliance: the simulated adapter with looping callers and
the local realtime server (`tests/gateway/app_rig.py`). Every command of the issue, a
lockout, and nothing secret in anything the console sent or the log."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import trio

from firmware_bridge.sim.pty import RawPty
from gateway.app import RESTART_EXIT
from gateway.app_run import EXIT_CONFIG
from gateway.console_auth import hash_password
from tests.gateway.app_rig import SECRET, Box, far_side, tipring_run, write_config
from tests.gateway.console_rig import PASSWORD, Terminal

ANSWER_S = 40.0
CALL_ID = re.compile(r"\b[01]-[0-9a-f]{12}\b")


async def _until_lines(term: Terminal, pattern: str, timeout_s: float = 20.0) -> str:
    """`lines` again until its table matches `pattern` (a regex, per line)."""
    with trio.fail_after(timeout_s):
        while True:
            out = await term.command("lines")
            if re.search(pattern, out, re.MULTILINE):
                return out
            await trio.sleep(0.3)


async def test_console_of_the_running_box(tmp_path: Path) -> None:
    password_hash = hash_password(PASSWORD, n=1024, r=8, p=1)
    with RawPty.open() as pty:
        async with far_side(2, seconds=60.0) as (_, sim, url, adapter), \
                trio.lowlevel.FdStream(os.dup(pty.master_fd)) as master:  # fmt: skip
            config = write_config(tmp_path, adapter, url, pty.slave_path, password_hash)
            async with tipring_run(config, tmp_path) as box:
                await box.until_note("READY=1")
                term = Terminal(master)
                try:
                    await _session(term, box, sim, config)
                except BaseException:  # what the terminal showed and the box logged, then why
                    print(term.text[-3000:], box.log()[-3000:], sep="\n----- log -----\n")
                    raise
    assert SECRET not in term.text
    assert PASSWORD not in term.text
    assert SECRET not in box.log()
    assert PASSWORD not in box.log()


async def _session(term: Terminal, box: Box, sim: object, config: Path) -> None:
    await term.send("\r")
    for _ in range(2):
        await term.expect("password: ")
        await term.send("wrong guess\r")
        await term.expect("wrong password")
    await term.expect("password: ")
    await term.send("wrong guess\r")  # max_failures = 3: then a 1 s lockout
    await term.expect("too many wrong passwords: locked for")
    await trio.sleep(1.2)
    await term.login()
    out = await term.command("status")
    assert "adapter  up: tipring adapter fw " in out
    assert "lines    2 of 2 up" in out
    assert "cloud    ok: local " in out
    await _until_lines(term, r"^0\s+fxo\s+idle.*\n1\s+fxo\s+idle")
    await _calls_and_monitor(term, sim)
    await _config(term, config)
    out = await term.command("log 500")
    assert re.search(r"^\d\d:\d\d:\d\d INFO gateway.app: tipring ready: 2/2 lines up", out,
                     re.MULTILINE), out  # fmt: skip
    assert re.search(r"INFO gateway.call: line \d: call [01]-\w+ over after", out)
    out = await term.command("ring 0")
    assert "not an FXS port" in out
    await term.send("adapter reset\r")
    await term.expect("[y/N] ")
    await term.send("y\r")
    await term.expect("reset sent")
    await _until_lines(term, r"^0\s+fxo\s+(idle|connected)")
    await term.send("restart\r")
    await term.expect("[y/N] ")
    await term.send("y\r")
    with trio.fail_after(20.0):
        assert await box.proc.wait() == RESTART_EXIT


async def _calls_and_monitor(term: Terminal, sim: object) -> None:
    from gateway.bench.calls import Child

    assert isinstance(sim, Child)
    await sim.say("ring")
    with trio.fail_after(ANSWER_S):
        assert await sim.line() == "answered"
    out = await _until_lines(term, r"^0\s+fxo\s+connected.*\n1\s+fxo\s+connected")
    call_id = CALL_ID.search(out)
    assert call_id is not None, out
    assert re.search(r"DETAIL +NOISE +V +ERL +DELAY +ALARMS", out), out
    # line health: the off-hook loop (8 V) and a noise floor (the simulated line: -65 dBm0)
    await _until_lines(term, rf"^{call_id.group(0)[0]}\s+fxo\s+connected.* -6\d\.\d +8 ")
    await trio.sleep(2.0)  # the greeting and a turn: transcript lines in the store
    out = await term.command("calls")
    assert call_id.group(0) in out
    out = await term.command(f"call {call_id.group(0)}")
    assert "agent" in out
    assert "default" in out
    await term.send("monitor\r")
    screen = await term.expect("any key stops")
    await trio.sleep(1.0)
    await term.send("q")
    await term.expect("tipring> ")
    assert "monitor: 2 calls" in screen
    out = await term.command(f"hangup {call_id.group(0)}")
    assert "hung up" in out or "ended" in out, out
    port = call_id.group(0)[0]
    await _until_lines(term, rf"^{port}\s+fxo\s+idle")
    out = await term.command(f"call {call_id.group(0)}")  # the line's figures at the call's end
    assert re.search(r"^line noise +-6\d\.\d dBm0\r?$", out, re.MULTILINE), out
    assert re.search(r"^loop +8\.0 V\r?$", out, re.MULTILINE), out


async def _config(term: Terminal, path: Path) -> None:
    out = await term.command("config get realtime.provider")
    assert 'realtime.provider = "local"' in out
    out = await term.command("config show")
    assert "console.password_hash = ****" in out
    out = await term.command("config set service.drain_s 100")
    assert "service.drain_s must be 0..40, got 100" in out
    out = await term.command("config set service.drain_s 5")
    assert "service.drain_s = 5  (not saved yet)" in out
    out = await term.command("config set console.password_hash x")
    assert "passwd" in out
    out = await term.command("config save")
    assert str(path) in out
    text = await trio.Path(path).read_text()
    assert text.startswith("# the test rig's config")  # the edit kept the rest of the file
    assert tomllib.loads(text)["service"]["drain_s"] == 5
    out = await term.command("config get service.drain_s")
    assert "takes effect after restart" in out


def test_the_unit_restarts_a_console_restart_but_not_a_bad_config() -> None:
    unit = (Path(__file__).parents[2] / "deploy_pi" / "tipring.service").read_text()
    assert "\nRestart=on-failure\n" in unit  # RESTART_EXIT is a failure: restarted
    assert RESTART_EXIT not in (0, EXIT_CONFIG)
    assert f"\nRestartPreventExitStatus={EXIT_CONFIG}\n" in unit
