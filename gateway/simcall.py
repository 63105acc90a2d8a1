"""`gateway.simcall`: whole phone calls on this machine with nothing but software, for
`tipring demo`, `tipring bench calls` and the integration tests.

The pieces (each an actor with `run`; `run_sim_calls` starts them all in one nursery):
- `SimLines`, the far side: an in-process `AdapterSimulator` with one FXO port per caller on
  a pty (or a `ModemSimulator`: the voice-modem path), each port's `LineModel` with its
  scripted `SimCaller`
  (`gateway.simcall_scenario`); a `LineWatch` per line (optional) notes on trio's clock when
  the line rang, was answered and hung up, and maps line ms to trio's clock.
- `Appliance`, the box: `AdapterLink` on the pty, a line actor per port (answers after 2
  rings), the `CallPipeline` with one agent profile. It is the lines' `CallStarter` (it notes
  each call's `CallSpec`, then hands the call to the pipeline) and keeps each port's record.
- the local realtime server (`LocalRealtimeServer`), unless a URL of another server is given.

`tipring bench calls` runs `SimLines` and the server in processes of their own
(`gateway.bench.calls_sim`, `tipring local-server`) and only `Appliance` in its own.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from dsp.callerid import encode as encode_callerid
from firmware_bridge.adapter_port import warm_port_kernels
from firmware_bridge.link import AdapterLink
from firmware_bridge.modem import VoiceModem
from firmware_bridge.port import LinePort, PortKind
from firmware_bridge.sim.adapter import AdapterSimulator
from firmware_bridge.sim.caller import CallerReport
from firmware_bridge.sim.line import LineModel
from firmware_bridge.sim.line import warm_line_kernels as warm_sim_line_kernels
from firmware_bridge.sim.modem import ModemSimulator
from firmware_bridge.sim.modem_profiles import ModemProfile
from gateway.call import CallPipeline
from gateway.call_audio import warm_up
from gateway.call_config import GREETING, AgentProfile, CallConfig
from gateway.call_fallback import load_prompts
from gateway.call_metrics import CallRecord
from gateway.line import FxoConfig, FxoLine, FxsLine, LineConfig, line_actor, warm_line_kernels
from gateway.line_call import CallLine, CallSpec
from gateway.realtime import RealtimeSettings, ServerVad, Transcription
from gateway.realtime.local import LocalRealtimeServer, Script
from gateway.simcall_scenario import SimCaller, caller_id, lookup_order_tool
from gateway.tools import ToolRegistry

PROFILE = "demo"
LINE_CONFIG = LineConfig(fxo=FxoConfig(answer_after_rings=2, default_profile=PROFILE))
INSTRUCTIONS = "You answer the phone for an online shop. Look orders up with lookup_order."
WATCH_S = 0.01  # a LineWatch looks at its line this often: the timeline's resolution
POLL_S = 0.02  # waits for the lines or the calls to get somewhere
READY_S = 30.0  # the pty, the link and every line idle (a cold numba cache compiles first)


def demo_profile(url: str) -> AgentProfile:
    """The simulated calls' agent: the realtime server at `url` (OpenAI GA schema, no key),
    mu-law both ways, server VAD, caller transcripts, the `lookup_order` tool, and a
    greeting (the agent speaks first)."""
    settings = RealtimeSettings(provider="local", url=url, instructions=INSTRUCTIONS,
                                turn_detection=ServerVad(),
                                transcription=Transcription("gpt-4o-mini-transcribe"))  # fmt: skip
    return AgentProfile(settings, None, ToolRegistry([lookup_order_tool()]), GREETING)


@dataclass(eq=False)
class LineWatch:
    """When things happened on one simulated line, on trio's clock: `events` (trio s, what)
    for each ring, the answer and the end of the call; `offset_s` maps line ms to trio's
    clock (trio s = offset_s + line ms / 1000; within a tick)."""

    line: LineModel
    events: list[tuple[float, str]] = field(default_factory=list)
    offset_s: float = math.inf

    async def run(self) -> None:
        rings, state = self.line.rings, self.line.state
        while True:
            now_s = trio.current_time()
            self.offset_s = min(self.offset_s, now_s - self.line.now_ms / 1000.0)
            if self.line.rings != rings:
                rings = self.line.rings
                self.events.append((now_s, f"ring {rings}"))
            if self.line.state is not state:
                state = self.line.state
                self.events.append((now_s, f"line {state.value}"))
            await trio.sleep(WATCH_S)

    def trio_s(self, line_ms: float) -> float:
        return self.offset_s + line_ms / 1000.0


@dataclass(eq=False)
class SimLines:
    """The far side: one FXO line and caller per entry of `callers`, behind a simulated
    tipring adapter (or, `modem` given, a voice modem: one line) on a pty. `run` reports the
    pty's path; `dial_in` rings every line. The lines keep all they heard (`tx_log`: 0.96 MB
    a minute each) for the callers' `measure`."""

    callers: Sequence[SimCaller]
    watch: bool = False
    modem: ModemProfile | None = None  # a voice modem of this chipset (one line) instead
    stop: trio.Event = field(default_factory=trio.Event)  # set: the callers hang up
    lines: list[LineModel] = field(init=False)
    sim: AdapterSimulator | ModemSimulator = field(init=False)
    watches: list[LineWatch] = field(init=False, default_factory=list)
    _nursery: trio.Nursery | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.lines = [LineModel(PortKind.FXO, port=i, seed=i) for i in range(len(self.callers))]
        if self.modem is None:
            self.sim = AdapterSimulator(self.lines)
        elif len(self.lines) == 1:
            self.sim = ModemSimulator(self.modem, self.lines[0])
        else:
            raise ValueError(f"a voice modem has one line, not {len(self.lines)}")

    async def run(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            path = await nursery.start(self.sim.run)
            if self.watch:
                self.watches = [LineWatch(line) for line in self.lines]
                for w in self.watches:
                    nursery.start_soon(w.run)
            task_status.started(path)

    def dial_in(self, stagger_s: float = 0.0) -> None:
        """Every caller rings its line, the first now, the next `stagger_s` later and so on,
        and goes on beside its call."""
        assert self._nursery is not None, "dial_in before run started"
        for i, (caller, line) in enumerate(zip(self.callers, self.lines, strict=True)):
            self._nursery.start_soon(self._call, caller, line, i * stagger_s)

    async def _call(self, caller: SimCaller, line: LineModel, delay_s: float) -> None:
        await trio.sleep(delay_s)
        caller.dial_in(line)
        await caller.drive(line, self.stop)

    def reports(self) -> list[CallerReport]:
        return [c.measure(line) for c, line in zip(self.callers, self.lines, strict=True)]


@dataclass(eq=False)
class Appliance:
    """The box on the tipring adapter at `device` (`modem`: on the voice modem there): a
    line actor per port and `pipeline`'s calls (`pipeline_for` builds it with our record
    keeper). `specs` / `records`: by port."""

    device: str
    pipeline_for: Callable[[Callable[[CallRecord], None]], CallPipeline]
    line_config: LineConfig = LINE_CONFIG
    modem: bool = False
    specs: dict[int, CallSpec] = field(default_factory=dict)
    records: dict[int, CallRecord] = field(default_factory=dict)
    line_actors: list[FxoLine | FxsLine] = field(default_factory=list)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        pipeline = self.pipeline_for(self._keep)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(READY_S):
                ports: Sequence[LinePort]
                if self.modem:
                    modem = VoiceModem(self.device)
                    await nursery.start(modem.run)
                    ports = [modem]
                else:
                    link = AdapterLink(self.device)
                    await nursery.start(link.run)
                    ports = link.ports
                for port in ports:
                    actor = line_actor(port, self.line_config, _Starter(self, pipeline))
                    await nursery.start(actor.run)
                    self.line_actors.append(actor)
                await until(lambda: all(a.state == "idle" for a in self.line_actors))
            task_status.started()

    def _keep(self, record: CallRecord) -> None:
        self.records[record.port] = record


@dataclass(eq=False)
class _Starter:
    """The line actors' `CallStarter`: notes the call, then runs it on the pipeline."""

    appliance: Appliance
    pipeline: CallPipeline

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        self.appliance.specs[spec.port] = spec
        await self.pipeline.run_call(spec, line)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (checked every `POLL_S`); the caller bounds it."""
    while not condition():  # noqa: ASYNC110 (the simulated lines are the clock here)
        await trio.sleep(POLL_S)


def warm_kernels() -> None:
    """Compile (or load from numba's cache) every kernel of the box and of the simulator
    before the clock starts: a cold cache takes a minute, and a kernel compiled mid-call would
    stall every line (the app warms its own before it reports ready)."""
    warm_up()
    warm_line_kernels()
    warm_port_kernels()
    warm_sim_line_kernels()
    encode_callerid(caller_id(0), "bell202")  # the simulated exchange's caller ID burst


def pipeline_factory(profile: AgentProfile, config: CallConfig
                     ) -> Callable[[Callable[[CallRecord], None]], CallPipeline]:  # fmt: skip
    """A `CallPipeline` maker for `Appliance`: `profile` for every call, the shipped prompts
    read now (not at the first call, which would start it late)."""
    prompts = load_prompts()
    return lambda keep: CallPipeline({PROFILE: profile}, config, prompts=prompts, on_record=keep)


@dataclass
class SimResult:
    """What `run_sim_calls` got: per line, its call's spec and record (None: none came) and
    the caller's far-end report; the lines themselves (marks, what was played, `tx_log`), the
    watches, and the local server (None with a URL given)."""

    specs: list[CallSpec | None]
    records: list[CallRecord | None]
    reports: list[CallerReport]
    lines: list[LineModel]
    watches: list[LineWatch]
    server: LocalRealtimeServer | None
    realtime_url: str
    timed_out: bool
    elapsed_s: float


async def run_sim_calls(callers: Sequence[SimCaller], *, script: Script,
                        realtime_url: str | None = None, config: CallConfig | None = None,
                        timeout_s: float = 60.0, watch: bool = False,
                        profile: Callable[[str], AgentProfile] = demo_profile,
                        modem: ModemProfile | None = None,
                        line_config: LineConfig = LINE_CONFIG) -> SimResult:  # fmt: skip
    """Run one call per caller at once, on the real clock, until every call has ended and its
    record is written (or `timeout_s`: the calls still up are cut, `timed_out` set). The local
    server runs `script` unless `realtime_url` names another server. `modem`: the line is
    behind a simulated voice modem of that chipset (one caller), not the tipring adapter."""
    warm_kernels()
    # The calls' frames must not wait on a full collection of whatever heap the process
    # already holds (seen once in the whole test suite's process: a ~400 ms stall hitting all
    # 8 calls at once, not reproduced alone): collect now and keep those objects out of later
    # collections. The appliance should do the same once it is ready.
    gc.collect()
    gc.freeze()
    started_s = trio.current_time()
    server = None if realtime_url else LocalRealtimeServer(script=script)
    sim = SimLines(callers, watch=watch, modem=modem)
    appliance: Appliance | None = None
    url = realtime_url or ""
    with trio.move_on_after(timeout_s) as overall:
        async with trio.open_nursery() as nursery:
            if server is not None:
                url = await nursery.start(server.run)
            path = await nursery.start(sim.run)
            pipeline_for = pipeline_factory(profile(url), config or CallConfig())
            appliance = Appliance(path, pipeline_for, line_config, modem=modem is not None)
            await nursery.start(appliance.run)
            sim.dial_in()
            done = appliance.records
            await until(lambda: len(done) == len(callers))
            nursery.cancel_scope.cancel(reason="every call is over")
    specs = [appliance.specs.get(i) if appliance else None for i in range(len(callers))]
    records = [appliance.records.get(i) if appliance else None for i in range(len(callers))]
    return SimResult(specs, records, sim.reports(), sim.lines, sim.watches, server,
                     url, overall.cancelled_caught, trio.current_time() - started_s)  # fmt: skip


def capture_paths(record: CallRecord) -> dict[str, Path]:
    """The record's WAV files by direction ("uplink", "line")."""
    out: dict[str, Path] = {}
    for name in record.captures:
        path = Path(name)
        out[path.stem.rsplit("-", 1)[-1]] = path
    return out
