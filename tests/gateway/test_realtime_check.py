"""`tipring realtime-check`: a real session against the bundled and a misbehaving local server."""

from __future__ import annotations

import json
import math

import pytest
import trio

from gateway.cli import main
from gateway.realtime.local import Faults, LocalRealtimeServer
from gateway.realtime.local.prompts import Prompts
from gateway.realtime_check import check_settings, run_check


async def test_the_bundled_server_answers_the_caller() -> None:
    report = await run_check(check_settings("local", "", "", "", ""))
    print(report.text())
    assert report.ok
    assert report.url.startswith("ws://127.0.0.1:")
    assert 0.0 <= report.connect_ms < 5000.0
    assert 0.0 < report.first_audio_ms < 5000.0
    greeting = Prompts.load()
    answer = [line["text"] for line in report.transcript if line["who"] == "agent"]
    assert answer == [greeting.text["greeting"]]  # the local server's first answer
    assert report.agent_audio_ms == pytest.approx(greeting.duration_ms("greeting"), abs=40)


async def test_a_refused_audio_format_fails_the_check_with_the_reason() -> None:
    server = LocalRealtimeServer(faults=Faults(report_output_format="audio/pcm"))
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        report = await run_check(check_settings("local", url, "", "", ""))
        nursery.cancel_scope.cancel()
    print(report.text())
    assert not report.ok
    assert "output audio format" in report.error
    assert "audio_format_refused" in report.error
    assert math.isnan(report.first_audio_ms)


def test_bad_settings_exit_2_naming_what_is_wrong(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["realtime-check", "--provider", "openai"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert main(["realtime-check", "--realtime-url", "ws://example.com/v1/realtime"]) == 2
    assert "only allowed to a loopback host" in capsys.readouterr().err
    assert main(["realtime-check", "--provider", "sip"]) == 2
    assert "'sip' is not one of openai, azure, inworld, local" in capsys.readouterr().err


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["realtime-check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["provider"] == "local"
    assert report["first_audio_ms"] > 0.0
    assert [line["who"] for line in report["transcript"]] == ["caller", "agent"]
