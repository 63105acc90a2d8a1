"""What a voice modem reports, as `firmware_bridge.port` line events. Pure: no I/O, no clock of
its own (times come in as arguments). `firmware_bridge.modem.VoiceModem` owns one of each.

- `CallerIdLines`: the `DATE`/`TIME`/`NMBR`/`NAME` lines a modem prints between the first and
  second RING (Conexant `NMBR = 5551234`, USR `NMBR=5551234`) assembled into one `CallerId`;
  "P" means withheld (private), "O" out of area (unavailable).
- `DleEvents`: the DLE event codes of the audio stream (V.253 Table 21, CX930xx Table 5-2)
  mapped to events; DTMF digits de-duplicated (`DtmfDebouncer`); under/overruns counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from dsp.callerid import CallerId, Reason
from dsp.frame import RATE_HZ
from firmware_bridge.port import (
    DtmfReported,
    LineEvent,
    LoopCurrentDropped,
    PolarityReversed,
    ToneReported,
)

_CID_LINE = re.compile(r"^([A-Z_]+)\s*=\s*(.*?)\s*$")
_WHEN = re.compile(r"[0-9]{8}")  # DATE MMDD + TIME HHMM, ASCII digits only
_REASONS: dict[str, Reason] = {"P": "private", "O": "unavailable"}
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# V.253 codes -> ToneReported names. 'a' (2100 Hz answer) is CED to a fax and ANS to a data
# modem; it is reported as "fax", 'f' (2225 Hz, Bell 103 answer) as "modem".
TONE_CODES = {
    "b": "busy", "d": "dial", "r": "ringback", "J": "sit", "s": "silence", "q": "silence",
    "c": "fax", "a": "fax", "e": "modem", "f": "modem",
}  # fmt: skip
# Unframed modems repeat a held digit's code about every 70 ms (vgetty); a new press of the
# same key comes at least off-time + detection time (> 100 ms at Q.24's 40 ms minimum plus
# a 60 ms detection) after the last repeat.
DTMF_REPEAT_GAP_SAMPLES = 100 * RATE_HZ // 1000
IGNORED_CODES = frozenset("hHpPRTvVwQSX.$t@\x00")  # handset, line voltage, timing mark, ...


class CallerIdLines:
    """Collects one caller ID delivery; `add` returns True when it is complete (NAME seen)."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    @property
    def pending(self) -> bool:
        """True when some caller ID line has arrived since the last `take`."""
        return bool(self._fields)

    def add(self, line: str) -> bool:
        """Take a `TAG = value` / `TAG=value` line; MESG and unknown tags are ignored."""
        m = _CID_LINE.match(line)
        if m is None:
            return False
        tag, value = m.groups()
        if tag == "DDN_NMBR" and "NMBR" not in self._fields:
            tag = "NMBR"  # dialable directory number: the same number, another tag
        if tag in ("DATE", "TIME", "NMBR", "NAME"):
            self._fields[tag] = value
        return tag == "NAME"

    def take(self) -> CallerId | None:
        """The assembled caller ID (None if no field arrived), and start over."""
        fields, self._fields = self._fields, {}
        if not fields:
            return None
        number, name = fields.get("NMBR"), fields.get("NAME")
        date, time = fields.get("DATE", ""), fields.get("TIME", "")
        when = date + time if len(date) == 4 and _WHEN.fullmatch(date + time) else None
        return CallerId(
            number=None if number in _REASONS or not number else number,
            name=None if name in _REASONS or not name else name,
            when=when,
            number_reason=_REASONS.get(number or ""),
            name_reason=_REASONS.get(name or ""),
        )


@dataclass
class DtmfDebouncer:
    """One digit per keypress from the modem's codes: `/` digit... `~` framing (CX930xx), or
    a bare digit repeated while the key is held (others), split by `DTMF_REPEAT_GAP_SAMPLES`."""

    _held: str | None = None
    _framed: bool = False
    _last_at: float = -math.inf

    def feed(self, code: str, at_sample: int) -> str | None:
        """A `/`, `~` or digit code at stream sample `at_sample`; the digit if it is new."""
        if code in "/~":
            self._held, self._framed = None, code == "/"
            return None
        repeat = code == self._held and (
            self._framed or at_sample - self._last_at <= DTMF_REPEAT_GAP_SAMPLES
        )
        self._held, self._last_at = code, at_sample
        return None if repeat else code


@dataclass
class DleEvents:
    """Maps one call's DLE event codes to line events for `port`. Counts what it drops."""

    port: int
    underruns: int = 0  # <DLE>u: the modem's transmit buffer ran dry
    overruns: int = 0  # <DLE>o: the modem's receive buffer overflowed
    ignored: int = 0
    unknown: dict[str, int] = field(default_factory=dict)
    _dtmf: DtmfDebouncer = field(default_factory=DtmfDebouncer)

    def map(self, code: str, at_sample: int) -> LineEvent | None:
        """The event for `<DLE>code` at stream sample `at_sample`, or None."""
        if code in DTMF_DIGITS or code in "/~":
            digit = self._dtmf.feed(code, at_sample)
            return None if digit is None else DtmfReported(self.port, digit)
        if code in TONE_CODES:
            return ToneReported(self.port, TONE_CODES[code])
        if code == "l":  # loop-current interruption; the modem does not say how long
            return LoopCurrentDropped(self.port, duration_ms=0.0)
        if code == "L":
            return PolarityReversed(self.port)
        if code == "u":
            self.underruns += 1
        elif code == "o":
            self.overruns += 1
        elif code in IGNORED_CODES:
            self.ignored += 1
        else:
            self.unknown[code] = self.unknown.get(code, 0) + 1
        return None
