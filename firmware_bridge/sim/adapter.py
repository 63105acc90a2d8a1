"""A tipring adapter on a pseudo-terminal: `AdapterSimulator`, the device side of
`docs/adapter-protocol.md`, as a firmware author would build it.

The host (`firmware_bridge.link.AdapterLink`, or anyone with a serial terminal) opens `path`
(or the stable `link`) like `/dev/ttyACM0`. Behind it: the board's link state machine
(UNLINKED / LINKED, §4-§5), its reliable channel (§6), and one `SimPort` per port
(`sim.adapter_port`: commands, playout FIFO, audio path rules), each in front of a
`LineModel` that the caller owns and scripts. An in-process user (a test, `tipring demo`)
scripts port N's line through `line(N)` from any task of the same trio run, before or while
the simulator runs: the script takes effect at the next tick, and the line's records
(`marks`, `played`, `host_waits`, `tx_log`) can be read at any time, also after `run` ends.

Clock: every `tick_s` (20 ms of trio's clock by default; tests pass less, and the lines then
run that much faster than real time) each port's line steps with the host's next frame, and
the port's audio and line events go out. Heartbeats, the watchdog and retransmits run on
trio's clock at the spec's intervals whatever the tick. With `baud` set, every byte costs
its wire time at that rate (8N1) both ways, so a link can be overloaded as a real UART can.

Faults: `faults` (`sim.faults.Faults`) damages bytes both ways; `reset_firmware()` reboots
the board mid-anything (new boot nonce, safe state, UNLINKED); `unplug()` closes the pty and
removes the link as a USB unplug would, `plug_in()` brings a new pty up behind the same link
and boots the board; `hang()` stops the firmware answering (a wedged MCU).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from dsp.frame import FRAME_S
from firmware_bridge import messages as m
from firmware_bridge.framing import MAX_FRAME_BYTES
from firmware_bridge.outbox import Outbox
from firmware_bridge.port import Codec, PortKind
from firmware_bridge.protocol import FrameDecoder, RefusedReliable, encode
from firmware_bridge.reliable import ChannelDead, ReliableReceiver, ReliableSender, Verdict
from firmware_bridge.sim.adapter_port import SimPort
from firmware_bridge.sim.faults import Faults
from firmware_bridge.sim.line import LineModel, warm_line_kernels
from firmware_bridge.sim.pty import RawPty, point_link, remove_link

log = logging.getLogger(__name__)

FIRMWARE = "tr-sim 1.0.0"
DEFAULT_CODECS = (Codec.ULAW, Codec.ALAW, Codec.L16)
AUDIO_QUEUE_FRAMES = 2  # per port: the board sends each frame as its tick makes it
READ_BYTES = 4096
REBOOT_S = 0.01  # RESET: the ACK goes out, then the board reboots (spec: within 100 ms)


@dataclass
class SimStats:
    """The board's own counters (what STATS reports, and more)."""

    boots: int = 0
    links: int = 0  # HELLOs accepted
    host_losses: int = 0  # LINKED left: the host went silent or stopped answering
    commands: int = 0  # new commands acted on or refused
    duplicates: int = 0  # commands seen again (our answer was lost): not acted on again


class AdapterSimulator:
    """A board with one port per line in `lines` (each port of its line's kind). `codecs`:
    per port, the codecs it lists, its default first (all three unless given)."""

    def __init__(self, lines: Sequence[LineModel], *, codecs: Sequence[tuple[Codec, ...]] |
                 None = None, link: str | None = None, tick_s: float = FRAME_S,
                 baud: int | None = None, faults: Faults | None = None,
                 serial: str = "TRSIM-0001") -> None:  # fmt: skip
        if not 1 <= len(lines) <= m.MAX_PORTS:
            raise ValueError(f"an adapter has 1..{m.MAX_PORTS} ports, got {len(lines)}")
        codec_sets = list(codecs) if codecs is not None else [DEFAULT_CODECS] * len(lines)
        self.ports = [SimPort(i, line, tuple(c)) for i, (line, c) in
                      enumerate(zip(lines, codec_sets, strict=True))]  # fmt: skip
        self.link, self.tick_s, self.baud = link, tick_s, baud
        self.faults = faults or Faults()
        self.serial = serial
        self.path = ""
        self.stats = SimStats()
        self.boot_nonce = 0
        self.session = 0  # the HELLO we are linked to (0: UNLINKED)
        self.hung = False
        self._outbox = Outbox(AUDIO_QUEUE_FRAMES * len(self.ports))
        self._sender, self._receiver = ReliableSender(), ReliableReceiver()
        self._decoder = FrameDecoder()
        self._last_host_s = 0.0
        self._window_changed = trio.Event()
        self._plugged = trio.Event()
        self._plugged.set()
        self._attached: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._boot_s = time.monotonic()
        self._log_budget = m.LOG_MAX_PER_S
        self._boot()

    @property
    def linked(self) -> bool:
        return self.session != 0

    def line(self, port: int) -> LineModel:
        """The `LineModel` behind `port` (the one given for it), to script and to read."""
        if not 0 <= port < len(self.ports):
            raise ValueError(f"sim adapter: no port {port}; it has ports 0..{len(self.ports) - 1}")
        return self.ports[port].line

    # --- faults -------------------------------------------------------------------------------

    def reset_firmware(self) -> None:
        """The board reboots now: new boot nonce, safe state, UNLINKED."""
        self._boot()

    def unplug(self) -> None:
        """USB unplug: the pty closes (the host reads end of file), the link name goes away."""
        self._plugged = trio.Event()
        if self._attached is not None:
            self._attached.cancel()

    def plug_in(self) -> None:
        """USB plug-in: a new pty behind the same link name; the board boots."""
        self._plugged.set()

    def inject(self, garbage: bytes) -> None:
        """Write raw bytes to the host between two frames (line noise, a confused firmware)."""
        self._outbox.put_control(garbage)

    def hang(self, hung: bool = True) -> None:
        """A wedged MCU: it reads nothing and sends nothing while `hung`."""
        self.hung = hung

    # --- the actor ----------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `started(path)` once the first pty is up."""
        started = False
        warm_line_kernels()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ticker)
            while True:
                await self._plugged.wait()
                with RawPty.open() as pty:
                    self.path = pty.slave_path
                    if self.link:
                        point_link(self.link, pty.slave_path)
                    if not started:
                        started = True
                        task_status.started(pty.slave_path)
                    self._boot()
                    with trio.CancelScope() as self._attached:
                        await self._serve(pty)
                    if self.link:
                        remove_link(self.link)
                self._attached = self._nursery = None
                self._boot()  # unplugged: the board has no power

    async def _serve(self, pty: RawPty) -> None:
        async with trio.lowlevel.FdStream(os.dup(pty.master_fd)) as stream, \
                trio.open_nursery() as nursery:  # fmt: skip
            self._nursery = nursery
            nursery.start_soon(self._reader, stream)
            nursery.start_soon(self._writer, stream)
            nursery.start_soon(self._heartbeats)
            nursery.start_soon(self._watchdog)
            nursery.start_soon(self._retransmits)
            nursery.start_soon(self._stats_and_log_budget)

    def _boot(self) -> None:
        self.stats.boots += 1
        self._boot_s = time.monotonic()
        self.boot_nonce = secrets.randbits(32) or 1
        self._unlink()
        self._outbox.clear()
        self._outbox.put_control(b"\0")  # ends any half frame in the host's buffer
        self._log(m.LogLevel.INFO, f"{FIRMWARE} booted, boot nonce {self.boot_nonce:08x}")

    def _unlink(self) -> None:
        self.session = 0
        self._sender.abandon()
        self._receiver.reset()
        for port in self.ports:
            port.safe_state()

    # --- tasks --------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        tick = trio.current_time()
        while True:
            tick += self.tick_s
            await trio.sleep_until(tick)
            for port in self.ports:
                audio, events = port.tick()
                if not self.linked or self.hung or self._attached is None:
                    continue
                if audio is not None:
                    self._outbox.put_audio(encode(audio))
                for event in events:
                    self._sender.submit(m.EventReported(0, event))
            self._pump()

    async def _reader(self, stream: trio.lowlevel.FdStream) -> None:
        while True:
            data = await stream.receive_some(READ_BYTES)
            if self.baud:
                await trio.sleep(len(data) * 10 / self.baud)  # its wire time at 8N1
            if self.hung:
                continue
            for msg in self._decoder.feed_all(self.faults.damage(data)):
                self._on_message(msg)

    async def _writer(self, stream: trio.lowlevel.FdStream) -> None:
        while True:
            data = await self._outbox.get()
            if self.faults.delay_s:
                await trio.sleep(self.faults.delay_s)
            if self.baud:
                await trio.sleep(len(data) * 10 / self.baud)
            if not self.hung:
                await stream.send_all(self.faults.damage(data))

    async def _heartbeats(self) -> None:
        while True:
            self._outbox.put_control(encode(m.Heartbeat(self.boot_nonce, self.session)))
            await trio.sleep(m.HEARTBEAT_INTERVAL_S)

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep(m.HEARTBEAT_INTERVAL_S / 2)
            quiet_s = trio.current_time() - self._last_host_s
            if self.linked and quiet_s >= m.LINK_TIMEOUT_S:
                self._host_lost(f"no valid frame from the host for {quiet_s:.2f} s")

    async def _retransmits(self) -> None:
        while True:
            deadline = self._sender.next_deadline_s()
            self._window_changed = trio.Event()
            with trio.move_on_at(deadline if deadline is not None else trio.current_time() + 1):
                await self._window_changed.wait()
            try:
                self._outbox.put_control(*self._sender.due(trio.current_time()))
            except ChannelDead as exc:
                self._host_lost(f"event unanswered: {exc}")

    async def _stats_and_log_budget(self) -> None:
        next_stats = trio.current_time() + m.STATS_INTERVAL_S
        while True:
            await trio.sleep(1.0)
            self._log_budget = m.LOG_MAX_PER_S
            if trio.current_time() >= next_stats:
                next_stats += m.STATS_INTERVAL_S
                if self.linked and not self.hung:
                    self._outbox.put_control(encode(self._stats()))

    # --- what the host sent -------------------------------------------------------------------

    def _on_message(self, msg: m.Message | RefusedReliable) -> None:
        if isinstance(msg, m.Hello):
            self._on_hello(msg)
            return
        if not self.linked:
            return  # UNLINKED: every frame but HELLO is ignored
        self._last_host_s = trio.current_time()
        match msg:
            case m.Audio():
                if msg.port < len(self.ports):
                    self.ports[msg.port].take_audio(msg)
            case m.Ack() | m.Nak():
                self._sender.on_answer(msg)
                self._pump()
            case RefusedReliable():
                self._on_command(msg.seq, None, msg.reason)
            case m.Heartbeat():
                pass  # any valid frame proves the host alive
            case _ if isinstance(msg, m.Command):
                self._on_command(msg.seq, msg, None)
            case _:
                pass  # device-to-host types from a confused peer: ignored

    def _on_hello(self, hello: m.Hello) -> None:
        self._unlink()
        for port in self.ports:
            port.reset()
        self.session = hello.session_nonce
        self._last_host_s = trio.current_time()
        self.stats.links += 1
        infos = tuple(m.PortInfo(p.kind, p.codecs) for p in self.ports)
        ack = m.HelloAck(m.PROTOCOL_MINOR, hello.session_nonce, self.boot_nonce,
                         MAX_FRAME_BYTES, 0, FIRMWARE, self.serial, infos)  # fmt: skip
        self._outbox.put_control(encode(ack))
        for port in self.ports:
            for event in port.state_events():
                self._sender.submit(m.EventReported(0, event))
        self._pump()
        self._log(m.LogLevel.INFO, f"linked to host session {hello.session_nonce:08x}")

    def _on_command(self, seq: int, cmd: m.Command | None, refused: m.NakReason | None) -> None:
        verdict = self._receiver.classify(seq)
        if verdict is Verdict.AHEAD:
            return
        if verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            self._outbox.put_control(encode(self._receiver.remembered(seq)))
            return
        self.stats.commands += 1
        answer = refused if cmd is None else self._execute(cmd)
        self._outbox.put_control(encode(self._receiver.accept(seq, answer)))
        if isinstance(cmd, m.Reset):
            self._reboot_soon()

    def _execute(self, cmd: m.Command) -> m.NakReason | None:
        if isinstance(cmd, m.Reset):
            return None
        if cmd.port >= len(self.ports):
            return m.NakReason.NO_SUCH_PORT
        port = self.ports[cmd.port]
        if isinstance(cmd, (m.Ring, m.StopRing)) and port.kind is PortKind.FXO:
            return m.NakReason.UNSUPPORTED
        return port.execute(cmd)

    def _reboot_soon(self) -> None:
        async def reboot() -> None:
            await trio.sleep(REBOOT_S)
            self._boot()

        if self._nursery is not None:
            self._nursery.start_soon(reboot)

    def _host_lost(self, why: str) -> None:
        self.stats.host_losses += 1
        self._log(m.LogLevel.WARNING, f"host lost: {why}; safe state")
        self._unlink()

    def _pump(self) -> None:
        if self.linked and not self.hung:
            self._outbox.put_control(*self._sender.pump(trio.current_time()))
            self._window_changed.set()

    def _stats(self) -> m.Stats:
        d = self._decoder
        ports = tuple(m.PortStats(p.counters.audio_rx % (1 << 32), p.counters.audio_tx % (1 << 32),
                                  p.counters.underruns, p.counters.overruns, p.counters.audio_gaps)
                      for p in self.ports)  # fmt: skip
        uptime_ms = round((time.monotonic() - self._boot_s) * 1000) % (1 << 32)
        return m.Stats(uptime_ms, d.frames_ok, d.crc_errors, d.cobs_errors, d.oversize,
                       d.bad_version, d.malformed, d.bytes_discarded,
                       self._sender.retransmits, ports)  # fmt: skip

    def _log(self, level: m.LogLevel, text: str) -> None:
        log.log(logging.INFO if level <= m.LogLevel.INFO else logging.WARNING, "sim adapter: %s",
                text)  # fmt: skip
        if self.linked and self._log_budget > 0 and not self.hung:
            self._log_budget -= 1
            line = text.encode()[: m.MAX_LOG_BYTES].decode(errors="ignore")
            self._outbox.put_control(encode(m.Log(level, line)))
