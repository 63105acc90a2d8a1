"""gateway.line_rules: number patterns, business-hours windows, the answer decision and the dial
plan, with known answers; gateway.line_config: reading `[line]` and naming the bad key."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp.callerid import CallerId
from gateway.errors import ConfigError
from gateway.line import CallerRule, DialRule, LineConfig
from gateway.line_rules import (
    Match,
    decide,
    dial_match,
    local_time,
    match_dial_plan,
    number_matches,
    parse_window,
)


def cid(number: str | None) -> CallerId | None:
    return None if number is None else CallerId(number)


@pytest.mark.parametrize(
    ("pattern", "number", "matches"),
    [
        ("555*", "5551234", True),
        ("555*", "4555123", False),
        ("*1234", "5551234", True),
        ("+1555???????", "+1 (555) 123-4567", True),
        ("+1555???????", "+1555123456", False),
        ("5551234", "555-1234", True),
        ("5551234", "55512345", False),  # whole numbers only
        ("anonymous", None, True),
        ("anonymous", "", True),
        ("anonymous", "5551234", False),
        ("*", None, False),  # no number matches only "anonymous"
    ],
)
def test_number_patterns(pattern: str, number: str | None, matches: bool) -> None:
    assert number_matches(pattern, cid(number)) is matches


def test_withheld_number_is_anonymous() -> None:
    assert number_matches("anonymous", CallerId(number_reason="private", name="X"))


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        ("mon-fri 09:00-17:30", datetime(2025, 3, 3, 9, 0), True),  # Monday, opening minute
        ("mon-fri 09:00-17:30", datetime(2025, 3, 3, 17, 30), False),  # closing minute: out
        ("mon-fri 09:00-17:30", datetime(2025, 3, 8, 10, 0), False),  # Saturday
        ("sat,sun 10:00-14:00", datetime(2025, 3, 9, 13, 59), True),
        ("fri-mon 10:00-11:00", datetime(2025, 3, 9, 10, 30), True),  # a range over the week end
        ("fri 22:00-06:00", datetime(2025, 3, 7, 23, 0), True),  # Friday night
        ("fri 22:00-06:00", datetime(2025, 3, 8, 5, 59), True),  # ... into Saturday
        ("fri 22:00-06:00", datetime(2025, 3, 7, 5, 0), False),  # Friday early morning: no
        ("daily 00:00-24:00", datetime(2025, 3, 5, 23, 59), True),
        ("Weekdays 08:00-12:00", datetime(2025, 3, 4, 8, 0), True),
    ],
)
def test_time_windows(window: str, local: datetime, inside: bool) -> None:
    assert parse_window(window, "k").contains(local) is inside


@pytest.mark.parametrize(
    "bad", ["mon-fri 9-17", "mon-fri 09:00-25:00", "moon 09:00-10:00", "fri 10:00-10:00", "x"]
)
def test_bad_windows_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"^line\.fxo\.rules\[0\]\.hours: "):
        parse_window(bad, "line.fxo.rules[0].hours")


def test_local_time_follows_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    window = parse_window("mon-fri 09:00-10:00", "k")
    winter = local_time(datetime(2025, 3, 28, 8, 30, tzinfo=UTC), berlin)  # CET: 09:30
    summer = local_time(datetime(2025, 3, 31, 8, 30, tzinfo=UTC), berlin)  # CEST: 10:30
    assert (window.contains(winter), window.contains(summer)) == (True, False)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_time(datetime(2025, 3, 28, 8, 30), berlin)


NOON = datetime(2025, 3, 3, 12, 0)


@pytest.mark.parametrize(
    ("kwargs", "number", "expected"),
    [
        ({}, "5551234", (True, "main", "default profile")),
        ({"deny": ["555*"], "allow": ["5551234"]}, "5551234", (False, "", "caller is on the deny "
                                                                  "list")),
        ({"allow": ["666*"]}, "5551234", (False, "", "caller is not on the allow list")),
        ({"rules": [CallerRule(numbers=("555*",), profile="vip")]}, "5551234",
         (True, "vip", "rule 0")),
        ({"rules": [CallerRule(numbers=("555*",))]}, "5551234", (True, "main", "rule 0")),
        ({"rules": [CallerRule(answer=False)]}, None, (False, "", "rule 0 says do not answer")),
        (
            {"rules": [CallerRule(hours=(parse_window("sat 00:00-24:00", "k"),), profile="x")]},
            "5551234",
            (True, "main", "default profile"),
        ),
        ({"default_profile": ""}, "1", (False, "", "no rule applies and there is no default "
                                                   "profile")),
    ],
)  # fmt: skip
def test_decide(
    kwargs: dict[str, Any], number: str | None, expected: tuple[bool, str, str]
) -> None:
    args: dict[str, Any] = {"allow": [], "deny": [], "rules": [], "default_profile": "main"}
    decision = decide(cid(number), NOON, **(args | kwargs))
    assert (decision.answer, decision.profile, decision.why) == expected


@pytest.mark.parametrize(
    ("pattern", "digits", "expected"),
    [
        ("1XX", "1", (Match.PARTIAL, True)),
        ("1XX", "123", (Match.FULL, False)),
        ("1XX", "1234", (Match.NONE, False)),
        ("1XX", "2", (Match.NONE, False)),
        ("1XX", "1*", (Match.NONE, False)),  # X is a digit
        ("9.", "9", (Match.PARTIAL, True)),
        ("9.", "95", (Match.FULL, True)),
        ("9.", "95#", (Match.NONE, False)),  # '#' ends a number, '.' does not take it
        ("*72", "*7", (Match.PARTIAL, True)),
        ("#1", "#1", (Match.FULL, False)),
    ],
)
def test_dial_match(pattern: str, digits: str, expected: tuple[Match, bool]) -> None:
    assert dial_match(pattern, digits) == expected


def test_first_full_match_wins_and_more_is_any_longer_match() -> None:
    plan = [DialRule("1", "a"), DialRule("1XX", "b"), DialRule("1", "c")]
    assert (match_dial_plan(plan, "1").profile, match_dial_plan(plan, "1").more) == ("a", True)
    assert (match_dial_plan(plan, "12").profile, match_dial_plan(plan, "12").more) == ("", True)
    assert (match_dial_plan(plan, "5").profile, match_dial_plan(plan, "5").more) == ("", False)


@given(st.text("0123456789*#", max_size=8), st.text("0123456789*#X", min_size=1, max_size=6))
def test_a_full_match_is_never_also_a_miss(digits: str, pattern: str) -> None:
    match, _ = dial_match(pattern, digits)
    literal = all(
        p == d or (p == "X" and d.isdigit()) for p, d in zip(pattern, digits, strict=False)
    )
    assert (match is Match.FULL) == (literal and len(digits) == len(pattern))


# --- gateway.line_config ----------------------------------------------------------------------

EXAMPLE = """
tone_plan = "uk"
[fxo]
answer_after_rings = 3
default_profile = "reception"
deny = ["1900 *", "anonymous"]
timezone = "Europe/London"
hangup_tones = ["busy", "reorder", "fax"]
silence_hangup_s = 90
[[fxo.rules]]
hours = ["mon-fri 09:00-17:00"]
profile = "sales"
[[fxo.rules]]
numbers = ["+4930*"]
answer = false
[fxs]
hotline = ""
dial_plan = { "0" = "operator", "1XX" = "extensions" }
ring_cadence_ms = [400, 200, 400, 2000]
[ports.1.fxo]
answer_after_rings = 5
[ports.2]
tone_plan = "de"
"""


def test_reads_a_whole_line_table() -> None:
    config = LineConfig.from_config(tomllib.loads(EXAMPLE))
    assert config.tone_plan == "uk"
    assert config.fxo.answer_after_rings == 3
    assert config.fxo.deny == ("1900*", "anonymous")
    assert config.fxo.silence_hangup_s == 90
    assert config.fxo.rules[0].hours[0].days == frozenset(range(5))
    assert config.fxo.rules[1] == CallerRule(numbers=("+4930*",), answer=False)
    assert config.fxs.dial_plan == (DialRule("0", "operator"), DialRule("1XX", "extensions"))
    assert config.fxs.ring_cadence_ms == (400, 200, 400, 2000)
    port1, port2 = config.for_port(1), config.for_port(2)
    assert (port1.fxo.answer_after_rings, port1.fxo.default_profile, port1.tone_plan) == (
        5, "reception", "uk")  # fmt: skip
    assert (port2.tone_plan, port2.fxo.answer_after_rings) == ("de", 3)
    assert config.for_port(7) is config
    assert config.profiles() == {"reception", "sales", "operator", "extensions"}


def test_an_empty_table_gives_the_defaults() -> None:
    assert LineConfig.from_config({}) == LineConfig()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"tone_plan": "fr"}, "line.tone_plan 'fr' is not one of us, uk, de, etsi"),
        ({"colour": 1}, "line.colour is not a setting"),
        ({"fxo": {"answer_after_rings": 0}}, "line.fxo.answer_after_rings must be 1..20, got 0"),
        ({"fxo": {"answer_after_rings": "2"}},
         "line.fxo.answer_after_rings must be a whole number, got '2'"),
        ({"fxo": {"answer_after_rings": True}},
         "line.fxo.answer_after_rings must be a whole number, got True"),
        ({"fxo": {"ring_gap": 5}}, "line.fxo.ring_gap is not a setting; known: "),
        ({"fxo": {"deny": "555*"}}, "line.fxo.deny must be an array of strings"),
        ({"fxo": {"deny": ["555-ABC!"]}}, "line.fxo.deny: '555-ABC!' is not a number pattern"),
        ({"fxo": {"timezone": "Mars/Olympus"}}, "line.fxo.timezone 'Mars/Olympus' is not a known"),
        ({"fxo": {"hangup_tones": ["beep"]}}, "line.fxo.hangup_tones 'beep' is not one of"),
        ({"fxo": {"callerid_source": "magic"}}, "line.fxo.callerid_source 'magic' is not one of"),
        ({"fxo": {"rules": [{"hours": ["mon 9-5"]}]}}, "line.fxo.rules[0].hours: 'mon 9-5'"),
        ({"fxo": {"rules": [{"profile": "a", "answer": False}]}},
         "line.fxo.rules[0]: answer = false"),
        ({"fxo": {"rules": [{"when": 1}]}}, "line.fxo.rules[0].when is not a setting"),
        ({"fxo": {"default_profile": ""}}, "line.fxo: no default_profile and no rule"),
        ({"fxo": {"default_profile": "a b"}}, "line.fxo.default_profile: 'a b' is not an agent"),
        ({"fxo": {"silence_dbm0": float("nan")}}, "line.fxo.silence_dbm0 must be a finite number"),
        ({"fxs": {"hotline": ""}}, "line.fxs: neither a hotline nor a dial_plan"),
        ({"fxs": {"dial_plan": {"1Y": "a"}}}, "line.fxs.dial_plan: '1Y' is not a dial pattern"),
        ({"fxs": {"dial_plan": {"1": ""}}}, "line.fxs.dial_plan.1: '' is not an agent profile"),
        ({"fxs": {"ring_cadence_ms": [2000]}}, "line.fxs.ring_cadence_ms [2000] must be 1-4"),
        ({"fxs": {"ring_cadence_ms": "2s"}}, "line.fxs.ring_cadence_ms must be an array"),
        ({"fxs": {"interdigit_s": 0}}, "line.fxs.interdigit_s must be 0.1..600, got 0"),
        ({"ports": {"16": {}}}, "line.ports.16: '16' is not a port number 0..15"),
        ({"ports": {"1": {"fxo": {"answer_after_rings": 99}}}},
         "line.ports.1.fxo.answer_after_rings must be 1..20, got 99"),
        ({"ports": {"1": {"fxs": {"first_digit": 1}}}}, "line.ports.1.fxs.first_digit is not a"),
        ({"ports": {"1": {"ports": {}}}}, "line.ports.1.ports is not a setting"),
        ({"fxo": 3}, "line.fxo must be a table, got 3"),
    ],
)  # fmt: skip
def test_bad_config_names_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        LineConfig.from_config(table)
    assert str(info.value).startswith(message), str(info.value)
