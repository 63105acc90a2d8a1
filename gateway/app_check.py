"""`tipring check`: is this box ready to take calls? It reads the config as `tipring run`
would (every key checked, API key files read with their 0600 mode checked), looks at the
console password and the call store's directory, probes the adapter (the tipring adapter's
HELLO / HELLO_ACK, or a voice modem's ATI identification) and opens a realtime session per
distinct agent endpoint (the server's session.created and our formats accepted), then prints
one OK / WARN / FAIL line per check with the reason, or JSON with `--json`.

Run it with the service stopped: the running gateway holds the adapter's port exclusively
(the adapter check then says so). Exit status: 0 all OK (warnings allowed), 1 a check failed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trio
from numpy.typing import NDArray

from firmware_bridge.errors import BridgeError
from firmware_bridge.link import AdapterLink
from firmware_bridge.modem import VoiceModem
from gateway.call_config import AgentProfile
from gateway.config import AppConfig, load_config
from gateway.config_tables import AdapterConfig
from gateway.errors import GatewayError
from gateway.realtime import RealtimeEvent, RealtimeSession, SessionFailed
from gateway.realtime.profiles import connection_url

ADAPTER_TIMEOUT_S = 8.0  # HELLO/ATI answered within this (a replugged USB device needs ~2 s)
CLOUD_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # "OK", "WARN", "FAIL"
    detail: str


def run_check(config_path: str, json_output: bool = False) -> int:
    """The whole check; prints the list and returns the exit status."""
    checks = trio.run(collect_checks, config_path)
    if json_output:
        print(json.dumps({"ok": _ok(checks), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
    return 0 if _ok(checks) else 1


def _ok(checks: list[Check]) -> bool:
    return all(c.status != "FAIL" for c in checks)


async def collect_checks(config_path: str) -> list[Check]:
    try:
        config = load_config(config_path)
    except GatewayError as exc:
        return [Check("config", "FAIL", str(exc)),
                Check("adapter", "FAIL", "not probed: the config did not load"),
                Check("cloud", "FAIL", "not tried: the config did not load")]  # fmt: skip
    checks = [Check("config", "OK", f"{config_path}: {_summary(config)}")]
    checks += _local_checks(config)
    checks.append(await _adapter_check(config.adapter))
    checks += await _cloud_checks(config)
    return checks


def _summary(config: AppConfig) -> str:
    profiles = ", ".join(sorted(config.profiles))
    return f"{config.adapter.kind} adapter, agent profiles: {profiles}"


def _local_checks(config: AppConfig) -> list[Check]:
    out = []
    for name, profile in sorted(config.profiles.items()):
        key = profile.api_key
        where = key.source if key is not None else "none (the local server needs none)"
        out.append(Check(f"API key ({name})", "OK", where))
    console = config.console
    if console is None:
        out.append(Check("console", "OK", "disabled"))
    elif not console.password_hash:
        out.append(Check("console", "WARN", f"on {console.device}, but no password is set: "
                         "nobody can log in; run: sudo tipring passwd"))  # fmt: skip
    else:
        out.append(Check("console", "OK", f"on {console.device} at {console.baudrate} baud"))
    out.append(_store_check(config.store.path))
    return out


def _store_check(path: Path) -> Check:
    directory = path.parent
    if not directory.is_dir():
        return Check("call store", "WARN", f"{directory} does not exist yet (created at start)")
    if not os.access(directory, os.W_OK | os.X_OK):
        return Check("call store", "FAIL", f"{directory} is not writable by this user")
    return Check("call store", "OK", f"{path}")


async def _within(timeout_s: float, probe: Callable[[], Awaitable[str]]) -> str | None:
    with trio.move_on_after(timeout_s):
        return await probe()
    return None


async def _adapter_check(cfg: AdapterConfig) -> Check:
    name = f"adapter ({cfg.device})"
    refused = ""
    try:
        if cfg.kind == "modem":
            modem = VoiceModem(cfg.device, baudrate=cfg.baudrate)
            detail = await _probe(modem.run, lambda: modem.last_ready is not None,
                                  lambda: _identified(modem))  # fmt: skip
            why = ""  # the modem's actor logs why it could not use the device
        else:
            link = AdapterLink(cfg.device, baudrate=cfg.baudrate)
            detail = await _probe(link.run, lambda: link.linked, lambda: _linked(link))
            why = link.last_error
    except* BridgeError as group:  # the device answered but cannot serve: a modem without voice
        refused = str(_first(group))
    if refused:
        return Check(name, "FAIL", refused)
    if detail is None:
        return Check(name, "FAIL", f"no answer within {ADAPTER_TIMEOUT_S:g} s"
                     + (f": {why}" if why else "") + _busy_hint(why))  # fmt: skip
    return Check(name, "OK", detail)


def _first(group: BaseExceptionGroup[BridgeError]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):  # nested: the actor's nursery in ours
        first = first.exceptions[0]
    return first


def _busy_hint(why: str) -> str:
    if "busy" in why.lower() or "lock" in why.lower():
        return " (is tipring running? sudo systemctl stop tipring first)"
    return ""


def _identified(modem: VoiceModem) -> str:
    ident = modem.identity
    if ident is None:
        return "voice modem ready"
    return (f"voice modem {ident.manufacturer} {ident.model} ({ident.chipset}), "
            f"{ident.voice_format.name or ident.voice_format.code} at 8 kHz")  # fmt: skip


def _linked(link: AdapterLink) -> str:
    info = link.info
    if info is None:
        return "linked"
    kinds = " ".join(p.kind.value for p in info.ports)
    return f"firmware {info.firmware}, serial {info.serial}, {len(info.ports)} ports ({kinds})"


async def _probe(run: Callable[[], Awaitable[None]], up: Callable[[], bool],
                 describe: Callable[[], str]) -> str | None:  # fmt: skip
    async def wait() -> str:
        while not up():  # noqa: ASYNC110 (the device's actor sets it)
            await trio.sleep(0.05)
        return describe()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        detail = await _within(ADAPTER_TIMEOUT_S, wait)
        nursery.cancel_scope.cancel()
    return detail


async def _cloud_checks(config: AppConfig) -> list[Check]:
    seen: dict[str, str] = {}
    out = []
    for name, profile in sorted(config.profiles.items()):
        settings = profile.settings
        try:
            endpoint = connection_url(settings).split("?")[0]
        except GatewayError as exc:
            out.append(Check(f"cloud ({name})", "FAIL", str(exc)))
            continue
        if endpoint in seen:
            continue
        seen[endpoint] = name
        out.append(await _cloud_check(name, endpoint, profile))
    return out


async def _cloud_check(name: str, endpoint: str, profile: AgentProfile) -> Check:
    frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](1)
    events_send, events_recv = trio.open_memory_channel[RealtimeEvent](1024)
    session = RealtimeSession(profile.settings, profile.api_key, frames_recv, events_send)
    began = trio.current_time()
    label = f"cloud ({name})"
    problem = ""
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(CLOUD_TIMEOUT_S):
                await nursery.start(session.run)
            nursery.cancel_scope.cancel()
    except* SessionFailed as group:
        problem = str(group.exceptions[0])
    except* trio.TooSlowError:
        problem = f"no session within {CLOUD_TIMEOUT_S:g} s"
    finally:
        frames_send.close()
        events_recv.close()
    if problem:
        return Check(label, "FAIL", f"{endpoint}: {problem}")
    ms = 1000.0 * (trio.current_time() - began)
    model = profile.settings.model or "default model"
    return Check(label, "OK", f"{endpoint}: session up in {ms:.0f} ms ({model})")
