"""The admin console's settings (`[console]` of tipring.toml): `ConsoleConfig.from_table`, with
errors that name the key (`console.max_failures must be 1..100, got 0`).

```toml
[console]
device = "/dev/serial0"     # the UART (115200 8N1), a USB-serial adapter, or "stdio"
baudrate = 115200
password_hash = "scrypt$16384$8$1$..."   # tipring passwd writes it; "" = nobody can log in
max_failures = 5            # wrong passwords in a row before the lockout
lockout_s = 900             # 15 minutes
backoff_base_s = 1.0        # wait after the 1st wrong password; doubles each time
backoff_max_s = 30.0
idle_logout_s = 600         # 10 minutes without a key logs out
color = false               # ANSI colour (the `color on` command turns it on for a session)
monitor_refresh_s = 0.5
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gateway.console_auth import LoginPolicy, parse_password_hash
from gateway.errors import ConfigError

BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
_RANGES: dict[str, tuple[float, float]] = {
    "max_failures": (1, 100),
    "lockout_s": (0, 86400),
    "backoff_base_s": (0, 60),
    "backoff_max_s": (0, 600),
    "idle_logout_s": (10, 86400),
    "monitor_refresh_s": (0.01, 10),
}


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """See the module docstring. `password_hash` is checked when read; the console refuses
    every login while it is ""."""

    device: str = "/dev/serial0"
    baudrate: int = 115200
    password_hash: str = ""
    max_failures: int = 5
    lockout_s: float = 900.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    idle_logout_s: float = 600.0
    color: bool = False
    monitor_refresh_s: float = 0.5

    def __repr__(self) -> str:
        shown = {f.name: repr(getattr(self, f.name)) for f in fields(self)}
        if self.password_hash:
            shown["password_hash"] = "<set>"  # not a secret, but no use to anyone reading logs
        return f"ConsoleConfig({', '.join(f'{k}={v}' for k, v in shown.items())})"

    @property
    def policy(self) -> LoginPolicy:
        return LoginPolicy(self.max_failures, self.lockout_s, self.backoff_base_s,
                           self.backoff_max_s)  # fmt: skip

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "console") -> ConsoleConfig:
        """Read the `[console]` table; `ConfigError` naming `where.key` for an unknown key, a
        wrong type or a value out of range."""
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ConfigError(f"{where}.{key} is not a console setting "
                                  f"(known: {', '.join(sorted(known))})")  # fmt: skip
        values = {key: _typed(key, value, where) for key, value in table.items()}
        config = cls(**values)
        if config.password_hash:
            parse_password_hash(config.password_hash)
        if config.baudrate not in BAUDRATES:
            raise ConfigError(f"{where}.baudrate {config.baudrate} is not one of "
                              f"{', '.join(map(str, BAUDRATES))}")  # fmt: skip
        if not config.device:
            raise ConfigError(f"{where}.device is empty: a serial device path or 'stdio'")
        return config


def _typed(key: str, value: object, where: str) -> Any:
    name = f"{where}.{key}"
    if key in ("device", "password_hash"):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string")
        return value
    if key == "color":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    integral = key in ("baudrate", "max_failures")
    if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
        raise ConfigError(f"{name} must be a {'whole ' if integral else ''}number, got {value!r}")
    low, high = _RANGES.get(key, (-float("inf"), float("inf")))
    if not low <= value <= high:
        raise ConfigError(f"{name} must be {low:g}..{high:g}, got {value!r}")
    return value if integral else float(value)
