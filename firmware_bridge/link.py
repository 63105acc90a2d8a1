"""The serial link to a tipring adapter: `AdapterLink`, the actor that owns the port.

It opens the device (`firmware_bridge.serial_io`), brings the link up (HELLO / HELLO_ACK,
`docs/adapter-protocol.md` §4), configures each port and hands out one `AdapterPort`
(`firmware_bridge.adapter_port`, a `LinePort`) per adapter port. While linked it runs a
reader (frames to ports, answers, events, heartbeats), a writer (answers and reliable frames
ahead of audio, spec §6.1), heartbeats, the retransmit timer and the loss watchdog. Any loss
(no valid frame for `LINK_TIMEOUT_S`, a command unanswered for `ANSWER_TIMEOUT_S`, a device reset
seen in its heartbeat, the device vanishing) reports `PortLost` on every port, closes the
device and reopens it with backoff; the ports are the same objects afterwards and report
`PortReady` again.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

import trio

from dsp.callerid import Standard
from firmware_bridge import messages as m
from firmware_bridge.adapter_port import AdapterPort, warm_port_kernels
from firmware_bridge.errors import (
    CommandFailed,
    LinkBroken,
    PortUnsupported,
    broken_reason,
    raise_broken,
)
from firmware_bridge.framing import MAX_FRAME_BYTES, PROTOCOL_MAJOR
from firmware_bridge.outbox import Outbox
from firmware_bridge.port import Codec
from firmware_bridge.protocol import FrameDecoder, RefusedReliable, encode
from firmware_bridge.reliable import ChannelDead, ReliableReceiver, ReliableSender, Sent, Verdict
from firmware_bridge.serial_io import SerialStream, open_serial

log = logging.getLogger(__name__)

BAUD_RATE = 921600  # spec §1; ignored by USB CDC-ACM and ptys
RECONNECT_MIN_S = 0.05  # a device that was linked is retried at once: most losses are resets
RECONNECT_MAX_S = 5.0  # an unplugged adapter is polled this often at worst
BRINGUP_S = 2.0  # HELLO unanswered this long: close and reopen (a wedged USB device)
AUDIO_QUEUE_FRAMES = 4  # per port, 80 ms: more only adds latency; past it frames are dropped
_UNSUPPORTED = (m.NakReason.UNSUPPORTED, m.NakReason.UNKNOWN_TYPE, m.NakReason.NO_SUCH_PORT)


class LinkState(StrEnum):
    CLOSED = "closed"  # no device open
    HELLO_SENT = "hello_sent"  # open, waiting for HELLO_ACK
    LINKED = "linked"


@dataclass(frozen=True, slots=True)
class PortSettings:
    """What the host asks of a port after each bring-up (spec §4 step 5). `codec` None keeps
    the port's default; `impedance` None keeps the board's."""

    codec: Codec | None = None
    tx_db: float = 0.0
    rx_db: float = 0.0
    impedance: m.Impedance | None = None
    callerid_standard: Standard = "bell202"


@dataclass
class LinkStats:
    """Counters over the link's life (a new connection adds to them)."""

    opens: int = 0  # the device was opened
    links: int = 0  # HELLO_ACKs that brought the link up
    losses: int = 0  # LINKED left for any reason
    last_loss: str = ""
    retransmits: int = 0  # our reliable frames sent again
    events: int = 0  # line events accepted
    duplicates: int = 0  # reliable frames from the device seen twice (an ACK was lost)
    refused: int = 0  # malformed reliable frames NAKed
    audio_dropped: int = 0  # AUDIO frames not queued: link down or backed up
    frames_ok: int = 0
    frames_bad: dict[str, int] = field(default_factory=dict)  # deframer counters by name
    device: m.Stats | None = None  # the adapter's latest STATS


class AdapterLink:
    """The adapter on `device` (a path or a pyserial URL). Construction does no I/O; `run`
    retries an absent device forever and calls `started()` once the first link is up, when
    `ports` holds one `AdapterPort` per adapter port."""

    def __init__(self, device: str, *, baudrate: int = BAUD_RATE,
                 settings: Mapping[int, PortSettings] | None = None) -> None:  # fmt: skip
        self.device, self.baudrate = device, baudrate
        self.settings = dict(settings or {})
        self.ports: list[AdapterPort] = []
        self.state = LinkState.CLOSED
        self.info: m.HelloAck | None = None  # the adapter's last HELLO_ACK
        self.last_error = ""  # why the link last went down or could not come up
        self.stats = LinkStats()
        self._outbox = Outbox(AUDIO_QUEUE_FRAMES)
        self._sender = ReliableSender()
        self._receiver = ReliableReceiver()
        self._decoder = FrameDecoder()
        self._session: trio.Nursery | None = None
        self._hello_nonce = 0
        self._acked: trio.Event = trio.Event()
        self._window_changed = trio.Event()
        self._last_rx_s = -math.inf
        self._started = False

    # --- what ports and callers use -----------------------------------------------------------

    @property
    def linked(self) -> bool:
        return self.state is LinkState.LINKED

    def queue_audio(self, wire: bytes) -> bool:
        if not self.linked or not self._outbox.put_audio(wire):
            self.stats.audio_dropped += 1
            return False
        return True

    async def command(self, port: int, name: str, msg: m.Command) -> None:
        """Send `msg` on the reliable channel and wait for its answer."""
        if not self.linked:
            raise LinkBroken(self.device, f"port {port}: {name}: the adapter is not linked")
        answered: list[Sent] = []
        done = trio.Event()

        def finish(sent: Sent) -> None:
            answered.append(sent)
            done.set()

        self._sender.submit(msg, finish)
        self._pump()
        await done.wait()
        sent = answered[0]
        if not sent.answered:
            raise LinkBroken(self.device, f"port {port}: {name}: link lost before the answer")
        if sent.answer in _UNSUPPORTED:
            raise PortUnsupported(port, name, f"the adapter says {sent.answer.name}")
        if sent.answer is not None:
            raise CommandFailed(port, name, f"the adapter says {sent.answer.name}")

    async def reset_adapter(self) -> None:
        """RESET: the adapter acknowledges, reboots, and the link comes back by itself."""
        await self.command(-1, "reset", m.Reset(0))

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        if self._session is not None:
            self._session.start_soon(fn)

    # --- the actor ----------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open, link, serve; on any loss: `PortLost` everywhere, back off, and again."""
        warm_port_kernels()
        delay = RECONNECT_MIN_S
        try:
            while True:
                was_linked = self.stats.links
                try:
                    async with open_serial(self.device, self.baudrate) as ser:
                        self.stats.opens += 1
                        await self._connection(ser, task_status)
                except* LinkBroken as group:
                    self._down(broken_reason(group))
                delay = RECONNECT_MIN_S if self.stats.links > was_linked else min(
                    delay * 2, RECONNECT_MAX_S)  # fmt: skip
                await trio.sleep(delay)
        finally:
            for port in self.ports:
                port.close()

    async def _connection(self, ser: SerialStream, task_status: trio.TaskStatus[None]) -> None:
        self._decoder = FrameDecoder()
        self._outbox = Outbox(AUDIO_QUEUE_FRAMES * max(1, len(self.ports)))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, ser)
                nursery.start_soon(self._writer, ser)
                ack = await self._bring_up()
                self._session = nursery
                self._link_up(ack)
                nursery.start_soon(self._heartbeats, ack.boot_nonce)
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._retransmits)
                await self._configure()
                for port in self._present_ports(ack):
                    port.ready(port.codec)
                if not self._started:
                    self._started = True
                    task_status.started()
        finally:
            self._session = None
            self._count_decoder()

    async def _bring_up(self) -> m.HelloAck:
        """HELLO every HELLO_RETRY_S until a HELLO_ACK echoes our nonce."""
        self.state = LinkState.HELLO_SENT
        self._hello_nonce = secrets.randbits(32) or 1
        self._acked, self.info = trio.Event(), None
        hello = encode(m.Hello(m.PROTOCOL_MINOR, self._hello_nonce, MAX_FRAME_BYTES, 0))
        self._outbox.put_control(b"\0")  # ends any half frame in the adapter's buffer
        with trio.move_on_after(BRINGUP_S):
            while not self._acked.is_set():
                self._outbox.put_control(hello)
                with trio.move_on_after(m.HELLO_RETRY_S):
                    await self._acked.wait()
        if self.info is None:
            major = self._decoder.last_bad_version
            why = f"the adapter speaks protocol major {major}, this host speaks " \
                f"{PROTOCOL_MAJOR}" if major is not None else "no HELLO_ACK"  # fmt: skip
            raise LinkBroken(self.device, f"{why} after {BRINGUP_S:g} s")
        return self.info

    def _link_up(self, ack: m.HelloAck) -> None:
        self._sender, self._receiver = ReliableSender(), ReliableReceiver()
        self.state = LinkState.LINKED
        self.stats.links += 1
        self._last_rx_s = trio.current_time()
        log.info(
            "adapter %s linked: %s, serial %s, %d ports (%s), minor %d", self.device,
            ack.firmware, ack.serial, len(ack.ports),
            " ".join(p.kind.value for p in ack.ports), min(ack.minor, m.PROTOCOL_MINOR),
        )  # fmt: skip
        for index, info in enumerate(ack.ports):
            if index < len(self.ports):
                if self.ports[index].kind is not info.kind:
                    log.error("adapter %s: port %d is now %s, was %s: restart tipring to use it",
                              self.device, index, info.kind, self.ports[index].kind)  # fmt: skip
                continue
            standard = self.settings.get(index, PortSettings()).callerid_standard
            self.ports.append(AdapterPort(self, index, info.kind, info.codecs, standard))
        self._outbox.audio_cap = AUDIO_QUEUE_FRAMES * len(self.ports)

    def _present_ports(self, ack: m.HelloAck) -> list[AdapterPort]:
        """Our ports that the adapter in `ack` has, of the same kind."""
        return [p for p, info in zip(self.ports, ack.ports, strict=False) if p.kind is info.kind]

    async def _configure(self) -> None:
        """Each port's settings (spec §4 step 5); a refusal is logged, the port keeps its
        default."""
        assert self.info is not None
        for port in self._present_ports(self.info):
            index = port.port
            port.codec = port.codecs[0]
            want = self.settings.get(index)
            if want is None:
                continue
            steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
            if want.codec is not None and want.codec != port.codec:
                steps.append(("codec", partial(port.set_codec, want.codec)))
            if want.tx_db or want.rx_db:
                steps.append(("gains", partial(port.set_gains, want.tx_db, want.rx_db)))
            if want.impedance is not None:
                steps.append(("impedance", partial(port.set_impedance, want.impedance)))
            for what, step in steps:
                try:
                    await step()
                except CommandFailed as exc:
                    log.error("adapter %s: port %d %s refused: %s", self.device, index, what, exc)

    def _down(self, reason: str) -> None:
        self.last_error = reason
        if self.state is LinkState.LINKED:
            self.stats.losses += 1
            self.stats.last_loss = reason
            log.warning("adapter %s: link lost: %s; reconnecting", self.device, reason)
        else:
            log.info("adapter %s not usable: %s", self.device, reason)
        self.state = LinkState.CLOSED
        self.stats.retransmits += self._sender.retransmits
        self._sender.abandon()
        for port in self.ports:
            port.lost(reason)

    # --- tasks of a connection ----------------------------------------------------------------

    async def _reader(self, ser: SerialStream) -> None:
        while True:
            data = await ser.receive()
            for msg in self._decoder.feed_all(data):
                self._last_rx_s = trio.current_time()
                self._dispatch(msg)

    async def _writer(self, ser: SerialStream) -> None:
        while True:
            await ser.send(await self._outbox.get())

    async def _heartbeats(self, boot_nonce: int) -> None:
        beat = encode(m.Heartbeat(self._hello_nonce, boot_nonce))
        while True:
            self._outbox.put_control(beat)
            await trio.sleep(m.HEARTBEAT_INTERVAL_S)

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep_until(self._last_rx_s + m.LINK_TIMEOUT_S)
            if trio.current_time() - self._last_rx_s >= m.LINK_TIMEOUT_S:
                raise LinkBroken(self.device, f"no valid frame for {m.LINK_TIMEOUT_S:g} s")

    async def _retransmits(self) -> None:
        while True:
            deadline = self._sender.next_deadline_s()
            self._window_changed = trio.Event()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._window_changed.wait()
            try:
                frames = self._sender.due(trio.current_time())
            except ChannelDead as exc:
                raise LinkBroken(self.device, str(exc)) from exc
            self._outbox.put_control(*frames)

    def _pump(self) -> None:
        self._outbox.put_control(*self._sender.pump(trio.current_time()))
        self._window_changed.set()

    # --- what the adapter sent ----------------------------------------------------------------

    def _dispatch(self, msg: m.Message | RefusedReliable) -> None:
        match msg:
            case m.Audio():
                if self.linked and msg.port < len(self.ports):
                    self.ports[msg.port].on_audio(msg)
            case m.EventReported() | RefusedReliable():
                if self.linked:
                    self._on_reliable(msg)
            case m.Ack() | m.Nak():
                if self._sender.on_answer(msg) is not None:
                    self._pump()
            case m.Heartbeat():
                self._on_heartbeat(msg)
            case m.HelloAck():
                if msg.host_nonce == self._hello_nonce and self.state is LinkState.HELLO_SENT:
                    self.info = msg
                    self._acked.set()
            case m.Stats():
                self._on_stats(msg)
            case m.Log():
                log.log(_LOG_LEVELS[msg.level], "adapter %s says: %s", self.device, msg.text)
            case _:  # a command or HELLO from a confused peer: counted, never acted on
                bad = self.stats.frames_bad
                bad["unexpected"] = bad.get("unexpected", 0) + 1

    def _on_reliable(self, msg: m.EventReported | RefusedReliable) -> None:
        verdict = self._receiver.classify(msg.seq)
        if verdict is Verdict.AHEAD:
            return
        if verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            self._outbox.put_control(encode(self._receiver.remembered(msg.seq)))
            return
        if isinstance(msg, RefusedReliable):
            self.stats.refused += 1
            log.warning("adapter %s: refused a malformed event: %s", self.device, msg.text)
            self._outbox.put_control(encode(self._receiver.accept(msg.seq, msg.reason)))
            return
        self._outbox.put_control(encode(self._receiver.accept(msg.seq, None)))
        self.stats.events += 1
        if msg.event.port < len(self.ports):
            self.ports[msg.event.port].on_event(msg.event)

    def _on_heartbeat(self, beat: m.Heartbeat) -> None:
        if not self.linked or self.info is None:
            return
        if beat.nonce != self.info.boot_nonce:
            self._fail("the adapter restarted (new boot nonce in its heartbeat)")
        elif beat.peer_nonce != self._hello_nonce:
            self._fail("the adapter dropped the link (its heartbeat names no session)")

    def _on_stats(self, stats: m.Stats) -> None:
        old, self.stats.device = self.stats.device, stats
        if old is not None and stats.crc_errors != old.crc_errors:
            log.warning("adapter %s: %d CRC errors on its side since the last STATS", self.device,
                        (stats.crc_errors - old.crc_errors) % (1 << 32))  # fmt: skip

    def _fail(self, reason: str) -> None:
        self.spawn(lambda: raise_broken(self.device, reason))

    def _count_decoder(self) -> None:
        d, bad = self._decoder, self.stats.frames_bad
        self.stats.frames_ok += d.frames_ok
        for name in ("crc_errors", "cobs_errors", "oversize", "bad_version", "malformed"):
            bad[name] = bad.get(name, 0) + getattr(d, name)
        self._decoder = FrameDecoder()


_LOG_LEVELS = {
    m.LogLevel.DEBUG: logging.DEBUG,
    m.LogLevel.INFO: logging.INFO,
    m.LogLevel.WARNING: logging.WARNING,
    m.LogLevel.ERROR: logging.ERROR,
}
