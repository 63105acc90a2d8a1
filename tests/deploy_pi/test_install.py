"""deploy_pi/install.sh and uninstall.sh run into a temporary root (`--root DIR`) that looks
like Raspberry Pi OS, with a stub tipring wheel installed offline: the tree they leave, the
config kept across re-runs and upgrades, `current`/`previous` through an upgrade and two
rollbacks, a release whose warm-up fails never becoming current, and uninstall with and
without --purge. As root (CI) the owners are checked too.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy_pi.rig import (
    DEPLOY,
    Entry,
    entry,
    fake_pi_root,
    group_members,
    install,
    link,
    passwd_ids,
    releases,
    run_script,
)
from tests.deploy_pi.stub_release import build_stub_wheel

IS_ROOT = os.geteuid() == 0


def release_id(wheel: Path) -> str:
    """The installer's name for a wheel's release: <version>-<sha256 of the wheel, 12 hex>."""
    version = wheel.name.split("-")[1]
    return f"{version}-{hashlib.sha256(wheel.read_bytes()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class Fresh:
    root: Path
    wheel: Path
    output: str


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {
        "1": build_stub_wheel(out, "1.0.0"),
        "2": build_stub_wheel(out, "2.0.0", warmup_command=True),
        "broken": build_stub_wheel(out, "3.0.0", broken=True),
    }


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An --offline-wheels directory: the stub has no dependencies, so it may stay empty."""
    return tmp_path_factory.mktemp("offline")


@pytest.fixture(scope="module")
def fresh(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path], offline: Path
) -> Fresh:
    root = fake_pi_root(tmp_path_factory.mktemp("pi") / "root")
    output = install(root, wheels["1"], offline)
    return Fresh(root, wheels["1"], output)


def test_release_venv_and_links(fresh: Fresh) -> None:
    root, rel = fresh.root, release_id(fresh.wheel)
    assert releases(root) == [rel]
    assert entry(root / "opt/tipring/current") == Entry("link", 0, *_me(), f"releases/{rel}")
    assert not (root / "opt/tipring/previous").exists()
    tipring = root / "opt/tipring/current/venv/bin/tipring"
    done = subprocess.run([tipring, "hello"], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "tipring 1.0.0: hello"
    deploy = root / "opt/tipring/current/deploy_pi"
    assert sorted(p.name for p in deploy.iterdir()) == sorted(
        ["tipring.service", "99-tipring.rules", "tipring.toml.example", "README.md",
         "install.sh", "uninstall.sh", "tipring-cli.sh"]
    )  # fmt: skip


def test_user_in_dialout_written_as_useradd_would(fresh: Fresh) -> None:
    uid, gid = passwd_ids(fresh.root, "tipring")
    assert 100 <= uid < 1000
    assert uid == gid
    line = next(
        x for x in (fresh.root / "etc/passwd").read_text().splitlines() if x[:8] == "tipring:"
    )
    assert line.split(":")[5:] == ["/var/lib/tipring", "/usr/sbin/nologin"]
    assert group_members(fresh.root, "dialout") == ["pi", "tipring"]
    assert group_members(fresh.root, "tipring") == []


def test_directories_modes_and_owners(fresh: Fresh) -> None:
    root = fresh.root
    tip = passwd_ids(root, "tipring") if IS_ROOT else _me()
    root_tip = (0, tip[1]) if IS_ROOT else _me()
    expected = {
        "etc/tipring": ("dir", 0o770, root_tip),
        "etc/tipring/secrets": ("dir", 0o700, tip),
        "etc/tipring/tipring.toml": ("file", 0o640, tip),
        "etc/tipring/tipring.toml.example": ("file", 0o644, _me() if not IS_ROOT else (0, 0)),
        "var/lib/tipring": ("dir", 0o750, tip),
        "var/cache/tipring": ("dir", 0o750, tip),
        "var/cache/tipring/numba": ("dir", 0o750, tip),
        "etc/systemd/system/tipring.service": ("file", 0o644, _me() if not IS_ROOT else (0, 0)),
        "usr/lib/udev/rules.d/99-tipring.rules": ("file", 0o644, _me() if not IS_ROOT else (0, 0)),
        "usr/local/bin/tipring": ("file", 0o755, _me() if not IS_ROOT else (0, 0)),
    }
    for path, (kind, mode, (uid, gid)) in expected.items():
        assert entry(root / path) == Entry(kind, mode, uid, gid), path


def test_config_and_system_files_are_the_shipped_ones(fresh: Fresh) -> None:
    root = fresh.root
    example = (DEPLOY / "tipring.toml.example").read_text()
    assert (root / "etc/tipring/tipring.toml").read_text() == example
    for shipped, installed in [
        ("tipring.service", "etc/systemd/system/tipring.service"),
        ("99-tipring.rules", "usr/lib/udev/rules.d/99-tipring.rules"),
        ("tipring-cli.sh", "usr/local/bin/tipring"),
    ]:
        assert (root / installed).read_bytes() == (DEPLOY / shipped).read_bytes(), installed
    wants = root / "etc/systemd/system/multi-user.target.wants/tipring.service"
    assert os.readlink(wants) == "/etc/systemd/system/tipring.service"


def test_numba_warmup_ran_with_the_service_cache(fresh: Fresh) -> None:
    cache = fresh.root / "var/cache/tipring/numba/numba-stub-1.0.0"
    seen = json.loads((cache / "warmed.json").read_text())
    assert [s["name"] for s in seen] == [
        "firmware_bridge.adapter_port.warm_port_kernels",
        "gateway.line.warm_line_kernels",
        "gateway.call_audio.warm_up",
    ]
    assert {(s["home"], s["cwd"], s["threads"]) for s in seen} == {
        (str(fresh.root / "var/lib/tipring"), "/", "1")
    }
    release = fresh.root / "opt/tipring/releases" / release_id(fresh.wheel)
    assert (release / ".numba-cache").read_text().splitlines() == numba_dirs(release)


def numba_dirs(release: Path) -> list[str]:
    """What numba names the cache directories of a release's packages (numba's
    `_CacheLocator.get_suitable_cache_subpath`), under the stub's numba-stub-<version>."""
    site = next(release.glob("venv/lib/python3*/site-packages"))
    version = release.name.split("-")[0]
    return [
        f"numba-stub-{version}/{pkg}_{hashlib.sha1(str(site / pkg).encode()).hexdigest()}"
        for pkg in ("dsp", "firmware_bridge", "gateway")
    ]


def test_uart_enabled_and_login_console_moved_off_it(fresh: Fresh) -> None:
    boot = fresh.root / "boot/firmware"
    assert (boot / "cmdline.txt").read_text() == (
        "console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
    )
    # after the [cm5] section: a header of its own, or it would only apply to a CM5
    assert (boot / "config.txt").read_text().endswith("[cm5]\ndtoverlay=dwc2,dr_mode=host\n"
                                                      "[all]\nenable_uart=1\n")  # fmt: skip
    masked = (fresh.root / "opt/tipring/masked-gettys").read_text().split()
    assert masked == ["serial-getty@ttyS0.service", "serial-getty@ttyAMA0.service"]
    for unit in masked:
        assert os.readlink(fresh.root / "etc/systemd/system" / unit) == "/dev/null"
    assert "reboot to apply" in fresh.output


def test_lifecycle_rerun_upgrade_rollback_failed_warmup_uninstall(
    tmp_path: Path, wheels: dict[str, Path], offline: Path
) -> None:
    root = fake_pi_root(tmp_path / "root")
    v1, v2, bad = (release_id(wheels[k]) for k in ("1", "2", "broken"))
    conf = root / "etc/tipring/tipring.toml"
    boot_files = [root / "boot/firmware" / n for n in ("cmdline.txt", "config.txt")]

    install(root, wheels["1"], offline)
    conf.write_text(conf.read_text() + "# the operator's edit\n")
    mine, boot = conf.read_text(), [p.read_text() for p in boot_files]
    passwd, group = (root / "etc/passwd").read_text(), (root / "etc/group").read_text()

    out = install(root, wheels["1"], offline)  # the same again: nothing changes
    assert f"release {v1} is already installed" in out
    assert (link(root, "current"), link(root, "previous"), releases(root)) == (v1, "", [v1])
    assert conf.read_text() == mine
    assert [p.read_text() for p in boot_files] == boot
    assert ((root / "etc/passwd").read_text(), (root / "etc/group").read_text()) == (passwd, group)

    out = install(root, wheels["2"], offline, "--no-uart")  # upgrade
    assert "--no-uart" in out
    assert (link(root, "current"), link(root, "previous")) == (v2, v1)
    assert releases(root) == sorted([v1, v2])
    assert conf.read_text() == mine
    warmed = root / "var/cache/tipring/numba/numba-stub-2.0.0/warmed.json"
    assert [s["name"] for s in json.loads(warmed.read_text())] == ["tipring warmup"]

    run_script("install.sh", "--root", root, "--rollback")
    assert (link(root, "current"), link(root, "previous")) == (v1, v2)
    run_script("install.sh", "--root", root, "--rollback")  # and forward again
    assert (link(root, "current"), link(root, "previous")) == (v2, v1)

    out = install(root, wheels["broken"], offline, "--no-uart", ok=False)
    assert "stub kernel failed to compile" in out
    assert "the release is not switched to" in out
    assert (link(root, "current"), link(root, "previous")) == (v2, v1)

    numba = root / "var/cache/tipring/numba"
    stale = [numba / "numba-stub-2.0.0/dsp_0123", numba / "numba-stub-0.9.0/dsp_4567"]
    for d in stale:  # a removed release's kernels, in a kept directory and in one of its own
        d.mkdir(parents=True)
    install(root, wheels["1"], offline, "--no-uart")  # back to 1.0.0 by installing it
    assert (link(root, "current"), link(root, "previous")) == (v1, v2)
    assert releases(root) == sorted([v1, v2])  # the failed one is gone
    assert bad not in releases(root)
    assert sorted(p.name for p in numba.iterdir()) == ["numba-stub-1.0.0", "numba-stub-2.0.0"]
    assert not stale[0].exists()

    run_script("uninstall.sh", "--root", root)
    for gone in ["opt/tipring", "etc/systemd/system/tipring.service", "usr/local/bin/tipring",
                 "etc/systemd/system/multi-user.target.wants/tipring.service",
                 "usr/lib/udev/rules.d/99-tipring.rules",
                 "etc/systemd/system/serial-getty@ttyS0.service"]:  # fmt: skip
        assert entry(root / gone) is None, gone
    assert conf.read_text() == mine
    assert (root / "var/lib/tipring").is_dir()
    assert "tipring" in group_members(root, "dialout")

    run_script("uninstall.sh", "--root", root, "--purge")
    for gone in ["etc/tipring", "var/lib/tipring", "var/cache/tipring"]:
        assert entry(root / gone) is None, gone
    assert (root / "etc/passwd").read_text() == (
        "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n"
    )
    assert (root / "etc/group").read_text() == "root:x:0:\ndialout:x:20:pi\npi:x:1000:\n"


def test_rollback_without_previous_release_says_so(tmp_path: Path) -> None:
    done = run_script("install.sh", "--root", tmp_path, "--rollback", ok=False)
    assert done.returncode == 1
    assert "no previous release to roll back to" in done.stderr


def test_unknown_option_prints_usage(tmp_path: Path) -> None:
    done = run_script("install.sh", "--root", tmp_path, "--colour", ok=False)
    assert done.returncode == 1
    assert "unknown option: --colour" in done.stderr
    assert "--offline-wheels DIR" in done.stderr


def test_missing_source_stops_before_touching_the_root(tmp_path: Path) -> None:
    done = run_script("install.sh", "--root", tmp_path, "--source", tmp_path / "nope", ok=False)
    assert done.returncode == 1
    assert "--source" in done.stderr
    assert not (tmp_path / "opt").exists()


def _me() -> tuple[int, int]:
    return os.getuid(), os.getgid()
