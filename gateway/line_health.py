"""One port's line health: `LineHealth`, its settings (`HealthConfig`, `[line.health]`), the
figures a call hands it (`CallFigures`) and the line's figures as a record keeps them
(`LineFigures`).

Who talks to it: the line actor (`gateway.line_base.LineActor`) owns one per port and feeds it
from its frame task (`frame`: the received level; the noise floor is a low percentile of the
per-frame levels of the last `LEVEL_WINDOW_FRAMES`) and its main loop (`voltage` from
`LineVoltageMeasured`, `port_lost` / `port_ready`, `dial_tone_missing` / `dial_tone_heard`
from the FXO seize) and runs its `watch` task. Each call gets it on its `CallLine` and hands
it its own figures at its end (`call_ended`, from `gateway.call_record.make_record`): send
and receive levels, the canceller's ERL and ERLE, the echo delay; it returns the line's
figures for the record. The console (`lines`) reads `snapshot()`. All on the one trio
thread: plain method calls (and the `watch` task's sleep).

Alarms (`ALARMS`), each raised once (a WARNING in the log) and cleared once (INFO):
- "line dead": FXO, the loop voltage stayed at or below `dead_volts` for `dead_after_s` (a cut
  line, no battery; a disconnect's loop drop lasts 0.3-0.8 s), or the port was lost; cleared
  when the voltage comes back or the port is ready again;
- "no dial tone": an outbound seize heard no dial tone within `line.fxo.dial_tone_wait_s`;
  cleared when dial tone is heard again;
- "echo path changed": a call's echo delay moved more than `echo_delay_change_ms`, or its ERL
  more than `erl_change_db`, from the line's baseline (the median of its last
  `baseline_calls` calls); the baseline restarts from that call, and the next call that
  agrees with it clears the alarm.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.levels import rms_to_dbm0
from firmware_bridge.port import PortKind
from gateway.errors import ConfigError

log = logging.getLogger(__name__)

LINE_DEAD, NO_DIAL_TONE, ECHO_PATH_CHANGED = "line dead", "no dial tone", "echo path changed"
ALARMS = (LINE_DEAD, NO_DIAL_TONE, ECHO_PATH_CHANGED)
LEVEL_WINDOW_FRAMES = 500  # 10 s of per-frame levels: pauses between words are in it
FLOOR_EVERY_FRAMES = 50  # the floor (a percentile of the window) is read again once a second
ALARMS_KEPT = 50  # raised and cleared alarms kept per line (the console, the record)
# An on-hook line sends no frames (the adapter listens on-hook only around rings): a dead
# loop is judged on this clock too. 0.5 s: the alarm comes within dead_after_s + 0.5 s.
WATCH_S = 0.5


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """`[line.health]`. Volts, seconds, ms and dB as the names say."""

    dead_volts: float = 3.0  # FXO loop at or below: no battery (idle 42-54 V, off-hook 6-10 V)
    dead_after_s: float = 5.0  # ... this long: "line dead" (a disconnect's drop is < 1 s)
    noise_percentile: float = 10.0  # of the per-frame levels: the floor between words
    echo_delay_change_ms: float = 4.0  # a call's echo delay this far off the baseline ...
    erl_change_db: float = 6.0  # ... or its ERL this far: "echo path changed"
    baseline_calls: int = 5  # the baseline is the median of this many earlier calls

    def __post_init__(self) -> None:
        for key, low, high in (("dead_volts", 0.0, 40.0), ("dead_after_s", 0.1, 600.0),
                               ("noise_percentile", 1.0, 50.0),
                               ("echo_delay_change_ms", 0.5, 200.0),
                               ("erl_change_db", 1.0, 40.0),
                               ("baseline_calls", 1, 100)):  # fmt: skip
            value = getattr(self, key)
            if not low <= value <= high:
                raise ConfigError(f"line.health.{key} must be {low:g}..{high:g}, got {value!r}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> HealthConfig:
        """From the `[line.health]` table; `ConfigError` names the bad key."""
        values: dict[str, Any] = {}
        for key, value in table.items():
            default = getattr(cls(), key, None)
            if key not in cls.__dataclass_fields__ or default is None:
                known = ", ".join(cls.__dataclass_fields__)
                raise ConfigError(f"{where}.{key} is not a setting; known: {known}")
            whole = isinstance(default, int)
            ok = isinstance(value, int) if whole else isinstance(value, int | float)
            if isinstance(value, bool) or not ok:
                kind = "a whole number" if whole else "a number"
                raise ConfigError(f"{where}.{key} must be {kind}, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("line.health", where, 1)) from None


@dataclass(frozen=True, slots=True)
class CallFigures:
    """What one call measured of its line (`gateway.call_health.LineMeter`); None: not
    measured (no speech that way, the canceller never converged)."""

    send_dbm0: float | None = None  # the agent's active level sent to the line
    receive_dbm0: float | None = None  # the caller's active level, as received
    erl_db: float | None = None  # what we sent over the echo the canceller found of it
    erle_db: float | None = None  # the canceller's enhancement (median, steady state)
    echo_delay_ms: float | None = None  # the echo's main tap, reference to mic


@dataclass(frozen=True, slots=True)
class Alarm:
    name: str  # one of `ALARMS`
    detail: str
    raised_at: datetime
    cleared_at: datetime | None = None


def _r(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 1)


@dataclass(frozen=True, slots=True)
class LineFigures:
    """The line at a moment: its noise floor (dBm0) and loop voltage (None: not reported;
    in a call's record the last reading above `dead_volts`, off-hook), the last call's
    figures, the alarms raised now."""

    noise_dbm0: float | None
    loop_volts: float | None
    call: CallFigures
    alarms: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        c = self.call
        return {"noise_dbm0": _r(self.noise_dbm0), "loop_volts": _r(self.loop_volts),
                "send_dbm0": _r(c.send_dbm0), "receive_dbm0": _r(c.receive_dbm0),
                "erl_db": _r(c.erl_db), "erle_db": _r(c.erle_db),
                "echo_delay_ms": _r(c.echo_delay_ms), "alarms": list(self.alarms)}  # fmt: skip


class LineHealth:
    """One port's health; see the module docstring. `wall_clock` stamps the alarms;
    `on_alarm` (if set) hears every raise and clear (the store keeps them)."""

    def __init__(self, port: int, kind: PortKind, config: HealthConfig,
                 wall_clock: Callable[[], datetime]) -> None:  # fmt: skip
        self.port, self.kind, self.config = port, kind, config
        self.on_alarm: Callable[[int, Alarm], None] | None = None
        self.loop_volts: float | None = None
        self.working_volts: float | None = None  # the last reading above dead_volts
        self.noise_dbm0: float | None = None
        self.last_call = CallFigures()
        self.active: dict[str, Alarm] = {}
        self.history: deque[Alarm] = deque(maxlen=ALARMS_KEPT)
        self._wall_clock = wall_clock
        self._levels = np.full(LEVEL_WINDOW_FRAMES, np.nan, np.float32)
        self._slot = self._frames = 0
        self._dead_since_s: float | None = None
        self._lost = False
        self._baseline: deque[CallFigures] = deque(maxlen=config.baseline_calls)

    # --- the frame task ---------------------------------------------------------------------

    def frame(self, pcm: NDArray[np.int16], concealed: bool, now_s: float) -> None:
        """One received frame (not kept). Digital silence and concealed frames say nothing
        of the line (no audio path, or made up by the port)."""
        x = pcm.astype(np.float32)
        power = float(np.dot(x, x)) / max(1, x.size)
        if power > 0.0 and not concealed:
            self._levels[self._slot % LEVEL_WINDOW_FRAMES] = rms_to_dbm0(math.sqrt(power))
            self._slot += 1
            if self._slot % FLOOR_EVERY_FRAMES == 0:
                self.noise_dbm0 = float(np.nanpercentile(self._levels,
                                                         self.config.noise_percentile))  # fmt: skip
        self._frames += 1
        if self._frames % FLOOR_EVERY_FRAMES == 0:
            self.tick(now_s)

    # --- the line actor's main loop ---------------------------------------------------------

    def voltage(self, volts: float, now_s: float) -> None:
        """The port measured the loop voltage (FXO: on- or off-hook)."""
        self.loop_volts = volts
        if self.kind is not PortKind.FXO:
            return
        if volts > self.config.dead_volts:
            self.working_volts = volts
        if volts <= self.config.dead_volts:
            if self._dead_since_s is None:
                self._dead_since_s = now_s
            self.tick(now_s)
        else:
            self._dead_since_s = None
            if not self._lost:
                self._clear(LINE_DEAD)

    async def watch(self) -> None:
        """The line actor's task: `tick` every `WATCH_S`, frames or none."""
        while True:
            await trio.sleep(WATCH_S)
            self.tick(trio.current_time())

    def tick(self, now_s: float) -> None:
        """Alarms that come from time passing (the dead loop)."""
        since = self._dead_since_s
        if since is not None and now_s - since >= self.config.dead_after_s:
            self._raise(LINE_DEAD, f"loop at {self.loop_volts or 0.0:.1f} V for "
                        f"{now_s - since:.0f} s")  # fmt: skip

    def port_lost(self, reason: str) -> None:
        self._lost = True
        self._raise(LINE_DEAD, f"port lost: {reason}")

    def port_ready(self) -> None:
        self._lost = False
        if self._dead_since_s is None:
            self._clear(LINE_DEAD)

    def dial_tone_missing(self) -> None:
        self._raise(NO_DIAL_TONE, "no dial tone after seizing the line")

    def dial_tone_heard(self) -> None:
        self._clear(NO_DIAL_TONE)

    # --- calls ------------------------------------------------------------------------------

    def call_ended(self, figures: CallFigures) -> LineFigures:
        """A call on this line is over: its figures against the baseline; returns the line's
        figures (this call's included) for its record."""
        self.last_call = figures
        if figures.echo_delay_ms is not None or figures.erl_db is not None:
            moved = self._echo_moved(figures)
            if moved:
                self._raise(ECHO_PATH_CHANGED, moved)
                self._baseline.clear()
            elif self._baseline:
                self._clear(ECHO_PATH_CHANGED)
            self._baseline.append(figures)
        # the loop as the call had it: a disconnect's drop (0 V) may be the latest reading
        return LineFigures(self.noise_dbm0, self.working_volts, figures, tuple(self.active))

    def snapshot(self) -> LineFigures:
        """The line now (the console's `lines`)."""
        return LineFigures(self.noise_dbm0, self.loop_volts, self.last_call,
                           tuple(self.active))  # fmt: skip

    def _echo_moved(self, now: CallFigures) -> str:
        """How the echo path moved from the baseline ("" if it did not, or no baseline)."""
        cfg, out = self.config, []
        delays = [c.echo_delay_ms for c in self._baseline if c.echo_delay_ms is not None]
        if now.echo_delay_ms is not None and delays:
            base = float(np.median(delays))
            if abs(now.echo_delay_ms - base) > cfg.echo_delay_change_ms:
                out.append(f"echo delay {base:.1f} -> {now.echo_delay_ms:.1f} ms")
        erls = [c.erl_db for c in self._baseline if c.erl_db is not None]
        if now.erl_db is not None and erls:
            base = float(np.median(erls))
            if abs(now.erl_db - base) > cfg.erl_change_db:
                out.append(f"ERL {base:.1f} -> {now.erl_db:.1f} dB")
        return ", ".join(out)

    # --- alarms -----------------------------------------------------------------------------

    def _raise(self, name: str, detail: str) -> None:
        if name in self.active:
            return
        alarm = self.active[name] = Alarm(name, detail, self._wall_clock())
        log.warning("line %d: alarm %s: %s", self.port, name, detail)
        self._tell(alarm)

    def _clear(self, name: str) -> None:
        alarm = self.active.pop(name, None)
        if alarm is None:
            return
        cleared = Alarm(alarm.name, alarm.detail, alarm.raised_at, self._wall_clock())
        self.history.append(cleared)
        log.info("line %d: alarm %s cleared", self.port, name)
        self._tell(cleared)

    def _tell(self, alarm: Alarm) -> None:
        if self.on_alarm is not None:
            self.on_alarm(self.port, alarm)


_FACTS = (("noise_dbm0", "line noise", "dBm0"), ("loop_volts", "loop", "V"),
          ("send_dbm0", "send level", "dBm0"), ("receive_dbm0", "receive level", "dBm0"),
          ("erl_db", "ERL", "dB"), ("echo_delay_ms", "echo delay", "ms"))  # fmt: skip


def line_facts(figures: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A stored call's line figures (`LineFigures.as_json()`) as the console's facts."""
    out = [(name, f"{figures[key]:.1f} {unit}") for key, name, unit in _FACTS
           if isinstance(figures.get(key), int | float)]  # fmt: skip
    if figures.get("alarms"):
        out.append(("line alarms", ", ".join(str(a) for a in figures["alarms"])))
    return out
