"""`python -m firmware_bridge.sim adapter` as a person runs it: a process, a pty, a call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from firmware_bridge.link import AdapterLink
from firmware_bridge.port import CallerIdReported, PortReady, RingStarted

SIM = [sys.executable, "-m", "firmware_bridge.sim"]
START_S = 20.0  # a cold numba cache compiles the line model's kernels first


def test_help_lists_both_devices_and_bad_arguments_are_named() -> None:
    done = subprocess.run([*SIM, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "adapter" in done.stdout
    assert "modem" in done.stdout
    bad = subprocess.run([*SIM, "adapter", "--fxo", "0", "--fxs", "0"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1
    assert "want 1..16 ports, got --fxo 0 --fxs 0" in bad.stderr


def test_a_wav_that_is_not_8k_mono_16_bit_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav")
    done = subprocess.run([*SIM, "adapter", "--incoming-call", "5551234", "--far-audio",
                           str(junk)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "junk.wav: cannot read it as a WAV file" in done.stderr


async def test_the_simulator_process_rings_the_link_behind_its_stable_name(tmp_path: Path) -> None:
    name = str(tmp_path / "tipring-adapter")
    args = [*SIM, "adapter", "--link", name, "--incoming-call", "5551234567", "--name", "BOB",
            "--after", "0.5", "--far-audio", "tests/data/speech/en_gb_male.wav"]  # fmt: skip
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        with trio.fail_after(START_S):
            first = await proc.stdout.receive_some(200)
        assert b"tipring adapter (2 ports: fxo fxs) on /dev/pts/" in first
        assert f"(link {name})".encode() in first
        link = AdapterLink(name)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(START_S):
                await nursery.start(link.run)
                events = [await link.ports[0].events.receive() for _ in range(3)]
            assert isinstance(events[0], PortReady)
            assert not any(isinstance(e, CallerIdReported) for e in events)  # adapter: audio
            assert any(isinstance(e, RingStarted) for e in events)
            nursery.cancel_scope.cancel()
    finally:
        proc.kill()
        await proc.wait()
