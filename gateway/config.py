"""`gateway.config`: the appliance's one config file, `/etc/tipring/tipring.toml`, read and
validated at start into a typed, frozen `AppConfig`. Every error is a `ConfigError` that names
the key, the value and what is allowed (`line.fxo.answer_after_rings must be 1..20, got 0`).

The tables (deploy_pi/tipring.toml.example shows them all, with comments):
- `[adapter]`, `[call]`, `[store]`, `[service]`: `gateway.config_tables`;
- `[line]`: `gateway.line_config.LineConfig.from_config` (rules, dial plan, per-port overrides);
- `[realtime]`, `[tools]`, `[agent]`: the default agent profile ("default"): the cloud session
  (`gateway.realtime.settings_from_config`), the tools it may call (`gateway.tools_config`),
  `greeting` (the note that makes the agent speak first; "" = it waits for the caller),
  `greeting_audio`/`greeting_text` (a cached greeting) and `pre_answer_tool` (a tool run with
  the caller's number before the session opens; its result goes into the instructions);
- `[profiles.NAME]`: more agents, for the line's rules to pick: `realtime` (keys on top of
  `[realtime]`), `tools` (instead of `[tools]`), and the `[agent]` keys;
- `[console]`: `gateway.console_config.ConsoleConfig`, plus `enabled` (default true).

Secrets are never in this file: API keys are read here from files whose mode must be 0600 (or
from variables), through `gateway.secrets`; a key that cannot be read is a `ConfigError` naming
the file. `flatten` and `SECRET_KEY` give the console its dotted-key view.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.call_config import GREETING, AgentProfile, CallConfig
from gateway.call_digits import parse_menu
from gateway.call_wav import read_greeting
from gateway.config_checks import known_keys, table_at, typed
from gateway.config_tables import (
    AdapterConfig,
    ServiceConfig,
    StoreConfig,
    adapter_from_table,
    call_from_table,
    service_from_table,
    store_from_table,
)
from gateway.console_config import ConsoleConfig
from gateway.console_passwd import DEFAULT_CONFIG_PATH
from gateway.errors import ConfigError
from gateway.line_config import LineConfig
from gateway.realtime import settings_from_config
from gateway.realtime.profiles import load_api_key
from gateway.tools_config import tools_from_config

__all__ = ["DEFAULT_CONFIG_PATH", "SECRET_KEY", "AppConfig", "flatten", "load_config", "parse"]

TABLES = ("adapter", "line", "realtime", "tools", "agent", "profiles", "call", "console",
          "store", "service")  # fmt: skip
AGENT_KEYS = ("greeting", "greeting_audio", "greeting_text", "pre_answer_tool", "dtmf_menu")
PROFILE_KEYS = ("realtime", "tools", *AGENT_KEYS)
DEFAULT_PROFILE = "default"
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
SECRET_KEY = re.compile(r"(^|[._])(password_hash|password|secret|token|api_key)$")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kB; anything this big is the wrong file


@dataclass(frozen=True, slots=True)
class AppConfig:
    """The whole appliance's settings (see the module docstring). `document` is the parsed
    file as it was read (for the console's `config show` and edits); `path` where it came
    from (None: made in code). `console` None: no serial console."""

    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    line: LineConfig = field(default_factory=LineConfig)
    profiles: Mapping[str, AgentProfile] = field(default_factory=dict)
    call: CallConfig = field(default_factory=CallConfig)
    console: ConsoleConfig | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    path: Path | None = None


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> AppConfig:
    """Read and check the config file at `path` (and the secret files it names)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is over {MAX_CONFIG_BYTES >> 10} KiB: not a config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse(document, path)


def parse(document: Mapping[str, Any], path: Path | None = None) -> AppConfig:
    """`AppConfig` from a parsed TOML document (`ConfigError` names the bad key)."""
    for name in document:
        if name not in TABLES:
            raise ConfigError(
                f"[{name}] is not a table of tipring.toml; tables: {', '.join(TABLES)}"
            )
    tables = {name: table_at(document.get(name, {}), name) for name in TABLES}
    store = store_from_table(tables["store"])
    data_dir = store.path.parent
    base = path.parent if path is not None else Path.cwd()
    line = _line_audio(LineConfig.from_config(tables["line"]), base)
    profiles = _profiles(tables, base)
    missing = sorted(line.profiles() - set(profiles))
    if missing:
        defined = ", ".join(sorted(profiles))
        raise ConfigError(f"line: agent profile {missing[0]!r} is used but not defined; add "
                          f"[profiles.{missing[0]}] (defined: {defined})")  # fmt: skip
    return AppConfig(
        adapter=adapter_from_table(tables["adapter"]),
        line=line,
        profiles=profiles,
        call=call_from_table(tables["call"], data_dir),
        console=_console(tables["console"]),
        store=store,
        service=service_from_table(tables["service"]),
        document=document,
        path=path,
    )


def _profiles(tables: Mapping[str, Mapping[str, Any]], base: Path) -> dict[str, AgentProfile]:
    agent = tables["agent"]
    known_keys(agent, AGENT_KEYS, "agent")
    base_realtime, base_tools = tables["realtime"], tables["tools"]
    out = {DEFAULT_PROFILE: _profile(base_realtime, base_tools, agent, "", base)}
    for name, value in tables["profiles"].items():
        where = f"profiles.{name}"
        if not PROFILE_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {name!r} is not a profile name (letters, digits, - _)")
        table = table_at(value, where)
        known_keys(table, PROFILE_KEYS, where)
        realtime = {**base_realtime, **table_at(table.get("realtime", {}), f"{where}.realtime")}
        tools = table_at(table["tools"], f"{where}.tools") if "tools" in table else base_tools
        greeting = {k: table[k] for k in AGENT_KEYS if k in table}
        out[name] = _profile(realtime, tools, {**agent, **greeting}, f"{where}.", base)
    return out


def _profile(realtime: Mapping[str, Any], tools: Mapping[str, Any], agent: Mapping[str, Any],
             prefix: str, base: Path) -> AgentProfile:  # fmt: skip
    settings = settings_from_config(realtime, f"{prefix}realtime")
    registry = tools_from_config(tools, f"{prefix}tools")
    where = prefix or "agent."
    audio_path = typed(agent.get("greeting_audio", ""), str, f"{where}greeting_audio")
    text = typed(agent.get("greeting_text", ""), str, f"{where}greeting_text")
    # With a cached greeting the note asks for a follow-up only if one is configured.
    note = typed(agent.get("greeting", "" if audio_path else GREETING), str, f"{where}greeting")
    audio = None
    if audio_path:
        if not text.strip():
            raise ConfigError(f"{where}greeting_text is empty: say what {where}greeting_audio "
                              "says (the agent is told it said it)")  # fmt: skip
        audio = read_greeting(base / audio_path, f"{where}greeting_audio")
    pre_answer = typed(agent.get("pre_answer_tool", ""), str, f"{where}pre_answer_tool")
    if pre_answer and registry.get(pre_answer) is None:
        known = ", ".join(registry.names()) or "none"
        raise ConfigError(f"{where}pre_answer_tool {pre_answer!r} is not one of this agent's "
                          f"tools ({known})")  # fmt: skip
    menu = parse_menu(table_at(agent.get("dtmf_menu", {}), f"{where}dtmf_menu"),
                      f"{where}dtmf_menu")  # fmt: skip
    return AgentProfile(settings, load_api_key(settings), registry, note or None,
                        greeting_audio=audio, greeting_text=text.strip(),
                        pre_answer_tool=pre_answer, dtmf_menu=menu)  # fmt: skip


def _line_audio(line: LineConfig, base: Path) -> LineConfig:
    """`decline_audio` made absolute (relative to the config file) and read once here, so a
    bad file fails the config, not a call."""

    def one(cfg: LineConfig, where: str) -> LineConfig:
        if not cfg.fxo.decline_audio:
            return cfg
        path = base / cfg.fxo.decline_audio
        read_greeting(path, f"{where}.fxo.decline_audio")
        return replace(cfg, fxo=replace(cfg.fxo, decline_audio=str(path.resolve())))

    first = one(line, "line")
    return replace(first, ports={n: one(cfg, f"line.ports.{n}") for n, cfg in line.ports.items()})


def _console(table: Mapping[str, Any]) -> ConsoleConfig | None:
    enabled = typed(table.get("enabled", True), bool, "console.enabled")
    rest = {k: v for k, v in table.items() if k != "enabled"}
    config = ConsoleConfig.from_table(rest)
    return config if enabled else None


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every setting of `document` by dotted key (`line.fxo.answer_after_rings`), tables
    walked into, arrays (of tables too) kept whole as one value; in file order."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out
