"""What a simulated call says and does (`gateway.simcall` runs it): the caller's voice, the
local realtime server's script that answers it, the agent's one tool, and the two callers.

- `CallerVoice`: the caller's utterances, recorded once in a voice of their own, with their
  words (`gateway/simcall_data/`: made by its `make_caller.sh`).
- `DEMO_SCRIPT` (`tipring demo`, `simcall_data/demo_script.json`): the agent greets (turn
  1); the caller's request makes it call `lookup_order` and then answer at length (turn 2);
  the caller's interruption gets a short reply (turn 3); the digit the caller presses gets a
  goodbye (turn 4). `LOOP_SCRIPT` (`tipring bench calls`, `bench_script.json`): a
  greeting, then the long answer to every turn.
- `lookup_order_tool`: a local tool with a canned answer (no network).
- `ScriptedCaller` (the demo's `firmware_bridge.sim.caller.demo_caller`, queued whole at the
  ring) and `LoopingCaller` (request, barge-in, reply heard out, again, until told to stop,
  then hangs up), both behind `SimCaller`: `dial_in` rings the line, `drive` runs beside the
  call, `measure` reads the far end's figures afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.g711 import ulaw_decode
from firmware_bridge.sim.caller import (
    CallerReport,
    CallerScript,
    HangUp,
    Say,
    Step,
    WaitForSilence,
    WaitForVoice,
    demo_caller,
)
from firmware_bridge.sim.line import LineModel
from firmware_bridge.sim.line_core import LineState
from gateway.errors import ConfigError
from gateway.realtime.local import Script
from gateway.tools import CallContext, Tool

DATA_DIR = Path(__file__).with_name("simcall_data")
# Ringing: 1 s on, 2 s off (a short cadence: the US one, 2 s / 4 s, would spend 8 s of the demo
# ringing). The caller ID burst (0.72 s) fits the 2 s gap with GR-30-CORE's 500 ms before and
# 200 ms after it.
RING_CADENCE_MS = (1000, 2000)
RINGS_BEFORE_GIVING_UP = 6
DEMO_DIGIT = "1"
POLL_S = 0.05  # a looping caller checks this often whether its script ran out

# The local realtime server's scripts (`tipring local-server --script` takes them too).
DEMO_SCRIPT_FILE = DATA_DIR / "demo_script.json"
LOOP_SCRIPT_FILE = DATA_DIR / "bench_script.json"
DEMO_SCRIPT = Script.load(DEMO_SCRIPT_FILE)
LOOP_SCRIPT = Script.load(LOOP_SCRIPT_FILE)


@dataclass(frozen=True, slots=True)
class CallerVoice:
    """The caller's utterances: 1-D int16 at 8 kHz, and their words."""

    request: NDArray[np.int16]
    interruption: NDArray[np.int16]
    words: dict[str, str] = field(default_factory=dict)


def load_caller_voice(directory: Path = DATA_DIR) -> CallerVoice:
    """The shipped caller utterances; `ConfigError` if a file is missing or unreadable."""
    try:
        words = json.loads((directory / "caller.json").read_text(encoding="utf-8"))
        codes = {n: (directory / f"{n}.ulaw").read_bytes() for n in ("request", "interruption")}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the simulated caller's voice in {directory}: {exc}") from None
    pcm = {n: ulaw_decode(np.frombuffer(b, np.uint8)) for n, b in codes.items()}
    return CallerVoice(pcm["request"], pcm["interruption"], dict(words))


_ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}},
                 "required": ["order_id"], "additionalProperties": False}  # fmt: skip


async def _lookup_order(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
    await trio.lowlevel.checkpoint()  # a real lookup awaits a database or an HTTP API here
    return {"order_id": arguments["order_id"], "status": "shipped", "shipped": "yesterday",
            "carrier": "UPS", "expected": "Thursday"}  # fmt: skip


def lookup_order_tool() -> Tool:
    """The demo agent's tool: an order's status, canned (no network)."""
    return Tool("lookup_order", "Find a customer's order by its number.", _ORDER_SCHEMA,
                _lookup_order, timeout_s=5.0)  # fmt: skip


def caller_id(port: int) -> CallerId:
    """Line `port`'s caller: a number of its own, a name, the time now."""
    return CallerId(f"55512340{port:02d}", "ALICE SMITH", datetime.now().strftime("%m%d%H%M"))


def ring(line: LineModel) -> None:
    line.incoming_call(caller_id(line.port), RINGS_BEFORE_GIVING_UP, RING_CADENCE_MS)


class SimCaller(Protocol):
    """A scripted caller on one simulated FXO line."""

    def dial_in(self, line: LineModel) -> None:
        """Ring `line` and queue what the caller does once answered."""

    async def drive(self, line: LineModel, stop: trio.Event) -> None:
        """Beside the call, until it is over: top up the script; once `stop` is set, leave."""

    def measure(self, line: LineModel) -> CallerReport:
        """After the call: each utterance's turn latency or barge-in stop at the far end."""


@dataclass(eq=False)
class ScriptedCaller:
    """A caller whose whole script is queued at the ring (`demo_caller`'s, by default)."""

    script: CallerScript

    @classmethod
    def demo(cls, voice: CallerVoice) -> ScriptedCaller:
        return cls(demo_caller(voice.request, voice.interruption, digit=DEMO_DIGIT,
                               hang_up="loop_drop"))  # fmt: skip

    def dial_in(self, line: LineModel) -> None:
        ring(line)
        self.script.load(line)

    async def drive(self, line: LineModel, stop: trio.Event) -> None:
        return  # everything is queued; the caller hangs up at the end of it

    def measure(self, line: LineModel) -> CallerReport:
        return self.script.measure(line)


def loop_cycle(voice: CallerVoice) -> tuple[Step, ...]:
    """One round of a looping caller: the request; 700 ms of the agent's voice into its
    answer, the interruption (a barge-in); the agent's reply heard out."""
    return (Say(voice.request, "request"), WaitForVoice(700.0),
            Say(voice.interruption, "interruption", barge_in=True), WaitForVoice(200.0),
            WaitForSilence(600.0))  # fmt: skip


@dataclass(eq=False)
class LoopingCaller:
    """Hears the greeting out, then runs `loop_cycle` again and again (queued a round at a
    time, when the last one ran out) until `drive`'s `stop`, then hangs up by loop drop."""

    voice: CallerVoice
    steps: list[Step] = field(default_factory=list)

    def dial_in(self, line: LineModel) -> None:
        ring(line)
        self._queue(line, (WaitForVoice(200.0), WaitForSilence(600.0)), first=True)

    async def drive(self, line: LineModel, stop: trio.Event) -> None:
        answered = leaving = False
        while True:
            if line.state is LineState.CONNECTED:
                answered = True
            elif answered:
                return  # the call is over (we hung up, or the box did)
            if answered and line.script_empty and not leaving:
                leaving = stop.is_set()
                self._queue(line, (HangUp("loop_drop"),) if leaving else loop_cycle(self.voice))
            await trio.sleep(POLL_S)

    def measure(self, line: LineModel) -> CallerReport:
        return CallerScript(tuple(self.steps)).measure(line)

    def _queue(self, line: LineModel, steps: Sequence[Step], first: bool = False) -> None:
        self.steps += steps
        CallerScript(tuple(steps)).load(line, start_mark=first)
