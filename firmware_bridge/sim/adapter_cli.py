"""`python -m firmware_bridge.sim adapter`: a simulated tipring adapter on a pty, on its own.

    python -m firmware_bridge.sim adapter --fxo 1 --fxs 1 --link /tmp/tipring-adapter \\
        --incoming-call 5551234567 --name "ALICE SMITH" --far-dtmf 123 --hang-up busy

prints the pty path (and the link), then serves until Ctrl-C: point `tipring` (or
`AdapterLink`) at it. `--phones-off-hook` picks every FXS phone up at once and has it talk
(noise at a speech level) for as long as the simulator runs: what `tipring bench link` uses
to load the link. `--baud` caps the bytes to a UART's rate; `--corrupt` / `--drop` damage
bytes both ways.
"""

from __future__ import annotations

import argparse
import time
import wave
from typing import Any

import numpy as np
import trio
from numpy.typing import NDArray

from dsp.callerid import CallerId
from dsp.frame import RATE_HZ
from dsp.levels import dbm0_to_rms
from firmware_bridge.port import Codec, PortKind
from firmware_bridge.sim.adapter import DEFAULT_CODECS, AdapterSimulator
from firmware_bridge.sim.faults import Faults
from firmware_bridge.sim.line import LineModel

Subparsers = Any  # argparse._SubParsersAction is private
HANG_UPS = ("loop_drop", "polarity", "busy", "reorder", "dial_tone")
TX_LOG_FRAMES = 500  # a long-running line keeps only the last 10 s of what the host sent
TALK_CHUNK_S = 5.0  # a talking phone's script is topped up this much at a time
TALK_DBM0 = -20.0


def add_adapter_command(subparsers: Subparsers) -> None:
    """The `adapter` subcommand: a tipring adapter with FXO and FXS ports."""
    p = subparsers.add_parser("adapter", help="a tipring adapter (FXO and FXS ports)")
    p.add_argument("--fxo", type=int, default=1, help="FXO ports (PSTN lines), first")
    p.add_argument("--fxs", type=int, default=1, help="FXS ports (phones), after the FXO ones")
    p.add_argument("--codec", choices=[c.value for c in Codec], help="every port's only codec")
    p.add_argument("--link", help="keep this symlink pointing at the pty (as udev would)")
    p.add_argument("--tick-ms", type=float, default=20.0, help="ms between 20 ms line frames")
    p.add_argument("--baud", type=int, help="cap the bytes to this UART rate (8N1), both ways")
    p.add_argument("--corrupt", type=float, default=0.0, help="per-byte bit-flip probability")
    p.add_argument("--drop", type=float, default=0.0, help="per-byte loss probability")
    p.add_argument("--phones-off-hook", action="store_true", help="FXS phones up and talking")
    p.add_argument("--incoming-call", metavar="NUMBER", help="ring FXO port 0 with this number")
    p.add_argument("--name", help="the caller's name in the caller ID")
    p.add_argument("--after", type=float, default=2.0, help="seconds before the call rings")
    p.add_argument("--rings", type=int, default=6, help="rings before the caller gives up")
    p.add_argument("--far-audio", metavar="WAV", help="what the caller says once answered "
                   "(8 kHz mono 16-bit WAV)")  # fmt: skip
    p.add_argument("--far-dtmf", metavar="DIGITS", help="keys the caller presses once answered")
    p.add_argument("--hang-up", choices=HANG_UPS, help="how the caller leaves")
    p.add_argument("--call-s", type=float, default=10.0, help="seconds before the caller leaves")
    p.set_defaults(main=run_adapter)


def read_wav(path: str) -> NDArray[np.int16]:
    """The samples of an 8 kHz mono 16-bit WAV file; SystemExit naming what is wrong."""
    try:
        with wave.open(path, "rb") as w:
            shape = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            if shape != (RATE_HZ, 1, 2):
                raise SystemExit(f"{path}: want 8000 Hz mono 16-bit, got {shape[0]} Hz "
                                 f"{shape[1]} channel(s) {8 * shape[2]}-bit")  # fmt: skip
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise SystemExit(f"{path}: cannot read it as a WAV file: {exc}") from exc
    return np.frombuffer(data, "<i2").astype(np.int16)


def _check(args: argparse.Namespace) -> None:
    if args.fxo < 0 or args.fxs < 0 or not 1 <= args.fxo + args.fxs <= 16:
        raise SystemExit(f"adapter: want 1..16 ports, got --fxo {args.fxo} --fxs {args.fxs}")
    if args.incoming_call and args.fxo < 1:
        raise SystemExit("adapter: --incoming-call needs an FXO port (--fxo 1)")
    if args.tick_ms <= 0:
        raise SystemExit(f"adapter: --tick-ms {args.tick_ms} must be > 0")


async def run_adapter(args: argparse.Namespace) -> None:
    """Serve one simulated adapter until cancelled."""
    _check(args)
    if args.far_audio:
        read_wav(args.far_audio)  # a bad file fails now, not when the call is answered
    kinds = [PortKind.FXO] * args.fxo + [PortKind.FXS] * args.fxs
    lines = [LineModel(k, port=i, tx_log_frames=TX_LOG_FRAMES) for i, k in enumerate(kinds)]
    codecs = [(Codec(args.codec),) if args.codec else DEFAULT_CODECS] * len(lines)
    faults = Faults(corrupt_rate=args.corrupt, drop_rate=args.drop)
    sim = AdapterSimulator(lines, codecs=codecs, link=args.link, tick_s=args.tick_ms / 1000.0,
                           baud=args.baud, faults=faults)  # fmt: skip
    async with trio.open_nursery() as nursery:
        path = await nursery.start(sim.run)
        link = f" (link {args.link})" if args.link else ""
        names = " ".join(k.value for k in kinds)
        print(f"tipring adapter ({len(kinds)} ports: {names}) on {path}{link}", flush=True)
        if args.phones_off_hook:
            for line in lines[args.fxo :]:
                line.phone_off_hook()
                nursery.start_soon(_talk, line, 20.0 / args.tick_ms)
        if args.incoming_call:
            await trio.sleep(args.after)
            _incoming_call(lines[0], args)
            print(f"ringing port 0 with caller ID {args.incoming_call}", flush=True)


def _incoming_call(line: LineModel, args: argparse.Namespace) -> None:
    callerid = CallerId(args.incoming_call, args.name, time.strftime("%m%d%H%M"))
    line.incoming_call(callerid, rings=args.rings)
    line.silence(500.0)  # the far party's script waits for the answer
    if args.far_audio:
        line.play(read_wav(args.far_audio))
    if args.far_dtmf:
        line.press(args.far_dtmf)
    line.silence(args.call_s * 1000.0)
    line.hang_up(args.hang_up)


async def _talk(line: LineModel, speed: float) -> None:
    """Keep an off-hook phone talking: noise at a speech level, topped up as it plays (the
    lines run `speed` times real time)."""
    rng = np.random.default_rng(line.port)
    size = round(TALK_CHUNK_S * RATE_HZ)
    while True:
        if line.script_empty:
            x = rng.standard_normal(size) * dbm0_to_rms(TALK_DBM0)
            line.play(np.clip(np.round(x), -32768, 32767).astype(np.int16))
        await trio.sleep(TALK_CHUNK_S / speed / 4)
