"""`tipring bench calls` as a user runs it: a real subprocess with its own two children (the
simulated adapter with its callers, the local realtime server). A short run (the callers hang
up after the greeting, ~13 s): the JSON keys the issue names, and figures that were measured.
Timings are not asserted (benchmarks report)."""

from __future__ import annotations

import json
import subprocess
import sys

BENCH_KEYS = {"lines", "seconds", "cpu_percent_per_line", "frames_late",
              "added_latency_ms_p99", "barge_in_stop_ms_p95"}  # fmt: skip


def test_bench_calls_json_measures_every_line_of_a_short_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "calls", "--lines", "2", "--seconds", "2",
         "--json"],
        capture_output=True, text=True, timeout=300,  # 15 s; a cold numba cache: minutes
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    print({k: report[k] for k in sorted(BENCH_KEYS)}, report["far_end"])
    assert set(report) >= BENCH_KEYS
    assert (report["lines"], report["seconds"]) == (2, 2.0)
    assert report["calls_completed"] == report["calls_ended_by_caller"] == 2
    assert report["far_end"]["answered"] == 2
    assert report["cpu_percent_per_line"] > 0.0
    assert report["sim_cpu_percent"] > 0.0
    assert report["server_cpu_percent"] > 0.0
    assert report["frames"] > 2 * 4 * 50  # both calls lasted the greeting (~4.5 s)
    assert report["added_latency_ms_p99"] > 0.0
    assert report["far_end"]["barge_ins"] == 0  # the callers hung up after the greeting
