"""`tipring realtime-check`: one short conversation with a realtime server, to try a set-up.

It opens a session with the given provider settings (or the bundled local server when no URL
and the `local` provider are given), checks that the server accepted our audio formats, says
one shipped prompt as the caller in real time, waits for the agent's answer and prints what it
measured: time to connect, time from the end of the caller's speech to the agent's first audio,
the agent's audio length and transcript. Nothing of the key is printed; a fatal server error
(a bad key, a refused format) is named with the server's code.

Exit status: 0 the agent answered, 1 the session failed or no answer came, 2 bad settings.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_SAMPLES
from dsp.g711 import ulaw_decode
from gateway.errors import GatewayError
from gateway.realtime import (
    AgentAudio,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
    ResponseDone,
    SessionFailed,
    TranscriptReceived,
    load_api_key,
)
from gateway.realtime.local import LocalRealtimeServer
from gateway.realtime.local.prompts import Prompts
from gateway.realtime.settings import PROVIDERS

FRAME_MS = 20
CALLER_PROMPT = "booked"  # what the check's caller says (a shipped prompt)
TRAILING_SILENCE_MS = 1200  # after it: long enough for any server VAD to end the turn
ANSWER_TIMEOUT_S = 15.0  # from the end of the caller's speech to the agent's answer done
CONNECT_TIMEOUT_S = 15.0
INSTRUCTIONS = "This is a connection test from a telephone gateway. Answer in one short sentence."


@dataclass
class CheckReport:
    url: str
    provider: str
    connect_ms: float = math.nan
    first_audio_ms: float = math.nan  # caller's end of speech -> first agent audio received
    agent_audio_ms: float = 0.0
    response_status: str = ""
    transcript: list[dict[str, str]] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.agent_audio_ms > 0.0

    def as_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 1)

        return {"ok": self.ok, "url": self.url, "provider": self.provider,
                "connect_ms": num(self.connect_ms), "first_audio_ms": num(self.first_audio_ms),
                "agent_audio_ms": round(self.agent_audio_ms, 1),
                "response_status": self.response_status, "transcript": self.transcript,
                "error": self.error}  # fmt: skip

    def text(self) -> str:
        lines = [f"realtime check: {self.provider} at {self.url}"]
        lines.append(f"  connected and audio formats accepted in {self.connect_ms:.0f} ms"
                     if not math.isnan(self.connect_ms) else "  not connected")  # fmt: skip
        if not math.isnan(self.first_audio_ms):
            lines.append(f"  first agent audio {self.first_audio_ms:.0f} ms after the caller "
                         f"stopped; {self.agent_audio_ms:.0f} ms of it "
                         f"(response {self.response_status or 'not done'})")  # fmt: skip
        for line in self.transcript:
            lines.append(f"  {line['who']}: {line['text']}")
        lines.append(f"  FAILED: {self.error}" if self.error else "  OK")
        return "\n".join(lines)


def check_settings(provider: str, url: str, model: str, key_file: str, key_env: str) -> (
    RealtimeSettings
):  # fmt: skip
    if provider not in PROVIDERS:
        raise GatewayError(f"--provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    return RealtimeSettings(provider=provider, url=url, model=model, api_key_file=key_file,
                            api_key_env=key_env, instructions=INSTRUCTIONS)  # fmt: skip


def _caller_frames(prompts: Prompts) -> list[NDArray[np.int16]]:
    pcm = ulaw_decode(np.frombuffer(prompts.ulaw[CALLER_PROMPT], np.uint8))
    pcm = np.concatenate([pcm, np.zeros(8 * TRAILING_SILENCE_MS, np.int16)])
    whole = pcm.size - pcm.size % FRAME_SAMPLES
    return [pcm[i : i + FRAME_SAMPLES].copy() for i in range(0, whole, FRAME_SAMPLES)]


async def _converse(settings: RealtimeSettings, report: CheckReport, prompts: Prompts) -> None:
    frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](16)
    events_send, events_recv = trio.open_memory_channel[RealtimeEvent](4096)
    session = RealtimeSession(settings, load_api_key(settings), frames_recv, events_send)
    frames = _caller_frames(prompts)
    speech_frames = len(frames) - TRAILING_SILENCE_MS // FRAME_MS
    async with trio.open_nursery() as nursery:
        began = time.monotonic()
        with trio.fail_after(CONNECT_TIMEOUT_S):
            await nursery.start(session.run)
        report.connect_ms = 1000.0 * (time.monotonic() - began)
        report.transcript.append({"who": "caller", "text": prompts.text[CALLER_PROMPT]})
        stopped = trio.Event()
        stopped_at = [math.inf]

        async def speak() -> None:  # paced on the real clock, as a line would
            start = trio.current_time()
            for k, frame in enumerate(frames):
                await trio.sleep_until(start + k * FRAME_MS / 1000.0)
                await frames_send.send(frame)
                if k + 1 == speech_frames:
                    stopped_at[0] = time.monotonic()
                    stopped.set()
            while True:  # the line stays open: silence
                await trio.sleep(FRAME_MS / 1000.0)
                await frames_send.send(np.zeros(FRAME_SAMPLES, np.int16))

        nursery.start_soon(speak)
        with trio.move_on_after(len(frames) * FRAME_MS / 1000.0 + ANSWER_TIMEOUT_S):
            await _answer(events_recv, stopped, stopped_at, report)
        if report.agent_audio_ms == 0.0 and not report.error:
            report.error = f"no agent audio within {ANSWER_TIMEOUT_S:g} s of the caller's turn"
        nursery.cancel_scope.cancel()


async def _answer(events: trio.MemoryReceiveChannel[RealtimeEvent], stopped: trio.Event,
                  stopped_at: list[float], report: CheckReport) -> None:  # fmt: skip
    """Collect the agent's first response after the caller's turn, until it is done."""
    agent_text: dict[str, str] = {}
    async for event in events:
        if isinstance(event, AgentAudio) and stopped.is_set():
            if math.isnan(report.first_audio_ms):
                report.first_audio_ms = 1000.0 * (time.monotonic() - stopped_at[0])
            report.agent_audio_ms += 1000.0 * event.pcm.size / 8000.0
        elif isinstance(event, TranscriptReceived) and event.speaker == "agent":
            before = "" if event.final else agent_text.get(event.item_id, "")
            agent_text[event.item_id] = before + event.text
        elif isinstance(event, ResponseDone) and report.agent_audio_ms > 0.0:
            report.response_status = event.status
            break
    for text in agent_text.values():
        if text:
            report.transcript.append({"who": "agent", "text": text})


async def run_check(settings: RealtimeSettings) -> CheckReport:
    """The check against `settings` (the bundled local server when it is `local` with no URL)."""
    prompts = Prompts.load()
    async with trio.open_nursery() as nursery:
        if settings.provider == "local" and not settings.url:
            url = await nursery.start(LocalRealtimeServer(prompts_dir=prompts.directory).run)
            settings = replace(settings, url=url)
        report = CheckReport(settings.url or "(the provider's endpoint)", settings.provider)
        try:
            await _converse(settings, report, prompts)
        except* SessionFailed as group:
            exc = _first(group, SessionFailed)
            report.error = f"{exc.reason}" + (f" (server code {exc.code})" if exc.code else "")
        except* trio.TooSlowError:
            report.error = f"no session within {CONNECT_TIMEOUT_S:g} s"
        nursery.cancel_scope.cancel()
    return report


E = TypeVar("E", bound=BaseException)


def _first(group: BaseExceptionGroup[E], kind: type[E]) -> E:
    """The first `kind` leaf of an exception group (trio's nurseries wrap what they raise)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found: E = _first(exc, kind)
            return found
        if isinstance(exc, kind):
            return exc
    raise AssertionError("an except* group holds what it matched")


def run_realtime_check(provider: str, url: str, model: str, key_file: str, key_env: str,
                       json_output: bool) -> int:  # fmt: skip
    """The `tipring realtime-check` command: prints the report, returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    refused = ""
    try:
        settings = check_settings(provider, url, model, key_file, key_env)
        load_api_key(settings)  # a missing key file or variable: say so before connecting
        report = trio.run(run_check, settings)
    except* GatewayError as group:  # bad settings, a key source that is not there
        refused = str(_first(group, GatewayError))
    if refused:
        print(f"tipring realtime-check: {refused}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_json(), indent=2) if json_output else report.text())
    return 0 if report.ok else 1
