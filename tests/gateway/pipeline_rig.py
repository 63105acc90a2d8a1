"""The call pipeline tests' rig (no tests here): a real `CallPipeline` running one call on a
`LineSim` (a `FakePort` whose received audio is the caller's speech, plus the echo of what the
call sent through a G.168 echo path, plus line noise, through mu-law), against the local
realtime server on loopback. Real sockets: the real clock, short waits, each bounded.

Stream times: the port delivers frame n (n = 0, 1, ...) when its 20 ms of line audio end, and
the call answers it with sent frame n, which starts playing then. So received sample k of frame
n is at (160 n + k) / 8000 s of the line's timeline, and sent sample k of frame n at
(160 (n + 1) + k) / 8000 s; the echo of sent frame n comes back in received frame n + 1 and
later (plus the echo path's delay), however late the call sent it, as on a line where the
adapter's clock plays and records both. Measuring on these indices keeps the real clock's
jitter out of the figures.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.g711 import ulaw_decode, ulaw_encode
from dsp.levels import dbm0_to_rms
from firmware_bridge.port import AudioFrame, PortKind
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from gateway.call import CallPipeline
from gateway.call_audio import warm_up
from gateway.call_config import AgentProfile, CallConfig
from gateway.call_fallback import PromptBank, load_prompts
from gateway.call_metrics import CallRecord
from gateway.line_call import CALL_FRAMES_BUFFER, CallLine, CallSignal, CallSpec, HangupWatch
from gateway.realtime import RealtimeSettings, ServerVad, Transcription
from gateway.realtime.local import Faults, LocalRealtimeServer, Script, SessionRecord
from gateway.tools import ToolRegistry
from tests.gateway.fake_port import FakePort

WAIT_S = 8.0  # any one expected moment of a call
RIG_S = 30.0  # a whole test
POLL_S = 0.01
FAST = Faults(audio_speed=20.0)
SETTINGS = RealtimeSettings(
    provider="local",
    turn_detection=ServerVad(silence_duration_ms=300),
    transcription=Transcription("gpt-4o-mini-transcribe"),
)
ECHO = EchoPath.g168(1, delay_ms=4.0, erl_db=10.0)  # a typical hybrid: ~10 dB of return loss
LOUD = 300  # |sample| above this is speech or a tone; the comfort noise (-65 dBm0) stays < 50
TRUE_ONSET_DBM0 = -45.0  # where a caller's clip starts for the barge-in figure (5 ms windows)


@functools.cache
def _prompts() -> PromptBank:
    return load_prompts()


def shipped_prompts() -> PromptBank:
    """The shipped prompts (the local server's), 8 kHz int16, read once per test run."""
    return dict(_prompts())


def pcm_of(name: str) -> NDArray[np.int16]:
    """A shipped prompt: the agent's words, or the caller's."""
    return _prompts()[name]


def loudest(pcm: NDArray[np.int16], start_s: float, end_s: float, span_ms: float = 60.0) -> int:
    """The start of the loudest `span_ms` of `pcm` between `start_s` and `end_s`."""
    span = int(span_ms * 8)
    power = np.convolve(pcm.astype(np.float64) ** 2, np.ones(span), mode="valid")
    lo, hi = int(start_s * RATE_HZ), int(end_s * RATE_HZ)
    return lo + int(np.argmax(power[lo:hi]))


def onset_of(pcm: NDArray[np.int16], level_dbm0: float = TRUE_ONSET_DBM0) -> int:
    """The start of the first 5 ms window of `pcm` at `level_dbm0` or louder."""
    windows = pcm[: pcm.size - pcm.size % 40].astype(np.float64).reshape(-1, 40)
    loud = np.flatnonzero(np.mean(windows**2, axis=1) >= dbm0_to_rms(level_dbm0) ** 2)
    assert loud.size, "the clip is silent"
    return int(loud[0]) * 40


class LineSim(FakePort):
    """A `FakePort` that hears the caller (`say`), line noise and the echo of what was sent."""

    def __init__(self, kind: PortKind = PortKind.FXS, *, echo: EchoPath = ECHO,
                 noise_dbm0: float = -65.0, seed: int = 1) -> None:  # fmt: skip
        super().__init__(kind, noise_dbm0=noise_dbm0, seed=seed)
        self.off_hook_state = True  # the call's audio path is open from the start
        self._echo = EchoFilter(echo)
        self.forwarded: deque[int] = deque()  # seqs of received frames the call has, unanswered
        self._echoes: dict[int, NDArray[np.float64]] = {}  # by the seq they come back in
        self.echo_late = 0  # sent after the frame their echo belongs in was delivered
        self.received: list[NDArray[np.int16]] = []

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        super().send_audio(pcm)
        echo = self._echo.process(pcm.astype(np.float64))
        answered = self.forwarded.popleft() if self.forwarded else self._seq - 1
        if answered + 1 >= self._seq:
            self._echoes[answered + 1] = echo
        else:  # the call fell behind the line: this echo's moment has passed
            self.echo_late += 1

    def say(self, pcm: NDArray[np.int16]) -> int:
        """Queue the caller's `pcm` after what is queued; returns the stream sample (of the
        received timeline) where its onset (`onset_of`) will be."""
        start = self._seq * FRAME_SAMPLES + self._rx.size
        self.play(pcm)
        return start + onset_of(pcm)

    def say_at(self, pcm: NDArray[np.int16], onset: int) -> int:
        """Queue the caller's `pcm` so that its onset lands on stream sample `onset` (the
        caller is silent until then); returns `onset`."""
        pad = onset - onset_of(pcm) - (self._seq * FRAME_SAMPLES + self._rx.size)
        assert pad >= 0, f"too late to start at {onset}: {-pad} samples past"
        self.play(np.concatenate([np.zeros(pad, np.int16), pcm]))
        return onset

    def _next_frame(self) -> NDArray[np.int16]:
        n = self._seq
        mix = self._rng.standard_normal(FRAME_SAMPLES) * dbm0_to_rms(self.noise_dbm0 or -99.0)
        k = min(FRAME_SAMPLES, self._rx.size)
        mix[:k] += self._rx[:k]
        self._rx = self._rx[k:]
        echo = self._echoes.pop(n, None)  # the answer to frame n - 1 echoes in frame n
        if echo is not None:
            mix += echo
        pcm = np.clip(np.round(mix), -32768, 32767).astype(np.int16)
        pcm = ulaw_decode(ulaw_encode(pcm))  # the line's codec
        self.received.append(pcm)
        return pcm

    def sent_pcm(self) -> NDArray[np.int16]:
        return self.sent_audio()

    @staticmethod
    def sent_time_s(sample: int) -> float:
        """Stream time of sent sample `sample` (sent frame n starts at (n + 1) frames)."""
        return (sample + FRAME_SAMPLES) / RATE_HZ


@dataclass(eq=False)
class PipelineRig:
    server: LocalRealtimeServer | None
    pipeline: CallPipeline
    port: LineSim
    spec: CallSpec
    line: CallLine
    frames_send: trio.MemorySendChannel[AudioFrame]
    signals_send: trio.MemorySendChannel[CallSignal]
    call_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    @property
    def local(self) -> LocalRealtimeServer:
        assert self.server is not None, "a call with a fake session"
        return self.server

    @property
    def session(self) -> SessionRecord:
        return self.local.sessions[0]

    @property
    def record(self) -> CallRecord:
        assert self.done.is_set(), "the call is still running"
        return self.pipeline.records[-1]

    async def until(self, condition: Callable[[], bool], limit_s: float = WAIT_S) -> None:
        with trio.fail_after(limit_s):
            while not condition():  # noqa: ASYNC110 (the port's frames are the clock here)
                await trio.sleep(POLL_S)

    def loud_sent(self, since: int = 0) -> NDArray[np.intp]:
        """Indices of loud sent samples from sample `since` on."""
        return since + np.flatnonzero(np.abs(self.port.sent_pcm()[since:]) > LOUD)

    async def agent_talking(self, since: int = 0, limit_s: float = WAIT_S) -> int:
        """The first loud sent sample at or after `since` (waiting for it)."""
        await self.until(lambda: self.loud_sent(since).size > 0, limit_s)
        return int(self.loud_sent(since)[0])

    async def agent_done(self, since: int, quiet_s: float = 0.5, limit_s: float = WAIT_S) -> int:
        """The last loud sent sample after `since`, once `quiet_s` of quiet followed it."""

        def quiet() -> bool:
            loud = self.loud_sent(since)
            sent = len(self.port.sent) * FRAME_SAMPLES
            return loud.size > 0 and sent - int(loud[-1]) > quiet_s * RATE_HZ

        await self.until(quiet, limit_s)
        return int(self.loud_sent(since)[-1])

    async def connected(self) -> None:
        await self.until(lambda: bool(self.local.sessions) and
                         bool(self.session.sent_of("session.updated")))  # fmt: skip

    def say(self, pcm: NDArray[np.int16]) -> int:
        return self.port.say(pcm)

    def hang_up(self, reason: str = "phone on-hook") -> None:
        """The line ends the call, as `gateway.line` does."""
        self.line.hangup.set(reason)
        self.frames_send.close()
        self.signals_send.close()
        self.call_scope.cancel(reason=reason)

    async def run_call(self) -> None:
        try:
            with self.call_scope:
                await self.pipeline.run_call(self.spec, self.line)
        except Exception as exc:  # the test reads it; the line would log it
            self.error = exc
        finally:
            self.done.set()

    async def forward(self) -> None:
        """The line actor's frame task: every frame to the call at once, dropped if it lags."""
        async for frame in self.port.frames:
            try:
                self.frames_send.send_nowait(frame)
                self.port.forwarded.append(frame.seq)
            except trio.WouldBlock:
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return


@asynccontextmanager
async def pipeline_rig(
    script: Script | None = None,
    faults: Faults = FAST,
    *,
    config: CallConfig | None = None,
    tools: ToolRegistry | None = None,
    greeting: str | None = None,
    kind: PortKind = PortKind.FXS,
    echo: EchoPath = ECHO,
    prompts: PromptBank | None = None,
    settings: RealtimeSettings = SETTINGS,
) -> AsyncIterator[PipelineRig]:
    """One call in progress on a `LineSim`, its agent the local server (`greeting`: GREETING to
    have the agent speak first). At the block's end the caller hangs up (if the call is still
    on) and the call's record is written."""
    server = LocalRealtimeServer(script=script, faults=faults)
    with trio.fail_after(RIG_S):
        async with trio.open_nursery() as outer:
            url = await outer.start(server.run)
            profile = AgentProfile(replace(settings, url=f"{url}?model=test"), None,
                                   tools or ToolRegistry(), greeting)  # fmt: skip
            pipeline = CallPipeline({"default": profile}, config or CallConfig(), prompts=prompts)
            async with call_on_line(pipeline, kind, echo, server) as rig:
                yield rig
            outer.cancel_scope.cancel()


@asynccontextmanager
async def call_on_line(pipeline: CallPipeline, kind: PortKind = PortKind.FXS,
                       echo: EchoPath = ECHO, server: LocalRealtimeServer | None = None,
                       callerid: CallerId | None = None) -> AsyncIterator[PipelineRig]:  # fmt: skip
    """`pipeline` runs one call on a new `LineSim` of `kind`, as the line actor would start
    it; at the block's end the caller hangs up if the call is still on. Any clock."""
    warm_up()  # as the app does before it reports ready
    port = LineSim(kind, echo=echo)
    frames_send, frames_recv = trio.open_memory_channel[AudioFrame](CALL_FRAMES_BUFFER)
    signals_send, signals_recv = trio.open_memory_channel[CallSignal](16)
    line = CallLine(port, frames_recv, signals_recv, HangupWatch(), port.flash)
    spec = CallSpec("call-1", 0, kind, "inbound", "default", callerid=callerid,
                    connected_s=trio.current_time())  # fmt: skip
    rig = PipelineRig(server, pipeline, port, spec, line, frames_send, signals_send)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rig.run_call)
        nursery.start_soon(rig.forward)
        await nursery.start(port.run)
        yield rig
        if not rig.done.is_set():
            rig.hang_up()
        await rig.done.wait()
        nursery.cancel_scope.cancel()
    if rig.error is not None:
        raise rig.error
