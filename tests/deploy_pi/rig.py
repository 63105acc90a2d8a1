"""Runs deploy_pi's scripts against a temporary root (`--root DIR`) and reads the tree back."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy_pi"
SCRIPT_S = 120.0  # one installer run: a venv (~4 s on the 2-core CI box) and a stub wheel

# What a Raspberry Pi OS bookworm image ships, trimmed: the serial console on the kernel
# command line, config.txt ending in a model section (so a bare append would only apply to
# a CM5), a user already in dialout.
PI_MODEL = "Raspberry Pi 4 Model B Rev 1.5\0"
PI_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait\n"
)
PI_CONFIG = "dtparam=audio=on\n\n[cm4]\notg_mode=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n"
PI_PASSWD = "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n"
PI_GROUP = "root:x:0:\ndialout:x:20:pi\npi:x:1000:\n"


def fake_pi_root(root: Path) -> Path:
    """A root that the installer takes for a Raspberry Pi (by its device-tree model)."""
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text(PI_MODEL)
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware/cmdline.txt").write_text(PI_CMDLINE)
    (root / "boot/firmware/config.txt").write_text(PI_CONFIG)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(PI_PASSWD)
    (root / "etc/group").write_text(PI_GROUP)
    return root


def run_script(name: str, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`bash deploy_pi/<name> args...`; with `ok`, a non-zero exit fails the test, showing
    the output."""
    done = subprocess.run(
        ["bash", str(DEPLOY / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_S,
        check=False,
    )
    if ok:
        assert done.returncode == 0, f"{name} {args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def install(root: Path, source: Path, wheels: Path, *more: str | Path, ok: bool = True) -> str:
    """The installer into `root` from a wheel, offline; returns stdout + stderr."""
    done = run_script(
        "install.sh", "--root", root, "--source", source, "--offline-wheels", wheels,
        "--python", sys.executable, *more, ok=ok,
    )  # fmt: skip
    return done.stdout + done.stderr


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of the installed tree: kind ("dir", "file", "link"), mode bits, owner, and
    for a symlink its target."""

    kind: str
    mode: int
    uid: int
    gid: int
    target: str = ""


def entry(path: Path) -> Entry | None:
    """What is at `path` (None: nothing); symlinks are not followed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Entry("link", 0, st.st_uid, st.st_gid, os.readlink(path))
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def passwd_ids(root: Path, user: str) -> tuple[int, int]:
    """(uid, gid) of `user` in root/etc/passwd."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no {user} in {root}/etc/passwd")


def group_members(root: Path, group: str) -> list[str]:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return [m for m in fields[3].split(",") if m]
    raise AssertionError(f"no {group} in {root}/etc/group")


def releases(root: Path) -> list[str]:
    """The release directories under opt/tipring/releases, sorted."""
    return sorted(p.name for p in (root / "opt/tipring/releases").iterdir())


def link(root: Path, name: str) -> str:
    """The release `opt/tipring/<name>` points at ('' if there is no such link)."""
    path = root / "opt/tipring" / name
    return Path(os.readlink(path)).name if path.is_symlink() else ""


def tool(name: str) -> str | None:
    return shutil.which(name)
