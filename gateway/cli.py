"""The `tipring` command line: parses arguments and hands each command to its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.numba_cache import configure_numba_cache


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tipring",
        description="tipring puts a cloud realtime voice agent on an analog telephone line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run the demo on this machine and print its report")
    demo.add_argument("--json", action="store_true", help="print the report as JSON")

    bench = commands.add_parser("bench", help="benchmarks of this box (tables; --json for JSON)")
    suites = bench.add_subparsers(dest="suite", metavar="SUITE", required=True)
    dsp = suites.add_parser("dsp", help="DSP kernels: throughput, us per frame, vs audioop/spandsp")
    dsp.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    dsp.add_argument(
        "--quick", action="store_true", help="fewer repetitions and a smaller battery (for tests)"
    )
    link = suites.add_parser("link", help="the adapter link over a pty: frames/s, ports, CPU")
    link.add_argument("--json", action="store_true", help="print one JSON object instead")
    link.add_argument("--quick", action="store_true", help="shorter runs, fewer ports")
    echo = suites.add_parser(
        "echo", help="echo cancellers on the G.168-style battery: tipring, speexdsp, spandsp"
    )
    echo.add_argument("--json", action="store_true", help="print one JSON object instead")
    echo.add_argument("--quick", action="store_true", help="a smaller battery (for tests)")
    vad = suites.add_parser("vad", help="the barge-in VAD: onset delay, false triggers, cost")
    vad.add_argument("--json", action="store_true", help="print one JSON object instead")
    vad.add_argument("--quick", action="store_true", help="a smaller battery (for tests)")
    realtime = suites.add_parser(
        "realtime", help="the realtime client: CPU per session and per 20 ms of audio both ways"
    )
    realtime.add_argument("--json", action="store_true", help="print one JSON object instead")
    realtime.add_argument("--quick", action="store_true", help="shorter runs, fewer sessions")

    local = commands.add_parser(
        "local-server", help="run the local realtime server (OpenAI GA schema) until Ctrl-C"
    )
    local.add_argument("--host", default="127.0.0.1", help="address to listen on")
    local.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    local.add_argument("--script", metavar="FILE", help="TOML or JSON script of turns and calls")

    check = commands.add_parser(
        "realtime-check", help="one short conversation with a realtime server: try a set-up"
    )
    check.add_argument("--provider", default="local", help="openai, azure, inworld or local")
    check.add_argument("--realtime-url", default="", metavar="URL",
                       help="the server's URL (wss://, or ws:// to loopback); default: the "
                       "provider's, or the bundled local server")  # fmt: skip
    check.add_argument("--model", default="", help="model (Azure: the deployment name)")
    check.add_argument("--api-key-file", default="", metavar="FILE", help="file holding the key")
    check.add_argument("--api-key-env", default="", metavar="VAR", help="variable holding the key")
    check.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `tipring` command; returns the process exit status."""
    args = _build_parser().parse_args(argv)
    configure_numba_cache()  # before anything imports numba
    match args.command:
        case "demo":
            from gateway.demo import run_demo

            return run_demo(json_output=args.json)
        case "bench" if args.suite == "echo":
            from gateway.bench.echo import run_bench_echo

            return run_bench_echo(json_output=args.json, quick=args.quick)
        case "bench" if args.suite == "vad":
            from gateway.bench.vad import run_bench_vad

            return run_bench_vad(json_output=args.json, quick=args.quick)
        case "bench" if args.suite == "realtime":
            from gateway.bench.realtime import run_bench_realtime

            return run_bench_realtime(json_output=args.json, quick=args.quick)
        case "realtime-check":
            from gateway.realtime_check import run_realtime_check

            return run_realtime_check(args.provider, args.realtime_url, args.model,
                                      args.api_key_file, args.api_key_env, args.json)  # fmt: skip
        case "local-server":
            from gateway.realtime.local.cli import run_local_server

            return run_local_server(args.host, args.port, args.script)
        case "bench" if args.suite == "link":
            from gateway.bench.link import run_bench_link

            return run_bench_link(json_output=args.json, quick=args.quick)
        case "bench":
            from gateway.bench.dsp import run_bench_dsp

            return run_bench_dsp(json_output=args.json, quick=args.quick)
    print(f"tipring: unknown command {args.command!r}", file=sys.stderr)
    return 2
