"""Who gets answered, when, and by which agent: caller number patterns, business hours, the
FXO answer decision and the FXS dial plan. Pure: no trio, no I/O; the clock comes in.

`gateway.line_config` parses these from tipring.toml; the FXO line (`gateway.line_fxo`) calls
`decide` once per ringing call, the FXS line (`gateway.line_fxs`) calls `match_dial_plan` after
each digit.

Number patterns (allow / deny lists, rule `numbers`): the caller's number with spaces, dashes,
dots and parentheses left out, matched whole; `*` stands for any run of characters (also
none), `?` for exactly one. "555*" is a prefix, "*1234" a suffix, "+1555???????" a shape.
The pattern "anonymous" matches a call without a number (withheld, unavailable, or no caller
ID at all); no other pattern does.

Business hours: "mon-fri 09:00-17:30", "sat,sun 10:00-14:00", "daily 08:00-20:00". A window
whose end is before its start runs past midnight: "fri 22:00-06:00" is Friday 22:00 to
Saturday 06:00. "24:00" is the end of the day.

Dial plan patterns (FXS): digits, `*` and `#` stand for themselves, `X` for any digit 0-9,
and a trailing `.` for one or more further digits, `*`, or A-D ("9." is 9 and any number
after it); `#` ends a number, so `.` never takes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import Enum

from dsp.callerid import CallerId
from gateway.errors import ConfigError

ANONYMOUS = "anonymous"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekends": (5, 6)}
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*"
                     r"(?P<end>\d{1,2}:\d{2})\s*$")  # fmt: skip
_NUMBER_JUNK = re.compile(r"[\s\-.()/]")
_NUMBER_PATTERN = re.compile(r"^[0-9A-Za-z+#*?]+$")
_DIAL_PATTERN = re.compile(r"^[0-9*#X]+\.?$")
MINUTES_PER_DAY = 24 * 60


def normalize_number(number: str) -> str:
    """`number` without the spaces, dashes, dots, slashes and parentheses people write in it."""
    return _NUMBER_JUNK.sub("", number)


def check_number_pattern(pattern: str, key: str) -> str:
    """`pattern` normalised, or `ConfigError` naming `key` if it cannot match a number."""
    norm = normalize_number(pattern)
    if norm == ANONYMOUS:
        return norm
    if not norm or not _NUMBER_PATTERN.match(norm):
        raise ConfigError(f"{key}: {pattern!r} is not a number pattern (digits, +, #, * and ?, "
                          f"or {ANONYMOUS!r})")  # fmt: skip
    return norm


def number_matches(pattern: str, callerid: CallerId | None) -> bool:
    """Whether the caller of `callerid` matches the number `pattern`."""
    number = normalize_number(callerid.number) if callerid and callerid.number else ""
    pattern = normalize_number(pattern)
    if pattern == ANONYMOUS:
        return not number
    if not number:
        return False
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, number) is not None


def any_matches(patterns: Sequence[str], callerid: CallerId | None) -> bool:
    return any(number_matches(p, callerid) for p in patterns)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Weekdays (`days`, 0 = Monday) from `start_min` to `end_min` minutes after midnight
    (local time); an end at or before the start runs into the next day. `text` as configured."""

    days: frozenset[int]
    start_min: int
    end_min: int
    text: str

    def contains(self, local: datetime) -> bool:
        """Whether the local time `local` falls in the window."""
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start_min < self.end_min:
            return day in self.days and self.start_min <= minute < self.end_min
        yesterday = (day - 1) % 7
        return (day in self.days and minute >= self.start_min) or (
            yesterday in self.days and minute < self.end_min
        )


def _minutes(hhmm: str, key: str, text: str) -> int:
    hours, minutes = (int(p) for p in hhmm.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ConfigError(f"{key}: {text!r}: {hhmm} is not a time of day (00:00-24:00)")
    return hours * 60 + minutes


def _days(spec: str, key: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if part in _DAY_ALIASES:
            days.update(_DAY_ALIASES[part])
            continue
        ends = [e.strip() for e in part.split("-")]
        if len(ends) > 2 or any(e not in _DAYS for e in ends):
            raise ConfigError(f"{key}: {text!r}: {part!r} is not a day or day range (mon-fri, "
                              f"sat,sun, daily, weekdays, weekends)")  # fmt: skip
        first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def parse_window(text: str, key: str) -> TimeWindow:
    """A `TimeWindow` from "mon-fri 09:00-17:30"; `ConfigError` naming `key` if malformed."""
    m = _WINDOW.match(text.lower())
    if m is None:
        raise ConfigError(f"{key}: {text!r} is not like 'mon-fri 09:00-17:30'")
    start = _minutes(m["start"], key, text)
    end = _minutes(m["end"], key, text)
    if start in (end, MINUTES_PER_DAY):
        raise ConfigError(f"{key}: {text!r} is an empty window")
    return TimeWindow(_days(m["days"], key, text), start, end, text)


@dataclass(frozen=True, slots=True)
class CallerRule:
    """One routing rule for incoming FXO calls: it applies when the caller matches one of
    `numbers` (none given: any caller) at a time in one of `hours` (none given: any time).
    Then the call is answered by the agent `profile` ("" = the line's default profile), or
    not answered at all (`answer` false)."""

    numbers: tuple[str, ...] = ()
    hours: tuple[TimeWindow, ...] = ()
    profile: str = ""
    answer: bool = True

    def applies(self, callerid: CallerId | None, local: datetime) -> bool:
        if self.numbers and not any_matches(self.numbers, callerid):
            return False
        return not self.hours or any(w.contains(local) for w in self.hours)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a ringing call: answer with `profile`, or let it ring. `why` is for the
    log and the console."""

    answer: bool
    profile: str
    why: str


def decide(
    callerid: CallerId | None,
    local: datetime,
    *,
    allow: Sequence[str],
    deny: Sequence[str],
    rules: Sequence[CallerRule],
    default_profile: str,
) -> Decision:
    """The answer decision for a caller at local time `local`: the deny list first, then the
    allow list (when not empty), then the first rule that applies, else the default profile
    ("" = do not answer)."""
    if any_matches(deny, callerid):
        return Decision(False, "", "caller is on the deny list")
    if allow and not any_matches(allow, callerid):
        return Decision(False, "", "caller is not on the allow list")
    for i, rule in enumerate(rules):
        if rule.applies(callerid, local):
            if not rule.answer:
                return Decision(False, "", f"rule {i} says do not answer")
            return Decision(True, rule.profile or default_profile, f"rule {i}")
    if not default_profile:
        return Decision(False, "", "no rule applies and there is no default profile")
    return Decision(True, default_profile, "default profile")


def local_time(now_utc: datetime, tz: tzinfo) -> datetime:
    """`now_utc` (timezone-aware) as local time in `tz`; ValueError for a naive datetime."""
    if now_utc.utcoffset() is None:
        raise ValueError(f"the wall clock must be timezone-aware, got {now_utc!r}")
    return now_utc.astimezone(tz)


# --- FXS dial plan ----------------------------------------------------------------------------


class Match(Enum):
    """How collected digits stand against a dial plan pattern."""

    NONE = "none"  # no continuation of the digits matches
    PARTIAL = "partial"  # more digits could make it match
    FULL = "full"  # the digits match now (and more might still match: see `more`)


@dataclass(frozen=True, slots=True)
class DialRule:
    """Digits matching `pattern` (see the module docstring) reach the agent `profile`."""

    pattern: str
    profile: str


def check_dial_pattern(pattern: str, key: str) -> str:
    if not _DIAL_PATTERN.match(pattern):
        raise ConfigError(f"{key}: {pattern!r} is not a dial pattern (0-9 * # X, and an "
                          f"optional trailing '.')")  # fmt: skip
    return pattern


def dial_match(pattern: str, digits: str) -> tuple[Match, bool]:
    """How `digits` stand against `pattern`, and whether a longer string could match too."""
    open_end = pattern.endswith(".")
    fixed = pattern[:-1] if open_end else pattern
    for p, d in zip(fixed, digits, strict=False):
        if not (p == d or (p == "X" and d.isdigit())):
            return Match.NONE, False
    if "#" in digits[len(fixed) :]:
        return Match.NONE, False
    if len(digits) < len(fixed) + open_end:
        return Match.PARTIAL, True
    if len(digits) > len(fixed) and not open_end:
        return Match.NONE, False
    return Match.FULL, open_end


@dataclass(frozen=True, slots=True)
class Routed:
    """The dial plan's verdict on some digits: `profile` ("" = none matches now) and whether
    more digits could still change it (`more`)."""

    profile: str
    more: bool


def match_dial_plan(plan: Sequence[DialRule], digits: str) -> Routed:
    """The first rule that `digits` fully match, and whether any rule wants more digits."""
    profile, more = "", False
    for rule in plan:
        match, longer = dial_match(rule.pattern, digits)
        if match is Match.FULL and not profile:
            profile = rule.profile
        more = more or longer
    return Routed(profile, more)
