"""What a call is set up with: `CallConfig` (the pipeline's knobs, one for all calls),
`AgentProfile` (the agent a line's rules chose: realtime settings, key, tools, greeting, an
optional local DTMF menu) and `SessionFactory` (what makes its realtime session: the real
`RealtimeSession`, or a test's fake `CloudSession`). `gateway.call.CallPipeline` takes them;
the app builds them from the config file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.vad import VadConfig
from gateway.call_bargein import CONFIRM_WINDOW_S, MAX_CONFIRM_WINDOW_S
from gateway.call_cwid import ACK_DIGITS, FSK_STANDARDS
from gateway.call_digits import MenuEntry
from gateway.errors import ConfigError
from gateway.playout import COMFORT_NOISE_DBM0
from gateway.realtime import ApiKey, RealtimeEvent, RealtimeSettings
from gateway.realtime.client_events import Role
from gateway.tools import ToolRegistry

HOLD_TIMEOUT_S = 10.0  # a reconnect takes < 1 s; 10 s of beeps is as long as callers wait
HOLD_BEEP_EVERY_S = 2.0
VOICEMAIL_MAX_S = 60.0
VOICEMAIL_SILENCE_S = 4.0  # quiet this long after the beep (or after speech): the message is over
DTMF_GAP_S = 1.0  # digits typed within this of each other go to the agent as one message
FAX_ACTIONS = ("hang_up", "ignore")
CAPTURE_MAX_S = 600.0  # per direction: 9.6 MB each
# The agent speaks first on an answered call: a note in the conversation asks for its greeting.
GREETING = "The phone call has just been answered. Greet the caller."


class CloudSession(Protocol):
    """What a call needs of its realtime session (`gateway.realtime.RealtimeSession`)."""

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...
    async def cancel_response(self) -> None: ...
    async def truncate(self, item_id: str, audio_end_ms: float) -> None: ...
    async def send_function_output(self, call_id: str, output: str) -> None: ...
    async def send_text(self, text: str, role: Role = "user", *,
                        respond: bool | None = None) -> None: ...  # fmt: skip


SessionFactory = Callable[
    [
        RealtimeSettings,
        ApiKey | None,
        trio.MemoryReceiveChannel[NDArray[np.int16]],
        trio.MemorySendChannel[RealtimeEvent],
    ],
    CloudSession,
]


@dataclass(frozen=True, slots=True, eq=False)
class AgentProfile:
    """One agent. `greeting`: the system note that makes the agent speak first (None: it waits
    for the caller). `greeting_audio`: a cached greeting the box plays the moment the line is
    answered, while the session connects; `greeting_text` is what it says (the agent is told it
    said it, and `greeting` then asks for a follow-up, queued after it on the line).
    `dtmf_menu`: keys the box acts on itself (`gateway.call_digits`), never sent to the
    agent. `pre_answer_tool`: a tool of `tools` run with the caller's number and name before
    the session opens (while the line rings, on a prepared call); its result goes into the
    instructions."""

    settings: RealtimeSettings
    api_key: ApiKey | None = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    greeting: str | None = GREETING
    dtmf_menu: tuple[MenuEntry, ...] = ()
    greeting_audio: NDArray[np.int16] | None = None
    greeting_text: str = ""
    pre_answer_tool: str = ""


@dataclass(frozen=True, slots=True)
class CallConfig:
    """The pipeline's knobs (seconds, dB). `voicemail_dir` None: no voicemail, the fallback
    prompt and a goodbye only. `capture_dir`: write both directions of every call as WAV.
    `fallback_prompt`, `goodbye_prompt`: names of shipped prompts (`gateway.call_fallback`)."""

    confirm_window_s: float = CONFIRM_WINDOW_S
    hold_timeout_s: float = HOLD_TIMEOUT_S
    hold_beep_every_s: float = HOLD_BEEP_EVERY_S
    voicemail_dir: Path | None = None
    voicemail_max_s: float = VOICEMAIL_MAX_S
    voicemail_silence_s: float = VOICEMAIL_SILENCE_S
    fallback_prompt: str = "sorry"
    goodbye_prompt: str = "goodbye"
    capture_dir: Path | None = None
    capture_max_s: float = CAPTURE_MAX_S
    dtmf_gap_s: float = DTMF_GAP_S
    echo_tail_ms: float = 128.0
    comfort_noise_dbm0: float = COMFORT_NOISE_DBM0
    vad: VadConfig = field(default_factory=VadConfig)
    fax_action: str = "hang_up"  # a fax or modem tone on the line: "hang_up" or "ignore"
    cloud_delay_s: float = 0.0  # open the cloud session this long after the answer (a fax
    # gate: a fax's CNG is heard first and no session is opened; a local greeting covers it)
    # Caller ID on call waiting (FXO, `gateway.call_cwid`): acknowledge the CAS with DTMF
    # `callwaiting_ack` ("D"; "A" for ADSI) and decode the `callwaiting_id_standard` FSK that
    # follows ("bell202": GR-30-CORE; "v23": ETSI EN 300 659-2).
    callwaiting_id: bool = True
    callwaiting_id_standard: str = "bell202"
    callwaiting_ack: str = "D"

    def __post_init__(self) -> None:
        limits = {
            "confirm_window_s": (0.05, MAX_CONFIRM_WINDOW_S),
            "hold_timeout_s": (0.0, 300.0),
            "hold_beep_every_s": (0.2, 60.0),
            "voicemail_max_s": (1.0, 600.0),
            "voicemail_silence_s": (0.5, 60.0),
            "capture_max_s": (1.0, 7200.0),
            "dtmf_gap_s": (0.0, 10.0),
            "echo_tail_ms": (16.0, 256.0),
            "cloud_delay_s": (0.0, 10.0),
        }
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"call.{name} must be in {lo:g}..{hi:g}, got {value!r}")
        choices = {"fax_action": FAX_ACTIONS, "callwaiting_id_standard": FSK_STANDARDS,
                   "callwaiting_ack": ACK_DIGITS}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"call.{name} {getattr(self, name)!r} is not one of "
                                  f"{', '.join(allowed)}")  # fmt: skip
