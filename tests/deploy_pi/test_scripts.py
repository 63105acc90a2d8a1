"""Every shell script in deploy_pi is shellcheck clean (all severities, style included) and
parses with `bash -n`. `make test` installs shellcheck (Debian package) when run as root;
elsewhere a missing shellcheck skips, except in CI, where it fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy_pi.rig import DEPLOY, run_script, tool

SCRIPTS = sorted(DEPLOY.glob("*.sh"))


def test_the_scripts_are_there() -> None:
    names = [p.name for p in SCRIPTS]
    assert names == ["install.sh", "test-pi.sh", "tipring-cli.sh", "uninstall.sh"]
    for path in SCRIPTS:
        assert os.access(path, os.X_OK), f"{path.name} is not executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:  # make test installs it (TEST_DEBS) or stops naming it
        pytest.fail("shellcheck is missing: apt-get install shellcheck (make test does)")
    done = subprocess.run(
        [shellcheck, "--severity=style", "--external-sources", script.name],
        cwd=DEPLOY, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_parses(script: Path) -> None:
    done = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_help(script: str) -> None:
    out = run_script(script, "--help").stdout
    assert out.startswith(f"usage: {script}")
    assert "--root DIR" in out
