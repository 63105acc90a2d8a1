"""The far side of `tipring bench calls`, in a process of its own:

    python -m gateway.bench.calls_sim --lines N --seconds S [--stagger-ms MS]

runs a simulated tipring adapter with N FXO lines on a pty (`gateway.simcall.SimLines`), each
with a `LoopingCaller`, and talks to the bench over stdin/stdout, one line at a time:
1. prints `adapter on PATH` once the pty is up;
2. on `ring` (stdin) every caller rings its line (MS apart); once all are answered it prints
   `answered`; the callers talk and barge in for S seconds, then hang up;
3. once every line is idle again (or `END_S` passed) it prints one JSON object (then waits
   for the end of stdin, so that the box stops before its adapter goes away): the far
   end's figures per line (`turn_latency_ms`, `barge_in_stop_ms`), `answered`, and how
   punctual the simulator itself was from the answer to the stop (`TickLag`: frames it made
   more than a frame late, the most it lagged) with its ports' playout FIFO underruns (the
   box's frame was not there in time) and overruns.
Its CPU is its own: the bench reads it from /proc and reports it apart from the box's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from gateway.numba_cache import configure_numba_cache

if TYPE_CHECKING:  # the simulator's modules import numba: not before the cache is set
    from firmware_bridge.sim.line import LineModel
    from gateway.simcall import SimLines

FRAME_MS = 20.0
LAG_POLL_S = 0.01
ANSWER_S = 30.0  # every line answered after `ring` (2 rings: ~4 s; more if the box is late)
END_S = 30.0  # after the stop: the callers finish their round (~10 s) and hang up


@dataclass(eq=False)
class TickLag:
    """How far behind trio's clock `line`'s frames are made: a simulator process that the OS
    deschedules (a busy machine) sends its frames late, and the box counts them late too."""

    line: LineModel
    frames_late: int = 0
    max_lag_ms: float = 0.0
    counting: bool = False

    async def run(self) -> None:
        offset_s, last_ms = math.inf, self.line.now_ms
        while True:
            now_s, line_ms = trio.current_time(), self.line.now_ms
            offset_s = min(offset_s, now_s - line_ms / 1000.0)
            lag_ms = (now_s - line_ms / 1000.0 - offset_s) * 1000.0
            if self.counting:
                self.max_lag_ms = max(self.max_lag_ms, lag_ms)
                if lag_ms > FRAME_MS:
                    self.frames_late += round((line_ms - last_ms) / FRAME_MS)
            last_ms = line_ms
            await trio.sleep(LAG_POLL_S)


async def _read_line(stream: trio.lowlevel.FdStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise SystemExit("calls_sim: the bench went away")
        data += chunk
    return data.decode().strip()


async def serve(lines: int, seconds: float, stagger_s: float = 0.0) -> None:
    """Run the adapter and its callers through one bench run (the module docstring)."""
    from firmware_bridge.sim.line_core import LineState
    from gateway.simcall import SimLines, until
    from gateway.simcall_scenario import LoopingCaller, load_caller_voice

    voice = load_caller_voice()
    sim = SimLines([LoopingCaller(voice) for _ in range(lines)])
    lag = TickLag(sim.lines[0])
    async with trio.open_nursery() as nursery, \
            trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:  # fmt: skip
        path = await nursery.start(sim.run)
        nursery.start_soon(lag.run)
        print(f"adapter on {path}", flush=True)
        while await _read_line(stdin) != "ring":
            pass
        sim.dial_in(stagger_s)
        with trio.move_on_after(ANSWER_S):
            await until(lambda: all(ln.state is LineState.CONNECTED for ln in sim.lines))
        answered = sum(ln.state is LineState.CONNECTED for ln in sim.lines)
        print("answered", flush=True)
        lag.counting = True
        await trio.sleep(seconds)
        sim.stop.set()
        lag.counting = False
        with trio.move_on_after(END_S):
            await until(lambda: all(ln.state is LineState.IDLE for ln in sim.lines))
        print(json.dumps(_far_end(sim, lag, answered)), flush=True)
        while await stdin.receive_some(64):  # until the bench closes us: the box goes first
            pass
        nursery.cancel_scope.cancel()


def _far_end(sim: SimLines, lag: TickLag, answered: int) -> dict[str, Any]:
    from firmware_bridge.sim.adapter import AdapterSimulator

    reports = sim.reports()
    ports = sim.sim.ports if isinstance(sim.sim, AdapterSimulator) else []
    return {
        "answered": answered,
        "turn_latency_ms": [r.turn_latency_ms for r in reports],
        "barge_in_stop_ms": [r.barge_in_stop_ms for r in reports],
        "sim_frames_late": lag.frames_late,
        "sim_max_lag_ms": round(lag.max_lag_ms, 1),
        "port_underruns": sum(p.counters.underruns for p in ports),
        "port_overruns": sum(p.counters.overruns for p in ports),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.bench.calls_sim",
        description="the far side of `tipring bench calls`",
    )
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--stagger-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    configure_numba_cache()  # before anything imports numba
    trio.run(serve, args.lines, args.seconds, args.stagger_ms / 1000.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
