"""`gateway.app`: the appliance. `App(config).run()` is the root nursery `tipring run` starts:

- the call store's recorder (`gateway.store_recorder`), in an outer nursery so that it is the
  last to stop and writes every call's final record;
- under a `Supervisor`: the adapter (`AdapterLink`, or `VoiceModem`), one line actor per port
  (each supervised on its own: a crashed line is restarted without touching the calls on the
  others), and the serial console (`gateway.console`, through `gateway.app_console`);
- the systemd watchdog pings (from this event loop: a wedged loop stops them and systemd
  restarts us), a STATUS line every few seconds (lines up, calls), and the signal handler.

Start-up: READY=1 once the actors run and the adapter linked (or `ADAPTER_WAIT_S` passed:
an unplugged adapter is retried forever and the status says so). SIGTERM or SIGINT (or the
console's `restart`): no new calls, idle lines released, each running call told to wind down
(the agent stops, the goodbye prompt plays, the line hangs up) within `service.drain_s`; what
still runs then is cut; the records are flushed; `run` returns the exit status (`RESTART_EXIT`
for a `restart`: systemd's Restart=on-failure starts us again).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from firmware_bridge.link import AdapterLink, LinkState
from firmware_bridge.modem import VoiceModem
from firmware_bridge.port import LinePort
from gateway.call import CallPipeline
from gateway.call_config import SessionFactory
from gateway.call_fallback import load_prompts
from gateway.call_metrics import CallRecord
from gateway.config import AppConfig
from gateway.console import Console
from gateway.console_auth import Authenticator
from gateway.console_io import STDIO, open_console
from gateway.emergency import EmergencyRouter
from gateway.emergency_digits import EMERGENCY_PROFILE
from gateway.handoff import HandoffDesk
from gateway.line import FxoLine, FxsLine, line_actor
from gateway.line_call import CallLine, CallSpec
from gateway.realtime import RealtimeSession
from gateway.sdnotify import Notifier, watchdog_pinger
from gateway.store_recorder import CallStoreRecorder
from gateway.store_schema import StoreError
from gateway.supervisor import Supervisor

log = logging.getLogger(__name__)

ADAPTER_WAIT_S = 10.0  # READY waits this long for the adapter's first link, then goes on
PORT_POLL_S = 0.1  # new adapter ports (they appear at the first link-up)
STATUS_EVERY_S = 5.0
RESTART_EXIT = 75  # EX_TEMPFAIL: the console asked for a restart (systemd restarts on failure)
CUT_S = 3.0  # after the drain: the calls still up get this long to save their records


@dataclass(eq=False)
class App:
    """The appliance (see the module docstring). Construction reads the shipped prompts and
    opens nothing; `run` once."""

    config: AppConfig
    notifier: Notifier = field(default_factory=lambda: Notifier(None))
    session_factory: SessionFactory = RealtimeSession
    log_lines: Callable[[int], list[str]] | None = None  # the log ring's `lines` (console)
    supervisor: Supervisor = field(init=False)
    recorder: CallStoreRecorder = field(init=False)
    pipeline: CallPipeline = field(init=False)
    emergency: EmergencyRouter = field(init=False)  # in front of the pipeline
    handoffs: HandoffDesk = field(init=False)  # warm transfers' phone legs; then emergency
    device: AdapterLink | VoiceModem | None = field(init=False, default=None)
    lines: dict[int, FxoLine | FxsLine] = field(init=False, default_factory=dict)
    accepting: bool = field(init=False, default=True)
    exit_status: int = field(init=False, default=0)
    stopping: trio.Event = field(init=False, default_factory=trio.Event)
    ready: trio.Event = field(init=False, default_factory=trio.Event)
    last_record: CallRecord | None = field(init=False, default=None)
    started_s: float = field(init=False, default=0.0)  # trio's clock at run()
    cpu_percent: float = field(init=False, default=0.0)  # of one core, over STATUS_EVERY_S
    calls_today: int = field(init=False, default=0)
    staged: dict[str, object] = field(init=False, default_factory=dict)  # console: config set
    saved: set[str] = field(init=False, default_factory=set)  # ... and saved (restart to apply)
    _line_scopes: dict[int, trio.CancelScope] = field(init=False, default_factory=dict)
    _stop_reason: str = field(init=False, default="")

    def __post_init__(self) -> None:
        service = self.config.service
        self.supervisor = Supervisor(service.restart_min_s, service.restart_max_s)
        store = self.config.store
        self.recorder = CallStoreRecorder(store.path, store.retention)
        self.pipeline = CallPipeline(
            self.config.profiles, self.config.call, prompts=load_prompts(),
            on_record=self._on_record, on_start=self.recorder.on_call_started,
            on_transcript=self.recorder.on_transcript, session_factory=self.session_factory,
        )  # fmt: skip
        self.emergency = EmergencyRouter(
            self.pipeline, self.lines, self.config.line, self.recorder.on_call_started,
            self._on_record,
        )  # fmt: skip
        self.handoffs = HandoffDesk(self.emergency, self.lines)  # in front of both
        self.pipeline.handoffs = self.handoffs
        console = self.config.console
        self.console_auth = (Authenticator(console.password_hash, console.policy)
                             if console is not None else None)  # fmt: skip

    # --- the root nursery -----------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Serve until stopped (see the module docstring); returns the exit status."""
        self.started_s = trio.current_time()
        async with trio.open_nursery() as outer:
            self.supervisor.start(outer, "call store", self.recorder.run)
            async with trio.open_nursery() as inner:
                self.supervisor.start(inner, "adapter", self._adapter)
                if self.config.console is not None:
                    self.supervisor.start(inner, "console", self._console,
                                          once=self.config.console.device == STDIO)  # fmt: skip
                inner.start_soon(watchdog_pinger, self.notifier)
                inner.start_soon(self._status_loop)
                inner.start_soon(self._signals)
                with trio.move_on_after(ADAPTER_WAIT_S):
                    await self._adapter_linked()
                self.ready.set()
                self.notifier.ready(self.status_line())
                log.info("tipring ready: %s", self.status_line())
                task_status.started()
                await self.stopping.wait()
                await self._drain()
                inner.cancel_scope.cancel(reason=self._stop_reason)
            outer.cancel_scope.cancel(reason="records flushed")
        log.info("tipring stopped (%s)", self._stop_reason)
        return self.exit_status

    def stop(self, reason: str, exit_status: int = 0) -> None:
        """Begin the orderly stop (SIGTERM, the console's restart); `run` then returns."""
        if not self.stopping.is_set():
            self._stop_reason, self.exit_status = reason, exit_status
            self.stopping.set()

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info("%s: stopping", name)
                self.stop(name)

    async def _drain(self) -> None:
        self.accepting = False
        self.supervisor.stopping = True
        active = list(self.pipeline.active.values())
        drain_s = self.config.service.drain_s
        log.info("stopping: %d call(s) get %g s to end", len(active), drain_s)
        self.notifier.stopping(f"stopping: {len(active)} call(s) ending")
        for port, actor in self.lines.items():
            if actor.call is None:
                self._line_scopes[port].cancel(reason="stopping")
        for call in active:
            call.wind_down("the gateway is stopping")
        with trio.move_on_after(drain_s):
            while self.pipeline.active:  # noqa: ASYNC110 (calls end on their own clock)
                await trio.sleep(0.05)
        if self.pipeline.active:
            log.warning("stopping: %d call(s) still up after %g s: cut",
                        len(self.pipeline.active), drain_s)  # fmt: skip

    # --- the supervised actors ------------------------------------------------------------------

    async def _adapter(self) -> None:
        cfg = self.config.adapter
        async with trio.open_nursery() as nursery:
            if cfg.kind == "modem":
                modem = VoiceModem(cfg.device, baudrate=cfg.baudrate)
                self.device = modem
                nursery.start_soon(modem.run)
                self._start_line(nursery, modem)
                return
            link = AdapterLink(cfg.device, baudrate=cfg.baudrate)
            self.device = link
            nursery.start_soon(link.run)
            started = 0
            while True:  # the ports appear at the first link-up
                for port in link.ports[started:]:
                    self._start_line(nursery, port)
                started = len(link.ports)
                await trio.sleep(PORT_POLL_S)

    def _start_line(self, nursery: trio.Nursery, port: LinePort) -> None:
        starts = 0

        async def run_line() -> None:
            nonlocal starts
            starts += 1
            actor = line_actor(port, self.config.line, self)
            actor.health.on_alarm = self.recorder.on_line_alarm  # alarms kept in the store
            ready = getattr(port, "last_ready", None)  # firmware_bridge.port_base.PortChannels
            if starts > 1 and ready is not None:
                actor.resume(ready)  # the port is up: the actor before this one saw it come
            self.lines[port.port] = actor
            scope = self._line_scopes[port.port] = trio.CancelScope()
            with scope:
                await actor.run()

        self.supervisor.start(nursery, f"line {port.port}", run_line)

    async def _console(self) -> None:
        from gateway.app_console import AppConsole

        cfg = self.config.console
        assert cfg is not None
        assert self.console_auth is not None
        async with open_console(cfg.device, cfg.baudrate) as stream:
            await Console(stream, AppConsole(self), cfg, self.console_auth).run()

    # --- the lines' CallStarter -----------------------------------------------------------------

    async def run_call(self, spec: CallSpec, line: CallLine) -> None:
        if not self.accepting and spec.profile != EMERGENCY_PROFILE:  # never refused
            log.info("line %d: call %s refused: stopping", spec.port, spec.call_id)
            return
        await self.handoffs.run_call(spec, line)

    def _on_record(self, record: CallRecord) -> None:
        self.last_record = record
        self.recorder.on_record(record)

    # --- status ---------------------------------------------------------------------------------

    def lines_up(self) -> int:
        return sum(1 for actor in self.lines.values() if actor.state.value != "down")

    def status_line(self) -> str:
        """One line for systemd's STATUS= (and the log): lines up, calls, adapter."""
        device = self.device
        if isinstance(device, AdapterLink) and device.state is not LinkState.LINKED:
            adapter = f"adapter {self.config.adapter.device} not linked"
            if device.last_error:
                adapter += f" ({device.last_error})"
        else:
            adapter = f"adapter {self.config.adapter.device}"
        calls = len(self.pipeline.active)
        return f"{self.lines_up()}/{len(self.lines)} lines up, {calls} call(s); {adapter}"

    async def _status_loop(self) -> None:
        last_cpu_s, last_s = time.process_time(), trio.current_time()
        while True:
            self.notifier.status(self.status_line())
            midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                           microsecond=0)  # fmt: skip
            with trio.move_on_after(STATUS_EVERY_S):
                try:
                    self.calls_today = (await self.recorder.counts(since=midnight)).total
                except StoreError as exc:  # not open yet, or the disk is failing: logged there
                    log.debug("calls today: %s", exc)
            await trio.sleep(STATUS_EVERY_S)
            cpu_s, now_s = time.process_time(), trio.current_time()
            self.cpu_percent = 100.0 * (cpu_s - last_cpu_s) / max(1e-3, now_s - last_s)
            last_cpu_s, last_s = cpu_s, now_s

    async def _adapter_linked(self) -> None:
        while not (self.lines and self.lines_up() == len(self.lines)):  # noqa: ASYNC110
            await trio.sleep(PORT_POLL_S)
