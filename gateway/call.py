"""`gateway.call`: the call pipeline. `CallPipeline` implements `gateway.line_call.CallStarter`:
the line actor runs `run_call(spec, line)` for each connected call, and each call is a nursery
(`Call`) that ends by returning (the agent hung up, the cloud is gone for good) or by being
cancelled (the line hung up). Its record (`gateway.call_metrics.CallRecord`) is kept in
`CallPipeline.records` and handed to `on_record`.

Inside a call:
- the frame loop: each frame the line forwards -> `AudioPath.step` (echo canceller, DTMF,
  VAD, local barge-in, one frame to the line, the clean frame to the session);
- the cloud: a `RealtimeSession` for the agent's profile, `CallTools` on its events (tools run
  while audio flows), and the events task: agent audio -> playout, transcripts, the cloud's
  speech_started (confirm or cloud-only barge-in: flush, `response.cancel`, truncate to what
  was played), connection news (hold beeps while it reconnects; past `hold_timeout_s` or
  when the session fails: the fallback prompt and a voicemail, `gateway.call_fallback`);
- the caller's digits (detected on the clean uplink, or reported by the device): a tool
  collecting them, the local menu, or the agent (`gateway.call_digits`);
- a call prepared while the line rings (FXO pre-answer, `gateway.call_prepare`) runs its cloud
  side at once and touches the line's audio only once `line.answered` is set;
- `CallActions` (`gateway.call_control`) is the tools' `CallControl`: end_call, transfers
  (a warm one to a phone of the box: `gateway.call_handover`), send_dtmf.
Also: `call_audio` (the frame step), `call_echo`, `call_bargein`, `call_fallback`, `call_wav`,
`call_metrics`/`call_record`, `call_secure`, `call_signals` (fax, call waiting), `call_config`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import assert_never

import numpy as np
import trio
from numpy.typing import NDArray

from firmware_bridge.port import AudioFrame, DtmfReported, HookFlashed
from gateway.call_audio import AudioPath
from gateway.call_bargein import BargeIn
from gateway.call_config import AgentProfile, CallConfig, CloudSession, SessionFactory
from gateway.call_control import CallActions, ResponseWatch
from gateway.call_digits import DigitRouter
from gateway.call_fallback import (
    PromptBank,
    Voicemail,
    check_prompts,
    hold,
    leave_voicemail,
    load_prompts,
    play,
)
from gateway.call_handover import Handover
from gateway.call_metrics import CallMetrics, CallRecord, Timeline, TranscriptLine
from gateway.call_prepare import pre_answer_settings, wait_for_answer
from gateway.call_record import make_record, save_files
from gateway.call_signals import dispatch_heard
from gateway.call_tools import CallTools, open_call_tools, session_settings
from gateway.errors import ConfigError
from gateway.handoff import HandoffDesk
from gateway.line_call import CallLine, CallSpec
from gateway.realtime import (
    AgentAudio,
    ErrorReported,
    FunctionCallRequested,
    RateLimitsUpdated,
    RealtimeConfigError,
    RealtimeEvent,
    RealtimeSession,
    ResponseCreated,
    ResponseDone,
    SessionConnected,
    SessionFailed,
    SessionLost,
    SpeechStarted,
    SpeechStopped,
    TranscriptReceived,
)
from gateway.tools import ToolCallRecord

log = logging.getLogger(__name__)

UPLINK_BUFFER = 16  # caller frames to the session (320 ms): a stalled socket loses frames, not time
EVENTS_BUFFER = 256  # session -> CallTools: a reply's burst of deltas and transcripts
SAVE_S = 1.5  # the record's files (voicemail, captures), within the line's CALL_CLEANUP_S (2 s)
RECORDS_KEPT = 100
WallClock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CallPipeline:
    """The `CallStarter` of the appliance: `profiles` by name (the line's rules pick one; an
    unknown name gets "default"), `config` for every call. `prompts`: name -> int16 audio
    (None: the shipped ones, read at the first call). `session_factory` makes the realtime
    session (tests may hand in a fake). Construction does no I/O."""

    def __init__(self, profiles: Mapping[str, AgentProfile], config: CallConfig | None = None, *,
                 prompts: PromptBank | None = None,
                 on_record: Callable[[CallRecord], None] | None = None,
                 on_start: Callable[[CallSpec], None] | None = None,
                 on_transcript: Callable[[str, str, str], None] | None = None,
                 session_factory: SessionFactory = RealtimeSession,
                 wall_clock: WallClock = _utc_now) -> None:  # fmt: skip
        if not profiles:
            raise ConfigError("call: no agent profiles: nobody to answer calls")
        self.profiles = dict(profiles)
        self.config = config or CallConfig()
        self.on_record, self.on_start, self.on_transcript = on_record, on_start, on_transcript
        self.active: dict[str, Call] = {}  # the calls running now, by call id
        self.records: deque[CallRecord] = deque(maxlen=RECORDS_KEPT)
        self._prompts = prompts
        if prompts is not None:
            check_prompts(prompts, self.config)
        self._session_factory = session_factory
        self._wall_clock = wall_clock
        self.handoffs: HandoffDesk | None = None  # the app's: warm transfers to its phones

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        profile = self.profiles.get(spec.profile) or self.profiles.get("default")
        if profile is None:
            raise ConfigError(f"call {spec.call_id}: no agent profile '{spec.profile}' and no "
                              "'default' one")  # fmt: skip
        if self._prompts is None:
            prompts = await trio.to_thread.run_sync(load_prompts)
            check_prompts(prompts, self.config)
            self._prompts = prompts
        call = Call(spec, line, profile, self.config, self._prompts, self._session_factory)
        call.on_transcript, call.handoffs = self.on_transcript, self.handoffs
        started_at = self._wall_clock()
        if self.on_start is not None:
            self.on_start(spec)
        self.active[spec.call_id] = call
        log.info("line %d: call %s (%s) with agent %s", spec.port, spec.call_id, spec.direction,
                 spec.profile)  # fmt: skip
        try:
            await call.run()
        except Exception:  # a bug: the line logs it with its traceback; the record says so
            call.ended_by = call.ended_by or "the call failed (see the log)"
            raise
        finally:
            del self.active[spec.call_id]
            with trio.move_on_after(SAVE_S, shield=True):
                await save_files(call)
            started_at += timedelta(seconds=call.prepared_s)  # the answer, not the first ring
            record = make_record(call, started_at, self._wall_clock())
            self.records.append(record)
            log.info("line %d: call %s over after %.1f s: %s", spec.port, spec.call_id,
                     record.duration_s, record.ended_by)  # fmt: skip
            if self.on_record is not None:
                self.on_record(record)


class Call:
    """One call's nursery and state; see the module docstring."""

    def __init__(self, spec: CallSpec, line: CallLine, profile: AgentProfile, config: CallConfig,
                 prompts: PromptBank, session_factory: SessionFactory) -> None:  # fmt: skip
        self.spec, self.line, self.profile, self.config = spec, line, profile, config
        self.prompts, self._session_factory = prompts, session_factory
        self.timeline = Timeline(trio.current_time())
        self.metrics = CallMetrics()
        self.bargein = BargeIn(config.confirm_window_s)
        self.audio = AudioPath(line.port, config, self.metrics, self.bargein, self.timeline)
        self.responses = ResponseWatch()
        self.transcript: list[TranscriptLine] = []
        self.dtmf = ""
        self.ended_by: str | None = None
        self.voicemail = (Voicemail(config.voicemail_dir, spec.call_id)
                          if config.voicemail_dir is not None else None)  # fmt: skip
        self.captures: list[str] = []
        self.tools: CallTools | None = None
        self.session: CloudSession | None = None
        self._nursery: trio.Nursery | None = None
        self._cloud_scope = trio.CancelScope()
        self._cloud_back = trio.Event()
        self._holding = self.gave_up = False
        self.digits = DigitRouter(self)
        self.prepared_s = 0.0  # how long the call ran before the answer (FXO pre-answer)
        self.pre_answer_records: list[ToolCallRecord] = []
        self.control: CallActions | None = None
        self.on_transcript: Callable[[str, str, str], None] | None = None
        self.handoffs: HandoffDesk | None = None
        self.relay: Callable[[AudioFrame], None] | None = None  # a warm transfer has the line
        self.cloud_closed_s: float | None = None
        self.end_signal: str | None = None  # what the call itself saw end it (a fax tone)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.control = CallActions(self.spec, self.line, self.audio, self.responses,
                                       self.end, nursery, self.handoffs,
                                       Handover(self))  # fmt: skip
            nursery.start_soon(self._cloud)
            nursery.start_soon(self._frames)
            await wait_for_answer(self)  # at once, unless prepared while the line rings
            nursery.start_soon(self._signals)
            nursery.start_soon(self.digits.run)

    def end(self, ended_by: str) -> None:
        """End the call (run() returns): `ended_by` goes to the record."""
        if self.ended_by is None:
            self.ended_by = ended_by
            self.timeline.note(trio.current_time(), f"ended: {ended_by}")
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel(reason=ended_by)

    # --- the line side ------------------------------------------------------------------------

    async def _frames(self) -> None:
        async for frame in self.line.frames:
            if not self.line.answered.is_set():
                continue  # still ringing: ring signal and caller ID, not a call
            if self.relay is not None:  # a warm transfer: the caller waits, or is bridged
                self.relay(frame)
                continue
            now_s = trio.current_time()
            if self.audio.ear is not None:  # a warm transfer waits for the person it rang
                self.audio.ear.hear(frame.pcm)
            for digit in self.audio.step(frame, now_s):
                self.digits.digit(digit, now_s)
            if self.audio.heard and self._nursery is not None:
                dispatch_heard(self, self._nursery, now_s)
        if not self.line.hangup.hung_up:  # the line closes them before it cancels us
            self.end("the line stopped sending audio")

    async def _signals(self) -> None:
        async for signal in self.line.signals:
            now_s = trio.current_time()
            match signal:
                case DtmfReported(digit=digit):
                    self.digits.digit(digit, now_s)
                case HookFlashed(duration_ms=ms):
                    self.timeline.note(now_s, f"caller flashed the hook ({ms:.0f} ms)")
                case _:
                    assert_never(signal)

    # --- the cloud side -----------------------------------------------------------------------

    async def _cloud(self) -> None:
        if self.config.cloud_delay_s > 0.0:  # a fax gate: its tone ends the call before this
            await self.line.answered.wait()
            await trio.sleep(self.config.cloud_delay_s)
        settings = await pre_answer_settings(self, self.profile.settings)
        try:
            settings = session_settings(settings, self.profile.tools)
            frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](UPLINK_BUFFER)
            events_send, events_recv = trio.open_memory_channel[RealtimeEvent](EVENTS_BUFFER)
            session = self._session_factory(settings, self.profile.api_key, frames_recv,
                                            events_send)  # fmt: skip
        except RealtimeConfigError as exc:
            log.error("call %s: agent %s cannot be reached: %s", self.spec.call_id,
                      self.spec.profile, exc)  # fmt: skip
            self.give_up(f"cloud unavailable ({exc})")
            return
        assert self.control is not None
        self.tools, call_recv = open_call_tools(self.profile.tools, self.control, session,
                                                events_recv)  # fmt: skip
        self.session = session
        self.audio.to_cloud = frames_send
        with self._cloud_scope:
            async with trio.open_nursery() as cloud:
                cloud.start_soon(self._run_session, session)
                cloud.start_soon(self.tools.run)
                cloud.start_soon(self._events, call_recv, session)

    async def _run_session(self, session: CloudSession) -> None:
        try:
            await session.run()
        except SessionFailed as exc:  # the session's only way to end: it tells us why
            self.give_up(f"cloud unavailable ({exc.reason})")
        finally:  # its socket is closed by now (a hang-up cuts the close to 0.1 s)
            self.cloud_closed_s = trio.current_time()

    async def _events(self, events: trio.MemoryReceiveChannel[RealtimeEvent],
                      session: CloudSession) -> None:  # fmt: skip
        async for event in events:
            now_s = trio.current_time()
            match event:
                case AgentAudio():
                    self.audio.agent_audio(event, now_s)
                case ResponseCreated(response_id=rid):
                    self.responses.response_created(rid, now_s)
                case ResponseDone(response_id=rid):
                    self.audio.response_done(rid, now_s)
                    self.responses.response_done(rid, now_s)
                case TranscriptReceived(speaker=who, text=text, final=final):
                    if final and text.strip():
                        self.transcript.append(TranscriptLine(who, text.strip()))
                        if self.on_transcript is not None:
                            self.on_transcript(self.spec.call_id, who, text.strip())
                case SpeechStarted():
                    await self._cloud_heard_caller(session, now_s)
                case SpeechStopped() | RateLimitsUpdated():
                    pass
                case FunctionCallRequested(name=name):
                    self.timeline.note(now_s, f"tool {name}")
                case SessionConnected():
                    await self._connected(event, session, now_s)
                case SessionLost(reason=reason, retrying=retrying):
                    self._lost(reason, retrying, now_s)
                case ErrorReported(code=code, message=message):
                    self.timeline.note(now_s, f"cloud error {code}: {message[:80]}")
                case _:
                    assert_never(event)

    async def _cloud_heard_caller(self, session: CloudSession, now_s: float) -> None:
        interrupted = self.audio.cloud_speech(now_s)
        if interrupted is None:
            return
        await session.cancel_response()
        item = interrupted.item
        if item is not None:
            self.timeline.note(now_s, f"truncated {item.item_id} at {item.played_ms} ms")
            await session.truncate(item.item_id, item.played_ms)

    async def _connected(self, event: SessionConnected, session: CloudSession,
                         now_s: float) -> None:  # fmt: skip
        if event.rotated:
            return
        if event.connects > 1:
            self.metrics.reconnects += 1
            self.timeline.note(now_s, "cloud reconnected")
            self._cloud_back.set()
            return
        self.timeline.note(now_s, "cloud connected")
        cid = self.spec.callerid
        if cid is not None and (cid.number or cid.name):
            who = " ".join(part for part in (cid.name, cid.number) if part)
            await session.send_text(f"Caller ID: {who}", role="system", respond=False)
        if self.profile.greeting_audio is not None:  # the agent said it: it carries on from it
            await session.send_text(self.profile.greeting_text, role="assistant", respond=False)
        if self.profile.greeting:
            await session.send_text(self.profile.greeting, role="system", respond=True)

    def _lost(self, reason: str, retrying: bool, now_s: float) -> None:
        self.audio.cloud_lost()
        self.timeline.note(now_s, f"cloud lost: {reason}")
        if retrying and not self._holding and not self.gave_up:
            assert self._nursery is not None
            self._holding = True
            self._cloud_back = trio.Event()
            self._nursery.start_soon(self._hold, self._cloud_back)

    async def _hold(self, back: trio.Event) -> None:
        if await hold(self.audio, self.config, back):
            self._holding = False
        else:
            self.give_up(f"cloud unavailable for {self.config.hold_timeout_s:g} s")

    def give_up(self, reason: str, ended_by: str = "cloud unavailable") -> None:
        """The agent is gone for this call (the cloud is down, or the caller asked for
        voicemail): stop the session, play the fallback and take a message, end."""
        if self.gave_up:
            return
        log.warning("call %s: %s; playing the fallback", self.spec.call_id, reason)
        self.drop_agent(reason, reason)
        self.audio.cloud_lost()
        assert self._nursery is not None
        self._nursery.start_soon(self._fallback, ended_by)

    def wind_down(self, reason: str) -> None:
        """End the call politely (the appliance is stopping): the agent goes, the goodbye
        prompt plays, the call ends. Nothing if it is already ending on its own."""
        if self.gave_up or self._nursery is None:
            return
        if not self.line.answered.is_set():  # prepared, still ringing: nobody to say it to
            self.end(reason)
            return
        self.drop_agent(reason, f"winding down: {reason}")
        self.audio.mute_agent()
        self._nursery.start_soon(self._goodbye, reason)

    def drop_agent(self, reason: str, note: str) -> None:
        """The session goes (`reason`); the call goes on without an agent."""
        self.gave_up = True
        self.timeline.note(trio.current_time(), note)
        self._cloud_scope.cancel(reason=reason)
        self.audio.to_cloud = None

    async def _goodbye(self, reason: str) -> None:
        await play(self.audio, self.prompts[self.config.goodbye_prompt], "goodbye")
        self.end(reason)

    async def _fallback(self, ended_by: str) -> None:
        await self.line.answered.wait()
        await leave_voicemail(self.audio, self.config, self.prompts, self.voicemail)
        self.end(ended_by)
