"""The `tipring` command line: parses arguments and hands each command to its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.numba_cache import configure_numba_cache

# gateway.demo_scenarios's names (that module imports numba: not here)
SCENARIO_NAMES = ("pre-answer", "greeting", "pin", "fax", "wan-down")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tipring",
        description="tipring puts a cloud realtime voice agent on an analog telephone line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="one simulated call (adapter, line, agent, caller) and its report"
    )
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.add_argument("--scenario", default="order", choices=("order", *SCENARIO_NAMES),
                      help="which call: order (the default), or an edge feature: pre-answer, "
                      "greeting (slow cloud), pin (sensitive digits), fax, wan-down")  # fmt: skip
    demo.add_argument("--realtime-url", default="", metavar="URL",
                      help="the realtime server to talk to (OpenAI GA schema; ws:// to "
                      "loopback, else wss://); default: the bundled local server")  # fmt: skip
    demo.add_argument(
        "--out",
        default="",
        metavar="DIR",
        help="where the call's WAV files go (default ./demo-out)",
    )

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

    calls = suites.add_parser(
        "calls", help="N simultaneous simulated calls in real time: CPU per line, late frames"
    )
    calls.add_argument("--lines", type=int, default=8, help="simultaneous calls (1-16)")
    calls.add_argument("--seconds", type=float, default=25.0, help="how long to measure")
    calls.add_argument("--stagger-ms", type=float, default=250.0,
                       help="ms between the calls' first rings (0: all at once)")  # fmt: skip
    calls.add_argument("--json", action="store_true", help="print one JSON object instead")

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
    run = commands.add_parser("run", help="run the appliance (what the systemd unit starts)")
    run.add_argument("--config", default="/etc/tipring/tipring.toml", metavar="PATH",
                     help="the config file")  # fmt: skip
    check_app = commands.add_parser(
        "check", help="check the config, probe the adapter, connect to the cloud: OK/FAIL list"
    )
    check_app.add_argument("--config", default="/etc/tipring/tipring.toml", metavar="PATH",
                           help="the config file")  # fmt: skip
    check_app.add_argument("--json", action="store_true", help="print one JSON object instead")
    commands.add_parser("warmup", help="compile the DSP kernels into numba's cache (installer)")
    passwd = commands.add_parser("passwd", help="set the serial console's password")
    passwd.add_argument("--config", default="/etc/tipring/tipring.toml", metavar="PATH",
                        help="the config file to write the hash to")  # fmt: skip
    _add_calls_parser(commands)
    return parser


def _add_calls_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.store_export import DEFAULT_DB, parse_since

    calls = commands.add_parser("calls", help="the call records: a table, --json or --csv")
    calls.add_argument("--db", type=Path, default=DEFAULT_DB, metavar="PATH",
                       help=f"the call database (default {DEFAULT_DB})")  # fmt: skip
    form = calls.add_mutually_exclusive_group()
    calls.set_defaults(format="table")
    form.add_argument("--json", dest="format", action="store_const", const="json",
                      help="every call with its transcript, as JSON")  # fmt: skip
    form.add_argument("--csv", dest="format", action="store_const", const="csv",
                      help="one row per call, as CSV")  # fmt: skip
    calls.add_argument("--limit", type=int, default=None, metavar="N",
                       help="the latest N calls (default: 20 in a table, else all)")  # fmt: skip
    calls.add_argument("--since", type=parse_since, default=None, metavar="DATE",
                       help="calls from DATE on (YYYY-MM-DD or ISO 8601, local time)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `tipring` command; returns the process exit status."""
    args = _build_parser().parse_args(argv)
    configure_numba_cache()  # before anything imports numba
    match args.command:
        case "demo":
            from gateway.demo import run_demo

            return run_demo(json_output=args.json, realtime_url=args.realtime_url, out_dir=args.out,
                            scenario=args.scenario)  # fmt: skip
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
        case "calls":
            from gateway.store_export import run_calls

            return run_calls(args.db, args.format, args.limit, args.since)
        case "run":
            from gateway.app_run import run_app

            return run_app(args.config)
        case "check":
            from gateway.app_check import run_check

            return run_check(args.config, args.json)
        case "warmup":
            from gateway.app_run import warmup

            return warmup()
        case "passwd":
            from gateway.console_passwd import run_passwd

            return run_passwd(args.config)
        case "local-server":
            from gateway.realtime.local.cli import run_local_server

            return run_local_server(args.host, args.port, args.script)
        case "bench" if args.suite == "calls":
            from gateway.bench.calls import run_bench_calls

            return run_bench_calls(
                args.lines, args.seconds, json_output=args.json, stagger_ms=args.stagger_ms
            )
        case "bench" if args.suite == "link":
            from gateway.bench.link import run_bench_link

            return run_bench_link(json_output=args.json, quick=args.quick)
        case "bench":
            from gateway.bench.dsp import run_bench_dsp

            return run_bench_dsp(json_output=args.json, quick=args.quick)
    print(f"tipring: unknown command {args.command!r}", file=sys.stderr)
    return 2
