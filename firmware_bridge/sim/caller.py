"""A reactive scripted caller on a simulated line: `CallerScript`, a list of steps (say,
press keys, wait for the agent's voice or silence, pause, mark, hang up, a call waiting:
`call_waiting`) that it queues on a `LineModel`'s far-side script, and
`CallerScript.measure`, which reads what happened at the
line once the call is over: each turn's latency (the caller's end of speech -> the agent's
first audio) and each barge-in's stop time (the caller's speech onset -> the agent's audio
stopped), in line ms, measured at the far end of the line.

`demo_caller` is `tipring demo`'s caller. Its speech comes in as 8 kHz int16 arrays: the demo
decodes the local realtime server's prompt files and passes them in (firmware_bridge never
imports gateway). Pure: steps become line script items; the line's sample clock does the
rest, so a caller is as deterministic as the host it talks to.

    caller = demo_caller(request=order_question, interruption=wait_a_moment)
    caller.dial_in(sim.line(0), CallerId("5551234567", "ALICE SMITH", "03031000"))
    ...  # the call runs; the caller hangs up at the end
    report = caller.measure(sim.line(0))  # report.turn_latency_ms, report.barge_in_stop_ms
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

import numpy as np
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import as_int16
from firmware_bridge.sim.call_waiting import CallWaiting, queue_call_waiting
from firmware_bridge.sim.host_voice import STOPPED_QUIET_MS
from firmware_bridge.sim.line import HangUpMethod, LineModel
from firmware_bridge.sim.line_core import DEFAULT_WAIT_TIMEOUT_MS
from firmware_bridge.sim.line_script import Played

__all__ = [
    "CALLER_STARTS",
    "CallWaiting",
    "CallerReport",
    "CallerScript",
    "Exchange",
    "HangUp",
    "Mark",
    "Pause",
    "Press",
    "Say",
    "Step",
    "WaitForSilence",
    "WaitForVoice",
    "demo_caller",
]

CALLER_STARTS = "caller starts"  # the mark `load` puts first: `measure` reads from there
END_OF_TURN_MS = 600.0  # the agent is done: longer than the ~390 ms pauses inside a prompt
ONSET_VOICE_MS = 200.0  # the agent is answering: 200 ms of its voice, not a click
# Barge in about 1 s into the agent's answer: speech is voiced 60-80 % of its time, so 700 ms
# of voice is 0.9-1.2 s of talk.
BARGE_IN_VOICE_MS = 700.0


@dataclass(frozen=True, slots=True, eq=False)
class Say:
    """The caller speaks `pcm` (1-D int16, 8 kHz), recorded as `label`. `barge_in`: it is
    meant to interrupt the agent (measured as a barge-in, not as a turn)."""

    pcm: NDArray[np.int16]
    label: str = "say"
    barge_in: bool = False

    def __post_init__(self) -> None:
        as_int16(self.pcm, f"Say({self.label!r})")


@dataclass(frozen=True, slots=True)
class Press:
    """The caller presses `digits` (DTMF, 100 ms on and off, -10 dBm0), recorded as `label`
    (default "press <digits>"); measured as a turn."""

    digits: str
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or f"press {self.digits}"


@dataclass(frozen=True, slots=True)
class WaitForVoice:
    """Wait until the agent's audio at the line added up to `min_ms` of voice (or
    `timeout_ms` passed: the caller goes on); see `LineModel.wait_for_voice`."""

    min_ms: float = ONSET_VOICE_MS
    timeout_ms: float = DEFAULT_WAIT_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class WaitForSilence:
    """Wait until the agent has been quiet for `min_ms` in a row (or `timeout_ms` passed);
    see `LineModel.wait_for_silence`."""

    min_ms: float = END_OF_TURN_MS
    timeout_ms: float = DEFAULT_WAIT_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class Pause:
    """The caller says nothing for `ms` (silence on the line, in the call)."""

    ms: float


@dataclass(frozen=True, slots=True)
class Mark:
    """Record the line ms the caller got here in `LineModel.marks` as `name`."""

    name: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up: `method` as `LineModel.hang_up` (None: its default)."""

    method: HangUpMethod | None = None


Step = Say | Press | WaitForVoice | WaitForSilence | Pause | Mark | HangUp | CallWaiting


@dataclass(frozen=True, slots=True)
class Exchange:
    """One caller utterance (`Say` or `Press`) and the agent's answer to it at the line, in
    line ms. A turn: `agent_ms` is the agent's first audio after the caller's voice ended, `ms`
    the turn latency. A barge-in: `agent_ms` is when the agent's audio stopped after the
    caller's voice began, `ms` the stop time. None: not measurable (no voice in what the caller
    played, no agent audio after a turn, the agent not talking at a barge-in)."""

    label: str
    barge_in: bool
    voice_start_ms: float | None
    voice_end_ms: float | None
    agent_ms: float | None

    @property
    def ms(self) -> float | None:
        """Turn latency or barge-in stop time (ms)."""
        since = self.voice_start_ms if self.barge_in else self.voice_end_ms
        return None if self.agent_ms is None or since is None else self.agent_ms - since


@dataclass(frozen=True, slots=True)
class CallerReport:
    """What `CallerScript.measure` found: one `Exchange` per utterance that went out."""

    exchanges: tuple[Exchange, ...]

    @property
    def turn_latency_ms(self) -> list[float]:
        """Caller's end of speech -> agent's first audio at the line, per measured turn."""
        return [e.ms for e in self.exchanges if not e.barge_in and e.ms is not None]

    @property
    def barge_in_stop_ms(self) -> list[float]:
        """Caller's speech onset -> agent's audio stopped at the line, per measured barge-in."""
        return [e.ms for e in self.exchanges if e.barge_in and e.ms is not None]


@dataclass(frozen=True, slots=True)
class CallerScript:
    """A caller as `steps`, run in order on a line's far-side script."""

    steps: tuple[Step, ...]

    def load(self, line: LineModel, *, start_mark: bool = True) -> None:
        """Queue every step on `line` (after anything already queued), after a mark named
        `CALLER_STARTS` (`start_mark` False: without it, to go on with a caller queued before,
        whose `measure` then covers both). Speech and keys wait for the call; so do the waits
        for the agent."""
        if start_mark:
            line.mark(CALLER_STARTS)
        for step in self.steps:
            match step:
                case Say():
                    line.play(step.pcm, step.label)
                case Press():
                    line.press(step.digits, label=step.name)
                case WaitForVoice():
                    line.wait_for_voice(step.min_ms, step.timeout_ms)
                case WaitForSilence():
                    line.wait_for_silence(step.min_ms, step.timeout_ms)
                case Pause():
                    line.silence(step.ms)
                case Mark():
                    line.mark(step.name)
                case HangUp():
                    line.hang_up(step.method)
                case CallWaiting():
                    queue_call_waiting(line, step)
                case _:
                    assert_never(step)

    def dial_in(self, line: LineModel, callerid: CallerId | None = None, rings: int = 6) -> None:
        """FXO: ring `line` with `callerid` (`LineModel.incoming_call`) and `load` the steps,
        which start once the host answers."""
        line.incoming_call(callerid, rings=rings)
        self.load(line)

    def measure(self, line: LineModel) -> CallerReport:
        """After the call: each `Say` / `Press` that went out (matched by label, in order, to
        `line.played` from the last `CALLER_STARTS` mark on) and the agent's answer to it,
        measured on what the host sent (`line.tx_log`)."""
        since = max((ms for name, ms in line.marks if name == CALLER_STARTS), default=0.0)
        pending = [p for p in line.played if p.start_ms >= since]
        exchanges: list[Exchange] = []
        for step in self.steps:
            if not isinstance(step, Say | Press):
                continue
            label = step.label if isinstance(step, Say) else step.name
            at = next((i for i, p in enumerate(pending) if p.label == label), None)
            if at is None:
                break  # the call ended before it
            played, pending = pending[at], pending[at + 1 :]
            barge_in = isinstance(step, Say) and step.barge_in
            exchanges.append(_exchange(line, played, barge_in))
        return CallerReport(tuple(exchanges))


def _exchange(line: LineModel, played: Played, barge_in: bool) -> Exchange:
    onset, end = played.voice_start_ms, played.voice_end_ms
    agent_ms = None
    if barge_in and onset is not None:
        spoke = line.host_voice_after(onset - STOPPED_QUIET_MS)
        if spoke is not None and spoke < onset:  # the agent was talking: a real barge-in
            agent_ms = line.host_quiet_after(onset)
    elif not barge_in and end is not None:
        agent_ms = line.host_voice_after(end)
    return Exchange(played.label, barge_in, onset, end, agent_ms)


def demo_caller(
    request: NDArray[np.int16],
    interruption: NDArray[np.int16],
    *,
    digit: str = "1",
    hang_up: HangUpMethod = "loop_drop",
    barge_in_voice_ms: float = BARGE_IN_VOICE_MS,
    end_of_turn_ms: float = END_OF_TURN_MS,
    reply_timeout_ms: float = DEFAULT_WAIT_TIMEOUT_MS,
) -> CallerScript:
    """`tipring demo`'s caller: hears the agent's greeting out; says `request` (which should
    make the agent call a tool); `barge_in_voice_ms` of voice into the (long) answer says
    `interruption`; hears the reply out; presses `digit`; hears that reply out; hangs up
    (`hang_up`). Marks: "greeted", "answering", "replied", "key answered".
    A wait that times out after `reply_timeout_ms` lets the caller go on regardless."""
    heard_out: Sequence[Step] = (WaitForVoice(ONSET_VOICE_MS, reply_timeout_ms),
                                 WaitForSilence(end_of_turn_ms, reply_timeout_ms))  # fmt: skip
    steps: list[Step] = [*heard_out, Mark("greeted"), Say(request, "request")]
    steps += [WaitForVoice(barge_in_voice_ms, reply_timeout_ms), Mark("answering")]
    steps += [Say(interruption, "interruption", barge_in=True), *heard_out, Mark("replied")]
    steps += [Press(digit), *heard_out, Mark("key answered"), HangUp(hang_up)]
    return CallerScript(tuple(steps))
