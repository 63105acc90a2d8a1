"""`tipring bench link`: what the serial link to a tipring adapter sustains on this box.

The simulated adapter runs in its own process (`python -m firmware_bridge.sim adapter`, on a
real pty) with every port in a call, its phone talking; this process runs `AdapterLink` and,
per port, a talker that sends one frame for each frame received (as the call pipeline does).
Three measurements, one run:
- throughput: 16 ports with the lines at `SPEEDS` times real time: frames per second each
  way the link carries, and what was lost (on a 2-core box the simulator, stepping 16 line
  models that fast, shares the CPU with the link: its limit shows up as loss too);
- CPU per port: 8 ports at real time: this process's CPU time (link, ports, codec, the
  talkers) per port, in % of one core;
- ports at 921600 baud: the simulator charges every byte its wire time at 921600 8N1, both
  ways; the most ports per codec whose audio still arrives whole (< 0.5 % lost), next to the
  spec's design rule (audio under 50 % of the link, `docs/adapter-protocol.md` §10).
Nothing here asserts: it reports. `--quick` runs shorter, with fewer ports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_S, FRAME_SAMPLES
from firmware_bridge import messages as m
from firmware_bridge.adapter_port import AdapterPort
from firmware_bridge.link import AdapterLink, PortSettings
from firmware_bridge.port import Codec, PortReady
from firmware_bridge.protocol import encode
from gateway.bench.timing import format_table

UART_BAUD = 921600
SPEEDS = (4, 8)  # the throughput runs' lines, times real time: 16 ports, 3200 and 6400 fps
WARMUP_S = 1.0
START_S = 20.0  # the simulator process up and the link linked (numba cache cold: compiles)
LOSS_OK = 0.005  # a port count "fits" when less than this share of frames is lost


@dataclass
class LoadResult:
    """One load run: frames each way per second, loss, and this process's CPU."""

    name: str
    ports: int
    codec: str
    speed: float  # the lines' clock, times real time
    seconds: float
    frames_in_per_s: float
    frames_out_per_s: float
    lost_in: float  # share of the frames the board sent that never arrived (concealed)
    lost_out: float  # share of our frames the link could not take
    cpu_pct: float  # of one core, this process
    cpu_pct_per_port: float  # at real time: cpu_pct / ports / speed


@asynccontextmanager
async def simulated_adapter(ports: int, codec: Codec, tick_ms: float, baud: int | None) -> (
    AsyncIterator[str]
):  # fmt: skip
    """A simulator process with `ports` talking FXS phones; yields its pty path."""
    args = [sys.executable, "-m", "firmware_bridge.sim", "adapter", "--fxo", "0",
            "--fxs", str(ports), "--codec", codec.value, "--tick-ms", str(tick_ms),
            "--phones-off-hook"]  # fmt: skip
    if baud:
        args += ["--baud", str(baud)]
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        with trio.fail_after(START_S):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                if not chunk:
                    raise RuntimeError(f"the simulator exited ({await proc.wait()})")
                line += chunk
        yield line.decode().split(" on ")[1].split()[0]
    finally:
        proc.kill()
        with trio.move_on_after(2.0, shield=True):
            await proc.wait()


@dataclass
class _Count:
    frames_in: int = 0
    concealed: int = 0


async def _talker(port: AdapterPort, count: _Count, frame: NDArray[np.int16]) -> None:
    async for received in port.frames:
        count.frames_in += 1
        count.concealed += received.concealed
        port.send_audio(frame)


async def load_run(name: str, ports: int, codec: Codec, speed: float, seconds: float,
                   baud: int | None = None) -> LoadResult:  # fmt: skip
    """Run `ports` calls over one link for `seconds` (after a warm-up) and measure."""
    frame = (np.random.default_rng(1).standard_normal(FRAME_SAMPLES) * 1000).astype(np.int16)
    settings = {i: PortSettings(codec=codec) for i in range(ports)}
    async with simulated_adapter(ports, codec, 20.0 / speed, baud) as path, \
            trio.open_nursery() as nursery:  # fmt: skip
        link = AdapterLink(path, settings=settings)
        with trio.fail_after(START_S):
            await nursery.start(link.run)
            for port in link.ports:
                while not isinstance(await port.events.receive(), PortReady):
                    pass
        counts = [_Count() for _ in link.ports]
        for port, count in zip(link.ports, counts, strict=True):
            nursery.start_soon(_talker, port, count, frame)
        await trio.sleep(WARMUP_S)
        before = _snapshot(link, counts)
        await trio.sleep(seconds)
        after = _snapshot(link, counts)
        nursery.cancel_scope.cancel()
    return _result(name, ports, codec, speed, before, after)


def _snapshot(link: AdapterLink, counts: list[_Count]) -> dict[str, float]:
    return {
        "in": sum(c.frames_in for c in counts),
        "concealed": sum(c.concealed for c in counts),
        "out": sum(p.stats.frames_out for p in link.ports),
        "refused": sum(p.stats.tx_dropped for p in link.ports),
        "cpu": time.process_time(),
        "wall": time.perf_counter(),
    }


def _result(name: str, ports: int, codec: Codec, speed: float, a: dict[str, float],
            b: dict[str, float]) -> LoadResult:  # fmt: skip
    d = {k: b[k] - a[k] for k in a}
    wall = d["wall"]
    cpu_pct = 100.0 * d["cpu"] / wall
    return LoadResult(
        name, ports, codec.value, speed, round(wall, 2),
        frames_in_per_s=d["in"] / wall, frames_out_per_s=d["out"] / wall,
        lost_in=d["concealed"] / max(d["in"], 1.0),
        lost_out=d["refused"] / max(d["out"] + d["refused"], 1.0),
        cpu_pct=cpu_pct, cpu_pct_per_port=cpu_pct / ports / speed,
    )  # fmt: skip


def design_rule(codec: Codec, baud: int = UART_BAUD) -> dict[str, float]:
    """Spec §10: the ports whose audio stays under 50 % of a UART at `baud`, from the size
    of an AUDIO frame at its largest (seq >= 256, timestamp >= 65536)."""
    payload = bytes(range(1, 256)) * 2
    msg = m.Audio(0, 300, 70000, codec, payload[: m.AUDIO_PAYLOAD_BYTES[codec]])
    wire = len(encode(msg))
    port_bytes_s = wire / FRAME_S
    capacity = baud / 10
    return {"frame_bytes": wire, "port_share": port_bytes_s / capacity,
            "ports": math.floor(0.5 * capacity / port_bytes_s)}  # fmt: skip


async def _sweep(codec: Codec, counts: list[int], seconds: float) -> list[LoadResult]:
    results = []
    for ports in counts:
        r = await load_run(f"921600 baud, {codec.value}", ports, codec, 1.0, seconds, UART_BAUD)
        results.append(r)
        if max(r.lost_in, r.lost_out) > 5 * LOSS_OK:
            break  # well past the limit: more ports only lose more
    return results


async def measure_link(quick: bool) -> dict[str, Any]:
    secs = 1.5 if quick else 4.0
    runs = [(4, Codec.ULAW, 4)] if quick else [
        (16, codec, speed) for codec in (Codec.ULAW, Codec.L16) for speed in SPEEDS]  # fmt: skip
    throughput = [await load_run("throughput", n, c, x, secs) for n, c, x in runs]
    sustained = max([r.frames_in_per_s + r.frames_out_per_s for r in throughput
                     if max(r.lost_in, r.lost_out) < LOSS_OK], default=0.0)  # fmt: skip
    cpu = await load_run("CPU at real time", 2 if quick else 8, Codec.ULAW, 1.0, secs)
    ulaw = await _sweep(Codec.ULAW, [5] if quick else [5, 7, 8, 9, 10, 11], secs)
    l16 = await _sweep(Codec.L16, [2] if quick else [2, 3, 4, 5, 6], secs)
    fits = {
        c.value: max([r.ports for r in rs if max(r.lost_in, r.lost_out) < LOSS_OK], default=0)
        for c, rs in ((Codec.ULAW, ulaw), (Codec.L16, l16))
    }
    return {
        "throughput": [asdict(r) for r in throughput],
        "sustained_frames_per_s": sustained,
        "cpu": asdict(cpu),
        "cpu_pct_per_port": cpu.cpu_pct_per_port,
        "baud_921600": [asdict(r) for r in ulaw + l16],
        "ports_at_921600": fits,
        "design_rule_921600": {c.value: design_rule(c) for c in (Codec.ULAW, Codec.L16)},
    }


def format_link(res: dict[str, Any]) -> str:
    rows = res["throughput"] + [res["cpu"]] + res["baud_921600"]
    headers = ["run", "ports", "codec", "speed", "frames/s in", "frames/s out", "lost in",
               "lost out", "CPU %", "CPU % per port at 1x"]  # fmt: skip
    body = [[r["name"], str(r["ports"]), r["codec"], f"{r['speed']:g}x",
             f"{r['frames_in_per_s']:.0f}", f"{r['frames_out_per_s']:.0f}",
             f"{100 * r['lost_in']:.2f}%", f"{100 * r['lost_out']:.2f}%",
             f"{r['cpu_pct']:.1f}", f"{r['cpu_pct_per_port']:.3f}"] for r in rows]  # fmt: skip
    rule = res["design_rule_921600"]
    fits = res["ports_at_921600"]
    lines = [
        "Link to a simulated tipring adapter over a pty (simulator in its own process)",
        format_table(headers, body),
        "",
        f"Ports at 921600 baud with < {100 * LOSS_OK:.1f} % of frames lost: "
        f"G.711 {fits['ulaw']}, L16 {fits['l16']} (measured above)",
        f"Design rule, audio under 50 % of the link (spec §10): G.711 {rule['ulaw']['ports']} "
        f"({rule['ulaw']['frame_bytes']} B per frame, {100 * rule['ulaw']['port_share']:.1f} % "
        f"per port), L16 {rule['l16']['ports']} ({rule['l16']['frame_bytes']} B, "
        f"{100 * rule['l16']['port_share']:.1f} %)",
        f"Host CPU per port at real time: {res['cpu_pct_per_port']:.3f} % of one core",
        f"Frames per second (both ways) sustained with < {100 * LOSS_OK:.1f} % lost: "
        f"{res['sustained_frames_per_s']:.0f}",
    ]
    return "\n".join(lines)


def run_bench_link(json_output: bool = False, quick: bool = False) -> int:
    res = trio.run(measure_link, quick)
    print(json.dumps(res, indent=2) if json_output else format_link(res))
    return 0
