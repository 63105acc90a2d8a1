"""`gateway.app.App` in this process, on the simulated adapter (2 FXO lines, looping callers)
and the local realtime server: a line actor that crashes mid-call is restarted by the
supervisor, comes back to idle on its own (the port was up all along), and the call on the
other line never notices; a stop drains what is left."""

from __future__ import annotations

from pathlib import Path

import trio

from gateway.app import App
from gateway.config import load_config
from gateway.realtime.local import LocalRealtimeServer
from gateway.simcall import SimLines, until
from gateway.simcall_scenario import LOOP_SCRIPT, LoopingCaller, load_caller_voice
from tests.gateway.app_rig import write_config

START_S = 60.0


async def test_a_crashed_line_restarts_and_the_other_call_goes_on(tmp_path: Path) -> None:
    voice = load_caller_voice()
    sim = SimLines([LoopingCaller(voice), LoopingCaller(voice)])
    server = LocalRealtimeServer(script=LOOP_SCRIPT)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        adapter = await nursery.start(sim.run)
        config = load_config(write_config(tmp_path, adapter, url, console=None))
        app = App(config)
        done = trio.Event()

        async def run_app() -> None:
            await app.run()
            done.set()

        with trio.fail_after(START_S):
            nursery.start_soon(run_app)
            await until(lambda: app.ready.is_set())
            sim.dial_in(0.1)
            await until(
                lambda: (
                    len(app.pipeline.active) == 2
                    and all(c.line.answered.is_set() for c in app.pipeline.active.values())
                )
            )  # (pre-answer)
        await trio.sleep(1.0)
        survivor = next(c for c in app.pipeline.active.values() if c.spec.port == 0)
        frames_before, before_s = survivor.metrics.frames, trio.current_time()
        app.lines[1]._post(object())  # type: ignore[arg-type]  # a message no line expects: a bug
        line1 = app.supervisor.children["line 1"]
        with trio.fail_after(10.0):
            await until(lambda: line1.crashes == 1 and line1.starts == 2)
            await until(lambda: app.lines[1].state.value == "idle")
        assert "AssertionError" in line1.last_error
        await trio.sleep(1.0)
        assert survivor is app.pipeline.active.get(survivor.spec.call_id)  # still up
        flowed = (trio.current_time() - before_s) / 0.020  # frames of 20 ms since the crash
        assert survivor.metrics.frames - frames_before >= 0.9 * flowed - 2  # audio went on
        assert app.supervisor.children["line 0"].starts == 1
        assert app.supervisor.children["adapter"].crashes == 0
        sim.stop.set()  # the callers hang up
        with trio.fail_after(30.0):
            await until(lambda: not app.pipeline.active)
        app.stop("the test is over")
        with trio.fail_after(20.0):
            await done.wait()
        nursery.cancel_scope.cancel()
    records = {r.port: r for r in app.pipeline.records}
    assert records[0].ended_by.startswith("caller hung up"), records[0].ended_by
    assert records[0].call_id == survivor.spec.call_id
