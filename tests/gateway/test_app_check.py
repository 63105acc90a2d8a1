"""`tipring check` against the simulated adapter, the simulated voice modem and the local
realtime server (all real: ptys and websockets), and against what is missing or wrong."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import gateway.app_check
from firmware_bridge.port import PortKind
from firmware_bridge.sim.adapter import FIRMWARE, AdapterSimulator
from firmware_bridge.sim.line import LineModel
from firmware_bridge.sim.modem import ModemSimulator
from firmware_bridge.sim.modem_profiles import CX93001, ModemProfile
from gateway.app_check import Check, collect_checks, run_check
from gateway.realtime.local import Faults, LocalRealtimeServer
from tests.gateway.app_rig import SECRET, write_config

TEST_S = 12.0  # the simulators answer in well under a second; a cold numba cache compiles first
PORTS = 2


def text(checks: list[Check]) -> str:
    out = "\n".join(f"{c.status:<4}  {c.name}  {c.detail}" for c in checks)
    print(out)
    return out


def by_name(checks: list[Check], prefix: str) -> Check:
    (found,) = [c for c in checks if c.name.startswith(prefix)]
    return found


def set_adapter_kind(config: Path, kind: str) -> None:
    config.write_text(config.read_text().replace("[adapter]\n", f'[adapter]\nkind = "{kind}"\n'))


def closed_port_url() -> str:
    """A loopback websocket URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/realtime"


@asynccontextmanager
async def far_side(
    faults: Faults | None = None, modem: ModemProfile | None = None
) -> AsyncIterator[tuple[str, str]]:
    """The simulated adapter (or a voice modem of chipset `modem`) on a pty and the local
    realtime server: (device path, server URL)."""
    lines = [LineModel(PortKind.FXO, port=i, seed=i) for i in range(1 if modem else PORTS)]
    sim = AdapterSimulator(lines) if modem is None else ModemSimulator(modem, lines[0])
    server = LocalRealtimeServer(faults=faults)
    async with trio.open_nursery() as nursery:
        path = await nursery.start(sim.run)
        url = await nursery.start(server.run)
        yield path, url
        nursery.cancel_scope.cancel()


async def test_a_ready_box_is_all_ok_and_says_what_it_found(tmp_path: Path) -> None:
    with trio.fail_after(TEST_S):
        async with far_side() as (path, url):
            config = write_config(tmp_path, path, url, console="stdio")
            checks = await collect_checks(str(config))
    out = text(checks)
    assert [c.status for c in checks if c.status not in ("OK", "WARN")] == []
    assert checks[0] == Check("config", "OK", f"{config}: tipring adapter, agent profiles: default")
    key = tmp_path / "secrets" / "local.key"
    assert by_name(checks, "API key (default)") == Check("API key (default)", "OK", f"file {key}")
    adapter = by_name(checks, "adapter")
    assert adapter.name == f"adapter ({path})"
    assert adapter.status == "OK"
    assert f"firmware {FIRMWARE}" in adapter.detail
    assert f"{PORTS} ports (fxo fxo)" in adapter.detail
    cloud = by_name(checks, "cloud")
    assert (cloud.name, cloud.status) == ("cloud (default)", "OK")
    assert cloud.detail.startswith(f"{url}: session up in ")
    console = by_name(checks, "console")
    assert console.status == "WARN"
    assert "no password is set" in console.detail
    assert "tipring passwd" in console.detail
    assert by_name(checks, "call store").status == "WARN"  # tmp/data is made at start
    assert SECRET not in out


async def test_a_voice_modem_is_probed_with_its_identification(tmp_path: Path) -> None:
    with trio.fail_after(TEST_S):
        async with far_side(modem=CX93001) as (path, url):
            config = write_config(tmp_path, path, url, console=None)
            set_adapter_kind(config, "modem")
            checks = await collect_checks(str(config))
    text(checks)
    assert checks[0].detail.endswith("modem adapter, agent profiles: default")
    adapter = by_name(checks, "adapter")
    assert (adapter.name, adapter.status) == (f"adapter ({path})", "OK")
    assert adapter.detail.startswith(f"voice modem {CX93001.manufacturer} {CX93001.model}")
    assert f"({CX93001.name}), " in adapter.detail
    assert adapter.detail.endswith(" at 8 kHz")
    assert by_name(checks, "console") == Check("console", "OK", "disabled")
    assert by_name(checks, "cloud").status == "OK"


async def test_a_modem_without_voice_fails_saying_so(tmp_path: Path) -> None:
    data_only = dataclasses.replace(CX93001, fclasses="0,1,2")
    with trio.fail_after(TEST_S):
        async with far_side(modem=data_only) as (path, url):
            config = write_config(tmp_path, path, url, console=None)
            set_adapter_kind(config, "modem")
            checks = await collect_checks(str(config))
    text(checks)
    adapter = by_name(checks, "adapter")
    assert (adapter.name, adapter.status) == (f"adapter ({path})", "FAIL")
    assert "no voice class 8" in adapter.detail
    assert by_name(checks, "cloud").status == "OK"  # the other checks still ran


async def test_a_refused_session_fails_naming_the_endpoint_not_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with trio.fail_after(TEST_S):
        async with far_side(Faults(reject_status=401)) as (path, url):
            config = write_config(tmp_path, path, url, console=None)
            checks = await collect_checks(str(config))
    out = text(checks)
    assert by_name(checks, "adapter").status == "OK"
    cloud = by_name(checks, "cloud")
    assert cloud.status == "FAIL"
    assert cloud.detail.startswith(f"{url}: ")
    assert "the API key was refused (HTTP 401" in cloud.detail
    captured = capsys.readouterr()
    for where in (out, captured.out, captured.err, caplog.text):
        assert SECRET not in where


def test_nothing_there_fails_adapter_and_cloud_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.app_check, "ADAPTER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(gateway.app_check, "CLOUD_TIMEOUT_S", 1.0)  # it retries refused connects
    device = tmp_path / "no-such-adapter"
    url = closed_port_url()
    config = write_config(tmp_path, str(device), url, console=None)
    assert run_check(str(config)) == 1
    out = capsys.readouterr().out
    print(out)
    lines = out.splitlines()
    assert lines[0].startswith("OK    config ")
    adapter = next(line for line in lines if f"adapter ({device})" in line)
    assert adapter.startswith("FAIL  ")
    assert "no answer within 0.5 s" in adapter
    cloud = next(line for line in lines if "cloud (default)" in line)
    assert cloud.startswith("FAIL  ")
    assert f"{url}: no session within 1 s" in cloud
    assert SECRET not in out


async def test_a_bad_config_fails_first_and_probes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, str(tmp_path / "adapter"), closed_port_url(), console=None)
    set_adapter_kind(config, "fax")
    with trio.fail_after(TEST_S):
        checks = await collect_checks(str(config))
    text(checks)
    assert [(c.name, c.status) for c in checks] == [
        ("config", "FAIL"), ("adapter", "FAIL"), ("cloud", "FAIL")
    ]  # fmt: skip
    assert "adapter.kind 'fax' is not one of tipring, modem" in checks[0].detail
    assert "not probed" in checks[1].detail
    assert "not tried" in checks[2].detail


async def test_a_key_file_others_can_read_fails_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, str(tmp_path / "adapter"), closed_port_url(), console=None)
    key = tmp_path / "secrets" / "local.key"
    key.chmod(0o644)
    with trio.fail_after(TEST_S):
        checks = await collect_checks(str(config))
    out = text(checks)
    assert (checks[0].name, checks[0].status) == ("config", "FAIL")
    assert str(key) in checks[0].detail
    assert "0644" in checks[0].detail
    assert f"chmod 600 {key}" in checks[0].detail
    assert SECRET not in out


def test_json_output_lists_the_checks(tmp_path: Path) -> None:
    config = write_config(tmp_path, str(tmp_path / "adapter"), closed_port_url(), console=None)
    set_adapter_kind(config, "fax")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("config", "FAIL"), ("adapter", "FAIL"), ("cloud", "FAIL")
    ]  # fmt: skip
    assert "adapter.kind" in report["checks"][0]["detail"]
    assert all(set(c) == {"name", "status", "detail"} for c in report["checks"])
