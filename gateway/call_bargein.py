"""Local barge-in of one call: `BargeIn`, the state machine between the caller's voice as the
box hears it (the local VAD, every 20 ms frame) and as the cloud hears it (`SpeechStarted`).

The call's audio step (`gateway.call_audio.AudioPath`) asks it on every rising edge of the
VAD (`voice_rose`) and every frame (`tick`); the call's events task asks it on every
`SpeechStarted` (`cloud_speech`). It only decides: the audio path pauses, resumes or flushes
the playout and the call sends the session `response.cancel` and `conversation.item.truncate`.
Pure logic on the caller's times (trio's clock), no trio.

- IDLE, the VAD rises while agent audio is on the line: PAUSE at once (the playout fades the
  agent out within 5 ms of the next frame), remember the onset; PAUSED.
- PAUSED, the cloud's SpeechStarted comes within `confirm_window_s` of the onset: CONFIRM
  (flush, cancel, truncate to what was played); IDLE.
- PAUSED, the window runs out: RESUME where the agent paused; IDLE. A cough, a door, a word
  to someone else in the room: the agent goes on after a short hold.
- IDLE, SpeechStarted while agent audio plays or is due: CONFIRM too (a barge-in only the
  cloud heard: a soft onset the local VAD missed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from gateway.errors import ConfigError

# The cloud's VAD needs its prefix and a few hundred ms of speech before speech_started (OpenAI
# server_vad: ~300-500 ms after onset; the local server: 40 ms of loud frames plus the round
# trip); 1.5 s leaves room for a slow network and a semantic VAD.
CONFIRM_WINDOW_S = 1.5
MAX_CONFIRM_WINDOW_S = 10.0  # a longer hold sounds like a dropped call


class BargeInState(StrEnum):
    IDLE = "idle"
    PAUSED = "paused"  # the local VAD heard the caller; waiting for the cloud


@dataclass(slots=True)
class BargeInStats:
    """Counts of one call: `paused` local onsets that paused the agent; `confirmed` of them
    the cloud confirmed; `resumed` not; `cloud_only` barge-ins the cloud heard first."""

    paused: int = 0
    confirmed: int = 0
    resumed: int = 0
    cloud_only: int = 0


class BargeIn:
    """Decides pause / resume / confirm; see the module docstring. Times in seconds."""

    def __init__(self, confirm_window_s: float = CONFIRM_WINDOW_S) -> None:
        if not (math.isfinite(confirm_window_s) and 0.0 < confirm_window_s <= MAX_CONFIRM_WINDOW_S):
            raise ConfigError(
                f"call.confirm_window_s must be in (0, {MAX_CONFIRM_WINDOW_S:g}] s, "
                f"got {confirm_window_s!r}"
            )
        self.confirm_window_s = confirm_window_s
        self.state = BargeInState.IDLE
        self.onset_s = math.nan  # of the pause in progress
        self.stats = BargeInStats()

    def voice_rose(self, onset_s: float, agent_playing: bool) -> bool:
        """The local VAD turned on for speech that began at `onset_s`. True: pause the agent
        now (it was playing and no pause is in progress)."""
        match self.state:
            case BargeInState.IDLE:
                if not agent_playing:
                    return False
                self.state, self.onset_s = BargeInState.PAUSED, onset_s
                self.stats.paused += 1
                return True
            case BargeInState.PAUSED:
                return False  # the window runs from the first onset
            case _:
                assert_never(self.state)

    def tick(self, now_s: float) -> bool:
        """Every frame. True: the window ran out unconfirmed; resume the agent now."""
        if self.state is BargeInState.PAUSED and now_s - self.onset_s > self.confirm_window_s:
            self.state = BargeInState.IDLE
            self.stats.resumed += 1
            return True
        return False

    def cloud_speech(self, agent_active: bool) -> bool:
        """The cloud's SpeechStarted. True: stop the agent for good (flush, cancel, truncate):
        it confirms a pause in progress, or the agent is talking (or about to) with no pause."""
        match self.state:
            case BargeInState.PAUSED:
                self.state = BargeInState.IDLE
                self.stats.confirmed += 1
                return True
            case BargeInState.IDLE:
                if agent_active:
                    self.stats.cloud_only += 1
                return agent_active
            case _:
                assert_never(self.state)

    def withdraw(self) -> bool:
        """The pause in progress was no speech after all (a DTMF tone): forget it. True if
        there was one (resume the agent)."""
        if self.state is not BargeInState.PAUSED:
            return False
        self.state = BargeInState.IDLE
        self.stats.paused -= 1
        return True

    def reset(self) -> None:
        """Forget a pause in progress (the cloud went away: nobody will confirm it)."""
        self.state = BargeInState.IDLE

    @property
    def paused(self) -> bool:
        return self.state is BargeInState.PAUSED
