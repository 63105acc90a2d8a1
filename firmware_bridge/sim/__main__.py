"""`python -m firmware_bridge.sim`: a simulated device on a pty, for a person or a test rig.

    python -m firmware_bridge.sim modem --profile cx93001 --link /tmp/tipring-modem \\
        --incoming-call 5551234567 --name "ALICE SMITH" --far-dtmf 123 --hang-up busy

prints the pty path (and the link), then serves until Ctrl-C: point picocom
(`picocom -b 115200 --imap lfcrlf /tmp/tipring-modem`, type `ATI3`) or tipring at it.
Each device is one subcommand: a function in `SUBCOMMANDS` adds its parser and sets `main`
(an async function of the parsed arguments): `adapter` (`sim.adapter_cli`) and `modem`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from dsp.callerid import CallerId
from firmware_bridge.port import PortKind
from firmware_bridge.sim.adapter_cli import add_adapter_command
from firmware_bridge.sim.line import HangUpMethod, LineModel
from firmware_bridge.sim.modem import ModemSimulator
from firmware_bridge.sim.modem_profiles import PROFILES

Subparsers = Any  # argparse._SubParsersAction is private
HANG_UPS: tuple[HangUpMethod, ...] = ("loop_drop", "polarity", "busy", "reorder", "dial_tone")
TX_LOG_FRAMES = 500  # a long-running line keeps only the last 10 s of what the host sent


def add_modem_command(subparsers: Subparsers) -> None:
    """The `modem` subcommand: a USB V.253 voice modem (FXO) in front of a simulated line."""
    p = subparsers.add_parser("modem", help="a USB V.253 voice modem in front of a line")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cx93001")
    p.add_argument("--link", help="keep this symlink pointing at the pty (as udev would)")
    p.add_argument("--incoming-call", metavar="NUMBER", help="ring us with this caller ID")
    p.add_argument("--name", help="the caller's name in the caller ID")
    p.add_argument("--after", type=float, default=2.0, help="seconds before the call rings")
    p.add_argument("--rings", type=int, default=6, help="rings before the caller gives up")
    p.add_argument("--far-dtmf", metavar="DIGITS", help="keys the caller presses once answered")
    p.add_argument("--hang-up", choices=HANG_UPS, help="how the caller leaves (after DTMF)")
    p.add_argument("--call-s", type=float, default=10.0, help="seconds before the caller leaves")
    p.add_argument("--fast", action="store_true", help="the test clock: 10x, lock-step streams")
    p.set_defaults(main=run_modem)


# Each device adds its subcommand here.
SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (add_adapter_command, add_modem_command)


async def run_modem(args: argparse.Namespace) -> None:
    """Serve one simulated modem until cancelled, ringing once if asked."""
    line = LineModel(PortKind.FXO, tx_log_frames=TX_LOG_FRAMES)
    sim = ModemSimulator(PROFILES[args.profile], line, link=args.link, fast=args.fast)
    async with trio.open_nursery() as nursery:
        path = await nursery.start(sim.run)
        link = f" (link {args.link})" if args.link else ""
        print(f"{args.profile} voice modem on {path}{link}", flush=True)
        if args.incoming_call:
            await trio.sleep(args.after)
            callerid = CallerId(args.incoming_call, args.name, time.strftime("%m%d%H%M"))
            line.incoming_call(callerid, rings=args.rings)
            line.silence(500.0)  # the far party's script waits for the answer
            if args.far_dtmf:
                line.press(args.far_dtmf)
            line.silence(args.call_s * 1000.0)
            line.hang_up(args.hang_up)
            print(f"ringing with caller ID {args.incoming_call}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.sim",
        description="Run a simulated tipring line device on a pseudo-terminal.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log protocol detail")
    subparsers = parser.add_subparsers(dest="device", required=True, metavar="DEVICE")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        trio.run(args.main, args)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
