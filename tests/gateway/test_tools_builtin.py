"""gateway.tools_builtin: end_call, transfer_call, send_dtmf and get_time through a real runner
against a fake call; and every tool schema against the OpenAI Realtime types."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from trio.testing import MockClock

from gateway.errors import ConfigError, GatewayError
from gateway.tools import ToolRegistry
from gateway.tools_builtin import (
    end_call_tool,
    get_time_tool,
    send_dtmf_tool,
    transfer_call_tool,
)
from gateway.tools_config import tools_from_config
from tests.gateway.realtime.openai_schema import ValidationError, check_client
from tests.gateway.test_tools_rig import FakeCall, runner_rig

TARGETS = {"reception": "201", "workshop": "fxs:2", "hotline": "*72,5551234"}


def registry(**get_time: Any) -> ToolRegistry:
    return ToolRegistry(
        [end_call_tool(), transfer_call_tool(TARGETS), send_dtmf_tool(), get_time_tool(**get_time)]
    )


async def test_end_call_asks_the_call_to_hang_up_with_the_reason(autojump_clock: MockClock) -> None:
    async with runner_rig(registry()) as rig:
        value = await rig.result("end_call", '{"reason": "caller said goodbye"}')
        await rig.result("end_call", "{}")
        await rig.result("end_call", '{"reason": "' + "x" * 500 + '"}')
    assert value == {
        "ok": True,
        "note": "The call ends when you finish speaking. Ask nothing more.",
    }
    assert rig.control.actions == [
        ("hang_up", "caller said goodbye"),
        ("hang_up", "the agent ended the call"),
        ("hang_up", "x" * 200),
    ]


async def test_transfer_call_dials_the_configured_target(autojump_clock: MockClock) -> None:
    async with runner_rig(registry()) as rig:
        value = await rig.result("transfer_call", '{"target": "workshop"}')
        await rig.result("transfer_call", '{"target": "hotline"}')
        refused = await rig.result("transfer_call", '{"target": "0900123456"}')
    assert value == {"ok": True, "transferred_to": "workshop"}
    assert rig.control.actions == [("transfer", "fxs:2"), ("transfer", "*72,5551234")]
    assert refused["error"] == (
        'bad arguments: arguments.target: must be one of "reception", "workshop", "hotline"'
    )


async def test_transfer_the_line_refuses_is_an_error_result(autojump_clock: MockClock) -> None:
    control = FakeCall(transfer_error=GatewayError("line 2: hook-flash not acknowledged"))
    async with runner_rig(registry(), control=control) as rig:
        value = await rig.result("transfer_call", '{"target": "reception"}')
    assert value == {
        "error": "transfer_call failed: line 2: hook-flash not acknowledged",
        "tool": "transfer_call",
    }


def test_transfer_targets_are_checked_when_declared() -> None:
    with pytest.raises(ConfigError, match=r"^tools.builtin.transfer_call.targets is empty"):
        transfer_call_tool({})
    with pytest.raises(
        ConfigError,
        match=r"^tools.builtin.transfer_call.targets.boss '\+1 555' is not digits .* or fxs:N$",
    ):
        transfer_call_tool({"boss": "+1 555"})


async def test_send_dtmf_sends_clean_digits_and_never_echoes_or_logs_them(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with runner_rig(registry()) as rig:
        sent = await rig.result("send_dtmf", '{"digits": "1 2-3#a"}')
        letter = await rig.result("send_dtmf", '{"digits": "98x7"}')
        too_long = await rig.result("send_dtmf", '{"digits": "' + "5" * 33 + '"}')
        empty = await rig.result("send_dtmf", '{"digits": " - "}')
    assert sent == {"ok": True, "sent": 5}
    assert rig.control.actions == [("send_dtmf", "123#A")]
    assert letter["error"] == "digits: character 3 is not one of 0-9 * # A-D"
    assert too_long["error"] == "digits: 33 digits; send 1 to 32 at a time"
    assert empty["error"] == "digits: 0 digits; send 1 to 32 at a time"
    assert "98x7" not in caplog.text
    assert '"digits": "***"' in caplog.text


@pytest.mark.parametrize(
    ("utc", "time", "weekday"),
    [
        (datetime(2024, 3, 31, 0, 30, tzinfo=UTC), "2024-03-31T01:30:00+01:00", "Sunday"),
        (datetime(2024, 3, 31, 1, 30, tzinfo=UTC), "2024-03-31T03:30:00+02:00", "Sunday"),
        (datetime(2025, 1, 6, 23, 0, 59, 999, tzinfo=UTC), "2025-01-07T00:00:59+01:00", "Tuesday"),
    ],
)
async def test_get_time_is_local_time_in_the_configured_zone(
    autojump_clock: MockClock, utc: datetime, time: str, weekday: str
) -> None:
    async with runner_rig(registry(timezone="Europe/Berlin", clock=lambda: utc)) as rig:
        value = await rig.result("get_time")
    assert value == {"time": time, "weekday": weekday, "timezone": "Europe/Berlin"}


async def test_get_time_defaults_to_the_box_zone(autojump_clock: MockClock) -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    async with runner_rig(registry(clock=lambda: now)) as rig:
        value = await rig.result("get_time")
    local = now.astimezone()
    assert value == {
        "time": local.isoformat(timespec="seconds"),
        "weekday": {1: "Sunday", 2: "Monday"}[local.day],  # UTC-12 .. UTC+14
        "timezone": local.tzname(),
    }
    assert datetime.fromisoformat(value["time"]) == now


def test_get_time_zone_is_checked_when_declared() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^tools.builtin.get_time.timezone 'Europe/Berlln' is not an IANA time zone",
    ):
        get_time_tool("Europe/Berlln")


def session_update(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {"input": {"format": {"type": "audio/pcmu"}}},
            "tools": tools,
            "tool_choice": "auto",
        },
    }


def test_every_tool_schema_is_a_valid_openai_realtime_function_tool() -> None:
    http = {
        "name": "lookup_customer",
        "description": "Find the caller's record.",
        "url": "https://crm.example.com/api/customers",
        "method": "GET",
        "parameters": {
            "type": "object",
            "properties": {
                "phone": {"type": "string", "description": "E.164"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            },
            "required": ["phone"],
            "additionalProperties": False,
        },
    }
    builtin = {"end_call": True, "send_dtmf": {}, "get_time": {"timezone": "UTC"}}
    config = {"builtin": {**builtin, "transfer_call": {"targets": TARGETS}}, "http": [http]}
    tools = tools_from_config(config).schemas()
    assert [t["name"] for t in tools] == [
        "end_call",
        "send_dtmf",
        "get_time",
        "transfer_call",
        "lookup_customer",
    ]
    check_client(session_update(tools))
    with pytest.raises(ValidationError, match="strict"):  # the check has teeth
        check_client(session_update([{**tools[0], "strict": True}]))
