"""`AppConsole`: the `gateway.console_app.ConsoleApp` the serial console talks to, over the
running `gateway.app.App`: snapshots of the box, its lines and calls (the call store for the
records, the pipeline for the live levels), the log ring, line commands (ring, dial, hangup),
and the config file (`config set` checks the whole config with the new value, as `tipring run`
would read it, before staging it; `config save` edits the file in place by
`gateway.config_edit`, keeping the operator's comments; changes apply after a restart).
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import trio

from firmware_bridge.link import AdapterLink
from firmware_bridge.port import PortKind
from gateway.app import RESTART_EXIT, App
from gateway.config import SECRET_KEY, flatten, parse
from gateway.config_edit import toml_value, write_settings
from gateway.console_app import (
    MASK,
    CallDetail,
    CallLevels,
    CallSummary,
    ConfigEntry,
    DialResult,
    LineInfo,
    StatusSnapshot,
    TranscriptLine,
)
from gateway.console_passwd import write_password_hash
from gateway.errors import ConfigError, GatewayError
from gateway.line import FxoLine, FxsLine
from gateway.line_call import OutboundCall
from gateway.line_health import line_facts
from gateway.store_types import StoredCall

UNSAVED, AFTER_RESTART = "not saved yet", "takes effect after restart"


def _version() -> str:
    try:
        return version("tipring")
    except PackageNotFoundError:
        return "unknown"


class AppConsole:
    """See the module docstring. One per console actor; the staged config lives in `App`."""

    def __init__(self, app: App) -> None:
        self.app = app

    # --- the box ----------------------------------------------------------------------------

    def status(self) -> StatusSnapshot:
        app, device = self.app, self.app.device
        adapter, up = f"{app.config.adapter.kind} on {app.config.adapter.device}", False
        if isinstance(device, AdapterLink):
            up = device.linked
            if device.info is not None:
                adapter = f"tipring adapter fw {device.info.firmware} on {device.device}"
            if not up and device.last_error:
                adapter += f" (down: {device.last_error})"
        elif device is not None:
            up = app.lines_up() > 0
        settings = app.config.profiles["default"].settings
        record = app.last_record
        cloud_ok = record is None or not record.ended_by.startswith("cloud unavailable")
        cloud = f"{settings.provider} {settings.model}: {len(app.pipeline.active)} session(s)"
        if not cloud_ok and record is not None:
            cloud += f"; last call: {record.ended_by}"
        return StatusSnapshot(_version(), trio.current_time() - app.started_s, adapter, up,
                              app.lines_up(), len(app.lines), len(app.pipeline.active),
                              app.calls_today, cloud, cloud_ok, app.cpu_percent, _rss_bytes(),
                              _ram_bytes())  # fmt: skip

    def lines(self) -> Sequence[LineInfo]:
        out = []
        for port, actor in sorted(self.app.lines.items()):
            spec = actor.call
            detail = ""
            if spec is not None and spec.callerid is not None:
                detail = f"caller {spec.callerid.number or ''} {spec.callerid.name or ''}".strip()
            elif spec is not None and spec.number:
                detail = f"dialled {spec.number}"
            health = actor.health.snapshot()
            out.append(LineInfo(port, actor.port.kind.value, actor.state.value,
                                spec.call_id if spec else "", detail, health.noise_dbm0,
                                health.loop_volts, health.call.erl_db,
                                health.call.echo_delay_ms, health.alarms))  # fmt: skip
        return out

    async def recent_calls(self, limit: int) -> Sequence[CallSummary]:
        return [_summary(call) for call in await self.app.recorder.recent(limit)]

    async def call_detail(self, call_id: str) -> CallDetail | None:
        call = await self.app.recorder.call(call_id)
        if call is None:
            return None
        facts: list[tuple[str, str]] = [("agent", call.profile), ("status", str(call.status))]
        for key in ("turn_latency_ms", "barge_in_stop_ms", "erle_db", "frames_late", "reconnects"):
            if key in call.metrics:
                facts.append((key, str(call.metrics[key])))
        facts += [
            (f"tool {t.name}", f"{t.outcome} in {t.duration_ms:.0f} ms") for t in call.tool_calls
        ]
        facts += line_facts(call.line_health)
        if call.dtmf:
            facts.append(("digits", call.dtmf))
        if call.voicemail:
            facts.append(("voicemail", call.voicemail))
        lines = tuple(TranscriptLine((line.at - call.started_at).total_seconds(), line.who,
                                     line.text) for line in call.transcript)  # fmt: skip
        return CallDetail(_summary(call), tuple(facts), lines)

    def live_calls(self) -> Sequence[CallLevels]:
        now_s = trio.current_time()
        out = []
        for call in self.app.pipeline.active.values():
            audio, stats = call.audio, call.audio.ec.stats
            erl = audio.line_meter.erl_db
            out.append(CallLevels(call.spec.call_id, call.spec.port, audio.levels.caller_dbm0,
                                  audio.levels.agent_dbm0,
                                  stats.erle_db if stats.converged else None,
                                  audio.vad.speaking, audio.playout.speaking,
                                  now_s - call.timeline.start_s, erl,
                                  stats.delay_ms if stats.converged else None))  # fmt: skip
        return out

    def recent_log(self, limit: int) -> Sequence[str]:
        lines = self.app.log_lines
        return lines(limit) if lines is not None else []

    # --- the config file --------------------------------------------------------------------

    def config_entries(self) -> Sequence[ConfigEntry]:
        values = self._values()
        return [self._entry(key, value) for key, value in values.items()]

    def config_get(self, key: str) -> ConfigEntry:
        values = self._values()
        if key not in values:
            raise ConfigError(f"{key} is not set in the config file (its default applies); "
                              "`config show` lists what is set")  # fmt: skip
        return self._entry(key, values[key])

    def config_set(self, key: str, value: str) -> ConfigEntry:
        if SECRET_KEY.search(key):
            raise ConfigError(f"{key} is a secret: set the password with `passwd`")
        current = self._values().get(key)
        parsed = _read_value(value, current)
        staged = {**self.app.staged, key: parsed}
        parse(_with(self.app.config.document, staged), self.app.config.path)  # names the key
        toml_value(parsed, key)  # a value the file can hold
        self.app.staged[key] = parsed
        self.app.saved.discard(key)
        return self._entry(key, parsed)

    async def config_save(self) -> str:
        path = self.app.config.path
        if path is None:
            raise GatewayError("this gateway runs without a config file: nothing to save to")
        staged = dict(self.app.staged)
        if staged:
            parse(_with(self.app.config.document, staged), path)
            await trio.to_thread.run_sync(write_settings, path, staged)
            self.app.saved |= set(staged)
            self.app.staged.clear()
        return str(path)

    def _values(self) -> dict[str, Any]:
        return {**flatten(self.app.config.document), **self.app.staged}

    def _entry(self, key: str, value: object) -> ConfigEntry:
        secret = bool(SECRET_KEY.search(key))
        note = (UNSAVED if key in self.app.staged
                else AFTER_RESTART if key in self.app.saved else "")  # fmt: skip
        shown = MASK if secret else toml_value(value, key)
        return ConfigEntry(key, shown, secret, note)

    # --- commands ---------------------------------------------------------------------------

    async def ring(self, port: int) -> DialResult:
        actor = self._line(port, PortKind.FXS, "ring")
        profile = self.app.config.line.for_port(port).fxs.hotline or "default"
        return await actor.place_call(OutboundCall(profile))

    async def dial(self, port: int, number: str) -> DialResult:
        actor = self._line(port, PortKind.FXO, "dial")
        profile = self.app.config.line.for_port(port).fxo.default_profile or "default"
        return await actor.place_call(OutboundCall(profile, number))

    def _line(self, port: int, kind: PortKind, what: str) -> FxoLine | FxsLine:
        actor = self.app.lines.get(port)
        if actor is None or actor.port.kind is not kind:
            ports = [p for p, a in sorted(self.app.lines.items()) if a.port.kind is kind]
            raise GatewayError(f"{what}: port {port} is not an {kind.value.upper()} port "
                               f"({kind.value.upper()} ports: {ports or 'none'})")  # fmt: skip
        return actor

    async def hangup(self, call_id: str) -> bool:
        for actor in self.app.lines.values():
            spec = actor.call
            if spec is not None and spec.call_id == call_id:
                await actor.end_call("hung up from the console")
                return True
        return False

    async def adapter_reset(self) -> str:
        device = self.app.device
        if not isinstance(device, AdapterLink):
            raise GatewayError("adapter reset: only the tipring adapter has a reset command "
                               "(a voice modem: unplug it)")  # fmt: skip
        if not device.linked:
            raise GatewayError(f"adapter reset: the adapter is not linked ({device.last_error})")
        await device.reset_adapter()
        return "reset sent: calls on the adapter end; the link comes back by itself"

    async def restart(self) -> None:
        self.app.stop("restart from the console", RESTART_EXIT)

    async def set_console_password(self, password_hash: str) -> None:
        path = self.app.config.path
        if path is None:
            raise GatewayError("this gateway runs without a config file: the password cannot "
                               "be kept")  # fmt: skip
        await trio.to_thread.run_sync(write_password_hash, path, password_hash)


def _summary(call: StoredCall) -> CallSummary:
    who = " ".join(p for p in (call.number or "", call.name or "") if p) or call.dialled
    reason = call.ended_by or ("" if call.ended_at is None else str(call.status))
    return CallSummary(call.call_id, call.port, call.direction, who,
                       call.started_at.astimezone(), call.duration_s, reason)  # fmt: skip


def _read_value(text: str, current: object) -> object:
    """The operator's text as a TOML value (`2`, `true`, `"x"`, `["a"]`); bare text is a
    string where the setting is one (or new)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if current is None or isinstance(current, str):
            return text
        raise ConfigError(f"{text!r} is not a TOML value (a number, true/false, \"text\", "
                          "[a, b])") from None  # fmt: skip


def _with(document: Mapping[str, Any], changes: Mapping[str, object]) -> dict[str, Any]:
    out = copy.deepcopy(dict(document))
    for dotted, value in changes.items():
        table = out
        *parents, key = dotted.split(".")
        for part in parents:
            inner = table.setdefault(part, {})
            if not isinstance(inner, dict):
                raise ConfigError(f"{dotted}: {part} is not a table")
            table = inner
        table[key] = value
    return out


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
