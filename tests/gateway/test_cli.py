"""The `tipring` command as a user runs it: a real subprocess, its output and exit status."""

import json
import subprocess
import sys

COMMAND = [sys.executable, "-m", "gateway"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=600)


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("demo", "bench"):
        assert f"    {command} " in done.stdout


def test_unknown_command_is_an_error_naming_it() -> None:
    done = run("dance")
    assert done.returncode == 2
    assert "invalid choice: 'dance'" in done.stderr


def test_bench_dsp_json_has_every_part_measured_in_one_run() -> None:
    done = run("bench", "dsp", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kernels = {row["kernel"] for row in report["streaming"]}
    assert {
        "DtmfDetector.feed",
        "ToneDetector.feed (us)",
        "CallerIdDecoder.feed (bell202)",
        "Resampler 8k->24k",
        "Resampler 24k->8k",
        "Concealer.lost",
        "LevelMeter.process",
    } <= kernels
    assert all(row["us_per_frame"] > 0 and row["msamples_per_s"] > 0 for row in report["streaming"])
    assert [row["op"] for row in report["g711"]] == [
        "ulaw_encode",
        "alaw_encode",
        "ulaw_decode",
        "alaw_decode",
    ]
    assert all(row["audioop_msps"] > 0 for row in report["g711"])
    # The spandsp comparison ran (make test installs libspandsp2) and ours passed every check.
    assert "error" not in report["spandsp"], report["spandsp"]
    assert report["spandsp"]["tipring_passed"] == report["spandsp"]["checks"]
    assert set(report["spandsp"]["us_per_frame"]) == {
        "DtmfDetector.feed",
        "ToneDetector.feed (us)",
        "CallerIdDecoder.feed (bell202)",
    }
    assert "error" not in report["plc"], report["plc"]
    assert len(report["plc"]["rows"]) == 5


def test_bench_link_json_measures_throughput_cpu_and_ports_at_921600_in_one_run() -> None:
    done = run("bench", "link", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    runs = report["throughput"] + [report["cpu"]] + report["baud_921600"]
    # every run moved audio both ways over the pty, through a simulator in its own process
    assert all(r["frames_in_per_s"] > 0 and r["frames_out_per_s"] > 0 for r in runs)
    assert all(r["cpu_pct"] > 0 for r in runs)
    assert {r["codec"] for r in report["baud_921600"]} == {"ulaw", "l16"}
    assert set(report["ports_at_921600"]) == {"ulaw", "l16"}
    rule = report["design_rule_921600"]
    # spec §10: 181-byte G.711 frames and 343-byte L16 frames at their largest
    assert (rule["ulaw"]["frame_bytes"], rule["ulaw"]["ports"]) == (181, 5)
    assert (rule["l16"]["frame_bytes"], rule["l16"]["ports"]) == (343, 2)
    assert report["cpu_pct_per_port"] == report["cpu"]["cpu_pct_per_port"]
