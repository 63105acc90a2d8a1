"""The audio of one call, 20 ms at a time: `AudioPath` owns the call's playout, echo
canceller, VAD and DTMF detector, and runs both directions in one step per received frame.

Who talks to it: the call's frame loop (`gateway.call`) calls `step` once per frame the line
forwards (paced by the adapter's clock: one frame sent per frame received, spec §7); the
call's events task calls the downlink half (`agent_audio`, `response_done`, `cloud_speech`,
`cloud_lost`); the call's helpers queue local audio (`play_local`: hold beeps, prompts, DTMF
for the line) and start a voicemail recording. All on one trio thread: no locks, no awaits.

One step, in this order:
1. echo cancel the received frame against the frame sent one tick earlier (the reference is
   exactly what we played; its echo can only come back after it was sent);
2. DTMF on the clean frame; the VAD on it, with that reference and the residual echo to allow
   for (`gateway.call_echo.EchoGuard`: the canceller's estimate when it is trusted, else the
   echo uncancelled); a rising edge while the agent talks pauses the playout *now*
   (`BargeIn`), so the frame sent in this same tick already fades the agent out (<= 5 ms).
   DTMF tones are no speech: the VAD's edges are masked while one sounds;
3. the playout's next frame goes to the line (agent audio, fades, comfort noise, local audio;
   while caller ID on call waiting has the line, `gateway.call_cwid`'s frame, the playout held);
4. the clean frame goes to the realtime session with `send_nowait` (dropped and counted when
   its channel is full: the line clock never waits on the cloud). It is silenced while a DTMF
   tone sounds, and while the agent's echo may be in it, the caller is not talking and the
   canceller is not trusted (`gateway.call_echo.EchoGuard`: else the cloud's VAD hears the
   agent's words come back and barges in on itself).

The canceller runs its linear stage only (`nlp=False`): the VAD needs it (see `dsp.vad`), and
the cloud gets the same frame (a second canceller for an NLP output would double the CPU).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.dtmf import DtmfDetector
from dsp.echo import EchoCanceller
from dsp.frame import FRAME_S, FRAME_SAMPLES, RATE_HZ
from dsp.line_signals import LineSignal, LineSignalDetector
from dsp.vad import Vad
from firmware_bridge.port import AudioFrame, LinePort, PortKind
from gateway.call_bargein import BargeIn
from gateway.call_config import CallConfig
from gateway.call_cwid import CallWaitingId
from gateway.call_echo import EchoGuard
from gateway.call_health import LineMeter
from gateway.call_metrics import CallMetrics, LevelMeter, Timeline
from gateway.call_secure import SecureDigits, UplinkGuard
from gateway.call_wav import FrameTape
from gateway.line_progress import ProgressEar
from gateway.playout import FADE_SAMPLES, FlushedItem, PlayoutBuffer
from gateway.realtime import AgentAudio

LOCAL_PREFIX = "local-"  # response and item ids of audio the box makes itself
ERLE_EVERY_FRAMES = 10  # the canceller's ERLE is sampled every 200 ms while the agent talks
# The agent's echo outlasts its last sample by the echo path's delay and dispersion: the
# canceller's 128 ms tail and a little more.
ECHO_GUARD_S = 0.2
FADE_S = FADE_SAMPLES / RATE_HZ
DTMF_ONSET_S = 2 * FRAME_S  # the detector knows a tone by its second frame at the latest


def warm_up() -> None:
    """Run every kernel of the step once (numba compiles or loads them from its cache: up to
    seconds). The app calls it before it reports ready, so the first call's frames are on time."""
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    ec, vad, dtmf = EchoCanceller(nlp=False), Vad(), DtmfDetector()
    clean = ec.process(silence, silence)
    dtmf.feed(clean)
    vad.process(clean, silence, ec.residual_echo_dbm0)
    LineSignalDetector().feed(clean)
    PlayoutBuffer().next_frame(0.0)


def is_local(response_id: str) -> bool:
    return response_id.startswith(LOCAL_PREFIX)


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The agent was stopped for good; `item` is the agent item that was on the line (to
    truncate at `item.played_ms`), None if none was."""

    item: FlushedItem | None


@dataclass(eq=False)
class LocalPlay:
    """Audio the box plays itself; `done` is set once it all went to the line (or was flushed)."""

    pcm: NDArray[np.int16]
    label: str
    response_id: str = ""
    done: trio.Event = field(default_factory=trio.Event)


class AudioPath:
    """See the module docstring. `to_cloud` is the session's frames channel (None: no cloud)."""

    def __init__(self, port: LinePort, config: CallConfig, metrics: CallMetrics,
                 bargein: BargeIn, timeline: Timeline) -> None:  # fmt: skip
        self.port, self.config, self.metrics = port, config, metrics  # (port: a warm
        # transfer's consult sets the phone it rang)
        self.bargein, self.timeline = bargein, timeline
        self.playout = PlayoutBuffer(config.comfort_noise_dbm0)
        self.ec = EchoCanceller(tail_ms=config.echo_tail_ms, nlp=False)
        self.vad = Vad(config=config.vad)
        self.dtmf = DtmfDetector()
        self.to_cloud: trio.MemorySendChannel[NDArray[np.int16]] | None = None
        self.agent_muted = False  # a transfer is under way: the agent's audio is not played
        self.recording: FrameTape | None = None  # a voicemail being recorded
        self.last_speech_s = -np.inf  # the last frame the VAD called speech
        keep = config.capture_max_s if config.capture_dir is not None else 0.0
        self.capture_up, self.capture_down = FrameTape(keep), FrameTape(keep)
        self._last_out = np.zeros(FRAME_SAMPLES, np.int16)
        self._off_probability = config.vad.off_probability
        self._speaking = False
        self._last_voiced_s = 0.0
        self._first_push: dict[str, float] = {}  # agent response id -> its first delta's arrival
        self._started: set[str] = set()  # agent responses whose first sample went out
        self._open: set[str] = set()  # agent responses whose audio is still arriving
        self._stopped: set[str] = set()  # agent responses flushed by a barge-in
        self._local_pending: deque[LocalPlay] = deque()
        self._local_playing: list[LocalPlay] = []
        self._local_count = 0
        self._agent_heard_s = -np.inf  # the last frame that carried agent audio
        self._local_heard_s = -np.inf  # the last frame that carried the box's own audio
        self._frame_count = 0
        self._frame_waiters: trio.Event | None = None
        self.echo_guard = EchoGuard()
        self.levels = LevelMeter()
        self.line_meter = LineMeter()  # the line's figures for its health (`gateway.line_health`)
        self.line_signals = LineSignalDetector()  # fax, modem, a beep, call waiting
        self.heard: list[LineSignal] = []  # recognised, for the call to take (`take_heard`)
        self.secure = SecureDigits()  # a tool collecting digits: the keys go to it alone
        self.ear: ProgressEar | None = None  # a warm transfer's: fed by the call's frame loop
        self.guard = UplinkGuard(self.secure)
        self.cwid = CallWaitingId.of(config, port.kind is PortKind.FXO, timeline)
        self.first_audio_s: float | None = None  # the first frame of sound sent to the line
        self._dtmf_mask = False  # a DTMF tone sounded and the VAD has not let go since
        self._rose_s = -np.inf  # the VAD's last rise

    # --- the downlink (the call's events task) ----------------------------------------------------

    def agent_audio(self, event: AgentAudio, now_s: float) -> None:
        if self.agent_muted:
            return
        rid = event.response_id
        if rid in self._stopped:
            return  # in flight when the barge-in flushed it (the playout would refuse it too)
        if rid not in self._first_push:
            self._feed_local(now_s)  # local audio asked for before this response goes first
            self._first_push[rid] = now_s
            self.timeline.note(now_s, f"agent audio {rid}")
        self._open.add(rid)
        self.playout.push(event.pcm, rid, event.item_id, now_s)

    def response_done(self, response_id: str, now_s: float) -> None:
        self._open.discard(response_id)
        self.playout.end_response(response_id)
        self._feed_local(now_s)

    def cloud_speech(self, now_s: float) -> Interrupted | None:
        """The cloud heard the caller start. If that stops the agent (`BargeIn`), the playout
        is flushed and the agent item that was playing returned (to truncate)."""
        confirming = self.bargein.paused
        if not self.bargein.cloud_speech(self._agent_active()):
            return None
        how = "confirmed" if confirming else "cloud only"
        self.timeline.note(now_s, f"barge-in: agent stopped ({how})")
        flushed = self._flush()
        return Interrupted(next((f for f in flushed if not is_local(f.response_id)), None))

    def cloud_lost(self) -> None:
        """The session lost its server: open responses will not be finished, and a pause in
        progress has nobody to confirm it (the agent's buffered audio plays on)."""
        for rid in self._open:
            self.playout.end_response(rid)
        self._open.clear()
        if self.bargein.paused:
            self.bargein.reset()
            self.playout.resume()

    def mute_agent(self) -> None:
        """Stop the agent for good (a transfer): flush it and refuse its further audio."""
        self.agent_muted = True
        self._flush()

    def unmute_agent(self) -> None:
        self.agent_muted = False

    def play_local(self, pcm: NDArray[np.int16], label: str) -> LocalPlay:
        """Queue audio of the box's own (after the agent response in progress, if any)."""
        play = LocalPlay(np.asarray(pcm, np.int16), label)
        self._local_pending.append(play)
        self._feed_local(trio.current_time())
        return play

    @property
    def drained(self) -> bool:
        """Nothing left to play: no agent response still arriving, nothing buffered or queued."""
        return (
            not (self._open and not self.agent_muted)
            and not self._local_pending
            and not self._local_playing
            and self.playout.buffered_samples == 0
            and self.playout.current_item is None
        )

    async def until(self, condition: Callable[[], bool]) -> None:
        """Until `condition()` holds, checked after every frame sent (the caller's deadline)."""
        while not condition():
            if self._frame_waiters is None:
                self._frame_waiters = trio.Event()
            await self._frame_waiters.wait()

    def start_recording(self, max_s: float, now_s: float) -> FrameTape:
        self.recording = FrameTape(max_s)
        self.last_speech_s = now_s  # the silence timer starts at the beep
        return self.recording

    # --- one frame (the call's frame loop) --------------------------------------------------------

    def step(self, frame: AudioFrame, now_s: float) -> list[str]:
        """Handle one received frame and send one to the line; returns the DTMF digits whose
        keypress ended in it."""
        arrived_s = self.metrics.frame_arrived(frame.seq, frame.timestamp, frame.concealed, now_s)
        ref = self._last_out if not self.cwid.active else np.zeros(FRAME_SAMPLES, np.int16)
        clean = self.ec.process(ref, frame.pcm)  # (not taught a call-waiting ack: it misadapts)
        digits = [key.digit for key in self.dtmf.feed(clean)]
        heard = self.line_signals.feed(clean)
        self.heard += heard
        takeover = self.cwid.step(heard, clean, now_s)  # caller ID on call waiting: the line's
        if digits and (takeover is not None or now_s - self._local_heard_s < ECHO_GUARD_S):
            digits = []  # the echo of our own audio (DTMF the agent sent), not the caller's keys
        near_active = self._speaking or self._dtmf_mask or self._tone
        residual = self.echo_guard.update(self.ec, ref, frame.pcm, clean, near_active,
                                          self.vad.noise_dbm0)  # fmt: skip
        if takeover is not None:  # its FSK and the ack's echo: for no VAD, cloud or tape
            clean = self.guard.noise(self.vad.noise_dbm0)
        probability = self.vad.process(clean, ref, residual)
        self._voice(probability, now_s)
        if self.bargein.tick(now_s):
            self.playout.resume()
            self.timeline.note(now_s, "barge-in: not confirmed, agent resumed")
        self._feed_local(now_s)
        out = self.playout.next_frame(now_s) if takeover is None else takeover
        self.port.send_audio(out)
        self.levels.update(clean, out)
        self.line_meter.update(ref, clean, out, self.ec, self._speaking)
        self._sent(out, now_s)
        self._uplink(clean, arrived_s, now_s)
        if self._frame_waiters is not None:
            self._frame_waiters.set()
            self._frame_waiters = None
        return digits

    def _voice(self, probability: float, now_s: float) -> None:
        """The caller's speech edges: barge-in on the rise, the end of a turn on the fall.
        A DTMF tone or the CAS is no speech: the VAD may take its first frame for a word (a tone
        starting mid-frame), so its edges are masked from the tone until the VAD lets go, and a
        pause that the tone's first frame caused is withdrawn."""
        speaking = self.vad.speaking
        if self._tone:
            if not self._dtmf_mask and now_s - self._rose_s <= DTMF_ONSET_S:
                self._withdraw_rise(now_s)
            self._dtmf_mask = True
        elif self._dtmf_mask and not speaking:
            self._dtmf_mask = False
        speaking = speaking and not self._dtmf_mask
        if speaking:
            self.last_speech_s = now_s
            if probability >= self._off_probability:
                self._last_voiced_s = now_s
        if speaking and not self._speaking:
            self._rose_s = now_s
            onset_s = now_s - self.vad.features["active_ms"] / 1e3
            self.metrics.caller_started()
            if self.bargein.voice_rose(onset_s, self._agent_on_line()):
                self.playout.pause()  # the frame sent this tick fades the agent out
                self.metrics.barge_in(onset_s, now_s + FADE_S)
                self.timeline.note(now_s, "barge-in: agent paused (local VAD)")
        elif self._speaking and not speaking and not self._dtmf_mask:
            self.metrics.caller_stopped(self._last_voiced_s)
        self._speaking = speaking

    @property
    def _tone(self) -> bool:  # no speech, and not for the cloud: a DTMF tone or the CAS
        return self.dtmf.tone_present or self.line_signals.cas_present

    def _withdraw_rise(self, now_s: float) -> None:
        """The VAD's last rise was a DTMF tone's first frame: no turn, no barge-in."""
        self.metrics.caller_started()  # forgets the turn's end it would have made
        if self.bargein.withdraw():
            self.metrics.barge_in_stop_ms.pop()
            self.playout.resume()
            self.timeline.note(now_s, "barge-in: withdrawn (a DTMF tone)")

    def _feed_local(self, now_s: float) -> None:
        """Local audio goes into the playout between agent responses, never inside one: at
        once when none is arriving, else once it is done."""
        if not self._local_pending or (self._open and not self.agent_muted):
            return
        while self._local_pending:
            play = self._local_pending.popleft()
            self._local_count += 1
            play.response_id = f"{LOCAL_PREFIX}{self._local_count}-{play.label}"
            if play.pcm.size == 0:
                play.done.set()
                continue
            self.playout.push(play.pcm, play.response_id, play.response_id, now_s)
            self.playout.end_response(play.response_id)
            self._local_playing.append(play)

    def _sent(self, out: NDArray[np.int16], now_s: float) -> None:
        """Bookkeeping of the frame just sent: first audio of a response, local audio done,
        ERLE, the capture."""
        self._last_out = out
        if self.first_audio_s is None and self.playout.speaking:
            self.first_audio_s = now_s
        current = self.playout.current_item
        if current is not None and is_local(current[0]) and self.playout.speaking:
            self._local_heard_s = now_s
        elif current is not None and self.playout.speaking:
            self._agent_heard_s = now_s
            rid = current[0]
            if rid not in self._started and rid in self._first_push:
                self._started.add(rid)
                self.metrics.agent_started(self._first_push[rid], now_s)
        if self._local_playing:
            for play in list(self._local_playing):
                if self.playout.played_samples(play.response_id) >= play.pcm.size:
                    play.done.set()
                    self._local_playing.remove(play)
        self._frame_count += 1
        if self._frame_count % ERLE_EVERY_FRAMES == 0 and now_s - self._agent_heard_s < FRAME_S:
            stats = self.ec.stats
            if stats.converged and not stats.double_talk:
                self.metrics.erle(stats.erle_db)
        self.capture_down.append(out)

    def _uplink(self, clean: NDArray[np.int16], arrived_s: float, now_s: float) -> None:
        """The clean frame to the tapes and the cloud; DTMF tones go up as comfort noise (and
        while digits are collected, nothing of them reaches a tape either: `UplinkGuard`)."""
        engaged = self.guard.engaged
        frames = self.guard.pass_frame(clean, self._tone, self.vad.noise_dbm0)
        for taped in frames if engaged else [clean]:
            self.capture_up.append(taped)
            if self.recording is not None:
                self.recording.append(taped)
        for frame in frames:
            self._send_up(frame, arrived_s, now_s)

    def _send_up(self, frame: NDArray[np.int16], arrived_s: float, now_s: float) -> None:
        channel = self.to_cloud
        if channel is None:
            return
        if not self._speaking and self._echo_unsure(now_s):
            frame = np.zeros(FRAME_SAMPLES, np.int16)
        try:
            channel.send_nowait(frame)
        except trio.WouldBlock:
            self.metrics.frames_to_cloud_dropped += 1
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.to_cloud = None  # the session ended; the call goes on without it
            return
        self.metrics.handed_to_cloud(arrived_s, trio.current_time())

    def _echo_unsure(self, now_s: float) -> bool:
        """The agent's echo may be in the clean frame: it was heard within the echo's span and
        the canceller is not trusted now (`EchoGuard`)."""
        heard_s = max(self._agent_heard_s, self._local_heard_s)
        return now_s - heard_s < ECHO_GUARD_S and not self.echo_guard.trusted

    def _agent_on_line(self) -> bool:
        current = self.playout.current_item
        return current is not None and not is_local(current[0]) and self.playout.speaking

    def _agent_active(self) -> bool:
        """The agent talks, is paused, or has audio due: what a caller's speech interrupts."""
        current = self.playout.current_item
        playing = current is not None and not is_local(current[0])
        return self.bargein.paused or playing or bool(self._open)

    def _flush(self) -> list[FlushedItem]:
        flushed = self.playout.flush()
        self._stopped.update(f.response_id for f in flushed if not is_local(f.response_id))
        self._stopped.update(self._open)
        for play in self._local_playing:
            play.done.set()
        self._local_playing.clear()
        self._open.clear()
        return flushed
