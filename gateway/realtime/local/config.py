"""The local server's session config: the GA defaults a new session starts with, the partial
merge of `session.update`, its validation (with the real API's error messages) and the echo in
`session.created` / `session.updated`.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from gateway.realtime.audio import WireFormat, parse_format
from gateway.realtime.local import server_events as se

# Whole-object fields: an update replaces them rather than merging into them.
_REPLACED = frozenset({"format", "turn_detection", "transcription", "noise_reduction", "tools"})
_FORMATS_HELP = "Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'."
SESSION_S = 3600  # expires_at: the GA 60-minute cap


def default_config(model: str) -> dict[str, Any]:
    """What the real API starts a session with: 24 kHz PCM both ways, server VAD."""
    turn_detection = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                      "silence_duration_ms": 500, "create_response": True,
                      "interrupt_response": True, "idle_timeout_ms": None}  # fmt: skip
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime", "model": model, "output_modalities": ["audio"], "instructions": "",
        "audio": {
            "input": {"format": dict(pcm), "noise_reduction": None, "transcription": None,
                      "turn_detection": turn_detection},
            "output": {"format": dict(pcm), "voice": "marin", "speed": 1.0},
        },
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "truncation": "auto",
    }  # fmt: skip


def echo(config: dict[str, Any], session_id: str, report_output_format: str) -> dict[str, Any]:
    """The session object sent back (with the `report_output_format` fault applied)."""
    session = copy.deepcopy(config)
    session.update(id=session_id, object="realtime.session",
                   expires_at=int(time.time()) + SESSION_S)  # fmt: skip
    audio = session["audio"]
    if report_output_format == "omit":
        audio["input"].pop("format", None)
        audio["output"].pop("format", None)
    elif report_output_format:
        audio["output"]["format"] = {"type": report_output_format}
    return session


def merge(config: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a partial update: present fields change, nested objects merge, `null` clears."""
    for key, value in update.items():
        old = config.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and key not in _REPLACED:
            merge(old, value)
        else:
            config[key] = copy.deepcopy(value)


def check_update(session: object, lenient: bool) -> dict[str, Any] | None:
    """The error event for an invalid `session.update` body, or None if it is acceptable.
    `lenient` (the Inworld-style server) takes the beta format strings too."""
    if not isinstance(session, dict):
        return se.error("invalid_type", "Invalid type for 'session': expected an object.",
                        param="session")  # fmt: skip
    if "type" not in session:
        return se.error(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            param="session.type",
        )
    if session["type"] != "realtime":
        return se.error("invalid_value", f"Invalid value: {session['type']!r}. Supported "
                        "values are: 'realtime'.", param="session.type")  # fmt: skip
    audio = session.get("audio", {})
    if not isinstance(audio, dict):
        return se.error("invalid_type", "Invalid type for 'session.audio': expected an object.",
                        param="session.audio")  # fmt: skip
    for direction in ("input", "output"):
        part = audio.get(direction, {})
        fmt = part.get("format") if isinstance(part, dict) else None
        if fmt is None or (isinstance(fmt, str) and lenient):
            continue
        if not isinstance(fmt, dict):
            return se.error(
                "invalid_type",
                f"Invalid type for 'session.audio.{direction}.format': expected an object.",
                param=f"session.audio.{direction}.format",
            )
        if parse_format(fmt) is None:
            return se.error("invalid_value", f"Invalid value for 'session.audio.{direction}."
                            f"format': {fmt!r}. {_FORMATS_HELP}",
                            param=f"session.audio.{direction}.format")  # fmt: skip
    return _check_turn_detection(audio.get("input", {}))


def _check_turn_detection(audio_in: object) -> dict[str, Any] | None:
    if not isinstance(audio_in, dict) or "turn_detection" not in audio_in:
        return None
    td = audio_in["turn_detection"]
    if td is None or (isinstance(td, dict) and td.get("type") in ("server_vad", "semantic_vad")):
        return None
    return se.error("invalid_value", "Invalid value for 'session.audio.input.turn_detection"
                    ".type'. Supported values are: 'server_vad' and 'semantic_vad'.",
                    param="session.audio.input.turn_detection.type")  # fmt: skip


def formats(config: dict[str, Any]) -> tuple[WireFormat, WireFormat]:
    audio = config["audio"]
    fmt_in = parse_format(audio["input"].get("format")) or "audio/pcm"
    fmt_out = parse_format(audio["output"].get("format")) or "audio/pcm"
    return fmt_in, fmt_out


def transcribing(config: dict[str, Any]) -> bool:
    transcription = config["audio"]["input"].get("transcription")
    return isinstance(transcription, dict) and bool(transcription.get("model"))


def turn_detection(config: dict[str, Any]) -> dict[str, Any] | None:
    td = config["audio"]["input"].get("turn_detection")
    return td if isinstance(td, dict) else None
