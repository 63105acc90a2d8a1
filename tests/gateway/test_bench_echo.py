"""`tipring bench echo` as a user runs it: one subprocess, every canceller on the quick battery.

The reference libraries must have run (libspeexdsp1 and libspandsp2 are test dependencies) and
the battery must be able to fail (no canceller fails every ERLE check). Results and timings of
the cancellers are printed by the bench, never asserted here.
"""

import json
import math
import subprocess
import sys
from typing import Any

from gateway.bench.echo import CANCELLERS, QUICK_KINDS, json_safe, select_checks
from tests.bench.echo_battery import CHECKS

COMMAND = [sys.executable, "-m", "gateway"]
CHECK_KEYS = {"name", "unit", "bound", "at_least", "nlp", "results", "passed", "delay_ms"}


def _is_value(value: Any) -> bool:
    """A measured value as the JSON carries it: a number, or "inf" / "-inf" / "nan"."""
    return isinstance(value, int | float) or value in ("inf", "-inf", "nan")


def test_bench_echo_quick_json_runs_every_canceller_on_the_battery_in_one_run() -> None:
    done = subprocess.run(
        [*COMMAND, "bench", "echo", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # one object: no library debug output mixed in
    assert report["cancellers"] == list(CANCELLERS)
    checks = report["checks"]
    assert [c["name"] for c in checks] == [c.name for c in select_checks(CHECKS, quick=True)]
    assert report["check_count"] == len(checks) > 0
    for check in checks:
        assert set(check) == CHECK_KEYS
        assert set(check["results"]) == set(check["passed"]) == set(CANCELLERS)
        for name in ("none", "speexdsp", "spandsp"):
            assert _is_value(check["results"][name]), (check["name"], name, check["results"])
    for name in CANCELLERS:
        assert report["passed"][name] == sum(c["passed"][name] for c in checks)
    # ours is either measured everywhere or reported missing with the reason
    if "tipring" in report["unavailable"]:
        assert "dsp.echo" in report["unavailable"]["tipring"]
    else:
        assert all(_is_value(c["results"]["tipring"]) for c in checks)
    # the battery can fail: with no canceller, every ERLE check does
    erle = [c for c in checks if c["name"].startswith("ERLE")]
    assert erle
    assert not any(c["passed"]["none"] for c in erle)
    assert isinstance(report["ceiling_db"], float)
    cpu = report["cpu_us_per_frame"]
    assert set(cpu) == {"tipring", "speexdsp", "spandsp", "tipring_256ms", "spandsp_2ms"}
    assert all(isinstance(cpu[k], float) for k in ("speexdsp", "spandsp", "spandsp_2ms"))


def test_json_safe_writes_non_finite_floats_as_strings() -> None:
    raw = {"a": [math.inf, -math.inf, math.nan, 1.5], "b": {"c": math.inf}, "d": "x"}
    safe = json_safe(raw)
    assert safe == {"a": ["inf", "-inf", "nan", 1.5], "b": {"c": "inf"}, "d": "x"}
    json.dumps(safe, allow_nan=False)


def test_quick_subset_is_the_first_check_of_each_kind() -> None:
    quick = select_checks(CHECKS, quick=True)
    assert [c.name for c in quick] == [
        next(c.name for c in CHECKS if c.name.startswith(kind)) for kind in QUICK_KINDS
    ]
