"""`tipring bench calls --lines N --seconds S`: N simultaneous simulated calls in real time,
and what they cost this box.

Three processes, so that the CPU figure is the appliance's alone:
- the local realtime server (`tipring local-server --port 0`, the bench's script: a greeting,
  then a 3.7 s answer to every caller turn);
- the simulated adapter with N FXO lines and a `LoopingCaller` on each
  (`python -m gateway.bench.calls_sim`), ringing in `--stagger-ms` apart: each hears the
  greeting out, then asks, barges in 700 ms of agent voice into the answer, hears the reply
  out, and again, for S seconds;
- this one: the box (`gateway.simcall.Appliance`: the adapter link, a line actor per port
  answering after 2 rings, the call pipeline with its echo canceller, VAD, DTMF, playout and
  realtime websocket client per call).

CPU per line is this process's CPU time (all threads) over the S seconds of wall time that
start once every call is up, divided by N, in % of one core. The other two processes' CPU
over the same window is read from /proc and shown apart. Frames late, added latency and
barge-in stop times are the calls' own records (`CallRecord`: measured on the box); the
far end's barge-in figures (the simulator's) are shown beside them. Nothing here asserts.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from gateway.call_config import CallConfig
from gateway.call_metrics import CallRecord, percentile
from gateway.simcall import Appliance, demo_profile, pipeline_factory, until, warm_kernels
from gateway.simcall_scenario import LOOP_SCRIPT_FILE

START_S = 60.0  # both child processes up (a cold numba cache compiles the simulator's kernels)
ANSWER_S = 30.0  # every call up after the ring (2 rings: ~4 s)
END_S = 45.0  # after the window: the callers finish their round and hang up, records written
CPU_INCLUDES = ("this process: the adapter link, a line actor and a call pipeline per line "
                "(echo canceller, VAD, DTMF, playout, realtime websocket client); not the "
                "simulated adapter and lines, nor the local realtime server (processes of "
                "their own, shown apart)")  # fmt: skip
TICKS_S = os.sysconf("SC_CLK_TCK")
# The simulated lines keep everything the box sent them for the callers' measurements (9.6 MB
# per line per 10 minutes): 10 minutes, the ARCHITECTURE's 16-line run, is the longest.
MAX_SECONDS = 600.0
# Calls ring in this far apart: calls arrive at random on real lines, and lines that start
# together stay in lock-step (every caller talking, every answer streaming, every hang-up at
# the same moment), which measured the worst case rather than the box (`--stagger-ms 0`).
STAGGER_MS = 250.0


@dataclass(eq=False)
class Child:
    """A child process that speaks in lines on stdout (and reads lines on stdin)."""

    proc: trio.Process
    _buffer: bytes = b""

    async def line(self) -> str:
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"{self.proc.args!r} exited ({await self.proc.wait()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip()

    async def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(text.encode() + b"\n")

    def cpu_s(self) -> float:
        """Its CPU time so far (user + system), from /proc; 0.0 where there is none."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICKS_S  # utime, stime (fields 14, 15)


@asynccontextmanager
async def child(args: Sequence[str]) -> AsyncIterator[Child]:
    proc = await trio.lowlevel.open_process(
        list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        yield Child(proc)
    finally:
        proc.kill()
        with trio.move_on_after(2.0, shield=True):
            await proc.wait()


def _machine_busy_s() -> float:
    """CPU time all cores spent busy since boot (/proc/stat), in s; 0.0 where unreadable."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_S  # less idle and iowait


def _snapshot(server: Child, sim: Child) -> dict[str, float]:
    return {"cpu": time.process_time(), "wall": time.perf_counter(),
            "server": server.cpu_s(), "sim": sim.cpu_s(), "machine": _machine_busy_s(),
            "preempted": resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw}  # fmt: skip


async def measure_calls(lines: int, seconds: float, stagger_ms: float = STAGGER_MS
                        ) -> dict[str, Any]:  # fmt: skip
    """One bench run; the figures as one JSON object (see `run_bench_calls`)."""
    warm_kernels()  # as the app does before it reports ready
    server_args = [sys.executable, "-m", "gateway", "local-server", "--port", "0",
                   "--script", str(LOOP_SCRIPT_FILE)]  # fmt: skip
    sim_args = [sys.executable, "-m", "gateway.bench.calls_sim", "--lines", str(lines),
                "--seconds", str(seconds), "--stagger-ms", str(stagger_ms)]  # fmt: skip
    async with child(server_args) as server, child(sim_args) as sim, \
            trio.open_nursery() as nursery:  # fmt: skip
        with trio.fail_after(START_S):
            url = (await server.line()).rsplit(" on ", 1)[1]
            path = (await sim.line()).rsplit(" on ", 1)[1]
            appliance = Appliance(path, pipeline_factory(demo_profile(url), CallConfig()))
            await nursery.start(appliance.run)
        await sim.say("ring")
        with trio.fail_after(ANSWER_S):
            await until(lambda: len(appliance.specs) == lines)
            await sim.line()  # "answered": the simulator saw every line picked up
        before = _snapshot(server, sim)
        await trio.sleep(seconds)
        after = _snapshot(server, sim)
        far: dict[str, Any] = {}
        with trio.move_on_after(END_S):
            await until(lambda: len(appliance.records) == lines)
            far = json.loads(await sim.line())
        nursery.cancel_scope.cancel()
    records = [appliance.records[p] for p in sorted(appliance.records)]
    return _figures(lines, seconds, before, after, records, far) | {"stagger_ms": stagger_ms}


def _figures(lines: int, seconds: float, before: dict[str, float], after: dict[str, float],
             records: list[CallRecord], far: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The run's JSON: the issue's keys first, then the detail."""
    cpu = _cpu(before, after, lines)
    calls = _calls(records)
    head = {"lines": lines, "seconds": seconds, "cpu_percent_per_line": cpu.pop("per_line")}
    head |= {k: calls.pop(k) for k in ("frames_late", "added_latency_ms_p99",
                                       "barge_in_stop_ms_p95")}  # fmt: skip
    far_stops = [v for per_line in far.get("barge_in_stop_ms", []) for v in per_line]
    far_end = {"barge_in_stop_ms_p95": _r(percentile(far_stops, 95)),
               "barge_ins": len(far_stops)}  # fmt: skip
    far_end |= {k: far.get(k) for k in ("answered", "sim_frames_late", "sim_max_lag_ms",
                                        "port_underruns", "port_overruns")}  # fmt: skip
    return head | calls | cpu | {"far_end": far_end}


def _calls(records: list[CallRecord]) -> dict[str, Any]:
    """What the calls' records say: lateness, added latency, barge-in and turn figures."""
    stops = [v for r in records for v in r.barge_in_stop_ms]
    turns = [v for r in records for v in r.turn_latency_ms]

    def worst(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(max(known), 3) if known else None

    def typical(values: list[float | None]) -> float | None:
        return _r(percentile([v for v in values if v is not None], 50))

    return {
        "frames_late": sum(r.frames_late for r in records),
        # the ARCHITECTURE's appliance-added latency: line frame -> websocket send, worst call
        "added_latency_ms_p99": worst([r.uplink_p99_ms for r in records]),
        "barge_in_stop_ms_p95": _r(percentile(stops, 95)),
        "added_latency_ms": {
            "uplink_p50": typical([r.uplink_p50_ms for r in records]),
            "uplink_p99": worst([r.uplink_p99_ms for r in records]),
            "downlink_p50": typical([r.downlink_p50_ms for r in records]),
            "downlink_p99": worst([r.downlink_p99_ms for r in records]),
        },
        "barge_in_stop_ms_p50": _r(percentile(stops, 50)),
        "barge_ins": len(stops),
        "turn_latency_ms_p50": _r(percentile(turns, 50)),
        "turns": len(turns),
        "calls_completed": len(records),
        "calls_ended_by_caller": sum(r.ended_by.startswith("caller hung up") for r in records),
        "frames": sum(r.frames for r in records),
        "frames_late_per_line": [r.frames_late for r in records],
        "frames_to_cloud_dropped": sum(r.frames_to_cloud_dropped for r in records),
        "underruns": sum(r.underruns for r in records),
        "reconnects": sum(r.reconnects for r in records),
    }


def _cpu(before: dict[str, float], after: dict[str, float], lines: int) -> dict[str, Any]:
    """CPU over the window, in % of one core: ours (per line too), the children's, others'."""
    d = {k: after[k] - before[k] for k in before}
    wall = d["wall"]
    return {
        "per_line": round(100.0 * d["cpu"] / wall / lines, 3),
        "cpu_percent": round(100.0 * d["cpu"] / wall, 2),
        "cpu_includes": CPU_INCLUDES,
        "sim_cpu_percent": round(100.0 * d["sim"] / wall, 2),
        "server_cpu_percent": round(100.0 * d["server"] / wall, 2),
        # Other processes' share of the machine meanwhile (a busy shared box deschedules the
        # bench: late frames), and how often the OS took the CPU from us.
        "others_cpu_percent": round(
            100.0 * (d["machine"] - d["cpu"] - d["sim"] - d["server"]) / wall, 1
        ),
        "cores": os.cpu_count(),
        "preemptions": int(d["preempted"]),
        "window_s": round(wall, 2),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def format_calls(r: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    a, far = r["added_latency_ms"], r["far_end"]
    rows = [
        ["CPU per line", f"{r['cpu_percent_per_line']:.2f} % of one core (this process: "
         f"{r['cpu_percent']:.1f} % for {r['lines']} lines)"],
        ["  not counted", f"simulated adapter + lines {r['sim_cpu_percent']:.1f} %, local "
         f"realtime server {r['server_cpu_percent']:.1f} % (own processes)"],
        ["frames late", f"{r['frames_late']} of {r['frames']} (dropped to the cloud "
         f"{r['frames_to_cloud_dropped']}, underruns {r['underruns']})"],
        ["  the sim", f"{far['sim_frames_late']} frames made late per line (lagged up to "
         f"{far['sim_max_lag_ms']} ms); adapter FIFO underruns {far['port_underruns']}, "
         f"overruns {far['port_overruns']}"],
        ["  the machine", f"other processes {r['others_cpu_percent']:.0f} % of one core "
         f"({r['cores']} cores); this process preempted {r['preemptions']} times"],
        ["added latency", f"uplink p50 {ms(a['uplink_p50'])} / p99 {ms(a['uplink_p99'])} ms, "
         f"downlink p50 {ms(a['downlink_p50'])} / p99 {ms(a['downlink_p99'])} ms"],
        ["barge-in stop", f"p50 {ms(r['barge_in_stop_ms_p50'])} / p95 "
         f"{ms(r['barge_in_stop_ms_p95'])} ms over {r['barge_ins']} barge-ins (far end p95 "
         f"{ms(far['barge_in_stop_ms_p95'])} ms over {far['barge_ins']})"],
        ["turn latency", f"p50 {ms(r['turn_latency_ms_p50'])} ms over {r['turns']} turns"],
        ["calls", f"{r['calls_completed']} of {r['lines']} completed, "
         f"{r['calls_ended_by_caller']} hung up by the caller; reconnects {r['reconnects']}"],
    ]  # fmt: skip
    head = (
        f"tipring bench calls: {r['lines']} simultaneous simulated calls (ringing in "
        f"{r['stagger_ms']:g} ms apart), real time, {r['window_s']:.1f} s measured once all "
        "were up"
    )
    body = [f"  {what:<14} {value}" for what, value in rows]
    return "\n".join([head, *body, f"CPU per line counts {r['cpu_includes']}."])


def run_bench_calls(lines: int, seconds: float, json_output: bool = False,
                    stagger_ms: float = STAGGER_MS) -> int:  # fmt: skip
    """Run the bench and print its figures; the exit status (2: bad arguments)."""
    if not 1 <= lines <= 16 or not 1.0 <= seconds <= MAX_SECONDS or not 0 <= stagger_ms <= 2000:
        print(f"tipring bench calls: --lines {lines} must be 1..16 (an adapter's ports), "
              f"--seconds {seconds:g} 1..{MAX_SECONDS:g}, --stagger-ms {stagger_ms:g} 0..2000",
              file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    res = trio.run(measure_calls, lines, seconds, stagger_ms)
    print(json.dumps(res, indent=2) if json_output else format_calls(res))
    return 0
