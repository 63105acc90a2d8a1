"""`tipring bench realtime` as a user runs it: a real subprocess (which starts the local realtime
server in another), its JSON and exit status. No timing thresholds: sane values only."""

import json
import subprocess
import sys

COMMAND = [sys.executable, "-m", "gateway", "bench", "realtime"]
RUN_KEYS = {
    "sessions", "seconds", "cpu_pct", "baseline_pct", "cpu_pct_per_session", "frames_up_per_s",
    "frames_down_per_s", "us_per_20ms", "turns", "reconnects", "frames_lost", "audio_dropped",
    "server_cpu_pct",
}  # fmt: skip
MICRO_KEYS = {"append_40ms_pcmu", "append_40ms_pcm24k", "delta_100ms_pcmu", "delta_100ms_pcm24k"}


def test_bench_realtime_json_reports_cpu_per_session_and_per_20_ms() -> None:
    done = subprocess.run([*COMMAND, "--quick", "--json"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"quick", "cpu_count", "server", "runs", "micro"}
    assert report["quick"] is True
    assert report["cpu_count"] >= 1
    assert [run["sessions"] for run in report["runs"]] == [1, 4]
    for run in report["runs"]:
        assert set(run) == RUN_KEYS
        n = run["sessions"]
        assert run["seconds"] > 0
        assert 0 < run["cpu_pct"] <= 100 * report["cpu_count"]
        assert run["baseline_pct"] >= 0
        # caller audio at real time: ~50 frames/s per session (a loaded box may lose a few)
        assert 25 * n <= run["frames_up_per_s"] <= 60 * n, run
        assert run["frames_down_per_s"] > 0  # replies came back
        assert run["turns"] >= 1
        assert run["reconnects"] == 0
        assert run["us_per_20ms"] >= 0
        assert run["server_cpu_pct"] is None or run["server_cpu_pct"] >= 0
    assert set(report["micro"]) == MICRO_KEYS
    for key, row in report["micro"].items():
        assert set(row) == {"label", "us_per_event", "us_per_20ms"}
        frames = 2 if key.startswith("append") else 5
        assert row["us_per_event"] > 0
        assert abs(row["us_per_20ms"] * frames - row["us_per_event"]) < 1e-6 * row["us_per_event"]
