"""Local DTMF menus (#8 item 3): keys the box acts on itself, with the cloud up or down, never
sent to the agent. The menu's config (errors name the key); then end to end on the simulated
adapter: with the cloud up, "9" hangs up (the goodbye prompt, then on-hook) and "5" (not in
the menu) still reaches the agent; with the cloud refusing us (the fallback and voicemail
playing), "0" transfers to a person (a hook flash, then 201 at the far end)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio

from firmware_bridge.sim.caller import (
    CallerScript,
    HangUp,
    Pause,
    Press,
    WaitForSilence,
    WaitForVoice,
)
from gateway.call_config import AgentProfile, CallConfig
from gateway.call_digits import MenuEntry, parse_menu
from gateway.config import parse
from gateway.errors import ConfigError
from gateway.realtime.local import Faults, LocalRealtimeServer, Script
from gateway.simcall import demo_profile, run_sim_calls
from gateway.simcall_scenario import ScriptedCaller

MENU = {"0": "transfer:201", "9": "hangup", "*1": "voicemail", "7": "agent"}


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_the_menu_is_read_from_the_config() -> None:
    assert parse_menu(MENU, "agent.dtmf_menu") == (
        MenuEntry("0", "transfer", "201"), MenuEntry("9", "hangup"),
        MenuEntry("*1", "voicemail"), MenuEntry("7", "agent"),
    )  # fmt: skip
    config = parse({"agent": {"dtmf_menu": {"0": "transfer:9,201"}}})
    assert config.profiles["default"].dtmf_menu == (MenuEntry("0", "transfer", "9,201"),)


@pytest.mark.parametrize(("menu", "error"), [
    ({"0x": "hangup"}, r"agent\.dtmf_menu\.0x: '0x' is not a key sequence"),
    ({"0": "dance"}, r"agent\.dtmf_menu\.0 'dance' is not an action"),
    ({"0": "transfer:"}, r"agent\.dtmf_menu\.0 'transfer:' is not an action"),
    ({"0": 7}, r"agent\.dtmf_menu\.0 must be a string"),
    ({"123456789": "hangup"}, r"is not a key sequence \(1-8"),
])  # fmt: skip
def test_a_bad_menu_names_the_key(menu: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse({"agent": {"dtmf_menu": menu}})


def _with_menu(url: str) -> AgentProfile:
    return replace(demo_profile(url), dtmf_menu=parse_menu(MENU, "agent.dtmf_menu"))


def _texts(server: LocalRealtimeServer) -> list[str]:
    return [str(e) for s in server.sessions for e in s.received
            if e.get("type") == "conversation.item.create"]  # fmt: skip


async def _with_the_cloud_up_a_menu_key_hangs_up_and_other_keys_reach_the_agent() -> None:
    caller = ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(600.0), Press("5"), WaitForVoice(200.0),
        WaitForSilence(600.0), Press("9"), WaitForVoice(200.0), WaitForSilence(600.0),
        Pause(5000.0), HangUp("loop_drop"),
    )))  # fmt: skip
    result = await run_sim_calls([caller], script=Script(), profile=_with_menu, timeout_s=50.0)
    assert not result.timed_out
    [record] = result.records
    assert record is not None
    assert result.server is not None
    assert record.ended_by == "caller pressed 9", record.ended_by
    assert record.dtmf == "59"
    texts = _texts(result.server)
    assert any("[caller pressed 5]" in t for t in texts)
    assert not any("caller pressed 9" in t for t in texts)
    assert any("menu 9: hangup" in what for _, what in record.timeline)


async def _with_the_cloud_down_a_menu_key_still_transfers(tmp_path: Path) -> None:
    refusing = LocalRealtimeServer(script=Script(), faults=Faults(reject_status=401))
    # The fallback prompt and the beep; in the voicemail's silence, the caller presses 0.
    caller = ScriptedCaller(CallerScript((
        WaitForVoice(200.0), WaitForSilence(1000.0), Press("0"), Pause(8000.0),
        HangUp("loop_drop"),
    )))  # fmt: skip
    config = CallConfig(voicemail_dir=tmp_path, voicemail_silence_s=6.0)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(refusing.run)
        result = await run_sim_calls([caller], script=Script(), realtime_url=url,
                                     config=config, profile=_with_menu,
                                     timeout_s=50.0)  # fmt: skip
        nursery.cancel_scope.cancel()
    assert not result.timed_out
    [record] = result.records
    assert record is not None
    assert record.ended_by == "transferred to 201", record.timeline
    line = result.lines[0]
    assert len(line.host_flashes_ms) == 1
    assert line.digits_heard == "201"
    assert any("cloud unavailable" in what for _, what in record.timeline)


async def test_menu_keys_with_the_cloud_up_and_down(tmp_path: Path) -> None:
    """The two calls at once, each on its own simulated adapter and realtime server."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_with_the_cloud_up_a_menu_key_hangs_up_and_other_keys_reach_the_agent)
        nursery.start_soon(_with_the_cloud_down_a_menu_key_still_transfers, tmp_path)
