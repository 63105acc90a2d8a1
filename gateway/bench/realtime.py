"""`tipring bench realtime`: what the realtime client costs on this box.

The local realtime server runs in its own process (`tipring local-server --port 0`), so its CPU
is not counted (it is reported beside, from /proc, to show whether it kept up); this process
runs N `RealtimeSession`s (1, 4, 8) against it, each fed caller audio at real time (20 ms
frames: a spoken prompt, then silence, again and again), so the server's VAD takes turns and
streams replies back at its usual 4x real time. Measured over a window after a warm-up: this
process's CPU time, minus a baseline run of the same talkers feeding a sink that drops the
frames (the line's clock is the call's cost, not the client's), per session in % of one core
and per 20 ms of audio moved either way (G.711, base64, JSON, websocket). A micro table gives
the per-event costs of the two hot paths alone, also per 20 ms of audio.
Nothing here asserts: it reports. `--quick` runs shorter, with fewer sessions. `--json` prints
one object: `quick`, `cpu_count`, `server`, `runs` (one `LoadResult` each, keys as below) and
`micro` (by stable key: `label`, `us_per_event`, `us_per_20ms`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.frame import FRAME_S, FRAME_SAMPLES
from dsp.g711 import ulaw_decode
from gateway.bench.timing import format_table, median_ns_per_call
from gateway.realtime import (
    AgentAudio,
    RealtimeEvent,
    RealtimeSession,
    RealtimeSettings,
    ResponseDone,
)
from gateway.realtime import client_events as ce
from gateway.realtime.audio import DownlinkDecoder, UplinkEncoder, decode_base64
from gateway.realtime.events import AudioDelta, parse
from gateway.realtime.local.prompts import Prompts

START_S = 20.0  # the server process up (imports numpy and numba kernels on a cold cache)
WARMUP_S = 1.0
SPEECH_S = 1.2  # each caller utterance: the start of a prompt
SILENCE_S = 2.5  # then the VAD's 500 ms and the reply (~3 s, streamed in ~0.8 s) plays
EVENTS_BUFFER = 512  # the drain task below keeps it near empty; a reply bursts ~40 events


SESSIONS = (1, 4, 8)  # a box serves 1-4 lines; 8 shows how the cost scales past that
QUICK_SESSIONS = (1, 4)
TALKER_BUFFER = 8  # caller frames waiting for a session's uplink: 160 ms


@dataclass
class LoadResult:
    sessions: int
    seconds: float
    cpu_pct: float  # of one core, this process
    baseline_pct: float  # the same talkers into a sink, no sessions
    cpu_pct_per_session: float  # (cpu_pct - baseline_pct) / sessions
    frames_up_per_s: float  # 20 ms caller frames sent, all sessions
    frames_down_per_s: float  # 20 ms of agent audio received, all sessions
    us_per_20ms: float  # the sessions' CPU per 20 ms of audio moved either way
    turns: int  # agent replies received (responses done)
    reconnects: int
    frames_lost: int  # caller frames a session's uplink had no room for (line clock kept)
    audio_dropped: int  # agent deltas the sessions dropped (our listener too slow)
    server_cpu_pct: float | None  # the server process, of one core (None without /proc)


async def _server_process() -> tuple[trio.Process, str]:
    args = [sys.executable, "-m", "gateway", "local-server", "--port", "0"]
    proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    line = b""
    with trio.fail_after(START_S):
        while not line.endswith(b"\n"):
            chunk = await proc.stdout.receive_some(1)
            if not chunk:
                raise RuntimeError(f"the local server exited ({await proc.wait()})")
            line += chunk
    return proc, line.decode().rsplit(" ", 1)[1].strip()


def _server_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (Linux /proc), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass
class _Count:
    down_samples: int = 0
    turns: int = 0
    lost: int = 0  # caller frames the session did not take in time


async def _talker(frames_send: trio.MemorySendChannel[NDArray[np.int16]],
                  speech: NDArray[np.int16], count: _Count) -> None:  # fmt: skip
    """The line: one frame per 20 ms at real time, never waiting for the session."""
    silence = np.zeros(int(SILENCE_S / FRAME_S) * FRAME_SAMPLES, np.int16)
    loop = np.concatenate([speech[: int(SPEECH_S / FRAME_S) * FRAME_SAMPLES], silence])
    frames = loop.reshape(-1, FRAME_SAMPLES)
    tick = trio.current_time()
    async with frames_send:
        for i in range(1 << 62):
            tick += FRAME_S
            await trio.sleep_until(tick)
            try:
                frames_send.send_nowait(frames[i % len(frames)].copy())
            except trio.WouldBlock:
                count.lost += 1


async def _listener(events_recv: trio.MemoryReceiveChannel[RealtimeEvent], count: _Count) -> None:
    async for event in events_recv:
        if isinstance(event, AgentAudio):
            count.down_samples += event.pcm.size
        elif isinstance(event, ResponseDone):
            count.turns += 1


async def _sink(frames_recv: trio.MemoryReceiveChannel[NDArray[np.int16]]) -> None:
    async for _ in frames_recv:
        pass


async def baseline_pct(sessions: int, seconds: float, speech: NDArray[np.int16]) -> float:
    """CPU % of `sessions` talkers whose frames go nowhere: the harness's own share."""
    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](TALKER_BUFFER)
            nursery.start_soon(_sink, frames_recv)
            nursery.start_soon(_talker, frames_send, speech, _Count())
        await trio.sleep(WARMUP_S / 2)
        cpu, wall = time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        pct = 100.0 * (time.process_time() - cpu) / (time.perf_counter() - wall)
        nursery.cancel_scope.cancel()
    return pct


async def load_run(url: str, server_pid: int, sessions: int, seconds: float,
                   speech: NDArray[np.int16]) -> LoadResult:  # fmt: skip
    """`sessions` sessions talking for `seconds` (after `WARMUP_S`), then the baseline."""
    settings = RealtimeSettings(provider="local", url=f"{url}?model=bench")
    runs: list[tuple[RealtimeSession, _Count]] = []
    async with trio.open_nursery() as nursery:
        for k in range(sessions):
            frames_send, frames_recv = trio.open_memory_channel[NDArray[np.int16]](TALKER_BUFFER)
            events_send, events_recv = trio.open_memory_channel[RealtimeEvent](EVENTS_BUFFER)
            session = RealtimeSession(settings, None, frames_recv, events_send)
            count = _Count()
            await nursery.start(session.run)
            nursery.start_soon(_listener, events_recv, count)
            offset = k * FRAME_SAMPLES * 7 % speech.size  # sessions not in lock step
            nursery.start_soon(_talker, frames_send, np.roll(speech, offset), count)
            runs.append((session, count))
        await trio.sleep(WARMUP_S)
        before = _snapshot(runs, server_pid)
        await trio.sleep(seconds)
        after = _snapshot(runs, server_pid)
        nursery.cancel_scope.cancel()
    base = await baseline_pct(sessions, seconds / 2, speech)
    return _result(sessions, base, before, after)


def _snapshot(runs: list[tuple[RealtimeSession, _Count]], server_pid: int) -> dict[str, float]:
    server_s = _server_cpu_s(server_pid)
    return {
        "up": sum(s.stats.frames_sent for s, _ in runs),
        "down": sum(c.down_samples for _, c in runs) / FRAME_SAMPLES,
        "turns": sum(c.turns for _, c in runs),
        "connects": sum(s.stats.connects for s, _ in runs),
        "lost": sum(c.lost for _, c in runs),
        "dropped": sum(s.stats.audio_dropped for s, _ in runs),
        "server": math.nan if server_s is None else server_s,
        "cpu": time.process_time(),
        "wall": time.perf_counter(),
    }


def _result(sessions: int, base_pct: float, a: dict[str, float], b: dict[str, float]) -> (
    LoadResult
):  # fmt: skip
    d = {k: b[k] - a[k] for k in a}
    wall = d["wall"]
    cpu_pct = 100.0 * d["cpu"] / wall
    client_s = max(0.0, cpu_pct - base_pct) / 100.0 * wall
    moved = d["up"] + d["down"]
    server = None if math.isnan(d["server"]) else 100.0 * d["server"] / wall
    return LoadResult(
        sessions, round(wall, 2), cpu_pct, base_pct, (cpu_pct - base_pct) / sessions,
        d["up"] / wall, d["down"] / wall, 1e6 * client_s / moved if moved else 0.0,
        int(d["turns"]), int(d["connects"]), int(d["lost"]), int(d["dropped"]), server,
    )  # fmt: skip


# key: (label, 20 ms frames per event)
MICRO: dict[str, tuple[str, int]] = {
    "append_40ms_pcmu": ("append 40 ms pcmu (encode, base64, JSON)", 2),
    "append_40ms_pcm24k": ("append 40 ms pcm 24 kHz (resample, base64, JSON)", 2),
    "delta_100ms_pcmu": ("delta 100 ms pcmu (JSON, base64, decode)", 5),
    "delta_100ms_pcm24k": ("delta 100 ms pcm 24 kHz (JSON, base64, resample)", 5),
}


def micro_costs(speech: NDArray[np.int16], calls: int) -> dict[str, dict[str, Any]]:
    """us per event of the hot paths alone (and per 20 ms of audio): one 40 ms append built
    and serialised; one 100 ms delta parsed and decoded; in mu-law and in 24 kHz PCM."""
    pcm40 = speech[: 2 * FRAME_SAMPLES].copy()
    ulaw, pcm24 = UplinkEncoder("audio/pcmu"), UplinkEncoder("audio/pcm")
    delta = _delta_event(UplinkEncoder("audio/pcmu").encode(speech[:800]))
    delta24 = _delta_event(UplinkEncoder("audio/pcm").encode(speech[:800]))

    def down(raw: str, decoder: DownlinkDecoder) -> None:
        event = parse(raw)
        assert isinstance(event, AudioDelta)
        decoder.decode("i", decode_base64(event.delta, "bench"))

    decoders = (DownlinkDecoder("audio/pcmu"), DownlinkDecoder("audio/pcm"))
    costs = {
        "append_40ms_pcmu": lambda: json.dumps(ce.input_audio_append(ulaw.encode(pcm40))),
        "append_40ms_pcm24k": lambda: json.dumps(ce.input_audio_append(pcm24.encode(pcm40))),
        "delta_100ms_pcmu": lambda: down(delta, decoders[0]),
        "delta_100ms_pcm24k": lambda: down(delta24, decoders[1]),
    }
    out: dict[str, dict[str, Any]] = {}
    for key, fn in costs.items():
        label, frames = MICRO[key]
        us = median_ns_per_call(fn, calls) / 1000
        out[key] = {"label": label, "us_per_event": us, "us_per_20ms": us / frames}
    return out


def _delta_event(audio_b64: str) -> str:
    return json.dumps({"type": "response.output_audio.delta", "event_id": "e",
                       "response_id": "r", "item_id": "i", "output_index": 0,
                       "content_index": 0, "delta": audio_b64})  # fmt: skip


async def measure_realtime(quick: bool) -> dict[str, Any]:
    prompts = Prompts.load()
    speech = ulaw_decode(np.frombuffer(prompts.ulaw["order_shipped"], np.uint8))
    counts, seconds = (QUICK_SESSIONS, 2.0) if quick else (SESSIONS, 10.0)
    proc, url = await _server_process()
    try:
        runs = [await load_run(url, proc.pid, n, seconds, speech) for n in counts]
    finally:
        proc.kill()
        with trio.move_on_after(2.0, shield=True):
            await proc.wait()
    return {
        "quick": quick,
        "cpu_count": os.cpu_count(),
        "server": "subprocess (tipring local-server): its CPU is not counted",
        "runs": [asdict(r) for r in runs],
        "micro": micro_costs(speech, 200 if quick else 2000),
    }


def format_realtime(res: dict[str, Any]) -> str:
    headers = ["sessions", "seconds", "CPU %", "baseline %", "CPU % per session",
               "frames up/s", "frames down/s", "us per 20 ms", "replies", "reconnects",
               "lost up", "server CPU %"]  # fmt: skip
    body = [[str(r["sessions"]), f"{r['seconds']:.1f}", f"{r['cpu_pct']:.2f}",
             f"{r['baseline_pct']:.2f}", f"{r['cpu_pct_per_session']:.3f}",
             f"{r['frames_up_per_s']:.0f}", f"{r['frames_down_per_s']:.0f}",
             f"{r['us_per_20ms']:.1f}", str(r["turns"]), str(r["reconnects"]),
             str(r["frames_lost"]),
             "-" if r["server_cpu_pct"] is None else f"{r['server_cpu_pct']:.1f}"]
            for r in res["runs"]]  # fmt: skip
    micro = [[m["label"], f"{m['us_per_event']:.2f}", f"{m['us_per_20ms']:.2f}"]
             for m in res["micro"].values()]  # fmt: skip
    return "\n".join([
        f"Realtime client against the local realtime server ({res['cpu_count']} CPUs; server "
        "in its own process,",
        "its CPU not counted; caller audio at real time, replies streamed at 4x; CPU of this",
        "process minus the baseline of the same talkers into a sink is the sessions' share;",
        "us per 20 ms: that share per 20 ms of audio moved, up and down together)",
        format_table(headers, body), "",
        "Hot paths alone (median us)",
        format_table(["event", "us per event", "us per 20 ms"], micro),
    ])  # fmt: skip


def run_bench_realtime(json_output: bool = False, quick: bool = False) -> int:
    """`tipring bench realtime`: print the table (or one JSON object); the exit status."""
    res = trio.run(measure_realtime, quick)
    print(json.dumps(res, indent=2) if json_output else format_realtime(res))
    return 0
