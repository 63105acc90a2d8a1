"""`tipring demo --scenario NAME` (#8): each edge-feature scenario runs its simulated call to
the end it is meant to have and shows its point in its facts. The `fax` one also through the
command line, as a user runs it (its JSON report)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

from gateway.demo_scenarios import SCENARIOS, Facts
from gateway.demo_services import PIN
from gateway.simcall import SimResult
from gateway.simcall_scenario import load_caller_voice


async def test_each_scenario_makes_its_point(tmp_path: Path) -> None:
    """All at once (each has its own simulated adapter and realtime server): a few calls on
    the real clock side by side, as the box runs them."""
    runs: dict[str, tuple[SimResult, Facts]] = {}

    async def run(name: str) -> None:
        out = tmp_path / name
        out.mkdir()
        runs[name] = await SCENARIOS[name].run(load_caller_voice(), out)

    async with trio.open_nursery() as nursery:
        for name in SCENARIOS:
            nursery.start_soon(run, name)
    for name, (result, facts) in sorted(runs.items()):
        await _check(name, result, facts)
    assert set(runs) == set(SCENARIOS)


async def _check(name: str, result: SimResult, facts: Facts) -> None:
    scenario = SCENARIOS[name]
    assert not result.timed_out, name
    [record] = result.records
    assert record is not None, name
    assert record.ended_by.startswith(scenario.ends), (name, record.ended_by)
    match name:
        case "greeting":
            assert facts["answer_to_audio_ms"] < 300.0
        case "pre-answer":
            assert facts["crm_got"] == [{"number": "5551234000", "name": "ALICE SMITH"}]
            assert facts["instructions_name_the_caller"] is True
            assert facts["pre_answer_ms"] > 500.0  # the session opened while it rang
            assert facts["answer_to_audio_ms"] < 300.0  # with the cloud 1.5 s slow
            assert [t.name for t in record.tool_calls] == ["crm_lookup"]
        case "pin":
            assert facts["the bank got"] == [{"pin": PIN}]
            assert facts["pin_in_cloud_events"] is False
            assert facts["record_dtmf"] == "*****"
        case "fax":
            assert facts["cloud_sessions_opened"] == 0
            assert record.hangup_signal == "fax"
        case "wan-down":
            assert facts["voicemail"] is not None
            assert await trio.Path(facts["voicemail"]).exists()
        case _:
            raise AssertionError(f"scenario {name} has no checks here")


async def test_the_fax_scenario_from_the_command_line(tmp_path: Path) -> None:
    done = await trio.run_process(
        [sys.executable, "-m", "gateway", "demo", "--scenario", "fax", "--json",
         "--out", str(tmp_path)], capture_stdout=True, capture_stderr=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["scenario"]["name"] == "fax"
    assert report["scenario"]["facts"]["cloud_sessions_opened"] == 0
    assert report["hangup_signal"] == "fax"
    assert report["ended_by"] == "fax tone (CNG): declined"
