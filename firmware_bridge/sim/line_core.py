"""The frame clock of a simulated line: `LineCore`, the base of `firmware_bridge.sim.line`'s
`LineModel`, which adds the telephony (ringing, dialling, hook, hang-up) on top.

Owns what every line does each 20 ms step: run the timers that fall due (in samples, from
the line's own clock), play the far side's script (`line_script.FarScript`) and let it hear
the host, sum far audio, network tones, the echo of the host's audio (`echo_paths.EchoFilter`,
only while the loop is closed) and white line noise into the int16 frame the host receives,
and hand back the frame's line events. Afterwards, `host_voice_after` / `host_quiet_after`
say when the host (the agent) started and stopped talking at the line.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from dsp.dtmf import generate as dtmf_generate
from dsp.frame import FRAME_SAMPLES, RATE_HZ, as_int16
from dsp.levels import dbm0_to_rms
from dsp.tone_plans import TonePlan, get_plan
from dsp.tones import ToneGenerator
from firmware_bridge.errors import PortUnsupported
from firmware_bridge.port import LineEvent, LineVoltageMeasured, PortKind
from firmware_bridge.sim.echo_paths import EchoFilter, EchoPath
from firmware_bridge.sim.host_voice import MS_SAMPLES, STOPPED_QUIET_MS, first_run, voiced_ms
from firmware_bridge.sim.line_script import FarScript, HostWait, HostWaitKind, Played

ON_HOOK_VOLTS = 48.0  # idle loop: the exchange's -48 V battery, no current drawn
OFF_HOOK_VOLTS = 8.0  # off-hook: 6-10 V across a DAA drawing 20-40 mA of loop current
DEAD_VOLTS = 0.0  # no battery: cut line, or the exchange's open switch interval

Timer = Callable[[int], None]  # called with the sample it was due at
Clips = list[tuple[int, NDArray[np.float64]]]  # (start sample, audio) placed on the clock
DEFAULT_WAIT_TIMEOUT_MS = 10_000.0  # a host wait gives up after this: no agent answer, or
# one that never ends; the script goes on (the call must not hang on a mute agent)


class LineState(StrEnum):
    """Where the line is. FXS uses IDLE (phone on-hook), RINGING and CONNECTED (phone off)."""

    IDLE = "idle"  # on-hook, nothing happening
    RINGING = "ringing"  # FXO: the network rings us; FXS: the host rings the phone
    DIAL_TONE = "dial_tone"  # FXO: the host went off-hook, no digit yet
    DIALING = "dialing"  # FXO: the host's digits are arriving
    RINGBACK = "ringback"  # FXO: number complete, the far end rings
    BUSY = "busy"  # FXO: number complete, the far end is busy
    CONNECTED = "connected"  # in a call (FXS: the phone is off-hook)
    FAR_HUNG_UP = "far_hung_up"  # FXO: the far party left, the host is still off-hook


FXO_OFF_HOOK = frozenset(
    {LineState.DIAL_TONE, LineState.DIALING, LineState.RINGBACK, LineState.BUSY}
    | {LineState.CONNECTED, LineState.FAR_HUNG_UP}
)


def samples(ms: float) -> int:
    """`ms` on the 8 kHz sample clock."""
    return round(ms * RATE_HZ / 1000.0)


def mix(clips: Clips, out: NDArray[np.float64], now: int) -> None:
    """Add the parts of `clips` that fall in `out` (which starts at sample `now`); drop the
    clips that have ended."""
    end = now + out.shape[0]
    for start, pcm in clips:
        lo, hi = max(start, now), min(start + pcm.shape[0], end)
        if lo < hi:
            out[lo - now : hi - now] += pcm[lo - start : hi - start]
    clips[:] = [(s, p) for s, p in clips if s + p.shape[0] > end]


class LineCore:
    """The per-frame machinery of one line; see `firmware_bridge.sim.line.LineModel`."""

    def __init__(
        self,
        kind: PortKind,
        echo: EchoPath | None,
        noise_dbm0: float | None,
        tone_plan: str | TonePlan,
        seed: int,
        port: int,
        tx_log_frames: int | None,
    ) -> None:
        self.kind, self.port = kind, port
        self.plan = get_plan(tone_plan)
        self._echo = EchoFilter(echo or EchoPath.none())
        self._noise_rms = 0.0 if noise_dbm0 is None else dbm0_to_rms(noise_dbm0)
        self._rng = np.random.default_rng(seed)
        self._state, self._now, self._epoch, self._seq = LineState.IDLE, 0, 0, 0
        self._events: list[LineEvent] = []
        self._timers: list[tuple[int, int, int, Timer]] = []
        self._script = FarScript()
        self._net_clips: Clips = []  # network audio to the host (caller ID)
        self._tone: ToneGenerator | None = None  # the network's call-progress tone
        self._loop_open_until = 0  # a flash holds the loop open until this sample
        self._volts: float | None = None
        self.dead = False  # FXO: no battery (`cut`): 0 V, no dial tone
        self.dial_tone = True  # FXO: the exchange gives dial tone when the host seizes the line
        self._tx: deque[NDArray[np.int16]] = deque(maxlen=tx_log_frames)
        self.true_echo = self.far_audio = self.line_noise = np.zeros(FRAME_SAMPLES)
        self._set_volts(ON_HOOK_VOLTS)

    @property
    def state(self) -> LineState:
        """Where the line is now."""
        return self._state

    @property
    def now_ms(self) -> float:
        """Time stepped so far (ms)."""
        return self._now * 1000.0 / RATE_HZ

    @property
    def tx_log(self) -> NDArray[np.int16]:
        """What the host sent, one frame per step (zeros for None), as one array: everything,
        or the last `tx_log_frames` frames."""
        return np.concatenate(self._tx) if self._tx else np.zeros(0, np.int16)

    @property
    def echo_path(self) -> EchoPath:
        """The echo path in use."""
        return self._echo.path

    @property
    def volts(self) -> float:
        """FXO: the line's DC voltage now (48 V idle, 8 V off-hook, 0 V dead); FXS: 0."""
        return self._volts or 0.0

    @property
    def off_hook(self) -> bool:
        """The loop is closed: by the box (FXO) or by the phone (FXS)."""
        return self._off_hook()

    @property
    def script_empty(self) -> bool:
        """True when every scripted item has played or run."""
        return self._script.empty

    @property
    def marks(self) -> list[tuple[str, float]]:
        """(name, line ms) of each `mark` the script reached, in order (the live list)."""
        return self._script.marks

    @property
    def played(self) -> list[Played]:
        """Each labelled `play` / `press` as it went out on the line, in order (the live list)."""
        return self._script.played

    @property
    def host_waits(self) -> list[HostWait]:
        """Each `wait_for_voice` / `wait_for_silence` that ended, in order (the live list)."""
        return self._script.host_waits

    def step(
        self, tx: NDArray[np.int16] | None = None
    ) -> tuple[NDArray[np.int16], list[LineEvent]]:
        """Advance 20 ms. `tx`: the host's 160 int16 samples to the line (None: silence).
        Returns the 160 int16 samples the host receives (a new array) and this frame's
        events. `far_audio` (far party or phone, network tones, caller ID), `true_echo` and
        `line_noise` then hold this frame's float64 components (new arrays): the result is
        their sum, rounded and clipped."""
        x = np.zeros(FRAME_SAMPLES, np.int16) if tx is None else as_int16(tx, "LineModel.step")
        if x.shape != (FRAME_SAMPLES,):
            raise ValueError(f"LineModel.step wants {FRAME_SAMPLES} samples, got {x.shape}")
        self._tx.append(x.copy())
        self._run_timers()
        far = np.zeros(FRAME_SAMPLES, np.float64)
        self._script.run(far, self._now, self._far_audible)
        mix(self._net_clips, far, self._now)
        loop_closed = self._off_hook() and self._now >= self._loop_open_until
        if self._tone is not None and loop_closed:
            far += self._tone.frame()
        self._listen(x)
        sent = x.astype(np.float64) if loop_closed else np.zeros(FRAME_SAMPLES, np.float64)
        self._script.hear(sent, self._now)  # what the far party hears of the host
        self.true_echo = self._echo.process(sent)  # on-hook the line carries nothing of tx
        self.far_audio = far
        self.line_noise = self._rng.standard_normal(FRAME_SAMPLES) * self._noise_rms
        total = far + self.true_echo + self.line_noise
        rx = np.clip(np.rint(total), -32768, 32767).astype(np.int16)
        self._now += FRAME_SAMPLES
        events, self._events = self._events, []
        return rx, events

    def cut(self) -> None:
        """FXO: the line loses its battery (cut, or the exchange's fault): 0 V from now on,
        no dial tone, until `restore`."""
        self._need(PortKind.FXO, "cut")
        self.dead = True
        self._set_volts(DEAD_VOLTS)

    def restore(self) -> None:
        """FXO: the battery is back: the voltage of the hook state the line is in."""
        self._need(PortKind.FXO, "restore")
        self.dead = False
        self._set_volts(OFF_HOOK_VOLTS if self._off_hook() else ON_HOOK_VOLTS)

    def set_echo_path(self, echo: EchoPath | None) -> None:
        """Change the echo path from the next frame on (None: open path); audio already sent
        echoes through the new path."""
        self._echo.set_path(echo or EchoPath.none())

    # --- the far side's script ---------------------------------------------------------

    def play(self, pcm: NDArray[np.int16], label: str = "play") -> None:
        """Queue far-party (FXS: phone) audio: 1-D int16 at 8 kHz, recorded in `played` as
        `label`."""
        self._script.add_audio(as_int16(pcm, "LineModel.play").astype(np.float64), label)

    def press(
        self,
        digits: str,
        on_ms: float = 100.0,
        off_ms: float = 100.0,
        level_dbm0: float = -10.0,
        label: str | None = None,
    ) -> None:
        """Queue DTMF keypresses from the far party (FXS: the phone), `level_dbm0` per tone,
        recorded in `played` as `label` (default "press <digits>") up to the last tone's end."""
        if not digits:
            return
        keys = dtmf_generate(digits, on_ms, off_ms, level_dbm0)
        self.play(keys[: keys.shape[0] - samples(off_ms)], label or f"press {digits}")
        self.silence(off_ms)

    def silence(self, ms: float) -> None:
        """Queue `ms` of far-party silence (it waits for the call like any audio)."""
        self._script.add_audio(np.zeros(samples(ms), np.float64), None)

    def wait(self, ms: float) -> None:
        """Let `ms` pass before the next script item, call or no call."""
        self._script.add_wait(samples(ms))

    def mark(self, name: str) -> None:
        """Queue a mark: the line ms the script reaches it at (to the sample, call or no call)
        goes into `marks` as (name, ms)."""
        self._script.add_mark(name)

    def wait_for_voice(
        self, min_ms: float = 200.0, timeout_ms: float = DEFAULT_WAIT_TIMEOUT_MS
    ) -> None:
        """Queue a wait for the host to talk: from its start (a frame boundary, once the call is
        up) until the host's audio at the line added up to `min_ms` of voice
        (`host_voice.HOST_VOICE_DBM0`, whole ms; pauses between words do not reset the count,
        and speech is voiced 60-80 % of its time), or `timeout_ms` passed. The script goes on
        at the next frame boundary; `host_waits` records it."""
        self._host_wait("voice", min_ms, timeout_ms)

    def wait_for_silence(
        self, min_ms: float = 600.0, timeout_ms: float = DEFAULT_WAIT_TIMEOUT_MS
    ) -> None:
        """Queue a wait for the host to stop talking: until its audio at the line has been
        below the voice level for `min_ms` in a row, counted from the wait's start (quiet
        before it does not count), or `timeout_ms` passed. The default 600 ms outlasts the
        pauses inside a turn (the shipped prompts pause up to ~390 ms between words)."""
        self._host_wait("silence", min_ms, timeout_ms)

    def _host_wait(self, kind: HostWaitKind, min_ms: float, timeout_ms: float) -> None:
        if not (0.0 < min_ms < math.inf and 0.0 < timeout_ms < math.inf):
            raise ValueError(f"line {self.port}: wait_for_{kind} wants min_ms and timeout_ms "
                             f"> 0 and finite, got {min_ms} and {timeout_ms}")  # fmt: skip
        self._script.add_host_wait(kind, min_ms, timeout_ms)

    def then(self, action: Callable[[], None]) -> None:
        """Queue `action`, run on a frame boundary when the script gets to it (call or no
        call): the far side's own reactions (`call_waiting`)."""
        self._script.add_action(action)

    def send_network(self, pcm: NDArray[np.int16]) -> None:
        """The exchange sends `pcm` (1-D int16, 8 kHz) to the host from the frame being
        stepped on (from a `then` action: that frame), whatever the far party does; the end of
        the call drops what is left of it."""
        self._net_clips.append((self._now, as_int16(pcm, "send_network").astype(np.float64)))

    def _act(self, action: Callable[[], None]) -> None:
        self._script.add_action(action)

    # --- what the host sent, measured at the far end -----------------------------------

    def host_voice_after(self, t_ms: float) -> float | None:
        """The first whole line ms at or after `t_ms` in which the host's audio was voice
        (`host_voice.HOST_VOICE_DBM0`): the agent's first audio at the line after, say, the
        caller's end of speech. None: none yet. Searches `tx_log` (all of it unless
        `tx_log_frames` caps it; before its start, from its start)."""
        return self._host_run(t_ms, 1.0, True)

    def host_quiet_after(self, t_ms: float, quiet_ms: float = STOPPED_QUIET_MS) -> float | None:
        """The first whole line ms at or after `t_ms` from which the host's audio stayed below
        the voice level for `quiet_ms`: the agent stopped at the line (after a barge-in, say).
        The default 200 ms skips pauses between words (`host_voice.STOPPED_QUIET_MS`); a run
        still shorter than `quiet_ms` at the end of the log gives None. Searches `tx_log`."""
        return self._host_run(t_ms, quiet_ms, False)

    def _host_run(self, t_ms: float, length_ms: float, voice: bool) -> float | None:
        log = self.tx_log
        base_ms = (self._now - log.shape[0]) // MS_SAMPLES  # tx_log ends at now, whole frames
        at = first_run(voiced_ms(log), math.floor(t_ms) - base_ms, length_ms, voice)
        return None if at is None else float(base_ms + at)

    # --- machinery ---------------------------------------------------------------------

    def _at(self, due: int, fn: Timer) -> None:
        """Run `fn(due)` in the frame holding sample `due`, unless the epoch ends first."""
        heapq.heappush(self._timers, (due, self._seq, self._epoch, fn))
        self._seq += 1

    def _run_timers(self) -> None:
        end = self._now + FRAME_SAMPLES
        while self._timers and self._timers[0][0] < end:
            due, _, epoch, fn = heapq.heappop(self._timers)
            if epoch == self._epoch:  # else cancelled: answered, hung up, ...
                fn(due)

    def _listen(self, x: NDArray[np.int16]) -> None:
        """What the far side makes of the host's audio this frame (the subclass decides)."""

    def _off_hook(self) -> bool:
        if self.kind is PortKind.FXS:
            return self._state is LineState.CONNECTED
        return self._state in FXO_OFF_HOOK

    def _far_audible(self) -> bool:
        return self._state is LineState.CONNECTED and self._now >= self._loop_open_until

    def _emit(self, event: LineEvent) -> None:
        self._events.append(event)

    def _set_volts(self, volts: float) -> None:
        if self.dead:
            volts = DEAD_VOLTS
        if self.kind is PortKind.FXO and volts != self._volts:
            self._volts = volts
            self._emit(LineVoltageMeasured(self.port, volts))

    def _need(self, kind: PortKind, what: str) -> None:
        if self.kind is not kind:
            raise ValueError(f"line {self.port}: {what} is for {kind} lines; this is {self.kind}")

    def _command(self, kind: PortKind, command: str) -> None:
        if self.kind is not kind:
            raise PortUnsupported(self.port, command, f"not possible on an {self.kind} port")
