"""How busy the rest of the machine was while a real-clock test ran (no tests here).

Real-time calls on a shared 2-core box lose frames when other processes keep the cores busy:
the test process waits for a core, and its frames are handled late. `MachineLoad` measures
the other processes' CPU (all cores' busy time from /proc/stat, less this process and its
waited-for children) so that a late-frame check can tell the box's own lateness from the
machine's.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS_S = os.sysconf("SC_CLK_TCK")
# Other processes using more than this (% of one core) make the late-frame figures the
# machine's, not the box's: the tests then report them instead of checking them.
BUSY_PERCENT = 50.0


def _busy_s() -> float:
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS_S  # less idle and iowait


def _ours_s() -> float:
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


@dataclass
class MachineLoad:
    """`start()`, run the test, `stop()`; then `others_percent` and `busy`."""

    others_percent: float = 0.0
    _start: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def start(self) -> MachineLoad:
        self._start = (time.perf_counter(), _busy_s(), _ours_s())
        return self

    def stop(self) -> MachineLoad:
        wall0, busy0, ours0 = self._start
        wall = time.perf_counter() - wall0
        others = (_busy_s() - busy0) - (_ours_s() - ours0)
        self.others_percent = max(0.0, 100.0 * others / wall)
        return self

    @property
    def busy(self) -> bool:
        return self.others_percent > BUSY_PERCENT
