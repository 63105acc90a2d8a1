"""`tipring run` as systemd runs it: a real process with NOTIFY_SOCKET and WATCHDOG_USEC, on
the simulated adapter (a pty) with looping callers and the local realtime server
(`tests/gateway/app_rig.py`). It reports READY with the lines up, pings the watchdog, takes
calls, drains them on SIGTERM (the goodbye, records finished) and exits 0; a `kill -9`
mid-call leaves a database that opens clean, and the next start marks those calls
interrupted; a bad config exits 78 naming the key; the API key never reaches the log."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
from pathlib import Path

import trio

from gateway.app_run import EXIT_CONFIG
from tests.gateway.app_rig import SECRET, far_side, tipring_run, write_config

ANSWER_S = 40.0
LINES = 2


def _calls(db: Path) -> list[tuple[str, int, str, str | None]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = con.execute("SELECT call_id, port, status, ended_by FROM calls ORDER BY port")
        return list(rows)
    finally:
        con.close()


async def test_run_takes_calls_and_drains_them_on_sigterm(tmp_path: Path) -> None:
    async with far_side(LINES, seconds=30.0) as (_, sim, url, adapter):
        config = write_config(tmp_path, adapter, url, console=None)
        async with tipring_run(config, tmp_path) as box:
            ready = await box.until_note("READY=1")
            assert f"STATUS={LINES}/{LINES} lines up, 0 call(s)" in ready
            await box.until_note("WATCHDOG=1", timeout_s=5.0)
            await sim.say("ring")
            with trio.fail_after(ANSWER_S):
                assert await sim.line() == "answered"
            await trio.sleep(3.0)  # the agent greets, the callers talk
            started_s = trio.current_time()
            box.proc.send_signal(signal.SIGTERM)
            await box.until_note("STOPPING=1", timeout_s=5.0)
            with trio.fail_after(20.0):
                status = await box.proc.wait()
            stop_s = trio.current_time() - started_s
    log = box.log()
    assert status == 0, log[-2000:]
    assert stop_s < 8.0 + 4.0  # drain_s, and the records' flush
    rows = _calls(tmp_path / "data" / "calls.db")
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (port, "finished", "the gateway is stopping") for port in range(LINES)
    ]
    assert "stopping: 2 call(s) get 8 s to end" in log
    assert "<6>gateway.app: tipring stopped (SIGTERM)" in log
    assert SECRET not in log


async def test_kill_9_mid_call_then_the_next_start_marks_the_calls_interrupted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "calls.db"
    async with far_side(LINES, seconds=60.0) as (_, sim, url, adapter):
        config = write_config(tmp_path, adapter, url, console=None)
        async with tipring_run(config, tmp_path, "first") as box:
            await box.until_note("READY=1")
            await sim.say("ring")
            with trio.fail_after(ANSWER_S):
                assert await sim.line() == "answered"
            await trio.sleep(2.0)
            box.proc.kill()  # SIGKILL: no drain, no flush, mid-call
            assert await box.proc.wait() == -signal.SIGKILL
        rows = _calls(db)  # opens clean: WAL, every commit synced
        assert [r[2] for r in rows] == ["active"] * LINES
        async with tipring_run(config, tmp_path, "second") as again:
            await again.until_note("READY=1")
            await trio.sleep(0.5)
            again.proc.send_signal(signal.SIGTERM)
            with trio.fail_after(20.0):
                assert await again.proc.wait() == 0
    rows = _calls(db)
    assert [r[2] for r in rows[:LINES]] == ["interrupted"] * LINES
    export = await trio.run_process([sys.executable, "-m", "gateway", "calls", "--db", str(db),
                                     "--json"], capture_stdout=True)  # fmt: skip
    calls = json.loads(export.stdout)
    assert {c["status"] for c in calls if c["call_id"] in {r[0] for r in rows[:LINES]}} == {
        "interrupted"
    }


async def test_a_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "/dev/null", "ws://127.0.0.1:9/", console=None,
                          extra="log_level = \"chatty\"\n")  # fmt: skip
    async with tipring_run(config, tmp_path) as box:
        with trio.fail_after(60.0):
            status = await box.proc.wait()
    log = box.log()
    assert status == EXIT_CONFIG
    assert "<3>gateway.app_run: config: service.log_level 'chatty' is not one of" in log
    assert not any(note.startswith("READY=1") for note in box.notes)
