"""The analog line behind one simulated port, as the adapter's codec sees it: `LineModel`.

The adapter and modem simulators own one `LineModel` per port and call `step(tx)` once per
20 ms tick: tx is what the host sent to the line, the result is what the host receives (far
party or phone audio, network tones and caller ID, the echo of tx through the hybrid, line
noise) and the line events of that frame (`firmware_bridge.port` classes, for `port`). Tests
drive it the same way. Pure and deterministic for a seed: no trio, no I/O, no wall clock;
every timer counts samples. The frame clock, script and signal sum are `line_core.LineCore`;
the echo paths are `echo_paths`; what the exchange does with the number the host dials is
`line_exchange.FxoExchange` (the base of `LineModel`, on `LineCore`).

The far side is scripted (`line_script`; `caller.CallerScript` builds a whole caller).
`play`, `press`, `silence` queue audio; `hang_up`, `phone_*`, `wait`, `mark` queue actions;
`wait_for_voice` / `wait_for_silence` react to the host. All run in order. Audio and host waits
wait until the far party can be heard (FXO: the call is connected; FXS: the phone is off-hook);
actions and waits run at once, actions on a frame boundary. The end of an FXO call drops the
rest of its script.

FXO (the box is the phone): `incoming_call` rings us (caller ID between the first and second
ring) until the host answers or the caller gives up; `host_off_hook` on an idle line gives
dial tone, the host's DTMF is decoded (`dialed_digits`) and the network rings the far end
(`expect_outgoing`); `cut` / `restore` take the battery away and back (0 V), and
`dial_tone = False` is an exchange that gives none. FXS (a phone plugs into the box):
`phone_*` script the phone; the host rings it with `host_ring` and the phone decodes any
caller ID (`received_callerid`). Host commands the port kind cannot do raise
`PortUnsupported`; script calls for the other kind raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder, CallerIdError, Standard, encode
from dsp.dtmf import DtmfDetector
from dsp.dtmf import generate as dtmf_generate
from dsp.tone_plans import TonePlan
from dsp.tones import ToneGenerator
from firmware_bridge.errors import CommandFailed
from firmware_bridge.port import (
    US_RING_CADENCE_MS,
    HookChanged,
    HookFlashed,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    RingStarted,
    RingStopped,
)
from firmware_bridge.sim.echo_paths import EchoPath
from firmware_bridge.sim.line_core import (
    DEAD_VOLTS,
    OFF_HOOK_VOLTS,
    ON_HOOK_VOLTS,
    Clips,
    LineState,
    mix,
    samples,
)
from firmware_bridge.sim.line_exchange import FxoExchange

__all__ = ["DEFAULT_ECHO", "HangUpMethod", "LineModel", "LineState"]

HangUpMethod = Literal[
    "loop_drop", "polarity", "busy", "reorder", "dial_tone", "silence", "on_hook"
]

CALLERID_GAP_MS = 500.0  # GR-30-CORE: the FSK burst starts >= 500 ms after the first ring
CALLERID_GUARD_MS = 200.0  # GR-30-CORE: and ends >= 200 ms before the second ring
LOOP_DROP_MS = 600.0  # disconnect: US exchanges open the loop for ~300-800 ms
PHONE_PICKUP_MS = 500.0  # an FXS phone answers this far into the ring it answers on
# A typical analog line: G.168 model 1 behind 2 ms of codec filter delay, 12 dB of
# trans-hybrid loss (G.168 assumes >= 6 dB; a 600 ohm DAA on real loops gives ~10-15 dB).
DEFAULT_ECHO = EchoPath.g168(1, delay_ms=2.0, erl_db=12.0)


def _check_cadence(cadence_ms: Sequence[int]) -> tuple[int, ...]:
    cadence = tuple(int(ms) for ms in cadence_ms)
    if not cadence or len(cadence) % 2 or min(cadence) <= 0:
        raise ValueError(f"ring cadence {cadence_ms!r}: want on/off pairs of ms > 0")
    return cadence


class LineModel(FxoExchange):
    """One analog line (`kind` as seen by the box) for port number `port`. `echo` is the
    hybrid's echo path (None: open); `noise_dbm0` white line noise (None: none); tones come
    from `tone_plan`, caller ID uses `callerid_standard`; `seed` fixes the noise;
    `tx_log_frames` bounds `tx_log` (None: keep all, for tests; long simulator runs cap it).
    An FXO line reports `LineVoltageMeasured` (48 V) in its first frame.

    Observe: `state`, `tx_log`, `far_audio` / `true_echo` / `line_noise` (last frame),
    `ring_on`, `rings`, `dialed_digits`, `digits_heard`, `host_flashes_ms`,
    `received_callerid`, `echo_path`, `now_ms`, `script_empty`; the script's `marks`,
    `played`, `host_waits`, and `host_voice_after` / `host_quiet_after` on the host's audio."""

    def __init__(
        self,
        kind: PortKind,
        *,
        echo: EchoPath | None = DEFAULT_ECHO,
        noise_dbm0: float | None = -65.0,
        tone_plan: str | TonePlan = "us",
        callerid_standard: Standard = "bell202",
        seed: int = 0,
        port: int = 0,
        tx_log_frames: int | None = None,
    ) -> None:
        super().__init__(kind, echo, noise_dbm0, tone_plan, seed, port, tx_log_frames)
        self.callerid_standard: Standard = callerid_standard
        self._cadence: tuple[int, ...] = US_RING_CADENCE_MS
        self._ring_limit: int | None = None  # rings before the caller gives up
        self._ring_burst = np.zeros(0, np.float64)  # caller ID sent after the first ring
        self._phone_clips: Clips = []  # FXS: the adapter's caller ID to the phone
        self.ring_on, self.rings = False, 0
        self._init_exchange()
        self._phone_answers_on: int | None = None  # FXS: the ring the phone answers on
        self.host_flashes_ms: list[float] = []
        self.received_callerid: list[CallerId | CallerIdError] = []
        self._dtmf = DtmfDetector()
        self._cid = CallerIdDecoder(callerid_standard)

    def _listen(self, x: NDArray[np.int16]) -> None:
        if self.kind is PortKind.FXS:
            if self._state is not LineState.CONNECTED:  # an on-hook phone's caller ID unit
                heard = x.astype(np.float64)
                mix(self._phone_clips, heard, self._now)
                pcm = np.clip(np.rint(heard), -32768, 32767).astype(np.int16)
                self.received_callerid += self._cid.feed(pcm)
            return
        if not self._off_hook():
            return
        for ev in self._dtmf.feed(x):
            self._host_digit(ev.digit)
        if self._state is LineState.DIAL_TONE and self._dtmf.active_digit is not None:
            self._state, self._tone = LineState.DIALING, None  # dial tone stops on a digit

    def _end_epoch(self) -> None:
        """Cancel every pending timer (ringing, a loop drop, the far end's answer) and the
        caller ID on its way."""
        self._epoch += 1
        self._net_clips.clear()
        self._phone_clips.clear()
        if self.ring_on and self.kind is PortKind.FXO:
            self._emit(RingStopped(self.port))  # the exchange trips ringing at once
        self.ring_on = False

    def _call_over(self, state: LineState) -> None:
        self._end_epoch()
        self._script.clear(self._now)
        self._state, self._tone = state, None

    # --- hang-up -----------------------------------------------------------------------

    def hang_up(self, method: HangUpMethod | None = None, *, drop_ms: float = LOOP_DROP_MS) -> None:
        """Queue the far party's hang-up. FXO: "loop_drop" (default: `LoopCurrentDropped` of
        `drop_ms`), "polarity" (`PolarityReversed`), "busy" / "reorder" / "dial_tone" (the
        network plays it), "silence"; before the answer it abandons the call. FXS: "on_hook"
        (default), the phone hangs up."""
        if self.kind is PortKind.FXS:
            if method not in (None, "on_hook"):
                raise ValueError(f"line {self.port}: an FXS phone hangs up 'on_hook', not {method}")
            self.phone_on_hook()
            return
        if method == "on_hook":
            raise ValueError(f"line {self.port}: 'on_hook' is the FXS phone's hang-up")
        self._act(lambda: self._far_hangs_up(method or "loop_drop", drop_ms))

    def _far_hangs_up(self, method: str, drop_ms: float) -> None:
        if self._state is LineState.RINGING:  # the caller gives up before the answer
            self._call_over(LineState.IDLE)
            return
        if self._state is not LineState.CONNECTED:
            return  # nobody left to hang up
        self._call_over(LineState.FAR_HUNG_UP)
        if method == "loop_drop":
            self._set_volts(DEAD_VOLTS)
            self._at(self._now + samples(drop_ms), lambda _: self._loop_back(drop_ms))
        elif method == "polarity":
            self._emit(PolarityReversed(self.port))
        elif method in ("busy", "reorder", "dial_tone"):
            self._tone = ToneGenerator(self.plan, "dial" if method == "dial_tone" else method)

    def _loop_back(self, drop_ms: float) -> None:
        self._emit(LoopCurrentDropped(self.port, drop_ms))
        self._set_volts(OFF_HOOK_VOLTS)

    # --- FXO: the network side (calls the host places: `line_exchange`) -----------------

    def incoming_call(
        self,
        callerid: CallerId | None = None,
        rings: int = 6,
        cadence_ms: Sequence[int] = US_RING_CADENCE_MS,
    ) -> None:
        """FXO: ring the box on `cadence_ms` (on/off ms pairs; one cycle is one ring) with
        `callerid` after the first ring (GR-30-CORE timing), until the host answers or
        `rings` rings went unanswered."""
        self._need(PortKind.FXO, "incoming_call")
        if self._state is not LineState.IDLE or rings < 1:
            raise ValueError(f"line {self.port}: incoming_call needs an idle line and rings >= 1")
        self._start_ringing(_check_cadence(cadence_ms), callerid, rings)

    # --- ringing, both kinds -----------------------------------------------------------

    def _start_ringing(
        self, cadence: tuple[int, ...], cid: CallerId | None, limit: int | None
    ) -> None:
        burst = np.zeros(0, np.float64)
        if cid is not None:
            burst = encode(cid, self.callerid_standard).astype(np.float64)
            room = samples(cadence[-1] - CALLERID_GAP_MS - CALLERID_GUARD_MS)
            if burst.shape[0] > room:
                raise ValueError(f"line {self.port}: caller ID does not fit the ring cadence")
        self._end_epoch()
        self._state, self._cadence, self._ring_limit = LineState.RINGING, cadence, limit
        self._ring_burst, self.rings = burst, 0
        self._ring_cycle(0, self._now)

    def _ring_cycle(self, k: int, start: int) -> None:
        t = start
        for i, ms in enumerate(self._cadence):
            if i % 2 == 0:
                self._at(t, self._cycle_starts if i == 0 else self._ring_starts)
                self._at(t + samples(ms), self._ring_stops)
            t += samples(ms)
        if k == 0 and self._ring_burst.shape[0]:
            clips = self._net_clips if self.kind is PortKind.FXO else self._phone_clips
            cid_at = t - samples(self._cadence[-1] - CALLERID_GAP_MS)
            self._at(cid_at, lambda due: clips.append((due, self._ring_burst)))
        if self._ring_limit is None or k + 1 < self._ring_limit:
            self._at(t, lambda due: self._ring_cycle(k + 1, due))
        else:
            self._at(t, lambda _: self._call_over(LineState.IDLE))  # the caller gave up

    def _cycle_starts(self, due: int) -> None:
        self.rings += 1
        if self.kind is PortKind.FXS and self.rings == self._phone_answers_on:
            self._at(due + samples(PHONE_PICKUP_MS), lambda _: self._phone_up())
        self._ring_starts(due)

    def _ring_starts(self, _due: int) -> None:
        self.ring_on = True
        if self.kind is PortKind.FXO:
            self._emit(RingStarted(self.port))

    def _ring_stops(self, _due: int) -> None:
        self.ring_on = False
        if self.kind is PortKind.FXO:
            self._emit(RingStopped(self.port))

    # --- FXO: the host's hook ----------------------------------------------------------

    def host_off_hook(self) -> None:
        """FXO: the host seizes the line: answers a ringing call, or gets dial tone."""
        self._command(PortKind.FXO, "off_hook")
        if self._state is LineState.RINGING:
            self._end_epoch()
            self._state = LineState.CONNECTED
        elif self._state is LineState.IDLE:
            self._state, self.dialed_digits = LineState.DIAL_TONE, ""
            give_tone = self.dial_tone and not self.dead
            self._tone = ToneGenerator(self.plan, "dial") if give_tone else None
        else:
            return  # already off-hook
        self._dtmf.reset()
        self._set_volts(OFF_HOOK_VOLTS)

    def host_on_hook(self) -> None:
        """FXO: the host releases the line; whatever call there was ends."""
        self._command(PortKind.FXO, "on_hook")
        if self._off_hook():
            self._call_over(LineState.IDLE)
            self._loop_open_until = 0
            self._set_volts(ON_HOOK_VOLTS)

    def host_flash(self, ms: float = 600.0) -> None:
        """FXO: the host opens the loop for `ms` (recorded in `host_flashes_ms`); no echo and
        no far audio meanwhile."""
        self._command(PortKind.FXO, "flash")
        if not self._off_hook():
            raise CommandFailed(self.port, "flash", "the line is on-hook")
        self._loop_open_until = self._now + samples(ms)
        self.host_flashes_ms.append(ms)

    # --- FXS: the phone and the host's ringing -----------------------------------------

    def phone_off_hook(self) -> None:
        """FXS, scripted: the phone is picked up (answering if it rings)."""
        self._need(PortKind.FXS, "phone_off_hook")
        self._act(self._phone_up)

    def phone_on_hook(self) -> None:
        """FXS, scripted: the phone hangs up."""
        self._need(PortKind.FXS, "phone_on_hook")
        self._act(self._phone_down)

    def phone_flash(self, ms: float = 600.0) -> None:
        """FXS, scripted: a hook flash of `ms` (`HookFlashed` when it ends)."""
        self._need(PortKind.FXS, "phone_flash")
        self._act(lambda: self._phone_flash(ms))
        self.wait(ms)

    def phone_dials(
        self, digits: str, on_ms: float = 100.0, off_ms: float = 100.0, level_dbm0: float = -10.0
    ) -> None:
        """FXS, scripted: the phone dials `digits` as DTMF (heard in the host's audio)."""
        self._need(PortKind.FXS, "phone_dials")
        self.press(digits, on_ms, off_ms, level_dbm0)

    def answer_when_rung(self, after_rings: int | None = 1) -> None:
        """FXS: the phone answers during ring `after_rings` of each `host_ring` (None: never)."""
        self._need(PortKind.FXS, "answer_when_rung")
        self._phone_answers_on = after_rings

    def host_ring(
        self, cadence_ms: Sequence[int] = US_RING_CADENCE_MS, callerid: CallerId | None = None
    ) -> None:
        """FXS: the host rings the phone on `cadence_ms` until answered or `host_stop_ring`;
        the adapter sends `callerid` after the first ring (GR-30-CORE timing)."""
        self._command(PortKind.FXS, "ring")
        if self._state is LineState.CONNECTED:
            raise CommandFailed(self.port, "ring", "the phone is off-hook")
        self._start_ringing(_check_cadence(cadence_ms), callerid, None)

    def host_stop_ring(self) -> None:
        """FXS: the host stops ringing the phone."""
        self._command(PortKind.FXS, "stop_ring")
        if self._state is LineState.RINGING:
            self._end_epoch()
            self._state = LineState.IDLE

    def _phone_up(self) -> None:
        if self._state is LineState.CONNECTED:
            return
        if self._state is LineState.RINGING:
            self._end_epoch()  # ring trip: ringing and caller ID stop
        self._state = LineState.CONNECTED
        self._cid.reset()
        self._emit(HookChanged(self.port, off_hook=True))

    def _phone_down(self) -> None:
        if self._state is LineState.CONNECTED:
            self._state = LineState.IDLE
            self._emit(HookChanged(self.port, off_hook=False))

    def _phone_flash(self, ms: float) -> None:
        if self._state is LineState.CONNECTED:
            self._loop_open_until = self._now + samples(ms)
            self._at(self._loop_open_until, lambda _: self._emit(HookFlashed(self.port, ms)))


def warm_line_kernels() -> None:
    """Compile (or load from numba's cache) every kernel a `LineModel` runs, so a simulator
    that serves a real-time link never stalls its event loop compiling mid-call."""
    fxo, fxs = LineModel(PortKind.FXO, noise_dbm0=-60.0), LineModel(PortKind.FXS)
    fxo.host_off_hook()  # dial tone, and DTMF decoding of what the host sends
    tone = dtmf_generate("5", 20.0, 0.0)[:160]
    fxs.host_ring((20, 20))  # on-hook: the phone's caller ID decoder listens
    for _ in range(3):
        fxo.step(tone)
        fxs.step(tone)
