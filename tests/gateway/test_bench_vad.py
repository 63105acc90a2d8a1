"""`tipring bench vad` as a user runs it: a real subprocess, its JSON and exit status."""

import json
import subprocess
import sys

COMMAND = [sys.executable, "-m", "gateway", "bench", "vad"]
ONSET_KEYS = {
    "onsets", "median_ms", "p95_ms", "max_ms", "misses", "strict_median_ms", "strict_p95_ms",
    "false_triggers_between", "by_stream",
}  # fmt: skip


def test_bench_vad_json_reports_onsets_false_triggers_and_cost_in_one_run() -> None:
    done = subprocess.run([*COMMAND, "--quick", "--json"], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["quick"] is True
    onset = report["onset"]
    assert [k for k in onset if k.endswith(" dBm0")] == [
        "-40 dBm0", "-35 dBm0", "-30 dBm0", "-25 dBm0", "-20 dBm0", "-15 dBm0",
    ]  # fmt: skip
    assert any("over the agent" in k for k in onset)
    for row in onset.values():
        assert set(row) == ONSET_KEYS
        assert row["onsets"] > 0
        assert 0 <= row["misses"] <= row["onsets"]
        for key in ("median_ms", "p95_ms", "max_ms"):  # "inf" where misses reach the percentile
            assert row[key] == "inf" or -1000.0 <= row[key] <= 100.0, (key, row[key])
    rows = report["false_triggers"]
    assert report["false_triggers_per_min"] == {k: r["per_min"] for k, r in rows.items()}
    for name in ("residual echo (stand-in)", "dial tone", "busy tone", "DTMF keys at -25 dBm0",
                 "line noise, white -65 dBm0", "hum 60+120+180 Hz (-20 dBm0)"):  # fmt: skip
        assert rows[name]["minutes"] > 0
        assert rows[name]["triggers"] >= 0
    assert report["us_per_frame"] > 0
    assert report["us_per_frame_with_far"] > 0
