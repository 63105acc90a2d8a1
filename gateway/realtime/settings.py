"""Typed realtime session settings, and their reading from a config table (`[realtime]` of
tipring.toml) with errors that name the key: `realtime.voice must be a string, got 3`.

`RealtimeSettings` is what `RealtimeSession` is built from; `client_events.session_update`
turns it into the GA `session.update`, `profiles` into the URL and headers. Fields left at ""
take the provider profile's default (model, voice, TTS model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from gateway.realtime.audio import WIRE_FORMATS, WireFormat
from gateway.realtime.errors import RealtimeConfigError

Provider = Literal["openai", "azure", "inworld", "local"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
Eagerness = Literal["low", "medium", "high", "auto"]
NoiseReduction = Literal["near_field", "far_field"]
APPEND_MS_CHOICES = (20, 40, 60, 80, 100)  # whole 20 ms frames; above 100 ms VAD reacts late
SESSION_CAP_S = 3600.0  # OpenAI GA: 60 minutes per session (research note §1.2)


@dataclass(frozen=True, slots=True)
class ServerVad:
    """Energy/model VAD on the server (`server_vad`); `idle_timeout_ms` None = no idle prompt."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True)
class SemanticVad:
    """End of turn judged by a model (`semantic_vad`): later but fewer cut-offs."""

    eagerness: Eagerness = "auto"
    create_response: bool = True
    interrupt_response: bool = True


TurnDetection = ServerVad | SemanticVad | None


@dataclass(frozen=True, slots=True)
class Transcription:
    """Caller speech transcription (needed to carry the caller's words over a reconnect)."""

    model: str
    language: str = ""  # ISO-639-1, "" = detect


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """One function the agent may call: `parameters` is a JSON schema object. In a call these
    come from the `[tools]` registry (`gateway.call_tools.session_settings`, which refuses
    `realtime.tools` beside it: a function there has no implementation to answer it)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    """Everything one realtime session needs except the API key (see `profiles.load_api_key`)."""

    provider: Provider = "openai"
    model: str = ""  # "" = profile default; Azure: the deployment name
    url: str = ""  # override; plain ws:// only to a loopback host
    azure_resource: str = ""  # <resource>.openai.azure.com
    api_key_file: str = ""
    api_key_env: str = ""
    instructions: str = ""
    voice: str = ""
    tts_model: str = ""  # Inworld's audio.output.model
    speed: float | None = None
    input_format: WireFormat = "audio/pcmu"
    output_format: WireFormat = "audio/pcmu"
    turn_detection: TurnDetection = field(default_factory=ServerVad)
    transcription: Transcription | None = None
    noise_reduction: NoiseReduction | None = None
    tools: tuple[ToolSchema, ...] = ()
    append_ms: int = 40
    rotate_after_s: float = 3300.0  # a fresh session at the next quiet moment after 55 min

    def __post_init__(self) -> None:
        _check_choice("provider", self.provider, PROVIDERS)
        _check_choice("input_format", self.input_format, WIRE_FORMATS)
        _check_choice("output_format", self.output_format, WIRE_FORMATS)
        _check_choice("append_ms", self.append_ms, APPEND_MS_CHOICES)
        if self.noise_reduction is not None:
            _check_choice("noise_reduction", self.noise_reduction, get_args(NoiseReduction))
        if not 0.0 < self.rotate_after_s < SESSION_CAP_S:
            raise RealtimeConfigError(
                f"realtime.rotate_after_s {self.rotate_after_s:g} must be between 0 and "
                f"{SESSION_CAP_S:g} (the session cap)"
            )
        if self.speed is not None and not 0.25 <= self.speed <= 1.5:
            raise RealtimeConfigError(f"realtime.speed {self.speed:g} is not within 0.25-1.5")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise RealtimeConfigError(f"realtime.tools: a name appears twice in {names}")

    @property
    def frames_per_append(self) -> int:
        return self.append_ms // 20


def _check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise RealtimeConfigError(
            f"realtime.{key} {value!r} is not one of {', '.join(map(str, allowed))}"
        )


# --- reading a config table ------------------------------------------------------------------

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "provider": str, "model": str, "url": str, "azure_resource": str, "api_key_file": str,
    "api_key_env": str, "instructions": str, "voice": str, "tts_model": str,
    "speed": (int, float), "input_format": str, "output_format": str, "noise_reduction": str,
    "append_ms": int, "rotate_after_s": (int, float),
}  # fmt: skip
_TABLES = ("turn_detection", "transcription", "tools")


def settings_from_config(table: Mapping[str, Any], where: str = "realtime") -> RealtimeSettings:
    """`RealtimeSettings` from a parsed TOML table; `RealtimeConfigError` names the bad key."""
    known = set(_SCALARS) | set(_TABLES)
    for key in table:
        if key not in known:
            raise RealtimeConfigError(
                f"{where}.{key} is not a setting; known: {', '.join(sorted(known))}"
            )
    values: dict[str, Any] = {}
    for key, kind in _SCALARS.items():
        if key in table:
            values[key] = _typed(table[key], kind, f"{where}.{key}")
    if values.get("noise_reduction") in ("", "off"):
        values["noise_reduction"] = None
    if "turn_detection" in table:
        values["turn_detection"] = _turn_detection(table["turn_detection"], where)
    if "transcription" in table:
        values["transcription"] = _transcription(table["transcription"], where)
    if "tools" in table:
        values["tools"] = _tools(table["tools"], f"{where}.tools")
    assert {f.name for f in fields(RealtimeSettings)} >= set(values)
    try:
        return RealtimeSettings(**values)
    except RealtimeConfigError as exc:
        raise RealtimeConfigError(str(exc).replace("realtime.", f"{where}.", 1)) from None


def _typed(value: object, kind: type | tuple[type, ...], key: str) -> Any:
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "number"
        raise RealtimeConfigError(f"{key} must be a {names}, got {value!r}")
    return value


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RealtimeConfigError(f"{key} must be a table, got {value!r}")
    return value


def _fields_of(cls: type, table: Mapping[str, Any], key: str, skip: str = "") -> dict[str, Any]:
    """The table's values for `cls`'s fields, each checked against the field's default type."""
    allowed = {f.name: f for f in fields(cls) if f.name != skip}
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name == skip:
            continue
        if name not in allowed:
            raise RealtimeConfigError(f"{key}.{name} is not a setting; known: "
                                      f"{', '.join(sorted(allowed))}")  # fmt: skip
        kind: Any = {"float": (int, float), "int": int, "bool": bool, "str": str,
                     "int | None": int}.get(str(allowed[name].type), str)  # fmt: skip
        out[name] = _typed(value, kind, f"{key}.{name}")
    return out


def _turn_detection(value: object, where: str) -> TurnDetection:
    key = f"{where}.turn_detection"
    table = _table(value, key)
    kind = table.get("type", "server_vad")
    if kind == "none":
        return None
    if kind == "server_vad":
        return ServerVad(**_fields_of(ServerVad, table, key, skip="type"))
    if kind == "semantic_vad":
        vad = SemanticVad(**_fields_of(SemanticVad, table, key, skip="type"))
        allowed = get_args(Eagerness)
        if vad.eagerness not in allowed:
            raise RealtimeConfigError(f"{key}.eagerness {vad.eagerness!r} is not one of "
                                      f"{', '.join(allowed)}")  # fmt: skip
        return vad
    raise RealtimeConfigError(f"{key}.type {kind!r} is not one of server_vad, semantic_vad, none")


def _transcription(value: object, where: str) -> Transcription | None:
    key = f"{where}.transcription"
    table = _table(value, key)
    if not table.get("model"):
        return None  # an empty table or model = "" turns transcription off
    return Transcription(**_fields_of(Transcription, table, key))


def _tools(value: object, key: str) -> tuple[ToolSchema, ...]:
    if not isinstance(value, list):
        raise RealtimeConfigError(f"{key} must be an array of tables, got {value!r}")
    tools = []
    for i, item in enumerate(value):
        table = _table(item, f"{key}[{i}]")
        if not isinstance(table.get("name"), str) or not table["name"]:
            raise RealtimeConfigError(f"{key}[{i}].name must be a non-empty string")
        params = table.get("parameters", {"type": "object", "properties": {}})
        _table(params, f"{key}[{i}].parameters")
        desc = _typed(table.get("description", ""), str, f"{key}[{i}].description")
        tools.append(ToolSchema(table["name"], desc, dict(params)))
    return tuple(tools)
