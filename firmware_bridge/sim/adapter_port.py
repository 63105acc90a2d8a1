"""One port of the simulated tipring adapter, as its firmware would run it: `SimPort`.

`firmware_bridge.sim.adapter.AdapterSimulator` owns one per port and calls it: `execute` for
each new command (the answer: None to ACK, or a `NakReason`), `take_audio` for each host AUDIO
frame, `tick` every 20 ms (the line model steps with the playout FIFO's next frame; the
result is the AUDIO to send, if the port's audio path is open, and the line events to
report), `safe_state` on host loss. The rules are `docs/adapter-protocol.md` §5.2, §7 and §8:
playout FIFO with prebuffer, on-hook listening on FXO, on-hook transmission between ring
bursts on FXS, hang-up reported after `FLASH_MAX_MS`, gains applied to the audio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from firmware_bridge import messages as m
from firmware_bridge.errors import CommandFailed, PortUnsupported
from firmware_bridge.port import (
    Codec,
    HookChanged,
    HookFlashed,
    LineVoltageMeasured,
    PolarityReversed,
    PortKind,
    RingStarted,
)
from firmware_bridge.sim.line import LineModel, LineState

# The simulated board's ranges: wider than the spec's minimum of -12..+6 dB.
MIN_GAIN_DB, MAX_GAIN_DB = -20.0, 12.0
MIN_FLASH_MS, MAX_FLASH_MS = 50, 2000  # spec §8.2: it must time at least 50-2000 ms
FRAME_MS = 20
PREBUFFER_TICKS = 1  # PLAYOUT_PREBUFFER_MS (10 ms) rounds up to one 20 ms tick here
SEQ_MOD = 1 << 16
SENT_LOG_FRAMES = 1000  # 20 s of what the port sent to the host, by seq, for tests


@dataclass
class _Counters:
    audio_rx: int = 0
    audio_tx: int = 0
    underruns: int = 0
    overruns: int = 0
    audio_gaps: int = 0


class SimPort:
    """Port `index` of the simulated board, in front of `line` (of the port's kind)."""

    def __init__(self, index: int, line: LineModel, codecs: tuple[Codec, ...]) -> None:
        self.index, self.line, self.codecs = index, line, codecs
        self.kind = line.kind
        self.counters = _Counters()
        self.executed: list[m.Command] = []  # every command acted on, for tests
        self.sent: deque[tuple[int, NDArray[np.int16]]] = deque(maxlen=SENT_LOG_FRAMES)
        self.reset()

    def reset(self) -> None:
        """Spec §4 step 2: the defaults (first codec, 0 dB, board impedance, no ring)."""
        self.codec = self.codecs[0]
        self.tx_db = self.rx_db = 0.0
        self.impedance = m.Impedance.R600
        self._fifo: deque[NDArray[np.int16]] = deque()
        self._prebuffer = 0  # ticks still to wait before the FIFO plays
        self._last_host_seq: int | None = None
        self._tx_seq = 0
        self._listen_until_ms = -1.0  # FXO on-hook listening (spec §7)
        self._held: list[tuple[float, m.WireEvent]] = []  # events waiting for their time
        self._volts_reported = self.line.volts

    def safe_state(self) -> None:
        """Spec §5.2: FXS ringing stopped and host audio muted; FXO on-hook."""
        self._fifo.clear()
        if self.kind is PortKind.FXS and self.line.state is LineState.RINGING:
            self.line.host_stop_ring()
        elif self.kind is PortKind.FXO and self.line.off_hook:
            self.line.host_on_hook()
        self._listen_until_ms = -1.0

    def state_events(self) -> list[m.WireEvent]:
        """Spec §4 step 4: the port's state right after a HELLO_ACK."""
        if self.kind is PortKind.FXS:
            return [HookChanged(self.index, True)] if self.line.off_hook else []
        self._volts_reported = self.line.volts
        events: list[m.WireEvent] = [LineVoltageMeasured(self.index, self.line.volts)]
        return events + ([RingStarted(self.index)] if self.line.ring_on else [])

    # --- commands ---------------------------------------------------------------------------

    def execute(self, cmd: m.Command) -> m.NakReason | None:
        """Act on a new command for this port; None to ACK it, else why it is refused."""
        try:
            reason = self._execute(cmd)
        except PortUnsupported:
            return m.NakReason.UNSUPPORTED
        except CommandFailed:
            return m.NakReason.BUSY
        except ValueError:
            return m.NakReason.BAD_ARGUMENT
        if reason is None:
            self.executed.append(cmd)
        return reason

    def _execute(self, cmd: m.Command) -> m.NakReason | None:
        line = self.line
        match cmd:
            case m.Ring():
                line.host_ring(cmd.cadence_ms)
            case m.StopRing():
                line.host_stop_ring()
            case m.GoOffHook():
                if self.kind is PortKind.FXO and not line.off_hook and line.volts == 0.0:
                    return m.NakReason.FAULT  # no battery: a cut line
                line.host_off_hook()
            case m.GoOnHook():
                line.host_on_hook()
            case m.Flash():
                if not MIN_FLASH_MS <= cmd.duration_ms <= MAX_FLASH_MS:
                    return m.NakReason.BAD_ARGUMENT
                line.host_flash(cmd.duration_ms)
            case m.SetGains():
                if not all(MIN_GAIN_DB <= g <= MAX_GAIN_DB for g in (cmd.tx_db, cmd.rx_db)):
                    return m.NakReason.BAD_ARGUMENT
                self.tx_db, self.rx_db = cmd.tx_db, cmd.rx_db
            case m.SetImpedance():
                self.impedance = cmd.impedance
            case m.SetCodec():
                if cmd.codec not in self.codecs:
                    return m.NakReason.UNSUPPORTED
                self.codec = cmd.codec
            case _:
                return m.NakReason.UNKNOWN_TYPE
        return None

    # --- audio ------------------------------------------------------------------------------

    def take_audio(self, msg: m.Audio) -> None:
        """A host AUDIO frame: into the playout FIFO if the path is open and the codec listed."""
        c = self.counters
        c.audio_rx += 1
        if self._last_host_seq is not None:
            gap = (msg.seq - self._last_host_seq - 1) % SEQ_MOD
            c.audio_gaps += gap if gap < SEQ_MOD // 2 else 0  # else late or repeated
        self._last_host_seq = msg.seq
        if msg.codec not in self.codecs or not self._plays():
            return
        if len(self._fifo) >= m.PLAYOUT_FIFO_FRAMES:
            self._fifo.popleft()
            c.overruns += 1
        if not self._fifo and self._prebuffer <= 0:
            self._prebuffer = PREBUFFER_TICKS
        self._fifo.append(_gain(m.audio_samples(msg.codec, msg.payload), self.tx_db))

    def tick(self) -> tuple[m.Audio | None, list[m.WireEvent]]:
        """20 ms: the line steps with the next host frame; the AUDIO to send (None while the
        path is closed) and the events due."""
        rx, events = self.line.step(self._next_playout())
        now_ms = self.line.now_ms
        due = self._arrived(events, now_ms)
        if not self._sends(now_ms):
            return None, due
        ts = round((now_ms - FRAME_MS) * 8) % (1 << 32)
        pcm = _gain(rx, self.rx_db)
        self.sent.append((self._tx_seq, pcm))
        msg = m.Audio(self.index, self._tx_seq, ts, self.codec, m.audio_payload(self.codec, pcm))
        self._tx_seq = (self._tx_seq + 1) % SEQ_MOD
        self.counters.audio_tx += 1
        return msg, due

    def _next_playout(self) -> NDArray[np.int16] | None:
        if not self._plays():
            self._fifo.clear()
            return None
        if self._prebuffer > 0:
            self._prebuffer -= 1
            return None
        if self._fifo:
            return self._fifo.popleft()
        if self._last_host_seq is not None:
            self.counters.underruns += 1
            self._last_host_seq = None  # counted once per dry spell; wait for a new stream
        return None

    def _plays(self) -> bool:
        """Host audio reaches the line: off-hook, or FXS between ring bursts (caller ID)."""
        line = self.line
        ringing = self.kind is PortKind.FXS and line.state is LineState.RINGING
        return line.off_hook or (ringing and not line.ring_on)

    def _sends(self, now_ms: float) -> bool:
        return self.line.off_hook or now_ms < self._listen_until_ms

    def _arrived(self, events: Sequence[object], now_ms: float) -> list[m.WireEvent]:
        """The model's events as the firmware reports them: FXS on-hook after FLASH_MAX_MS
        (a shorter open is a flash, which the model reports itself); FXO ring and polarity
        open the on-hook listening window."""
        for ev in events:
            if not isinstance(ev, m.WIRE_EVENTS):
                continue
            if isinstance(ev, HookChanged) and not ev.off_hook:
                self._held.append((now_ms + m.FLASH_MAX_MS, ev))
                continue
            if isinstance(ev, LineVoltageMeasured):
                if abs(ev.volts - self._volts_reported) < m.LINE_VOLTAGE_STEP_V:
                    continue  # spec §8.2: reported when it moved 3 V or more
                self._volts_reported = ev.volts
            if isinstance(ev, HookChanged) and self._held_on_hook():
                ev = self._flashed(now_ms)  # back off-hook within FLASH_MAX_MS: a flash
            if isinstance(ev, (RingStarted, PolarityReversed)) and self.kind is PortKind.FXO:
                self._listen_until_ms = now_ms + m.ONHOOK_LISTEN_MS
            self._held.append((now_ms, ev))
        due = [ev for at, ev in self._held if at <= now_ms]
        self._held = [(at, ev) for at, ev in self._held if at > now_ms]
        return due

    def _held_on_hook(self) -> bool:
        return any(isinstance(ev, HookChanged) for _, ev in self._held)

    def _flashed(self, now_ms: float) -> HookFlashed:
        at = next(at for at, ev in self._held if isinstance(ev, HookChanged))
        self._held = [(a, ev) for a, ev in self._held if not isinstance(ev, HookChanged)]
        return HookFlashed(self.index, now_ms - (at - m.FLASH_MAX_MS))


def _gain(pcm: NDArray[np.int16], db: float) -> NDArray[np.int16]:
    if db == 0.0:
        return pcm
    x = pcm.astype(np.float64) * 10.0 ** (db / 20.0)
    out: NDArray[np.int16] = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return out
