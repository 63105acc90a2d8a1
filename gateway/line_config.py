"""The line settings (`[line]` of tipring.toml): `LineConfig` with its `FxoConfig` and
`FxsConfig`, per-port overrides, and their reading with errors that name the key
(`line.fxo.answer_after_rings must be 1..20, got 0`).

```toml
[line]
tone_plan = "us"                      # dial, busy, reorder, ringback, SIT: dsp.tone_plans
[line.fxo]
answer_after_rings = 2
default_profile = "reception"         # "" = answer only when a rule says so
deny = ["1900*", "anonymous"]
timezone = "Europe/Berlin"            # for rules' hours
[[line.fxo.rules]]
hours = ["mon-fri 09:00-17:00"]
profile = "sales"
[[line.fxo.rules]]
numbers = ["+4930*"]
answer = false
[line.fxs]
hotline = ""                          # an agent profile: off-hook goes straight to it
dial_plan = { "0" = "operator", "1XX" = "extensions", "9." = "outside" }
[line.ports.1.fxo]                    # port 1: its own settings over the ones above
answer_after_rings = 4
[line.health]                         # alarms: gateway.line_health.HealthConfig
dead_after_s = 5.0
```

`gateway.line` reads `LineConfig.for_port(n)`; the patterns and windows are `gateway.line_rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dsp.callerid import Standard
from dsp.tone_plans import PLANS
from firmware_bridge.messages import MAX_PORTS
from firmware_bridge.port import US_RING_CADENCE_MS
from gateway.config_checks import known_keys, table_at, typed
from gateway.errors import ConfigError
from gateway.line_health import HealthConfig
from gateway.line_rules import (
    CallerRule,
    DialRule,
    check_dial_pattern,
    check_number_pattern,
    parse_window,
)

Source = Literal["auto", "audio", "port", "off"]
SOURCES: tuple[Source, ...] = get_args(Source)
CALLERID_STANDARDS: tuple[Standard, ...] = get_args(Standard)
HANGUP_TONES = ("busy", "reorder", "dial", "sit", "fax", "modem")
DECLINE_ACTIONS = ("ring", "message")
MAX_RINGS = 20  # a caller gives up long before: ~2 minutes of US ringing
EMERGENCY_KEYS = "0123456789*#"
MAX_EMERGENCY_DIGITS = 8  # the longest are short codes behind a prefix (9-911)


@dataclass(frozen=True, slots=True)
class FxoConfig:
    """An FXO port (the box on a PSTN line): when and how to answer, how to tell the far end
    hung up, how to place calls. Times in s unless the name says ms."""

    answer_after_rings: int = 2
    default_profile: str = "default"  # "" = answer only when a rule names a profile
    allow: tuple[str, ...] = ()  # not empty: only these callers are answered
    deny: tuple[str, ...] = ()  # never answered
    rules: tuple[CallerRule, ...] = ()  # first that applies wins
    timezone: str = "UTC"  # the rules' hours are local time in this IANA zone
    # "audio": decode FSK/DTMF caller ID in the received audio (the tipring adapter passes it
    # through); "port": the device reports it (a voice modem); "auto": by the port's type.
    callerid_source: Source = "auto"
    callerid_standard: Standard = "bell202"
    callerid_wait_s: float = 4.5  # answering on ring 1: wait this long for the caller ID
    ring_gap_s: float = 7.0  # no ring for this long: the caller gave up (US: 4 s off)
    tone_source: Source = "auto"  # call-progress tones: dsp.tones on the audio, or the device
    hangup_tones: tuple[str, ...] = ("busy", "reorder", "dial", "sit")
    loop_drop_min_ms: float = 250.0  # shorter drops are glitches (GR-506 disconnect: >= 300)
    polarity_hangup: bool = True  # a reversal in a call is the far end's disconnect
    silence_hangup_s: float = 60.0  # no energy on the line this long ends the call; 0 = never
    silence_dbm0: float = -50.0  # a frame above this is not silence (idle lines: ~-65..-70)
    dial_tone_wait_s: float = 3.0  # placing a call: wait this long for dial tone
    blind_dial: bool = True  # no dial tone by then: dial anyway (false: give up)
    no_answer_s: float = 45.0  # placing a call: ringing this long without an answer
    polarity_answer: bool = True  # a reversal while it rings is the far end's answer
    voice_answer: bool = True  # voice on the line while it rings is the answer
    # The rules decided on the caller ID before the answer: start the call (open the agent's
    # session, run its pre-answer tool) while the remaining rings ring.
    pre_answer: bool = True
    decline: str = "ring"  # a call the rules do not answer: "ring" (let it) or "message"
    decline_audio: str = ""  # "message": this file (WAV / raw G.711); "" = the goodbye prompt

    def __post_init__(self) -> None:
        _check_range("fxo.answer_after_rings", self.answer_after_rings, 1, MAX_RINGS)
        _check_choice("fxo.decline", self.decline, DECLINE_ACTIONS)
        _check_choice("fxo.callerid_source", self.callerid_source, SOURCES)
        _check_choice("fxo.callerid_standard", self.callerid_standard, CALLERID_STANDARDS)
        _check_choice("fxo.tone_source", self.tone_source, SOURCES[:3])
        for tone in self.hangup_tones:
            _check_choice("fxo.hangup_tones", tone, HANGUP_TONES)
        for key in ("callerid_wait_s", "ring_gap_s", "dial_tone_wait_s", "no_answer_s"):
            _check_range(f"fxo.{key}", getattr(self, key), 0.1, 600.0)
        _check_range("fxo.silence_hangup_s", self.silence_hangup_s, 0.0, 3600.0)
        _check_range("fxo.silence_dbm0", self.silence_dbm0, -90.0, 0.0)
        _check_range("fxo.loop_drop_min_ms", self.loop_drop_min_ms, 0.0, 1000.0)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"line.fxo.timezone {self.timezone!r} is not a known time zone "
                              "(an IANA name such as Europe/Berlin)") from None  # fmt: skip
        if not self.default_profile and not any(r.answer and r.profile for r in self.rules):
            raise ConfigError("line.fxo: no default_profile and no rule with a profile: "
                              "this line would never answer")  # fmt: skip


@dataclass(frozen=True, slots=True)
class FxsConfig:
    """An FXS port (a phone plugged into the box): hotline or dial plan, digit timing, ringing
    the phone for agent calls. Times in s unless the name says ms."""

    hotline: str = "default"  # agent profile reached by lifting the handset; "" = dial plan
    hotline_delay_s: float = 0.0  # warm line: digits dialled within this time use the plan
    dial_plan: tuple[DialRule, ...] = ()
    first_digit_s: float = 15.0  # dial tone this long without a digit: reorder
    interdigit_s: float = 4.0  # the number is complete after this pause
    reorder_s: float = 30.0  # reorder this long, then silence until the phone hangs up
    ring_cadence_ms: tuple[int, ...] = US_RING_CADENCE_MS
    ring_timeout_s: float = 60.0  # an agent call the phone does not answer
    # Never sent to an agent: put through to an FXO line (`gateway.emergency`); () = off.
    # NANP and GSM/EU: set your country's (UK: 999 and 112).
    emergency_numbers: tuple[str, ...] = ("911", "112")
    emergency_route: str = "fxo"  # "fxo": the adapter's first FXO port; "fxo:N": port N

    def __post_init__(self) -> None:
        if not self.hotline and not self.dial_plan:
            raise ConfigError("line.fxs: neither a hotline nor a dial_plan: nobody to call")
        _check_emergency(self.emergency_numbers, self.emergency_route)
        for key in ("first_digit_s", "interdigit_s", "reorder_s", "ring_timeout_s"):
            _check_range(f"fxs.{key}", getattr(self, key), 0.1, 600.0)
        _check_range("fxs.hotline_delay_s", self.hotline_delay_s, 0.0, 60.0)
        cadence = self.ring_cadence_ms
        if not (2 <= len(cadence) <= 8 and len(cadence) % 2 == 0
                and all(1 <= ms <= 0xFFFF for ms in cadence)):  # fmt: skip
            raise ConfigError(f"line.fxs.ring_cadence_ms {list(cadence)} must be 1-4 on/off "
                              "pairs of 1..65535 ms")  # fmt: skip


@dataclass(frozen=True, slots=True)
class LineConfig:
    """Everything `gateway.line` needs for one port; `ports` holds the per-port settings (each
    a complete `LineConfig`, the overrides merged in), `for_port` picks one."""

    tone_plan: str = "us"
    fxo: FxoConfig = field(default_factory=FxoConfig)
    fxs: FxsConfig = field(default_factory=FxsConfig)
    ports: Mapping[int, LineConfig] = field(default_factory=dict)
    health: HealthConfig = field(default_factory=HealthConfig)  # every port's (no override)

    def __post_init__(self) -> None:
        _check_choice("tone_plan", self.tone_plan, tuple(PLANS))

    def for_port(self, port: int) -> LineConfig:
        """The settings of `port` (its overrides, else these)."""
        return self.ports.get(port, self)

    def profiles(self) -> set[str]:
        """Every agent profile named anywhere (for the app to check they exist)."""
        out: set[str] = set()
        for cfg in (self, *self.ports.values()):
            out |= {cfg.fxo.default_profile, cfg.fxs.hotline}
            out |= {r.profile for r in cfg.fxo.rules} | {r.profile for r in cfg.fxs.dial_plan}
        return out - {""}

    @classmethod
    def from_config(cls, table: Mapping[str, Any], where: str = "line") -> LineConfig:
        """`LineConfig` from a parsed TOML table; `ConfigError` names the bad key."""
        known_keys(table, ("tone_plan", "fxo", "fxs", "ports", "health"), where)
        ports_table = table_at(table.get("ports", {}), f"{where}.ports")
        ports: dict[int, LineConfig] = {}
        for name, override in ports_table.items():
            port = _port_number(name, f"{where}.ports.{name}")
            key = f"{where}.ports.{name}"
            known_keys(table_at(override, key), ("tone_plan", "fxo", "fxs"), key)
            ports[port] = _one(_merged(table, override), key)
        base = _one(table, where)
        health = HealthConfig.from_table(
            table_at(table.get("health", {}), f"{where}.health"), f"{where}.health"
        )
        ports = {p: replace(cfg, health=health) for p, cfg in ports.items()}
        return cls(base.tone_plan, base.fxo, base.fxs, ports, health)


# --- reading a config table ------------------------------------------------------------------


def _one(table: Mapping[str, Any], where: str) -> LineConfig:
    try:
        return LineConfig(
            tone_plan=typed(table.get("tone_plan", "us"), str, f"{where}.tone_plan"),
            fxo=_fxo(table_at(table.get("fxo", {}), f"{where}.fxo"), f"{where}.fxo"),
            fxs=_fxs(table_at(table.get("fxs", {}), f"{where}.fxs"), f"{where}.fxs"),
        )
    except ConfigError as exc:  # the dataclasses' own checks say "line.": say where
        msg = str(exc)
        if msg.startswith("line.") and not msg.startswith(f"{where}."):
            raise ConfigError(where + msg[len("line") :]) from None
        raise


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` on top, one level into the fxo and fxs tables."""
    out = {k: v for k, v in base.items() if k != "ports"}
    for key, value in override.items():
        if key in ("fxo", "fxs") and isinstance(value, Mapping):
            out[key] = {**table_at(base.get(key, {}), key), **value}
        else:
            out[key] = value
    return out


_SPECIAL = {"rules", "allow", "deny", "hangup_tones", "dial_plan", "ring_cadence_ms",
            "emergency_numbers"}  # fmt: skip


def _fxo(table: Mapping[str, Any], key: str) -> FxoConfig:
    values = _scalars(FxoConfig, table, key)
    for name in ("allow", "deny"):
        if name in table:
            patterns = _strings(table[name], f"{key}.{name}")
            values[name] = tuple(check_number_pattern(p, f"{key}.{name}") for p in patterns)
    if "hangup_tones" in table:
        values["hangup_tones"] = tuple(_strings(table["hangup_tones"], f"{key}.hangup_tones"))
    if "rules" in table:
        values["rules"] = _rules(table["rules"], f"{key}.rules")
    return FxoConfig(**values)


def _fxs(table: Mapping[str, Any], key: str) -> FxsConfig:
    values = _scalars(FxsConfig, table, key)
    if "dial_plan" in table:
        plan = table_at(table["dial_plan"], f"{key}.dial_plan")
        values["dial_plan"] = tuple(
            DialRule(check_dial_pattern(p, f"{key}.dial_plan"), _profile(v, f"{key}.dial_plan.{p}"))
            for p, v in plan.items()
        )
    if "ring_cadence_ms" in table:
        cadence = table["ring_cadence_ms"]
        if not isinstance(cadence, list) or not all(_is_int(ms) for ms in cadence):
            raise ConfigError(f"{key}.ring_cadence_ms must be an array of integers, got "
                              f"{cadence!r}")  # fmt: skip
        values["ring_cadence_ms"] = tuple(cadence)
    if "emergency_numbers" in table:
        numbers = _strings(table["emergency_numbers"], f"{key}.emergency_numbers")
        values["emergency_numbers"] = tuple(numbers)
    return FxsConfig(**values)


def _rules(value: object, key: str) -> tuple[CallerRule, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be an array of tables, got {value!r}")
    rules = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        table = table_at(item, where)
        known_keys(table, ("numbers", "hours", "profile", "answer"), where)
        numbers = _strings(table.get("numbers", []), f"{where}.numbers")
        hours = _strings(table.get("hours", []), f"{where}.hours")
        answer = typed(table.get("answer", True), bool, f"{where}.answer")
        profile = typed(table.get("profile", ""), str, f"{where}.profile")
        if not answer and profile:
            raise ConfigError(f"{where}: answer = false with a profile: pick one")
        rules.append(CallerRule(
            numbers=tuple(check_number_pattern(n, f"{where}.numbers") for n in numbers),
            hours=tuple(parse_window(h, f"{where}.hours") for h in hours),
            profile=profile, answer=answer,
        ))  # fmt: skip
    return tuple(rules)


def _scalars(cls: type, table: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The table's plain values for `cls`'s fields, each checked against the field's type."""
    allowed = {f.name: str(f.type) for f in fields(cls)}
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name not in allowed:
            raise ConfigError(f"{key}.{name} is not a setting; known: "
                              f"{', '.join(sorted(allowed))}")  # fmt: skip
        if name in _SPECIAL:
            continue
        kinds: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float),
                                                     "bool": bool}  # fmt: skip
        kind = kinds.get(allowed[name], str)
        out[name] = typed(value, kind, f"{key}.{name}")
        if kind is str and name in ("default_profile", "hotline") and value:
            _profile(value, f"{key}.{name}")
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be an array of strings, got {value!r}")
    return value


def _profile(value: object, key: str) -> str:
    name = typed(value, str, key)
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{key}: {value!r} is not an agent profile name (letters, digits, - "
                          "and _)")  # fmt: skip
    return str(name)


def _port_number(name: object, key: str) -> int:
    text = str(name)
    if not text.isdigit() or not 0 <= int(text) < MAX_PORTS:
        raise ConfigError(f"{key}: {text!r} is not a port number 0..{MAX_PORTS - 1}")
    return int(text)


def _check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"line.{key} {value!r} is not one of {', '.join(map(str, allowed))}")


def _check_emergency(numbers: tuple[str, ...], route: str) -> None:
    for number in numbers:
        if not 1 <= len(number) <= MAX_EMERGENCY_DIGITS or not set(number) <= set(EMERGENCY_KEYS):
            raise ConfigError(f"line.fxs.emergency_numbers: {number!r} is not 1-"
                              f"{MAX_EMERGENCY_DIGITS} keys of {EMERGENCY_KEYS}")  # fmt: skip
    kind, colon, port = route.partition(":")
    if kind != "fxo" or (colon and not (port.isdigit() and int(port) < MAX_PORTS)):
        raise ConfigError(f"line.fxs.emergency_route {route!r} is not \"fxo\" or \"fxo:N\" "
                          f"(N a port number 0..{MAX_PORTS - 1})")  # fmt: skip


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"line.{key} must be {low:g}..{high:g}, got {value!r}")
