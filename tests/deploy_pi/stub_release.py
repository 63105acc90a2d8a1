"""A stand-in tipring release for the installer tests: a real wheel (zip, dist-info, RECORD,
a `tipring` console script) with no dependencies, so `pip install --no-index` takes a second.
Its warm functions have the names and modules the installer calls on the real package, and
each leaves a record of how it was called (`warmed.json` in the numba cache directory).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

CLI = """
import json, os, sys
def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["warmup"] and WARMUP_COMMAND:
        if "--help" in args:
            return 0
        from gateway.numba_cache import configure_numba_cache
        cache = configure_numba_cache()
        from gateway.line import record
        record("tipring warmup")
        print(f"numba-cache-dir={cache}")
        return 0
    print(f"tipring {VERSION}: {' '.join(args)}")
    return 2
"""

NUMBA_CACHE = """
import os
from pathlib import Path
def configure_numba_cache() -> Path:
    cache = Path(os.environ["NUMBA_CACHE_DIR"]) / f"numba-stub-{VERSION}"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(cache)
    return cache
"""

LINE = """
import json, os
from pathlib import Path
def record(name: str) -> None:
    path = Path(os.environ["NUMBA_CACHE_DIR"]) / "warmed.json"
    seen = json.loads(path.read_text()) if path.exists() else []
    seen.append({"name": name, "home": os.environ.get("HOME"), "cwd": os.getcwd(),
                 "threads": os.environ.get("NUMBA_NUM_THREADS"), "version": VERSION})
    path.write_text(json.dumps(seen))
def warm_line_kernels() -> None:
    if BROKEN:
        raise RuntimeError("stub kernel failed to compile")
    record("gateway.line.warm_line_kernels")
"""

CALL_AUDIO = """
from gateway.line import record
def warm_up() -> None:
    record("gateway.call_audio.warm_up")
"""

ADAPTER_PORT = """
from gateway.line import record
def warm_port_kernels() -> None:
    record("firmware_bridge.adapter_port.warm_port_kernels")
"""


def build_stub_wheel(
    out_dir: Path, version: str, *, warmup_command: bool = False, broken: bool = False
) -> Path:
    """Write tipring-<version>-py3-none-any.whl into `out_dir` and return its path.
    `warmup_command`: the CLI has `tipring warmup`; `broken`: a warm function raises."""
    head = f"VERSION = {version!r}\nWARMUP_COMMAND = {warmup_command}\nBROKEN = {broken}\n"
    files = {
        "dsp/__init__.py": "",
        "firmware_bridge/__init__.py": "",
        "firmware_bridge/adapter_port.py": ADAPTER_PORT,
        "gateway/__init__.py": "",
        "gateway/cli.py": head + CLI,
        "gateway/numba_cache.py": head + NUMBA_CACHE,
        "gateway/line.py": head + LINE,
        "gateway/call_audio.py": CALL_AUDIO,
    }
    info = f"tipring-{version}.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: tipring\nVersion: {version}\n"
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests.deploy_pi\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = "[console_scripts]\ntipring = gateway.cli:main\n"
    record = [f"{name},{_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = out_dir / f"tipring-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
