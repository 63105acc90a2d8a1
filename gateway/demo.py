"""`tipring demo`: for now, the DSP benchmark; the full simulated call arrives with issue #6.

The call pipeline (simulated adapter on a pty, local realtime server, scripted caller) does
not exist yet, so the demo says so and runs `tipring bench dsp`, which exercises every DSP
kernel the call will use and compares them with audioop and spandsp.
"""

from __future__ import annotations

from gateway.bench.dsp import run_bench_dsp

NOT_YET = (
    "tipring demo: the full simulated call (adapter on a pty, local realtime server, scripted\n"
    "caller) is not built yet; it comes with the call pipeline (issue #6). Until then the demo\n"
    "runs `tipring bench dsp`: the telephony DSP core that every call runs through.\n"
)


def run_demo(json_output: bool = False) -> int:
    """Run the demo; returns the exit status."""
    if not json_output:
        print(NOT_YET)
    return run_bench_dsp(json_output=json_output, quick=True)
