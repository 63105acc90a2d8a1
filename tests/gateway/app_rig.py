"""A whole appliance in processes, for the `tipring run` tests: the local realtime server
(`tipring local-server`), the simulated adapter with N looping callers on a pty
(`gateway.bench.calls_sim`), a config file pointing at both (the console on a pty of ours),
and `tipring run --config` itself with NOTIFY_SOCKET on a datagram socket we read: the
systemd side of the notify protocol.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from gateway.bench.calls import Child, child
from gateway.simcall_scenario import LOOP_SCRIPT_FILE

SECRET = "sk-live-TIPRING-do-not-log-5e1c0d2b"  # the API key file's content
START_S = 60.0  # kernels load from the cache; a cold cache compiles first


def write_config(tmp: Path, adapter: str, url: str, console: str | None,
                 password_hash: str = "", extra: str = "") -> Path:  # fmt: skip
    """tipring.toml for the rig; the API key in a 0600 file (the local server ignores it)."""
    key = tmp / "secrets" / "local.key"
    key.parent.mkdir(mode=0o700, exist_ok=True)
    key.write_text(SECRET + "\n")
    key.chmod(0o600)
    console_table = (f'[console]\ndevice = "{console}"\npassword_hash = "{password_hash}"\n'
                     "backoff_base_s = 0.05\nbackoff_max_s = 0.2\nmax_failures = 3\n"
                     "lockout_s = 1\n" if console else "[console]\nenabled = false\n")  # fmt: skip
    text = f"""# the test rig's config
[adapter]
device = "{adapter}"

[line.fxo]
answer_after_rings = 2

[realtime]
provider = "local"
url = "{url}"
api_key_file = "{key}"
instructions = "You answer the phone for a test."

[tools.builtin]
end_call = true

[call]
voicemail_dir = "voicemail"
hold_timeout_s = 5

{console_table}
[store]
path = "{tmp / "data" / "calls.db"}"

[service]
drain_s = 8
restart_min_s = 0.2
{extra}"""
    path = tmp / "tipring.toml"
    path.write_text(text)
    return path


@dataclass(eq=False)
class Box:
    """`tipring run` as a child process: its notify datagrams (`notes`) and its stdout."""

    proc: trio.Process
    notify: trio.socket.SocketType
    log_path: Path
    notes: list[str] = field(default_factory=list)

    async def until_note(self, prefix: str, timeout_s: float = START_S) -> str:
        with trio.fail_after(timeout_s):
            while True:
                for note in self.notes:
                    if any(line.startswith(prefix) for line in note.splitlines()):
                        return note
                await trio.sleep(0.02)

    async def read_notes(self) -> None:
        """Keep the socket drained (systemd reads every datagram; an unread queue of 10
        makes the box's sends fail)."""
        while True:
            self.notes.append((await self.notify.recv(4096)).decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@asynccontextmanager
async def tipring_run(config: Path, tmp: Path, name: str = "box") -> AsyncIterator[Box]:
    sock_path = tmp / f"{name}-notify.sock"
    sock_path.unlink(missing_ok=True)
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(str(sock_path))
    log_path = tmp / f"{name}.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    with notify, log_path.open("wb") as log:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            async with trio.open_nursery() as nursery:
                box = Box(proc, notify, log_path)
                nursery.start_soon(box.read_notes)
                yield box
                nursery.cancel_scope.cancel()
        finally:
            proc.kill()
            with trio.move_on_after(5.0, shield=True):
                await proc.wait()


@asynccontextmanager
async def far_side(lines: int, seconds: float) -> AsyncIterator[tuple[Child, Child, str, str]]:
    """The local server and the simulated adapter: (server, sim, url, adapter path)."""
    server_args = [sys.executable, "-m", "gateway", "local-server", "--port", "0",
                   "--script", str(LOOP_SCRIPT_FILE)]  # fmt: skip
    sim_args = [sys.executable, "-m", "gateway.bench.calls_sim", "--lines", str(lines),
                "--seconds", str(seconds), "--stagger-ms", "100"]  # fmt: skip
    async with child(server_args) as server, child(sim_args) as sim:
        with trio.fail_after(START_S):
            url = (await server.line()).rsplit(" on ", 1)[1]
            path = (await sim.line()).rsplit(" on ", 1)[1]
        yield server, sim, url, path
