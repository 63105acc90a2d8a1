"""Where numba keeps its compiled kernels: a directory keyed by the `dsp` sources.

numba's cache notices an edit to a kernel's own file but not to kernels it calls in other
files (`dsp.tones._detect_kernel` calls into `dsp.tone_frames`, ...), so after an upgrade or
an edit it could run stale machine code. Keying the directory by a hash of every `dsp`
source makes any change start a fresh cache. Must run before numba is imported.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dsp

DEFAULT_BASE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tipring"


def dsp_source_hash() -> str:
    """First 16 hex digits of the sha256 over every `dsp/*.py`, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(dsp.__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure_numba_cache() -> Path:
    """Set NUMBA_CACHE_DIR to `<base>/numba-<hash>`, where base is the operator's
    NUMBA_CACHE_DIR (the systemd unit sets one) or ~/.cache/tipring; returns the directory.
    Idempotent: a directory already keyed by the current hash is kept as it is."""
    suffix = f"numba-{dsp_source_hash()}"
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current and Path(current).name == suffix:
        return Path(current)
    base = Path(current) if current else DEFAULT_BASE
    cache_dir = base / suffix
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    return cache_dir
