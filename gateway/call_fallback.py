"""What a call plays and records on its own when the cloud is away: the hold beeps while the
realtime session reconnects (`hold`), and past the hold timeout (or when the session failed
for good) the fallback: a prompt, a beep, a voicemail recorded on the box, a goodbye
(`leave_voicemail`, `Voicemail`). Also the shipped prompts (`load_prompts`).

The prompts are the local realtime server's (`gateway/realtime/local/prompts`, spoken by
espeak-ng, mu-law): the fallback says "sorry" ("Sorry, I didn't catch that. Could you say it
again?") before the beep and "goodbye" after, until a voicemail greeting is recorded with
them (`CallConfig.fallback_prompt` / `goodbye_prompt` name any prompt there).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.g711 import ulaw_decode
from dsp.levels import tone
from gateway.call_audio import AudioPath
from gateway.call_config import CallConfig
from gateway.call_wav import FrameTape, write_wav
from gateway.errors import ConfigError
from gateway.realtime.errors import RealtimeConfigError
from gateway.realtime.local.prompts import Prompts

log = logging.getLogger(__name__)

PromptBank = dict[str, NDArray[np.int16]]

HOLD_FIRST_BEEP_S = 0.5  # a reconnect is usually quicker: the caller hears nothing of it
HOLD_BEEP = tone([440.0], 250.0, -24.0)  # soft: the agent's speech sits around -28 dBm0 RMS
VOICEMAIL_BEEP = tone([1000.0], 400.0, -15.0)  # the answering machine's beep


def load_prompts(directory: str | Path | None = None) -> PromptBank:
    """The shipped prompts as 8 kHz int16 (blocking file reads: call from a thread).
    `ConfigError` if they cannot be read."""
    try:
        prompts = Prompts.load(directory)
    except RealtimeConfigError as exc:
        raise ConfigError(str(exc)) from None
    return {name: ulaw_decode(np.frombuffer(data, np.uint8)) for name, data in prompts.ulaw.items()}


def check_prompts(prompts: PromptBank, config: CallConfig) -> None:
    for key in ("fallback_prompt", "goodbye_prompt"):
        name = getattr(config, key)
        if name not in prompts:
            raise ConfigError(f"call.{key} '{name}' is not a prompt; the prompts are "
                              f"{', '.join(sorted(prompts))}")  # fmt: skip


async def play(audio: AudioPath, pcm: NDArray[np.int16], label: str) -> None:
    """Play `pcm` on the line (after the agent's audio in progress) and wait until it is out."""
    await audio.play_local(pcm, label).done.wait()


async def hold(audio: AudioPath, config: CallConfig, back: trio.Event) -> bool:
    """Beep every `hold_beep_every_s` until `back` is set (True) or `hold_timeout_s` has
    passed without it (False)."""
    with trio.move_on_after(config.hold_timeout_s):
        with trio.move_on_after(HOLD_FIRST_BEEP_S):
            await back.wait()
            return True
        while True:
            audio.play_local(HOLD_BEEP, "hold")
            with trio.move_on_after(config.hold_beep_every_s):
                await back.wait()
                return True
    return back.is_set()


class Voicemail:
    """One voicemail: the tape of the caller's message (the uplink after the echo canceller)
    and where it goes. `save()` writes it once; the call's cleanup saves a message cut short
    by a hang-up."""

    def __init__(self, directory: Path, call_id: str) -> None:
        self.path = directory / f"{call_id}.wav"
        self.tape: FrameTape | None = None
        self.saved = False

    def take(self) -> tuple[Path, NDArray[np.int16]] | None:
        """The file to write (once): (path, audio), None if there is nothing (more) to save."""
        if self.tape is None or self.saved:
            return None
        self.saved = True
        pcm = self.tape.pcm()
        log.info("voicemail of %.1f s saved to %s", pcm.size / 8000, self.path)
        return self.path, pcm

    async def save(self) -> None:
        file = self.take()
        if file is not None:
            await trio.to_thread.run_sync(write_wav, *file)


async def leave_voicemail(audio: AudioPath, config: CallConfig, prompts: PromptBank,
                          voicemail: Voicemail | None) -> None:  # fmt: skip
    """The fallback: the prompt; with a voicemail, the beep, the caller's message (until
    `voicemail_silence_s` of quiet, `voicemail_max_s`, or a hang-up cancels this) saved; the
    goodbye. Returns when the goodbye was played."""
    await play(audio, prompts[config.fallback_prompt], "fallback")
    if voicemail is not None:
        await play(audio, VOICEMAIL_BEEP, "beep")
        tape = voicemail.tape = audio.start_recording(config.voicemail_max_s, trio.current_time())
        silence_s = config.voicemail_silence_s
        await audio.until(
            lambda: tape.full or trio.current_time() - audio.last_speech_s >= silence_s
        )
        audio.recording = None
        await voicemail.save()
    await play(audio, prompts[config.goodbye_prompt], "goodbye")
