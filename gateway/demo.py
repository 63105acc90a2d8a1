"""`tipring demo`: one whole call on this machine, on the real clock, and its report.

A simulated tipring adapter on a pty rings FXO port 0 with caller ID; the line actor answers
after 2 rings; the call pipeline talks to the bundled local realtime server (or the server at
`--realtime-url`); the scripted caller (`gateway.simcall_scenario`) hears the greeting out,
asks where their order is (the agent calls `lookup_order`, then answers at length), talks over
the answer (barge-in), hears the short reply out, presses 1, hears the goodbye and hangs up by
dropping the loop. About 22 s. Prints the report (`gateway.demo_report`; `--json`: one JSON
object) and writes both directions of the call as WAV files in `--out` (default ./demo-out).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import trio

from gateway.call_config import CallConfig
from gateway.demo_report import demo_report, format_report
from gateway.demo_scenarios import SCENARIOS, Scenario
from gateway.errors import GatewayError
from gateway.simcall import run_sim_calls
from gateway.simcall_scenario import (
    DEMO_SCRIPT,
    DEMO_SCRIPT_FILE,
    CallerVoice,
    ScriptedCaller,
    load_caller_voice,
)

DEFAULT_OUT = Path("demo-out")
DEMO_TIMEOUT_S = 55.0  # the call takes ~22 s; the issue holds the demo to under 60 s


def run_demo(json_output: bool = False, realtime_url: str = "", out_dir: str = "",
             scenario: str = "order") -> int:  # fmt: skip
    """Run the demo call (or `scenario`: `gateway.demo_scenarios`) and print its report; the
    exit status (0: the call ran to its end; 1: it did not; 2: the set-up is broken)."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    out = (Path(out_dir) if out_dir else DEFAULT_OUT).resolve()
    cache = os.environ.get("NUMBA_CACHE_DIR", "")  # `tipring` set it before numba was imported
    if cache and not any(Path(cache).glob("**/*.nbi")):
        print("tipring demo: compiling the DSP kernels for this machine (once; about a minute)",
              file=sys.stderr, flush=True)  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
        voice = load_caller_voice()
        if scenario == "order":
            report = trio.run(_demo, voice, realtime_url, out)
        else:
            report = trio.run(_scenario, SCENARIOS[scenario], voice, out)
    except (GatewayError, OSError) as exc:
        print(f"tipring demo: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if json_output else format_report(report))
    if realtime_url and not json_output:
        print(f"\n(the turns of this call, for a local server: tipring local-server --script "
              f"{DEMO_SCRIPT_FILE})")  # fmt: skip
    ends = SCENARIOS[scenario].ends if scenario in SCENARIOS else "caller hung up"
    ok = not report["timed_out"] and str(report["ended_by"]).startswith(ends)
    return 0 if ok else 1


async def _demo(voice: CallerVoice, realtime_url: str, out: Path) -> dict[str, object]:
    """`out` is absolute (resolved before the run: no blocking file system calls in it)."""
    result = await run_sim_calls(
        [ScriptedCaller.demo(voice)], script=DEMO_SCRIPT, realtime_url=realtime_url or None,
        config=CallConfig(capture_dir=out), timeout_s=DEMO_TIMEOUT_S, watch=True,
    )  # fmt: skip
    return demo_report(result, voice, str(out))


async def _scenario(scenario: Scenario, voice: CallerVoice, out: Path) -> dict[str, object]:
    result, facts = await scenario.run(voice, out)
    report = demo_report(result, voice, str(out))
    report["realtime_server"] = "bundled local"
    report["scenario"] = {"name": scenario.name, "summary": scenario.summary, "facts": facts}
    return report
