"""The smaller tables of tipring.toml, each read into a typed, frozen object with errors that
name the key, the value and what is allowed: `[adapter]`, `[call]` (with `[call.vad]`),
`[store]`, `[service]`. `gateway.config` reads the whole file with these and the tables the
packages read themselves (`[line]`, `[realtime]`, `[tools]`, `[console]`).

```toml
[adapter]
kind = "tipring"                 # the tipring adapter protocol, or "modem" (a V.253 voice modem)
device = "/dev/tipring-adapter"
baudrate = 921600

[call]                           # gateway.call_config.CallConfig; any field may be set
voicemail_dir = "/var/lib/tipring/voicemail"    # "" = no voicemail
hold_timeout_s = 10

[store]
path = "/var/lib/tipring/calls.db"
retention_days = 90              # 0 = keep forever
max_db_mb = 256                  # 0 = no size limit

[service]
log_level = "info"               # debug, info, warning, error
drain_s = 20                     # SIGTERM: calls get this long to end politely
restart_min_s = 1                # a crashed actor waits this long before its restart,
restart_max_s = 60               # doubling up to this
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dsp.vad import VadConfig
from gateway.call_config import CallConfig
from gateway.config_checks import check_choice, known_keys, number, table_at, typed
from gateway.errors import ConfigError
from gateway.store_export import DEFAULT_DB
from gateway.store_retention import Retention

ADAPTER_KINDS = ("tipring", "modem")
LOG_LEVELS = ("debug", "info", "warning", "error")
BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000)


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    kind: str = "tipring"
    device: str = "/dev/tipring-adapter"
    baudrate: int = 921600


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path = DEFAULT_DB
    retention: Retention = field(default_factory=lambda: Retention(90.0, 256 << 20))


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    log_level: str = "info"
    drain_s: float = 20.0
    restart_min_s: float = 1.0
    restart_max_s: float = 60.0


def adapter_from_table(table: Mapping[str, Any], where: str = "adapter") -> AdapterConfig:
    values = _plain(AdapterConfig, table, where)
    config = AdapterConfig(**values)
    check_choice(f"{where}.kind", config.kind, ADAPTER_KINDS)
    check_choice(f"{where}.baudrate", config.baudrate, BAUDRATES)
    if not config.device:
        raise ConfigError(f"{where}.device is empty: the adapter's serial device path")
    return config


def call_from_table(table: Mapping[str, Any], data_dir: Path, where: str = "call") -> CallConfig:
    """`[call]`: any `CallConfig` field; the directories as strings ("" = off), relative ones
    under `data_dir`; `[call.vad]`: any `VadConfig` field."""
    rest = {k: v for k, v in table.items() if k != "vad"}
    values = _plain(CallConfig, rest, where, paths=("voicemail_dir", "capture_dir"))
    for name in ("voicemail_dir", "capture_dir"):
        if name in values:
            text = values[name]
            values[name] = None if not text else data_dir / Path(text)
    if "vad" in table:
        vad_table = table_at(table["vad"], f"{where}.vad")
        try:
            values["vad"] = VadConfig(**_plain(VadConfig, vad_table, f"{where}.vad"))
        except (ValueError, TypeError) as exc:  # "VadConfig: hangover_ms = -5.0 is out of ..."
            detail = str(exc).removeprefix("VadConfig: ")
            raise ConfigError(f"{where}.vad.{detail}") from None
    try:
        return CallConfig(**values)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("call.", f"{where}.", 1)) from None


def store_from_table(table: Mapping[str, Any], where: str = "store") -> StoreConfig:
    known_keys(table, ("path", "retention_days", "max_db_mb"), where)
    path = Path(typed(table.get("path", str(DEFAULT_DB)), str, f"{where}.path"))
    if not path.is_absolute():
        raise ConfigError(f"{where}.path {str(path)!r} must be an absolute path")
    days = number(table.get("retention_days", 90), f"{where}.retention_days", 0, 36500)
    mb = number(table.get("max_db_mb", 256), f"{where}.max_db_mb", 0, 1 << 20)
    retention = Retention(max_age_days=days or None, max_db_bytes=int(mb * (1 << 20)) or None,
                          data_dir=path.parent)  # fmt: skip
    return StoreConfig(path, retention)


def service_from_table(table: Mapping[str, Any], where: str = "service") -> ServiceConfig:
    known_keys(table, tuple(f.name for f in fields(ServiceConfig)), where)
    config = ServiceConfig(
        log_level=typed(table.get("log_level", "info"), str, f"{where}.log_level"),
        drain_s=number(table.get("drain_s", 20.0), f"{where}.drain_s", 0, 40),
        restart_min_s=number(table.get("restart_min_s", 1.0), f"{where}.restart_min_s", 0.01, 60),
        restart_max_s=number(
            table.get("restart_max_s", 60.0), f"{where}.restart_max_s", 0.01, 3600
        ),
    )
    check_choice(f"{where}.log_level", config.log_level, LOG_LEVELS)
    if config.restart_max_s < config.restart_min_s:
        raise ConfigError(f"{where}.restart_max_s {config.restart_max_s:g} is below "
                          f"restart_min_s {config.restart_min_s:g}")  # fmt: skip
    return config


def _plain(cls: type, table: Mapping[str, Any], where: str,
           paths: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """`table`'s values for `cls`'s plain fields (str, int, float, bool), each type-checked
    against the field's default; `paths` are strings too."""
    defaults = {f.name: f.default for f in fields(cls) if isinstance(f.default, str | int | float)}
    allowed = set(defaults) | set(paths)
    known_keys(table, tuple(sorted(allowed)), where)
    out: dict[str, Any] = {}
    for key, value in table.items():
        default = "" if key in paths else defaults[key]
        kind: type | tuple[type, ...] = type(default)
        if kind is float:
            kind = (int, float)
        out[key] = typed(value, kind, f"{where}.{key}")
        if isinstance(default, float):
            out[key] = float(out[key])
    return out
